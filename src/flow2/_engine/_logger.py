"""The loggers of flow2, and the adapter that ties a task's log records to the task.

``flow2`` receives one record per event (see the logging listener);
``flow2.tasks`` receives what tasks' own code logs through
:class:`TaskLogger` (``task.logger`` or ``flow2.logger``).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from ._context import current_record, current_run

if TYPE_CHECKING:
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
    Each record gets the attributes ``task`` (name), ``key``, ``path``,
    ``run_id``, ``task_object`` (the :class:`Task` itself) and ``task_record``
    (its :class:`flow2.TaskRun` in the current run); outside any
    task they are None.

    :param task: the task to bind to; None for "the task running now"
    """

    def __init__(self, task: Task | None = None) -> None:
        super().__init__(tasks_logger, {})
        self.task = task

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        run = current_run.get()
        record = current_record.get()
        task = self.task
        if task is None:
            task = record.task if record is not None else None
        elif record is None or record.task is not task:
            record = run.find_record(task) if run is not None else None
        fields: dict[str, Any] = {
            "task": None,
            "key": None,
            "path": None,
            "run_id": None,
            "task_object": task,
            "task_record": record,
        }
        if task is not None:
            fields["task"] = task.name
            fields["key"] = task.key
            if record is not None:
                fields["path"] = " › ".join(record.path)
        if run is not None:
            fields["run_id"] = run.id
        kwargs["extra"] = {**fields, **kwargs.get("extra", {})}
        return msg, kwargs
