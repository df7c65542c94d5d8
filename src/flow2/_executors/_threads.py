"""The default executor: a pool of worker threads, and the executor names a task may use.

The workers are daemon threads. A thread cannot be stopped from outside, and
Python waits for every non-daemon thread before it exits: a sync callback
blocked for ever (reported timed out long ago) would keep the process alive
for ever. Instead, a thread still running the work of a task that was
cancelled or timed out is *abandoned*: when the interpreter exits, it gets
what is left of the grace period to finish, then the process exits without
it, saying which threads it left behind.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import functools
import os
import queue
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from .._engine._executor import arguments_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._engine._task import Context, Task

#: Seconds an abandoned thread gets to finish, from when its task was stopped.
DEFAULT_GRACE = 5.0


class _Call:
    """One sync call handed to a worker thread, and its way back to the loop."""

    __slots__ = ("abandoned_until", "future", "loop", "run", "task_name", "thread")

    def __init__(
        self,
        run: Callable[[], Any],
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
        task_name: str,
    ) -> None:
        self.run = run
        self.future = future
        self.loop = loop
        self.task_name = task_name
        self.thread: threading.Thread | None = None
        self.abandoned_until: float | None = None

    def settle(self, outcome: tuple[bool, Any]) -> None:
        """On the loop: hand the outcome to the awaiting task, unless it stopped waiting."""
        if self.future.done():
            return
        returned, value = outcome
        if returned:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)


#: Calls whose task stopped waiting while their thread ran them.
_abandoned: set[_Call] = set()
_abandoned_lock = threading.Lock()
_exit_hook_registered = False


def _abandon(call: _Call, grace: float) -> None:
    global _exit_hook_registered
    call.abandoned_until = time.monotonic() + grace
    with _abandoned_lock:
        _abandoned.add(call)
        if not _exit_hook_registered:
            atexit.register(_wait_for_abandoned_threads)
            _exit_hook_registered = True


#: Set when waiting for abandoned threads must end (a second signal, a signal during the wait).
_stop_waiting = threading.Event()


def stop_waiting_for_threads() -> None:
    """Give up the grace period of every abandoned thread: the process exits without them.

    What a second signal does: it means "no more waiting".
    """
    _stop_waiting.set()


def _wait_for_abandoned_threads() -> None:
    """At exit: give abandoned threads the rest of their grace period, then leave them.

    A signal during the wait ends it (no traceback: the person wants out now).
    See test_a_signal_during_the_wait_for_a_stopped_thread_ends_it_quietly.
    """
    with _abandoned_lock:
        calls = list(_abandoned)
    left: list[_Call] = []
    previous: dict[int, Any] = {}
    try:
        _take_signals(previous)
        for call in calls:
            thread = call.thread
            if thread is None:
                continue
            until = call.abandoned_until or 0.0
            # In slices, and the handlers only set a flag: an exception
            # raised inside join() would mark the thread stopped while it
            # runs (CPython's bpo-45274 clean-up), and lose it from the message.
            while thread.is_alive() and not _stop_waiting.is_set():
                remaining = until - time.monotonic()
                if remaining <= 0:
                    break
                thread.join(min(remaining, 0.1))
            if thread.is_alive() and call.thread is thread:
                left.append(call)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if left:
        names = ", ".join(f"{call.thread.name!r} (task {call.task_name!r})" for call in left)  # type: ignore[union-attr]
        count = f"{len(left)} worker thread{'s' if len(left) > 1 else ''}"
        when = "without waiting (a signal)" if _stop_waiting.is_set() else "after the grace period"
        try:
            print(
                f"flow2: exiting without {count} still running the sync callback of a "
                f"stopped task, {when}: {names}",
                file=sys.stderr,
                flush=True,
            )
        except (OSError, ValueError):
            pass


def _take_signals(previous: dict[int, Any]) -> None:
    """While the exiting main thread waits: SIGINT, SIGTERM and SIGHUP end the wait.

    ``previous`` receives each handler replaced, as it is replaced.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(number: int, frame: object) -> None:
        _stop_waiting.set()

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is None or signal.getsignal(number) is signal.SIG_IGN:
            continue
        previous[number] = signal.getsignal(number)
        signal.signal(number, interrupt)


def _work(calls: queue.SimpleQueue[_Call | None], idle: threading.Semaphore) -> None:
    """A worker thread: run calls until told to stop."""
    while True:
        call = calls.get()
        if call is None:
            return
        if not call.future.cancelled():  # not waited for any more: skip it
            call.thread = threading.current_thread()
            outcome: tuple[bool, Any]
            try:
                outcome = (True, call.run())
            except BaseException as error:  # the task reports what its code raised
                outcome = (False, error)
            call.thread = None
            with _abandoned_lock:
                _abandoned.discard(call)
            try:
                call.loop.call_soon_threadsafe(call.settle, outcome)
            except RuntimeError:
                pass  # the loop closed meanwhile: nobody waits for it
            del outcome, call
        idle.release()


class ThreadExecutor:
    """Runs sync callbacks in a pool of worker threads (the default executor).

    A thread cannot be stopped from outside: when its task is cancelled or
    times out, the task is reported at once and the run goes on, but the
    callback keeps running until it returns. Such a thread never keeps the
    process from exiting: at exit it gets the rest of ``grace`` seconds, then
    it is left behind, and flow2 says so on stderr. Use the process executor
    for work that must really stop.

    :param max_workers: pool size; CPU count + 4, at most 32, when None
    :param grace: seconds a thread whose task was stopped gets to finish
        before the process may exit without it
    """

    def __init__(self, max_workers: int | None = None, *, grace: float = DEFAULT_GRACE) -> None:
        self.max_workers = max_workers
        self.grace = grace
        self._size = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._users = 0
        self._lock = threading.Lock()

    async def start(self) -> None:
        """Count one more user; threads themselves start on first use."""
        self._users += 1

    async def call(self, task: Task, function: Callable[[Context], Any], context: Context) -> Any:
        context, keywords = arguments_for(task, function, context, remote=False)
        if keywords:
            function = functools.partial(function, **keywords)
        loop = asyncio.get_running_loop()
        # The worker sees the caller's context variables (its task, its run).
        run = functools.partial(contextvars.copy_context().run, function, context)
        call = _Call(run, loop.create_future(), loop, task.name)
        self._submit(call)
        try:
            return await call.future
        except asyncio.CancelledError:
            if call.thread is not None:
                _abandon(call, self.grace)
            raise

    def _submit(self, call: _Call) -> None:
        # Runs on several loops (in several threads) may share the pool.
        with self._lock:
            self._submit_locked(call)

    def _submit_locked(self, call: _Call) -> None:
        if not self._idle.acquire(blocking=False):
            self._threads = [thread for thread in self._threads if thread.is_alive()]
            if len(self._threads) < self._size:
                thread = threading.Thread(
                    target=_work,
                    args=(self._calls, self._idle),
                    name=f"flow2-worker-{len(self._threads) + 1}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        self._calls.put(call)

    async def aclose(self) -> None:
        """Undo one ``start()``; after the last, let the threads end once idle."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            self._stop_threads()

    def _stop_threads(self) -> None:
        with self._lock:
            if not self._threads:
                return
            # Never block the loop on a thread that cannot be stopped: each
            # ends when it is done with what it runs.
            for _ in self._threads:
                self._calls.put(None)
            self._threads = []
            self._calls = queue.SimpleQueue()
            self._idle = threading.Semaphore(0)


_shared: ThreadExecutor | None = None
_shared_lock = threading.Lock()


def shared_thread_pool() -> ThreadExecutor:
    """The thread pool every run of the process shares by default.

    Sized once (CPU count + 4, at most 32); its threads start on first use
    and stay for the next run; it is closed when the interpreter exits.
    Concurrent runs of a service therefore share its threads instead of
    starting a pool each.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ThreadExecutor()
            _shared._users = 1  # the process's own use: runs never close it
            atexit.register(_shared._stop_threads)
        return _shared


class PoolExecutor:
    """Runs sync callbacks on a :class:`concurrent.futures.Executor` given by the application.

    ``Runner(executor=concurrent.futures.ThreadPoolExecutor(8))``: the pool
    stays the application's; a run never shuts it down. A callback whose
    task is cancelled is left to finish in the pool, as with the thread
    executor.

    :param pool: any :class:`concurrent.futures.Executor`
    """

    def __init__(self, pool: concurrent.futures.Executor) -> None:
        self.pool = pool

    async def start(self) -> None:
        """Nothing to start: the pool is the application's."""

    async def aclose(self) -> None:
        """Nothing to close: the pool is the application's."""

    async def call(self, task: Task, function: Callable[[Context], Any], context: Context) -> Any:
        context, keywords = arguments_for(task, function, context, remote=False)
        if keywords:
            function = functools.partial(function, **keywords)
        # The worker sees the caller's context variables (its task, its run).
        run = functools.partial(contextvars.copy_context().run, function, context)
        return await asyncio.get_running_loop().run_in_executor(self.pool, run)
