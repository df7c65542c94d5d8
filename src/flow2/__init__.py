"""flow2: an asynchronous task executor.

Describe work as a tree of tasks — your own :class:`Task` subclasses and
:class:`CallbackTask` s around any sync or async function, nested in
:class:`SerialTaskGroup` s and :class:`ParallelTaskGroup` s — and run it::

    result = await flow2.SerialTaskGroup("Release", build, publish).run()
"""

from __future__ import annotations

import typing as _typing

from . import _executors  # noqa: F401  (registers the executor names)
from ._engine._caching import Cache
from ._engine._events import Event, EventListener, OutputEvent, RunEvent, Status, TaskEvent
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
    MissingResultError,
    PluginError,
    ReportError,
    StrayCancellationError,
    TaskExitError,
    TaskTimeoutError,
    TaskTypeError,
)
from ._engine._executor import EXECUTOR_FACTORIES, Executor
from ._engine._logger import TaskLogger
from ._engine._naming import snake_case
from ._engine._needs import NeedsError
from ._engine._run import Run
from ._engine._state import Cleanup, TaskRun
from ._engine._task import Context
from ._listeners._settings import Display, Verbosity
from ._running._result import Counts, RunFailed, RunResult, TaskFailure
from ._running._runner import Runner, run
from ._running._signals import Interrupted
from .task import (
    CallbackTask,
    ForEach,
    OnError,
    ParallelTaskGroup,
    SerialTaskGroup,
    Task,
    TaskGroup,
)

if _typing.TYPE_CHECKING:
    from ._engine._partial import PlannedTask, RunPlan
    from ._executors._dask import DaskExecutor
    from ._executors._processes import ProcessExecutor
    from ._executors._threads import ThreadExecutor
    from ._flows._loader import Flow, load
    from ._flows._shell import ShellTask
    from ._reports._html import html_report
    from ._reports._junit import junit_report
    from ._reports._markdown import markdown_report
    from ._reports._model import AttemptRecord, ErrorRecord, RunRecord, TaskRecord
    from ._reports._reading import read_events
    from ._reports._stored import read_store
    from ._reports._trace import trace_report
    from ._store._database import StoreError

#: The version of this package (PEP 440).
__version__ = "7.0.0.dev1"

#: A logger bound to whichever task is running where it is called.
logger = TaskLogger()

# The optional parts load on first use, so ``import flow2`` stays about as
# cheap as ``import asyncio``: name -> module that defines it.
_ON_FIRST_USE = {
    "AttemptRecord": "._reports._model",
    "DaskExecutor": "._executors._dask",
    "ErrorRecord": "._reports._model",
    "Flow": "._flows._loader",
    "load": "._flows._loader",
    "PlannedTask": "._engine._partial",
    "ProcessExecutor": "._executors._processes",
    "RunPlan": "._engine._partial",
    "RunRecord": "._reports._model",
    "ShellTask": "._flows._shell",
    "StoreError": "._store._database",
    "TaskRecord": "._reports._model",
    "ThreadExecutor": "._executors._threads",
    "html_report": "._reports._html",
    "junit_report": "._reports._junit",
    "markdown_report": "._reports._markdown",
    "read_events": "._reports._reading",
    "read_store": "._reports._stored",
    "trace_report": "._reports._trace",
}


def __getattr__(name: str) -> object:
    if name not in _ON_FIRST_USE:
        raise AttributeError(f"module 'flow2' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_ON_FIRST_USE[name], __name__), name)
    _report_as_flow2(value)
    globals()[name] = value
    return value


def _report_as_flow2(value: object) -> None:
    """Make a public class or function say ``flow2.X`` in tracebacks and reprs."""
    if isinstance(value, type) or callable(value):
        try:
            value.__module__ = __name__
        except (AttributeError, TypeError):  # pragma: no cover - builtins
            pass


def __dir__() -> list[str]:
    return sorted({*globals(), *_ON_FIRST_USE})


__all__ = [
    "EXECUTOR_FACTORIES",
    "AttemptRecord",
    "Cache",
    "CallbackTask",
    "Cleanup",
    "CommandError",
    "ConfigurationError",
    "Context",
    "Counts",
    "DaskExecutor",
    "DefinitionError",
    "Display",
    "DuplicateKeyError",
    "DuplicateTaskError",
    "ErrorRecord",
    "Event",
    "EventListener",
    "Executor",
    "ExecutorError",
    "ExpressionError",
    "Flow",
    "FlowError",
    "FlowFileError",
    "ForEach",
    "Interrupted",
    "MissingResultError",
    "NeedsError",
    "OnError",
    "OutputEvent",
    "ParallelTaskGroup",
    "PlannedTask",
    "PluginError",
    "ProcessExecutor",
    "ReportError",
    "Run",
    "RunEvent",
    "RunFailed",
    "RunPlan",
    "RunRecord",
    "RunResult",
    "Runner",
    "SerialTaskGroup",
    "ShellTask",
    "Status",
    "StoreError",
    "StrayCancellationError",
    "Task",
    "TaskEvent",
    "TaskExitError",
    "TaskFailure",
    "TaskGroup",
    "TaskLogger",
    "TaskRecord",
    "TaskRun",
    "TaskTimeoutError",
    "TaskTypeError",
    "ThreadExecutor",
    "Verbosity",
    "html_report",
    "junit_report",
    "load",
    "logger",
    "markdown_report",
    "read_events",
    "read_store",
    "run",
    "snake_case",
    "trace_report",
]

for _name in __all__:
    if _name not in _ON_FIRST_USE:
        _report_as_flow2(globals()[_name])
del _name, _typing, annotations  # the module's own helpers are not flow2's names
