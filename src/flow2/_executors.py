"""Where sync work runs.

An async callback always runs on the event loop. A sync callback is handed
to its task's executor, chosen by the task's ``executor`` option (inherited
from the enclosing group, ``"thread"`` when nobody sets one). An executor is
anything with the two coroutine methods of :class:`Executor`; a name such as
``"thread"`` is looked up in :data:`EXECUTOR_FACTORIES`. A run starts every
executor its tree names before the first task runs, and closes the ones it
created when it ends.
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._task import Context, Task


@runtime_checkable
class Executor(Protocol):
    """Runs a sync callback somewhere and hands its result back to the event loop."""

    async def call(self, task: Task, function: Callable[[Context], Any], context: Context) -> Any:
        """Run ``function(context)`` for ``task`` and return its result.

        Cancelling the awaiting coroutine must stop the work where the
        executor can (a process, a cluster future), and at least stop
        waiting for it where it cannot (a thread).
        """
        ...

    async def start(self) -> None:
        """Get ready (connect, check the cluster) before any task of the run starts.

        Raise :class:`flow2.ExecutorError` here, naming what is wrong, so a
        run that cannot work fails before doing anything.
        """
        ...

    async def aclose(self) -> None:
        """Release what the executor holds; called when the run ends, however it ends."""
        ...


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

    async def start(self) -> None:
        """Nothing to prepare: threads start on first use."""

    async def call(self, task: Task, function: Callable[[Context], Any], context: Context) -> Any:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="flow2")
        # The worker sees the caller's context variables (its task, its run).
        call_in_context = contextvars.copy_context().run
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, call_in_context, function, context
        )

    async def aclose(self) -> None:
        if self._pool is not None:
            # Never block the loop on a thread that cannot be stopped; work
            # not yet started is dropped.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class RunOptions(Protocol):
    """The run settings an executor factory may read."""

    @property
    def max_threads(self) -> int | None: ...


#: Executor names usable as a task's ``executor`` option, each with the
#: function that creates that executor from the run's settings.
EXECUTOR_FACTORIES: dict[str, Callable[[RunOptions], Executor]] = {
    "thread": lambda options: ThreadExecutor(options.max_threads),
}
