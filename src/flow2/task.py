"""The task classes, under the module name the documentation uses (``flow2.task``)."""

from __future__ import annotations

from ._engine._callback import CallbackTask
from ._engine._foreach import ForEach
from ._engine._groups import OnError, ParallelTaskGroup, SerialTaskGroup, TaskGroup
from ._engine._task import Task

__all__ = [
    "CallbackTask",
    "ForEach",
    "OnError",
    "ParallelTaskGroup",
    "SerialTaskGroup",
    "Task",
    "TaskGroup",
]
