"""flow2: an asynchronous task executor.

Describe work as a tree of tasks — your own :class:`Task` subclasses and
:class:`CallbackTask` s around any sync or async function, nested in
:class:`SerialTaskGroup` s and :class:`ParallelTaskGroup` s — and run it::

    result = await flow2.SerialTaskGroup("Release", build, publish).run()
"""

from __future__ import annotations

import typing as _typing

from ._console import Verbosity
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
from ._logging import TaskLogger
from ._naming import snake_case
from ._run import Display, Run, Runner
from .task import CallbackTask, OnError, ParallelTaskGroup, SerialTaskGroup, Task, TaskGroup

if _typing.TYPE_CHECKING:
    from ._dask import DaskExecutor
    from ._loader import Flow, load
    from ._processes import ProcessExecutor

#: A logger bound to whichever task is running where it is called.
logger = TaskLogger()

# The optional parts load on first use, so ``import flow2`` stays about as
# cheap as ``import asyncio``: name -> module that defines it.
_ON_FIRST_USE = {
    "DaskExecutor": "._dask",
    "Flow": "._loader",
    "load": "._loader",
    "ProcessExecutor": "._processes",
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
