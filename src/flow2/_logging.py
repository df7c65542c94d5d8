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

import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from ._console import WORDS, describe_error
from ._context import current_run, current_task
from ._events import RunEvent, Status, TaskEvent

if TYPE_CHECKING:
    from ._events import Event
    from ._task import Task

logger = logging.getLogger("flow2")
# An application that never configures logging sees no stray records.
logger.addHandler(logging.NullHandler())

#: Where the records of tasks' own code go (a child of ``flow2``).
tasks_logger = logging.getLogger("flow2.tasks")


class TaskLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger whose records carry the task they come from.

    ``Task.logger`` is bound to its task; ``flow2.logger`` is bound to
    whichever task is running where it is called (through a context
    variable, so it works in async code, worker threads and helpers alike).
    Each record gets the attributes ``task`` (name), ``key``, ``path`` and
    ``run_id``; outside any task they are None.

    :param task: the task to bind to; None for "the task running now"
    """

    def __init__(self, task: Task | None = None) -> None:
        super().__init__(tasks_logger, {})
        self.task = task

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        task = self.task if self.task is not None else current_task.get()
        run = current_run.get()
        fields: dict[str, Any] = {"task": None, "key": None, "path": None, "run_id": None}
        if task is not None:
            fields["task"] = task.name
            fields["key"] = task.key
            if run is not None:
                fields["path"] = " › ".join(run.path_of(task))
        if run is not None:
            fields["run_id"] = run.id
        kwargs["extra"] = {**fields, **kwargs.get("extra", {})}
        return msg, kwargs


LEVELS = {
    Status.RUNNING: logging.DEBUG,
    Status.SUCCEEDED: logging.INFO,
    Status.SKIPPED: logging.INFO,
    Status.RETRYING: logging.WARNING,
    Status.CANCELLED: logging.WARNING,
    Status.PARTIAL: logging.WARNING,
    Status.FAILED: logging.ERROR,
}


class LoggingListener:
    """An event listener that logs each event to the ``flow2`` logger."""

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
