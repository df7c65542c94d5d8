"""The Dask executor: sync callbacks as futures on a Dask cluster.

Needs the ``dask`` extra (``pip install '.[dask]'``). This module is
imported by ``import flow2`` and must stay cheap: ``distributed`` is
imported inside the methods, when a run uses the executor.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import time
import uuid
from typing import TYPE_CHECKING, Any

from .._engine._context import current_record
from .._engine._events import Status
from .._engine._exceptions import ConfigurationError, ExecutorError
from .._engine._executor import arguments_for, unpicklable_error
from ._processes import RemoteTraceback, show_output

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._engine._state import TaskRun
    from .._engine._task import Context, Task

#: The environment variable ``executor="dask"`` reads the scheduler address from.
ADDRESS_VARIABLE = "FLOW2_DASK_ADDRESS"


class DaskExecutor:
    """Runs sync callbacks on a Dask cluster, one future per call.

    Give it the scheduler's address (what ``dask scheduler`` prints), or a
    ``distributed.Client`` you made; ``executor="dask"`` makes one from the
    address in ``FLOW2_DASK_ADDRESS``. The workers need the callbacks'
    modules installed, as for any Dask work.

    The callback and its data travel pickled (cloudpickle: lambdas work);
    the callback gets a copy of the context keys it declares as keyword-only
    parameters (the whole context when it declares none), its changes to
    them stay on the worker, and its return value is the task's result.
    A timeout or cancellation cancels the future: a call not started never
    starts, and one already running on a worker finishes there unseen (Dask
    cannot stop a running thread). A worker dying under the call, once Dask
    gives up re-running it (``distributed.scheduler.allowed-failures``),
    fails the task with :class:`flow2.ExecutorError`; ``retries`` apply.
    Each run Dask itself started again after a worker died is reported as an
    attempt (a ``RETRYING`` event). The task is timed from when a worker
    began it; the wait before is its queue time (``event.queued``). What
    the callback writes to ``sys.stdout`` and ``sys.stderr`` on the worker
    (from the thread Dask runs it in) comes back with its outcome and is the
    task's output, shown, logged and stored as any other task's.

    :param scheduler: the scheduler address (``"tcp://10.0.0.5:8786"``) or a
        ``distributed.Client`` (``executor="dask"`` passes the run's
        ``FLOW2_DASK_ADDRESS``)
    :param connect_timeout: seconds to wait for the scheduler when connecting
    :raises flow2.ConfigurationError: when no address is given (for
        ``executor="dask"``: ``FLOW2_DASK_ADDRESS`` is not set)

    Example::

        async with flow2.DaskExecutor("tcp://10.0.0.5:8786") as cluster:
            await flow2.CallbackTask("Crunch", crunch, executor=cluster).process()
    """

    def __init__(self, scheduler: Any = None, *, connect_timeout: float = 10.0) -> None:
        if scheduler is None:
            # ``executor="dask"`` passes the address the run's settings read.
            raise ConfigurationError(
                f"executor='dask' needs the scheduler address in the environment variable "
                f"{ADDRESS_VARIABLE}, which is not set; set it to what `dask scheduler` "
                f"prints (e.g. {ADDRESS_VARIABLE}=tcp://10.0.0.5:8786), or pass "
                f"executor=flow2.DaskExecutor(address)",
                option="executor",
                value="dask",
                variable=ADDRESS_VARIABLE,
            )
        self.connect_timeout = connect_timeout
        self._given_client: Any = None
        if isinstance(scheduler, str):
            self.address: str = scheduler
        else:
            self._given_client = scheduler
            rpc = getattr(scheduler, "scheduler", None)
            self.address = str(getattr(rpc, "address", scheduler))
        self._client: Any = scheduler if self._given_client is not None else None
        self._users = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"<DaskExecutor {self.address}>"

    async def __aenter__(self) -> DaskExecutor:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Connect to the scheduler (once per event loop); count one more user.

        :raises flow2.ExecutorError: when the scheduler cannot be reached, or a
            given asynchronous client belongs to another event loop
        """
        await self._connect()
        self._users += 1

    async def _connect(self) -> None:
        """Connect to the scheduler (once per event loop).

        :raises flow2.ExecutorError: when the scheduler cannot be reached, or a
            given asynchronous client belongs to another event loop
        """
        loop = asyncio.get_running_loop()
        if self._given_client is not None:
            client = self._given_client
            # An asynchronous client answers on its own loop only: this one,
            # or another that must be running (in another thread) to answer.
            if not client.asynchronous and not client.loop.asyncio_loop.is_running():
                raise ExecutorError(
                    f"DaskExecutor(client): the event loop of {client!r} is not running (an "
                    f"asynchronous client made under another event loop); create the client "
                    f"in the coroutine that runs the flow, or pass the scheduler address",
                    option="executor",
                    value="dask",
                )
            return
        if self._client is not None:
            if self._loop is loop:
                return
            # Its client lives on another loop and cannot be closed from here.
            raise ExecutorError(
                f"{self!r} is still connected from another event loop; close it there "
                f"(async with flow2.DaskExecutor(...), or await executor.aclose()) before "
                f"using it in another asyncio.run(), or create one per run",
                option="executor",
                value="dask",
            )
        # distributed takes seconds to import: do it off the loop.
        try:
            distributed = await asyncio.to_thread(importlib.import_module, "distributed")
        except ModuleNotFoundError:
            raise ExecutorError(
                "the Dask executor needs the dask extra, which is not installed: "
                "pip install '<your flow2 clone or wheel>[dask]'",
                option="executor",
                value="dask",
            ) from None
        client = distributed.Client(
            self.address,
            asynchronous=True,
            timeout=self.connect_timeout,
            set_as_default=False,
        )
        try:
            await client
        except (OSError, TimeoutError, ValueError) as error:
            await client.close()
            raise ExecutorError(
                f"cannot reach the Dask scheduler at {self.address!r} ({error}); start one "
                f"with `dask scheduler` and give the address it prints (tcp://HOST:8786) to "
                f"DaskExecutor(address) or {ADDRESS_VARIABLE}, and check the firewall lets "
                f"this machine reach it",
                option="executor",
                value="dask",
            ) from None
        self._client = client
        self._loop = loop

    async def call(self, task: Task, function: Callable[[Context], Any], context: Context) -> Any:
        """Run ``function`` as a future on the cluster and return its result.

        :raises flow2.ExecutorError: when the callback or its data cannot be
            pickled, or the worker running it died and Dask gave up on it
        """
        from distributed import KilledWorker
        from distributed.client import FutureCancelledError

        data, keywords = arguments_for(task, function, context, remote=True)
        _check_picklable(task, function, data, keywords)
        if keywords:
            # A partial, so the callback's keywords never collide with submit()'s own.
            function = functools.partial(function, **keywords)
        client = self._client
        if client is None:
            await self.start()
            client = self._client
        # Dask names the future after the callback ("crunch-<id>"): calls of one
        # callback form one task group, which its scheduling heuristics rely on.
        from dask.utils import funcname

        key = f"{funcname(function)}-{uuid.uuid4().hex}"
        submitted = time.time()
        future = client.submit(_worker_call(), function, data, key=key, pure=False)
        try:
            if client.asynchronous:
                outcome = await future
            else:
                outcome = await _wait_from_another_loop(future)
            record = current_record.get()
            if record is not None and record.task is task:
                await _report_reruns(client, key, record)
                record.began_on_worker(submitted, outcome[-1])
            show_output(task, outcome[-2])
            return _unpickled_result(task, outcome)
        except FutureCancelledError as error:
            # Cancelled on the cluster's side (lost scheduler, another client),
            # not by this run: the task failed, it was not cancelled.
            raise ExecutorError(
                f"task {task.name!r}: the Dask cluster cancelled its future ({error}); "
                f"check the scheduler's log, and set retries= on the task to run it again",
                task_definition=task,
                option="executor",
                value="dask",
            ) from None
        except asyncio.CancelledError:
            # A timeout or a cancelled run: take the work off the cluster.
            if client.asynchronous:
                await client.cancel([future])
            else:
                await asyncio.to_thread(future.cancel)
            raise
        except KilledWorker as error:
            record = current_record.get()
            if record is not None and record.task is task:
                # The last death is the failure itself, reported below.
                await _report_reruns(client, key, record, failed=True)
            raise ExecutorError(
                f"task {task.name!r}: the Dask worker running it died ({error}); if it ran "
                f"out of memory give the workers more, and set retries= on the task to run "
                f"it again",
                task_definition=task,
                option="executor",
                value="dask",
            ) from None
        finally:
            future.release()

    async def aclose(self) -> None:
        """Undo one ``start()``; after the last, close the client this executor made.

        A client you gave it is never closed.
        """
        self._users = max(0, self._users - 1)
        if self._users:
            return
        if self._given_client is None and self._client is not None:
            client, self._client = self._client, None
            if self._loop is asyncio.get_running_loop():
                await client.close()


async def _report_reruns(client: Any, key: str, record: TaskRun, *, failed: bool = False) -> None:
    """Report each run of ``key`` that Dask started again after its worker died.

    The scheduler counts, on the task, the workers that died running it
    (``suspicious``); each was an attempt of the task that failed, the last
    one excepted when Dask gave up (``failed``: that one fails the task). Asked
    while this client still holds the future, so the scheduler still knows it.
    See tests/test_dask.py::test_a_run_dask_repeats_after_a_worker_died_is_an_attempt.
    """
    try:
        if client.asynchronous:
            deaths = await client.run_on_scheduler(_worker_deaths, key=key)
        else:
            deaths = await asyncio.to_thread(client.run_on_scheduler, _worker_deaths, key=key)
    except Exception:  # an older scheduler, or one gone: nothing to report
        return
    for _ in range(int(deaths or 0) - failed):
        record.emit(
            Status.RETRYING,
            duration=record.elapsed,
            error=ExecutorError(
                f"task {record.task.name!r}: the Dask worker running it died, and Dask ran "
                f"it again (distributed.scheduler.allowed-failures)",
                task_definition=record.task,
                option="executor",
                value="dask",
            ),
            retry_delay=0.0,
        )
        record.attempt += 1


def _worker_deaths(dask_scheduler: Any, key: str) -> int:
    """On the scheduler: how many workers died while running ``key``."""
    state = dask_scheduler.tasks.get(key)
    return 0 if state is None else int(state.suspicious)


@functools.cache
def _worker_call() -> Callable[[Callable[[Context], Any], Context], tuple[Any, ...]]:
    """The function Dask runs: the callback, its result pickled on the worker.

    A result that cannot be pickled would otherwise fail inside Dask, on its
    way back, as a bare TypeError naming no task; here the worker says so and
    :func:`_unpickled_result` names the task. Every outcome ends with what
    the callback wrote, as ``(stream, text)`` pieces in order, then the
    ``time.time()`` the callback began on the worker, so the task is timed
    from then. Nested, so cloudpickle sends it by value: the workers need not
    have flow2 installed.
    """

    class CapturedStream:
        """``sys.stdout`` or ``sys.stderr`` on a worker: a flow2 call's thread writes to its list.

        A Dask worker runs several calls at once, in threads, all sharing
        the process's streams; each call's writes are told apart by thread.
        Other threads write through, unchanged.
        """

        def __init__(self, original: Any, name: str, calls: Any, users: list[int]) -> None:
            self.flow2_original = original
            self.flow2_name = name
            self.flow2_calls = calls
            self.flow2_users = users

        def write(self, text: str) -> int:
            pieces = getattr(self.flow2_calls, "pieces", None)
            if pieces is None:
                return int(self.flow2_original.write(text))
            if pieces and pieces[-1][0] == self.flow2_name:
                pieces[-1] = (self.flow2_name, pieces[-1][1] + text)
            else:
                pieces.append((self.flow2_name, text))
            return len(text)

        def flush(self) -> None:
            self.flow2_original.flush()

        def isatty(self) -> bool:
            return False

        def __getattr__(self, name: str) -> Any:
            return getattr(self.flow2_original, name)

    def capture() -> tuple[Any, list[tuple[str, str]]]:
        import sys
        import threading

        # One lock per worker process, whichever copy of this function runs.
        lock = sys.__dict__.setdefault("_flow2_capture_lock", threading.Lock())
        with lock:
            stdout: Any = sys.stdout
            if not isinstance(getattr(stdout, "flow2_users", None), list):
                calls, users = threading.local(), [0]
                stdout = sys.stdout = CapturedStream(sys.stdout, "stdout", calls, users)
                sys.stderr = CapturedStream(sys.stderr, "stderr", calls, users)
            stdout.flow2_users[0] += 1
            pieces: list[tuple[str, str]] = []
            stdout.flow2_calls.pieces = pieces
        return stdout, pieces

    def release(stdout: Any) -> None:
        import sys

        with sys.__dict__["_flow2_capture_lock"]:
            stdout.flow2_calls.pieces = None
            stdout.flow2_users[0] -= 1
            # The last call out puts the streams back (a worker in the
            # client's own process must not keep them).
            if not stdout.flow2_users[0]:
                original = stdout.flow2_original
                if sys.stdout is stdout:
                    sys.stdout = original
                stderr: Any = sys.stderr
                if getattr(stderr, "flow2_calls", None) is stdout.flow2_calls:
                    sys.stderr = stderr.flow2_original

    def pickled_result(function: Callable[[Context], Any], data: Context) -> tuple[Any, ...]:
        import time
        import traceback

        import cloudpickle  # type: ignore[import-untyped]  # comes with distributed

        stdout, output = capture()
        began = time.time()
        try:
            result = function(data)
        except Exception as error:
            # Sent back with the worker's traceback, and raised unchanged
            # by _unpickled_result, its start time known.
            return "raised", error, "".join(traceback.format_exception(error)), output, began
        finally:
            release(stdout)
        try:
            return "pickled", cloudpickle.dumps(result, protocol=5), output, began
        except Exception as error:
            return (
                "unpicklable",
                f"{type(result).__name__}; {type(error).__name__}: {error}",
                output,
                began,
            )

    return pickled_result


def _unpickled_result(task: Task, outcome: tuple[Any, ...]) -> Any:
    """The result the worker sent back pickled, or an error naming the task."""
    import cloudpickle

    kind, payload = outcome[0], outcome[1]
    if kind == "raised":
        error: BaseException = payload
        error.__cause__ = RemoteTraceback(outcome[2])
        raise error
    if kind == "unpicklable":
        raise ExecutorError(
            f"task {task.name!r}: its result cannot be pickled to send it back from the Dask "
            f"cluster ({payload}); return plain data (numbers, strings, lists, dicts) or "
            f"objects that pickle",
            task_definition=task,
            option="executor",
            value="dask",
        )
    return cloudpickle.loads(payload)


def _check_picklable(
    task: Task, function: Callable[..., Any], data: Context, keywords: dict[str, Any]
) -> None:
    """Raise an error naming what cannot be pickled, before Dask tries (and logs a traceback)."""
    import cloudpickle

    def dumps(value: Any) -> object:
        # Out-of-band buffers (large arrays) are skipped, not copied: this
        # only checks; Dask serializes for real when submitting.
        return cloudpickle.dumps(value, protocol=5, buffer_callback=_leave_out)

    try:
        dumps((function, data, keywords))
    except Exception:
        raise unpicklable_error(task, function, data, keywords, dumps, "the Dask cluster") from None


def _set_done(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


def _leave_out(buffer: object) -> bool:
    return False


async def _wait_from_another_loop(future: Any) -> Any:
    """Wait for the future of a synchronous client, whose own loop runs in a thread."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def set_done(_: object) -> None:
        try:
            loop.call_soon_threadsafe(_set_done, done)
        except RuntimeError:  # the run's loop has closed: nobody waits any more
            pass

    future.add_done_callback(set_done)
    await done
    return await asyncio.to_thread(future.result)
