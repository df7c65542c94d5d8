"""The default executor: a pool of worker threads, and the executor names a task may use."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .._engine._executor import EXECUTOR_FACTORIES, RunOptions, arguments_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._engine._executor import Executor
    from .._engine._task import Context, Task


class ThreadExecutor:
    """Runs sync callbacks in a pool of worker threads (the default executor).

    A thread cannot be stopped from outside: when its task is cancelled or
    times out, the task is reported at once and the run goes on, but the
    callback keeps running until it returns. Use the process executor for
    work that must really stop.

    :param max_workers: pool size; Python's default (CPU count + 4, at most 32) when None
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._users = 0

    async def start(self) -> None:
        """Count one more user; threads themselves start on first use."""
        self._users += 1

    async def call(self, task: Task, function: Callable[[Context], Any], context: Context) -> Any:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="flow2")
        context, keywords = arguments_for(task, function, context, remote=False)
        if keywords:
            function = functools.partial(function, **keywords)
        # The worker sees the caller's context variables (its task, its run).
        call_in_context = contextvars.copy_context().run
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, call_in_context, function, context
        )

    async def aclose(self) -> None:
        """Undo one ``start()``; after the last, shut the pool down."""
        self._users = max(0, self._users - 1)
        if self._users == 0 and self._pool is not None:
            # Never block the loop on a thread that cannot be stopped; work
            # not yet started is dropped.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _make_process_executor(options: RunOptions) -> Executor:
    from ._processes import ProcessExecutor

    return ProcessExecutor()


def _make_dask_executor(options: RunOptions) -> Executor:
    # Imported on use: the Dask executor is an optional extra.
    from ._dask import DaskExecutor

    return DaskExecutor()


EXECUTOR_FACTORIES.update(
    {
        "thread": lambda options: ThreadExecutor(options.max_threads),
        "process": _make_process_executor,
        "dask": _make_dask_executor,
    }
)
