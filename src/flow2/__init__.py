"""flow2: an asynchronous task executor.

Describe work as a tree of tasks — your own :class:`Task` subclasses and
:class:`CallbackTask` s around any sync or async function, nested in
:class:`SerialTaskGroup` s and :class:`ParallelTaskGroup` s — and run it::

    result = await flow2.SerialTaskGroup("Release", build, publish).run()
"""

from __future__ import annotations

from ._console import Verbosity
from ._dask import DaskExecutor
from ._events import Event, EventListener, RunEvent, Status, TaskEvent
from ._exceptions import (
    CommandError,
    ConfigurationError,
    DefinitionError,
    DuplicateKeyError,
    DuplicateTaskError,
    ExecutorError,
    ExpressionError,
    FlowError,
    FlowFileError,
    PluginError,
    StrayCancellationError,
    TaskTimeoutError,
    TaskTypeError,
)
from ._executors import EXECUTOR_FACTORIES, Executor, ThreadExecutor
from ._loader import Flow, load
from ._logging import TaskLogger
from ._naming import snake_case
from ._processes import ProcessExecutor
from ._run import Display, Run, Runner
from .task import CallbackTask, OnError, ParallelTaskGroup, SerialTaskGroup, Task, TaskGroup

#: A logger bound to whichever task is running where it is called.
logger = TaskLogger()

__all__ = [
    "EXECUTOR_FACTORIES",
    "CallbackTask",
    "CommandError",
    "ConfigurationError",
    "DaskExecutor",
    "DefinitionError",
    "Display",
    "DuplicateKeyError",
    "DuplicateTaskError",
    "Event",
    "EventListener",
    "Executor",
    "ExecutorError",
    "ExpressionError",
    "Flow",
    "FlowError",
    "FlowFileError",
    "OnError",
    "ParallelTaskGroup",
    "PluginError",
    "ProcessExecutor",
    "Run",
    "RunEvent",
    "Runner",
    "SerialTaskGroup",
    "Status",
    "StrayCancellationError",
    "Task",
    "TaskEvent",
    "TaskGroup",
    "TaskLogger",
    "TaskTimeoutError",
    "TaskTypeError",
    "ThreadExecutor",
    "Verbosity",
    "load",
    "logger",
    "snake_case",
]
