"""Every event as a record of the standard library logger ``flow2``.

Levels: a task starting is DEBUG, succeeding or being skipped INFO, a retry,
a cancellation or a group with failures inside WARNING, a failure ERROR with
the exception attached. Each record carries the attributes ``task`` (name),
``key``, ``path`` (names from the root, joined by " › "), ``status``,
``attempt``, ``duration`` (seconds, None until finished) and ``run_id``, for
formatters and filters::

    logging.basicConfig(format="%(asctime)s %(levelname)s [%(task)s] %(message)s")
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

from .._engine._events import RunEvent, Status, TaskEvent
from .._engine._logger import logger, tasks_logger
from ._text import WORDS, describe_error

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._engine._events import Event

LEVELS = {
    Status.RUNNING: logging.DEBUG,
    Status.SUCCEEDED: logging.INFO,
    Status.SKIPPED: logging.INFO,
    Status.REUSED: logging.INFO,
    Status.CACHED: logging.INFO,
    Status.RETRYING: logging.WARNING,
    Status.CANCELLED: logging.WARNING,
    Status.PARTIAL: logging.WARNING,
    Status.FAILED: logging.ERROR,
}


class LoggingListener:
    """An event listener that logs each event to the ``flow2`` logger.

    It receives the task events whose level the ``flow2`` logger enables
    when the run starts (most runs log none: then it costs nothing per task).
    """

    @property
    def listens_to(self) -> frozenset[Status]:
        """The statuses logged: read by the run as it starts."""
        return frozenset(status for status, level in LEVELS.items() if logger.isEnabledFor(level))

    def __call__(self, event: Event) -> None:
        if type(event) is TaskEvent:
            self._log_task_event(event)
        elif isinstance(event, RunEvent):
            self._log_run_event(event)

    def _log_task_event(self, event: TaskEvent) -> None:
        status = event.status
        level = LEVELS[status]
        if not logger.isEnabledFor(level):  # cached by logging: cheap
            return
        task = event.task
        message = f"{WORDS[status]} {task.name}"
        exc_info = None
        error = event.error
        if status is Status.FAILED and error is not None:
            if task.stores_result or not event.failed_count:
                # The task's own failure; a group failing because of a
                # child only refers to it, the child's record has the traceback.
                exc_info = (type(error), error, error.__traceback__)
            else:
                message += f": {event.failed_count} failed inside"
        elif status is Status.RETRYING and error is not None:
            message += (
                f": {describe_error(error)}; attempt {event.attempt} of "
                f"{task.retries + 1}, next in {event.retry_delay:g}s"
            )
        elif status is Status.PARTIAL:
            message += f": {event.failed_count} failed inside"
        logger.log(
            level,
            message,
            exc_info=exc_info,
            extra={
                "task": task.name,
                "key": task.key,
                "path": " › ".join(event.path),
                "status": status.value,
                "attempt": event.attempt,
                "duration": event.duration,
                "run_id": event.run.id,
            },
        )

    def _log_run_event(self, event: RunEvent) -> None:
        level = logging.INFO if event.status is not Status.FAILED else logging.ERROR
        if not logger.isEnabledFor(level):
            return
        root = event.run.root
        if event.status is Status.RUNNING:
            message = f"run {event.run.id} of {root.name!r} started"
        else:
            message = (
                f"run {event.run.id} of {root.name!r} ended {event.status.value} "
                f"in {event.duration or 0:.2f}s"
            )
        logger.log(
            level,
            message,
            extra={"run_id": event.run.id, "task": root.name, "status": event.status.value},
        )


class TaskRecordRouter:
    """An event listener that hands the records of tasks' own code to a display.

    While a run lasts it attaches a handler to the ``flow2.tasks`` logger
    (where ``task.logger`` and ``flow2.logger`` write) that passes each record
    of *this* run to ``show`` — always on the event loop's thread, so a
    display never races the engine, and records from worker threads keep
    their order with the events. The records still propagate to the
    application's own logging handlers.

    When the application left the ``flow2.tasks`` level unset, the router
    sets it to ``level`` for the run (logging would otherwise drop INFO
    records before any handler sees them) and restores it at the end.

    :param show: called with each record of the run, on the loop's thread
    :param level: the lowest level shown
    """

    #: It acts on the run's begin and end only.
    listens_to: frozenset[Status] = frozenset()

    def __init__(self, show: Callable[[logging.LogRecord], None], level: int) -> None:
        self.show = show
        self.level = level
        self._handler: _RunHandler | None = None
        self._level_set = False

    def __call__(self, event: Event) -> None:
        if type(event) is not RunEvent:
            return
        if event.status is Status.RUNNING:
            self._handler = _RunHandler(event.run.id, self.show, self.level)
            tasks_logger.addHandler(self._handler)
            if tasks_logger.level == logging.NOTSET or _levels_set:
                # Runs may overlap: the level stays set, low enough for
                # every run, until the last of them ends.
                _levels_set.append(self.level)
                tasks_logger.setLevel(min(_levels_set))
                self._level_set = True
        elif self._handler is not None:
            tasks_logger.removeHandler(self._handler)
            self._handler = None
            if self._level_set:
                _levels_set.remove(self.level)
                tasks_logger.setLevel(min(_levels_set, default=logging.NOTSET))
                self._level_set = False


#: The levels that the routers of the runs going on set on ``flow2.tasks``.
_levels_set: list[int] = []


class _RunHandler(logging.Handler):
    """Passes the records of one run to a display, on the run's loop thread."""

    def __init__(self, run_id: str, show: Callable[[logging.LogRecord], None], level: int) -> None:
        super().__init__(level)
        self.run_id = run_id
        self.show = show
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "run_id", None) != self.run_id:
            return
        if threading.get_ident() == self.loop_thread:
            self.show(record)
            return
        try:
            self.loop.call_soon_threadsafe(self.show, record)
        except RuntimeError:  # the loop closed: a thread outlived its run
            pass
