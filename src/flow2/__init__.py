"""flow2: an asynchronous task executor.

Describe work as a tree of tasks — your own :class:`Task` subclasses and
:class:`CallbackTask` s around any sync or async function, nested in
:class:`SerialTaskGroup` s and :class:`ParallelTaskGroup` s — and run it::

    result = await flow2.SerialTaskGroup("Release", build, publish).run()
"""

from __future__ import annotations

import typing as _typing

from ._engine._events import Event, EventListener, RunEvent, Status, TaskEvent
from ._engine._exceptions import (
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
from ._engine._executor import EXECUTOR_FACTORIES, Executor
from ._engine._logger import TaskLogger
from ._engine._naming import snake_case
from ._engine._run import Run
from ._executors._threads import ThreadExecutor
from ._listeners._settings import Display, Verbosity
from ._runner import Runner
from .task import CallbackTask, OnError, ParallelTaskGroup, SerialTaskGroup, Task, TaskGroup

if _typing.TYPE_CHECKING:
    from ._executors._dask import DaskExecutor
    from ._executors._processes import ProcessExecutor
    from ._flows._loader import Flow, load

#: A logger bound to whichever task is running where it is called.
logger = TaskLogger()

# The optional parts load on first use, so ``import flow2`` stays about as
# cheap as ``import asyncio``: name -> module that defines it.
_ON_FIRST_USE = {
    "DaskExecutor": "._executors._dask",
    "Flow": "._flows._loader",
    "load": "._flows._loader",
    "ProcessExecutor": "._executors._processes",
}


def __getattr__(name: str) -> _typing.Any:
    if name not in _ON_FIRST_USE:
        raise AttributeError(f"module 'flow2' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_ON_FIRST_USE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_ON_FIRST_USE})


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
