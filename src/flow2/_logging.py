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
from typing import TYPE_CHECKING

from ._console import WORDS, describe_error
from ._events import RunEvent, Status, TaskEvent

if TYPE_CHECKING:
    from ._events import Event

logger = logging.getLogger("flow2")
# An application that never configures logging sees no stray records.
logger.addHandler(logging.NullHandler())

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
