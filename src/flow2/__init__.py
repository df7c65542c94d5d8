"""flow2: an asynchronous task executor.

Describe work as a tree of tasks — your own :class:`Task` subclasses and
:class:`CallbackTask` s around any sync or async function, nested in
:class:`SerialTaskGroup` s and :class:`ParallelTaskGroup` s — and run it::

    result = await flow2.SerialTaskGroup("Release", build, publish).run()
"""

from __future__ import annotations

from ._console import Verbosity
from ._events import Event, EventListener, RunEvent, Status, TaskEvent
from ._exceptions import (
    ConfigurationError,
    DefinitionError,
    DuplicateKeyError,
    DuplicateTaskError,
    ExecutorError,
    FlowError,
    TaskTimeoutError,
    TaskTypeError,
)
from ._executors import EXECUTOR_FACTORIES, Executor, ThreadExecutor
from ._logging import TaskLogger
from ._naming import snake_case
from ._run import Display, Run, Runner
from .task import CallbackTask, OnError, ParallelTaskGroup, SerialTaskGroup, Task, TaskGroup

#: A logger bound to whichever task is running where it is called.
logger = TaskLogger()

__all__ = [
    "EXECUTOR_FACTORIES",
    "CallbackTask",
    "ConfigurationError",
    "DefinitionError",
    "Display",
    "DuplicateKeyError",
    "DuplicateTaskError",
    "Event",
    "EventListener",
    "Executor",
    "ExecutorError",
    "FlowError",
    "OnError",
    "ParallelTaskGroup",
    "Run",
    "RunEvent",
    "Runner",
    "SerialTaskGroup",
    "Status",
    "Task",
    "TaskEvent",
    "TaskGroup",
    "TaskLogger",
    "TaskTimeoutError",
    "TaskTypeError",
    "ThreadExecutor",
    "Verbosity",
    "logger",
    "snake_case",
]
