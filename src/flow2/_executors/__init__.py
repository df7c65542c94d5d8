"""Where sync work executes: threads (the default), processes, a Dask cluster.

Layer rule: modules here import the standard library and ``flow2._engine``
only. Importing this package registers the executor names in the engine's
``EXECUTOR_FACTORIES``; each executor's module loads when a run first uses
it, so ``import flow2`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._engine._executor import EXECUTOR_FACTORIES

if TYPE_CHECKING:
    from .._engine._executor import Executor, RunOptions


def _make_thread_executor(options: RunOptions) -> Executor:
    from ._threads import ThreadExecutor

    return ThreadExecutor(options.max_threads, grace=options.grace)


def _make_process_executor(options: RunOptions) -> Executor:
    from ._processes import ProcessExecutor

    return ProcessExecutor(grace=options.grace)


def _make_dask_executor(options: RunOptions) -> Executor:
    # Dask is an optional extra.
    from ._dask import DaskExecutor

    return DaskExecutor()


EXECUTOR_FACTORIES.update(
    {
        "thread": _make_thread_executor,
        "process": _make_process_executor,
        "dask": _make_dask_executor,
    }
)
