"""Where sync work executes: threads (the default), processes, a Dask cluster.

Layer rule: modules here import the standard library and ``flow2._engine``
only. Importing this package registers the executor names in the engine's
``EXECUTOR_FACTORIES``; each executor's module loads when a run first uses
it, so ``import flow2`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._engine._executor import EXECUTOR_FACTORIES, Executor

if TYPE_CHECKING:
    from .._engine._executor import RunOptions


def _make_thread_executor(options: RunOptions) -> Executor:
    """The run's default executor: the caller's, a pool of the run's own size, or the shared one."""
    from ._threads import DEFAULT_GRACE, PoolExecutor, ThreadExecutor, shared_thread_pool

    given = options.executor
    if given is not None:
        return given if isinstance(given, Executor) else PoolExecutor(given)
    if options.max_threads is not None or options.grace != DEFAULT_GRACE:
        return ThreadExecutor(options.max_threads, grace=options.grace)
    return shared_thread_pool()


def _make_process_executor(options: RunOptions) -> Executor:
    from ._processes import ProcessExecutor

    return ProcessExecutor(grace=options.grace)


def _make_dask_executor(options: RunOptions) -> Executor:
    # Dask is an optional extra.
    from ._dask import DaskExecutor

    return DaskExecutor(options.dask_address)


EXECUTOR_FACTORIES.update(
    {
        "thread": _make_thread_executor,
        "process": _make_process_executor,
        "dask": _make_dask_executor,
    }
)
