"""The process executor: sync callbacks in a pool of worker processes.

Each worker is a process started with multiprocessing's ``spawn`` method
(a fresh interpreter: no inherited locks or threads) and runs one call at a
time, talking to the event loop over a socket pair: the loop sends the
pickled ``(callback, context, keywords)``, the worker sends back the pickled
outcome. While the callback runs, what it writes to ``sys.stdout`` and
``sys.stderr`` is sent back as it comes (gathered for at most
:data:`OUTPUT_INTERVAL` seconds or :data:`OUTPUT_CHUNK` characters, before
the outcome, in the order it was written), and the loop hands it to the
task's run as the task's output: on the screen it is prefixed like any
other line of the task, and it is in the task's log file, the store and
the event file. Owning the processes, rather than using
:class:`concurrent.futures.ProcessPoolExecutor`, is what lets a timeout or a
cancellation kill the one worker running that task, and only it: a
replacement is started for the next call.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import os
import pickle
import signal
import socket
import struct
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from .._engine._children import forget, track
from .._engine._context import current_record
from .._engine._exceptions import ConfigurationError, ExecutorError
from .._engine._executor import arguments_for, unpicklable_error
from .._engine._output import write_output

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.process import BaseProcess

    from .._engine._task import Context, Task

_HEADER = struct.Struct("!Q")  # every message is its length, then its pickle
# A worker's message starts with one of these bytes: output while the call
# runs, or the reply that ends it.
_OUTPUT, _REPLY = b"o", b"r"
#: Seconds a worker gathers what its callback writes before sending it.
OUTPUT_INTERVAL = 0.05
#: Characters of output a worker sends at once, whatever the time.
OUTPUT_CHUNK = 65536
#: Seconds to wait for a killed or closed worker to exit before leaving it.
_EXIT_WAIT = 5.0
#: Seconds a worker that closed its socket gets to exit on its own, so that
#: its exit code (not our kill) tells what happened.
_EXIT_GRACE = 2.0


class _Outcome(enum.IntEnum):
    """What a worker sends back, first in its reply."""

    # Each reply ends with the time.time() the callback began in the worker
    # (None when it never began), so the task is timed from then.
    RETURNED = 0  # (RETURNED, result, began)
    RAISED = 1  # (RAISED, exception, remote traceback text, began)
    FAILED = 2  # (FAILED, message, began): the worker could not load the call or send its outcome


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process, set as its ``__cause__``."""

    def __str__(self) -> str:
        return str(self.args[0])


class ProcessExecutor:
    """Runs sync callbacks in worker processes, so CPU-bound work uses every core.

    A callback and the data it receives travel by pickle: define the callback
    at module level, and keep the context keys it reads picklable (declare
    them as keyword-only parameters so only those travel). The callback gets
    a copy: what it changes in the context stays in the worker; its return
    value is the task's result. A timeout or cancellation stops the worker
    running the task, SIGTERM then SIGKILL after ``grace`` seconds (a
    replacement starts for the next call); a worker that
    dies fails its task with :class:`flow2.ExecutorError` (``retries`` apply).

    A run starts and closes every executor it uses; each ``start()`` pairs
    with one ``aclose()`` and the workers stop after the last, so an object
    you open yourself keeps its workers warm across the runs inside::

        async with flow2.ProcessExecutor(max_workers=4) as processes:
            await flow2.CallbackTask("Crunch", crunch, executor=processes).process()

    :param max_workers: number of worker processes; the CPU count when None
    :param grace: seconds between SIGTERM and SIGKILL when a worker's task is stopped
    :raises flow2.ConfigurationError: when ``max_workers`` is not a whole number >= 1
    """

    def __init__(self, max_workers: int | None = None, *, grace: float = 5.0) -> None:
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        elif isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigurationError(
                f"max_workers={max_workers!r} is not a whole number >= 1",
                option="max_workers",
                value=max_workers,
            )
        self.max_workers = max_workers
        self.grace = grace
        import multiprocessing  # on use: ``import flow2`` stays light

        self._spawner = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._users = 0

    def __repr__(self) -> str:
        return f"<ProcessExecutor max_workers={self.max_workers}>"

    async def __aenter__(self) -> ProcessExecutor:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the worker processes, so that their start-up overlaps the first tasks.

        Each call counts one more user; :meth:`aclose` stops the workers
        after the last user closes.
        """
        self._users += 1
        self._slots_for_this_loop()
        while len(self._idle) + len(self._busy) < self.max_workers:
            self._idle.append(_Worker(self._spawner))

    async def call(self, task: Task, function: Callable[[Context], Any], context: Context) -> Any:
        """Run ``function`` in a worker process and return its result.

        :raises flow2.ExecutorError: when the callback or its data cannot be
            pickled, or the worker dies while running it
        """
        # Waiting for a free worker is queue time, not work.
        submitted = time.time()
        request = _pickle_request(task, function, context)
        async with self._slots_for_this_loop():
            worker = self._take_worker()
            self._busy.add(worker)
            try:
                outcome = await worker.exchange(request, functools.partial(show_output, task))
            except asyncio.CancelledError:
                # A timeout or a cancelled run: the work must really stop,
                # and the only way to stop Python code running in another
                # process is to end the process. The next call starts a
                # fresh worker in its place.
                self._busy.discard(worker)
                await worker.stop(self.grace)
                raise
            except (OSError, EOFError):
                self._busy.discard(worker)
                await worker.kill(grace=_EXIT_GRACE)
                raise ExecutorError(
                    f"task {task.name!r}: its worker process (pid {worker.pid}) "
                    f"{worker.describe_exit()} while running it, and its work was lost; "
                    f"if it ran out of memory, give it less data or use fewer max_workers, "
                    f"and set retries= on the task to run it again",
                    task_definition=task,
                    option="executor",
                    value="process",
                ) from None
            self._busy.discard(worker)
            self._idle.append(worker)
        return _unpickle_outcome(task, worker, outcome, submitted)

    async def aclose(self) -> None:
        """Undo one ``start()``; after the last, stop every worker process.

        Idle workers finish cleanly, busy ones are killed.
        """
        self._users = max(0, self._users - 1)
        if self._users:
            return
        idle, busy = self._idle, self._busy
        self._idle, self._busy = [], set()
        for worker in idle:
            worker.close()
        for worker in busy:
            worker.process.kill()
        for worker in [*idle, *busy]:
            await worker.wait_for_exit()

    def _slots_for_this_loop(self) -> asyncio.Semaphore:
        # asyncio primitives belong to one loop, and an executor object may
        # serve several runs, each under its own asyncio.run().
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._slots = asyncio.Semaphore(self.max_workers)
            self._loop = loop
        return self._slots

    def _take_worker(self) -> _Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.process.is_alive():
                return worker
            worker.close()  # died while idle: replace it without failing a task
            forget(worker.child)
        return _Worker(self._spawner)


def _pickle_request(task: Task, function: Callable[..., Any], context: Context) -> bytes:
    data, keywords = arguments_for(task, function, context, remote=True)
    try:
        return pickle.dumps((function, data, keywords), pickle.HIGHEST_PROTOCOL)
    except Exception:
        raise unpicklable_error(
            task, function, data, keywords, pickle.dumps, "a worker process"
        ) from None


def show_output(task: Task, pieces: list[tuple[str, str]]) -> None:
    """Hand what ``task``'s callback wrote in a worker to its run, as the task's output.

    :param pieces: ``(stream, text)`` in the order they were written
        (``"stdout"`` or ``"stderr"``)

    Without a run taking output (a task run on its own, no display), the text
    goes where the worker's own streams would have written it: this
    process's ``sys.stdout`` and ``sys.stderr``.
    """
    record = current_record.get()
    for stream, text in pieces:
        if record is not None and record.task is task and write_output(text, stream):
            continue
        original = sys.stderr if stream == "stderr" else sys.stdout
        original.write(text)
        original.flush()


def _unpickle_outcome(
    task: Task, worker: _Worker, data: bytes | memoryview, submitted: float
) -> Any:
    try:
        outcome = pickle.loads(data)
    except Exception as error:
        raise ExecutorError(
            f"task {task.name!r}: what its worker process (pid {worker.pid}) sent back cannot "
            f"be unpickled ({type(error).__name__}: {error}); return plain data",
            task_definition=task,
            option="executor",
            value="process",
        ) from None
    began = outcome[-1]
    record = current_record.get()
    if began is not None and record is not None and record.task is task:
        record.began_on_worker(submitted, began)
    if outcome[0] == _Outcome.RETURNED:
        return outcome[1]
    if outcome[0] == _Outcome.RAISED:
        exception: BaseException = outcome[1]
        exception.__cause__ = RemoteTraceback(outcome[2])
        raise exception
    raise ExecutorError(
        f"task {task.name!r}: {outcome[1]}",
        task_definition=task,
        option="executor",
        value="process",
    )


class _Worker:
    """One worker process and the loop's end of its socket."""

    def __init__(self, spawner: Any) -> None:
        parent_end, child_end = socket.socketpair()
        self.process: BaseProcess = spawner.Process(
            target=serve, args=(child_end, os.getpid()), name="flow2-worker", daemon=True
        )
        try:
            self.process.start()
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        parent_end.setblocking(False)
        self.connection = parent_end
        self.pid = self.process.pid
        assert self.pid is not None
        # Registered until reaped, so an interrupted run can stop it.
        self.child = track(self.pid, is_group=False, description=f"worker process (pid {self.pid})")
        self._exited: asyncio.Future[None] | None = None

    async def exchange(
        self, request: bytes, on_output: Callable[[list[tuple[str, str]]], None]
    ) -> memoryview:
        """Send one request and wait for its reply; ``on_output`` takes the output before it."""
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.connection, _HEADER.pack(len(request)) + request)
        while True:
            (size,) = _HEADER.unpack(await self._receive(loop, _HEADER.size))
            message = memoryview(await self._receive(loop, size))
            if message[:1] != _OUTPUT:
                return message[1:]
            on_output(pickle.loads(message[1:]))

    async def _receive(self, loop: asyncio.AbstractEventLoop, size: int) -> bytes:
        buffer = bytearray(size)
        view = memoryview(buffer)
        received = 0
        while received < size:
            count = await loop.sock_recv_into(self.connection, view[received:])
            if not count:
                raise EOFError("the worker closed its socket")
            received += count
        return bytes(buffer)

    def close(self) -> None:
        """Close the socket: an idle worker sees it and exits."""
        self.connection.close()

    async def kill(self, *, grace: float = 0.0) -> None:
        """Kill the process, after ``grace`` seconds to exit on its own, and reap it."""
        self.connection.close()
        if grace and await self.wait_for_exit(grace):
            return
        self.process.kill()
        await self.wait_for_exit()

    async def stop(self, grace: float) -> None:
        """SIGTERM the process, SIGKILL it after ``grace`` seconds, and reap it."""
        self.connection.close()
        if self.child.terminate() and grace and await self.wait_for_exit(grace):
            return
        self.process.kill()
        await self.wait_for_exit()

    async def wait_for_exit(self, patience: float = _EXIT_WAIT) -> bool:
        """Wait, without blocking the loop, for the process to exit; reap it if it did."""
        if not self.process.is_alive():  # this reaps an exited process
            forget(self.child)
            return True
        loop = asyncio.get_running_loop()
        # One watch of the sentinel per worker: a failing call and aclose()
        # may both wait for the same process.
        if self._exited is None or self._exited.get_loop() is not loop:
            self._exited = loop.create_future()
            loop.add_reader(self.process.sentinel, self._on_exit, loop, self._exited)
        try:
            async with asyncio.timeout(patience):
                await asyncio.shield(self._exited)
        except TimeoutError:
            return False
        self.process.join()
        forget(self.child)
        return True

    def _on_exit(self, loop: asyncio.AbstractEventLoop, exited: asyncio.Future[None]) -> None:
        loop.remove_reader(self.process.sentinel)
        if not exited.done():
            exited.set_result(None)

    def describe_exit(self) -> str:
        code = self.process.exitcode
        if code is None:
            return "stopped answering"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"


def serve(connection: socket.socket, parent_pid: int | None = None) -> None:
    """The worker process: answer requests on ``connection`` until it closes.

    :param parent_pid: the process that started it: the worker dies with it
    """
    # Ctrl-C reaches the whole process group; the event loop's process
    # handles it and kills the workers whose tasks it cancels.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM ends the worker at once, whatever runs in it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if parent_pid is not None:
        die_with_parent(parent_pid)
    sender = _OutputSender(connection)
    sys.stdout = _WorkerStream(sender, "stdout", sys.stdout)
    sys.stderr = _WorkerStream(sender, "stderr", sys.stderr)
    with connection:
        while True:
            try:
                request = _receive_blocking(connection)
            except (EOFError, OSError):
                return  # the executor closed, or its process died
            sender.begin()
            try:
                reply = _answer(request)
            except BaseException:  # SystemExit: what was printed still goes first
                sender.end(None)
                raise
            # The output goes before the reply: the task's lines are all
            # shown when its end is (see
            # test_a_process_task_s_prints_are_its_output_everywhere_in_order).
            sender.end(reply)


class _OutputSender:
    """What the callback running in this worker writes, sent to the loop as it comes.

    Writes are gathered and sent every :data:`OUTPUT_INTERVAL` seconds by a
    thread of its own, or at once past :data:`OUTPUT_CHUNK` characters; the
    lock keeps each message whole when threads of the callback write too.
    Outside a call (a thread the callback left behind), text goes to the
    worker's own stream, never to the next task.
    """

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._pieces: list[tuple[str, str]] = []
        self._size = 0
        self._calling = False
        self._broken = False
        self._waiting = threading.Event()  # set while output waits to be sent
        threading.Thread(target=self._send_now_and_then, name="flow2-output", daemon=True).start()

    def add(self, stream: str, text: str) -> bool:
        """Take ``text`` written to ``stream``; False outside a call."""
        with self._lock:
            if not self._calling:
                return False
            pieces = self._pieces
            if pieces and pieces[-1][0] == stream:
                pieces[-1] = (stream, pieces[-1][1] + text)
            else:
                pieces.append((stream, text))
            self._size += len(text)
            if self._size >= OUTPUT_CHUNK:
                self._send_output()
            else:
                self._waiting.set()
        return True

    def begin(self) -> None:
        with self._lock:
            self._calling = True

    def end(self, reply: bytes | None) -> None:
        """Send the output left, then the reply (None: there is none): the call is over."""
        with self._lock:
            self._calling = False
            self._send_output()
            if reply is not None:
                self._send(_REPLY + reply)

    def _send_now_and_then(self) -> None:
        # Asleep while nothing is written; then sends at most every OUTPUT_INTERVAL.
        while not self._broken:
            self._waiting.wait()
            time.sleep(OUTPUT_INTERVAL)
            with self._lock:
                self._waiting.clear()
                self._send_output()

    def _send_output(self) -> None:
        if not self._pieces:
            return
        pieces, self._pieces, self._size = self._pieces, [], 0
        try:
            self._send(_OUTPUT + pickle.dumps(pieces, pickle.HIGHEST_PROTOCOL))
        except OSError:  # the loop's end closed: the worker is being stopped
            self._broken = True

    def _send(self, message: bytes) -> None:
        self._connection.sendall(_HEADER.pack(len(message)) + message)


class _WorkerStream:
    """``sys.stdout`` or ``sys.stderr`` in a worker: text goes to the loop, as its task's."""

    def __init__(self, sender: _OutputSender, name: str, original: TextIO) -> None:
        self._sender = sender
        self._name = name
        self._original = original

    def write(self, text: str) -> int:
        if not self._sender.add(self._name, text):
            return self._original.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._original.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` (the flow2 process) dies, even by SIGKILL.

    A flow2 killed with ``kill -9`` cannot stop its workers, whose tasks
    would go on with side effects nobody waits for. On Linux the kernel sends
    the worker SIGKILL when its parent dies (``PR_SET_PDEATHSIG``; set here,
    in a fresh process, before any work); elsewhere a daemon thread checks
    the parent every quarter of a second. Either way, a parent already gone
    before this ran ends the worker at once.
    See tests/test_signals.py::test_kill_9_of_flow2_stops_its_process_workers.
    """
    if not _set_parent_death_signal():
        import threading

        threading.Thread(
            target=_watch_parent, args=(parent_pid,), name="flow2-parent-watch", daemon=True
        ).start()
    if os.getppid() != parent_pid:
        os._exit(1)


def _set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        set_parent_death_signal = 1  # PR_SET_PDEATHSIG, from <linux/prctl.h>
        return bool(libc.prctl(set_parent_death_signal, signal.SIGKILL, 0, 0, 0) == 0)
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return False


def _watch_parent(parent_pid: int) -> None:  # pragma: no cover - not on Linux
    while os.getppid() == parent_pid:
        time.sleep(0.25)
    os.kill(os.getpid(), signal.SIGKILL)


def _receive_blocking(connection: socket.socket) -> bytes:
    header = _receive_exactly(connection, _HEADER.size)
    return _receive_exactly(connection, _HEADER.unpack(header)[0])


def _receive_exactly(connection: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = connection.recv_into(view[received:])
        if not count:
            raise EOFError
        received += count
    return bytes(buffer)


def _answer(request: bytes) -> bytes:
    try:
        function, context, keywords = pickle.loads(request)
    except Exception as error:
        return _dumps_failure(
            f"its worker process cannot unpickle the callback or its data "
            f"({type(error).__name__}: {error}); define the callback in a module the "
            f"worker can import"
        )
    began = time.time()
    try:
        result = function(context, **keywords)
    except SystemExit:
        raise  # the worker exits, and its task fails with the exit code
    except BaseException as error:
        # Another BaseException from the callback fails its task, as on a
        # thread, rather than ending the worker with "its work was lost".
        # See test_a_base_exception_in_a_worker_fails_its_task_like_on_a_thread.
        remote_traceback = _worker_traceback(error)
        try:
            reply = pickle.dumps((_Outcome.RAISED, error, remote_traceback, began), -1)
            pickle.loads(reply)  # an exception must also unpickle on the other side
        except Exception:
            return _dumps_failure(
                f"it raised {type(error).__name__}: {error} in its worker process, and the "
                f"exception cannot be pickled back; the worker's traceback:\n{remote_traceback}",
                began,
            )
        return reply
    try:
        return pickle.dumps((_Outcome.RETURNED, result, began), pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        return _dumps_failure(
            f"its result ({type(result).__name__}) cannot be pickled to come back from its "
            f"worker process ({type(error).__name__}: {error}); return plain data",
            began,
        )


def _worker_traceback(error: BaseException) -> str:
    """Where ``error`` was raised in the worker: the user's frames only, as flow2 shows them.

    The frames of flow2's worker loop say nothing to the user and would
    bury the few lines that do.
    See tests/test_process_executor.py::test_a_worker_failure_shows_the_users_frames_only.
    """
    import traceback

    from .._engine._frames import is_machinery

    lines = [f"in worker process {os.getpid()} (your code, most recent call last):"]
    for frame in traceback.extract_tb(error.__traceback__):
        if is_machinery(frame.filename):
            continue
        filename = frame.filename
        relative = os.path.relpath(filename) if os.path.isabs(filename) else filename
        shown = filename if relative.startswith(os.pardir) else relative
        lines.append(f'  File "{shown}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    return "\n".join(lines)


def _dumps_failure(message: str, began: float | None = None) -> bytes:
    return pickle.dumps((_Outcome.FAILED, message, began))
