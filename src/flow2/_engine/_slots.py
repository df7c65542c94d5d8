"""Run-wide job slots, shared with make, ninja and cargo through a GNU make jobserver.

With ``jobs=N`` (``flow2 run -j N``, ``jobs:`` in a flow) at most N leaf
tasks of a run work at once. A task takes a slot right before it starts
(after its needs and its condition have let it through) and gives it back
when it ends, however it ends; groups hold none; a retry's backoff holds none.

On POSIX the slots are a GNU make jobserver (:class:`TokenPool`): a named
pipe (fifo) holding N-1 one-byte tokens. As every process make starts,
flow2 has one implicit slot: its first working task uses it, each other
one reads a token and writes it back at its end. A shell task's command
gets the task's slot as its own implicit one, and ``MAKEFLAGS``
(``CARGO_MAKEFLAGS``) naming the pool, so the jobs that make, ninja or
cargo start inside it read tokens from the same pool: N jobs in all.

Under a make that serves a jobserver (``MAKEFLAGS`` with
``--jobserver-auth``), the run joins that pool instead of making one
(:meth:`TokenPool.join`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections import deque
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._state import TaskRun

_TOKEN = b"+"
_AUTH = re.compile(r"--jobserver-(?:auth|fds)=(\S+)")
_JOBS_FLAG = re.compile(r"^-j\d*$|^--jobserver-(?:auth|fds)=")
#: The variables that carry a jobserver to a command; a task with
#: ``jobserver: false`` gets none of them.
JOBSERVER_VARIABLES = ("MAKEFLAGS", "MFLAGS", "CARGO_MAKEFLAGS")


def jobserver_auth(makeflags: str | None) -> str | None:
    """The ``--jobserver-auth`` value of ``makeflags`` (the last one), or None."""
    if not makeflags:
        return None
    found = _AUTH.findall(makeflags)
    return found[-1] if found else None


@dataclass(frozen=True)
class TokenLeak:
    """Tokens the commands of some tasks took from the pool and never gave back.

    :ivar paths: the task paths whose commands may have kept them (the
        stopped ones that ended since the pool was last whole)
    :ivar count: how many tokens were missing, and put back
    """

    paths: tuple[tuple[str, ...], ...]
    count: int


class TokenPool:
    """A jobserver's tokens: read one to take a slot, write it back to free it.

    :ivar makeflags: what a command's ``MAKEFLAGS`` says to use this pool
    :ivar size: tokens the pool holds when every slot is free (None: a pool
        flow2 joined, whose size it does not know)
    """

    def __init__(
        self,
        read_descriptor: int,
        write_descriptor: int,
        *,
        auth: str,
        jobs: int | None,
        size: int | None,
        directory: str | None = None,
        inherited: tuple[int, int] | None = None,
        makeflags: str | None = None,
    ) -> None:
        self._read = read_descriptor
        self._write = write_descriptor
        self.auth = auth
        self.jobs = jobs
        self.size = size
        self._directory = directory
        #: Descriptors on the pool opened for make 4.3 and older, which need
        #: the pipe style ``--jobserver-auth=R,W`` (opened once, when first needed).
        self._pipe_style: tuple[int, int] | None = inherited
        self._watching = False
        #: The ``MAKEFLAGS`` of the make whose pool this is (None: a pool of flow2's own).
        self._makeflags = makeflags

    @classmethod
    def serve(cls, jobs: int) -> TokenPool | None:
        """A new pool for ``jobs`` slots in a private fifo; None where there are no fifos."""
        if not hasattr(os, "mkfifo"):  # pragma: no cover - Windows
            return None
        directory = tempfile.mkdtemp(prefix="flow2-jobserver-")
        path = os.path.join(directory, "fifo")
        os.mkfifo(path, 0o600)
        # The reading end first: opening the writing end of a fifo without
        # a reader fails with O_NONBLOCK.
        read_descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        write_descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.write(write_descriptor, _TOKEN * (jobs - 1))
        return cls(
            read_descriptor,
            write_descriptor,
            auth=f"fifo:{path}",
            jobs=jobs,
            size=jobs - 1,
            directory=directory,
        )

    @classmethod
    def join(cls, auth: str, makeflags: str) -> TokenPool | None:
        """The pool of the make that started flow2, from its ``--jobserver-auth`` value.

        None when it cannot be used: a fifo that is gone, or descriptors
        that are not open (a recipe line without ``+``, whose make closed them).
        """
        jobs_flag = re.search(r"(?:^|\s)-j(\d+)", makeflags)
        jobs = int(jobs_flag.group(1)) if jobs_flag else None
        try:
            if auth.startswith("fifo:"):
                path = auth[len("fifo:") :]
                read_descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                write_descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                return cls(
                    read_descriptor,
                    write_descriptor,
                    auth=auth,
                    jobs=jobs,
                    size=None,
                    makeflags=makeflags,
                )
            read_text, _, write_text = auth.partition(",")
            read_inherited, write_inherited = int(read_text), int(write_text)
            if not (_is_pipe(read_inherited) and _is_pipe(write_inherited)):
                return None
            # Descriptions of our own on the same pipe (Linux /proc): made
            # non-blocking without changing how make reads its descriptor.
            read_descriptor = os.open(
                f"/proc/self/fd/{read_inherited}", os.O_RDONLY | os.O_NONBLOCK
            )
            write_descriptor = os.open(
                f"/proc/self/fd/{write_inherited}", os.O_WRONLY | os.O_NONBLOCK
            )
        except (OSError, ValueError):
            return None
        return cls(
            read_descriptor,
            write_descriptor,
            auth=auth,
            jobs=jobs,
            size=None,
            inherited=(read_inherited, write_inherited),
            makeflags=makeflags,
        )

    @property
    def is_served(self) -> bool:
        """True for a pool this run made (and must restore), False for one it joined."""
        return self.size is not None

    def take(self) -> bool:
        """Read one token, without waiting; False when the pool is empty."""
        try:
            return bool(os.read(self._read, 1))
        except BlockingIOError:
            return False

    def give(self, count: int = 1) -> None:
        """Write ``count`` tokens back."""
        if count > 0:
            os.write(self._write, _TOKEN * count)

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the loop when a token may be there to take."""
        if not self._watching:
            asyncio.get_running_loop().add_reader(self._read, callback)
            self._watching = True

    def unwatch(self) -> None:
        """Stop calling the :meth:`watch` callback."""
        if self._watching:
            asyncio.get_running_loop().remove_reader(self._read)
            self._watching = False

    def refill(self, expected: int) -> int:
        """Make the pool hold ``expected`` tokens again; return how many were missing.

        Only when no command that may use the pool runs: every token is then
        in the pool, or held by flow2's own tasks (not in ``expected``).
        """
        present = 0
        while True:
            try:
                taken = os.read(self._read, 4096)
            except BlockingIOError:
                break
            if not taken:  # pragma: no cover - we hold a writing end: never EOF
                break
            present += len(taken)
        self.give(expected)
        return max(0, expected - present)

    def environment(self, environ: Mapping[str, str]) -> tuple[dict[str, str], tuple[int, ...]]:
        """What a command needs to share the pool: variables, and descriptors to inherit.

        GNU make before 4.4 stops with "invalid --jobserver-auth string" on
        a fifo: when the ``make`` on the command's ``PATH`` is one, it gets
        the pipe style (``--jobserver-auth=R,W``, descriptors opened on the
        same fifo and inherited). ``CARGO_MAKEFLAGS`` always names the fifo.

        :param environ: the command's environment (its ``MAKEFLAGS`` flags are kept)
        """
        if self._makeflags is not None:
            # Joined: the commands get what flow2 got from its make.
            inherited = self._pipe_style or ()
            return {"MAKEFLAGS": self._makeflags, "CARGO_MAKEFLAGS": self._makeflags}, inherited
        auth = self.auth
        descriptors: tuple[int, ...] = ()
        if auth.startswith("fifo:"):
            if _needs_pipe_style(environ.get("PATH")):
                descriptors = self._pipe_descriptors()
                auth = f"{descriptors[0]},{descriptors[1]}"
        kept = [
            word
            for word in environ.get("MAKEFLAGS", "").split()
            if not _JOBS_FLAG.match(word) and word != "-"
        ]
        jobs = f"-j{self.jobs} " if self.jobs is not None else ""
        flags = " ".join([*kept, f"{jobs}--jobserver-auth={auth}"])
        # make's own form: a first word without a dash holds one-letter flags.
        if not kept or kept[0].startswith("-"):
            flags = f" {flags}"
        cargo = f" {jobs}--jobserver-auth={self.auth}"
        return {"MAKEFLAGS": flags, "CARGO_MAKEFLAGS": cargo}, descriptors

    def _pipe_descriptors(self) -> tuple[int, int]:
        if self._pipe_style is None:
            path = self.auth[len("fifo:") :]
            read_descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            write_descriptor = os.open(path, os.O_WRONLY)
            self._pipe_style = (read_descriptor, write_descriptor)
        return self._pipe_style

    def close(self) -> None:
        """Close the descriptors flow2 opened; remove the fifo of a pool it made."""
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            self.unwatch()
        descriptors = [self._read, self._write]
        if self._pipe_style is not None and self.is_served:
            descriptors.extend(self._pipe_style)
        for descriptor in descriptors:
            with contextlib.suppress(OSError):
                os.close(descriptor)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)


def _is_pipe(descriptor: int) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(descriptor).st_mode)
    except OSError:
        return False


def _needs_pipe_style(path: str | None) -> bool:
    """Whether the ``make`` found on ``path`` is a GNU make older than 4.4."""
    program = shutil.which("make", path=path)
    return program is not None and _is_old_gnu_make(os.path.realpath(program))


@cache
def _is_old_gnu_make(program: str) -> bool:
    """Asked once per program: ``make --version`` says GNU Make before 4.4."""
    try:
        text = subprocess.run(
            [program, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    found = re.search(r"GNU Make (\d+)\.(\d+)", text)
    return found is not None and (int(found.group(1)), int(found.group(2))) < (4, 4)


class JobSlots:
    """The job slots of one run: at most ``limit`` leaf tasks work at once.

    :param limit: the number of slots (None: only the pool limits)
    :param pool: the jobserver the slots are drawn from, or None
    :ivar leaks: the tokens found missing and put back, with the tasks that kept them
    """

    def __init__(self, limit: int | None, pool: TokenPool | None = None) -> None:
        self.limit = limit
        self.pool = pool
        #: Leaf tasks holding a slot now.
        self.working = 0
        #: Tokens flow2's own tasks hold (the first working task holds none).
        self._tokens = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._commands = 0
        self._ended: list[tuple[TaskRun, bool]] = []
        self.leaks: list[TokenLeak] = []

    def _take_now(self) -> bool:
        """Take a free slot at once, if there is one."""
        if self.limit is not None and self.working >= self.limit:
            return False
        pool = self.pool
        if pool is not None and self.working > self._tokens:
            # Every slot but the implicit one is a token.
            if not pool.take():
                return False
            self._tokens += 1
        self.working += 1
        return True

    async def acquire(self) -> None:
        """Wait for a free slot and take it; first come, first served."""
        if not self._waiters and self._take_now():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._dispatch()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted as the cancellation came: give it back
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                self._dispatch()
            raise

    def release(self) -> None:
        """Give a slot back; the first waiter takes it."""
        self.working -= 1
        if self._tokens > max(0, self.working - 1):
            self._tokens -= 1
            assert self.pool is not None
            self.pool.give()
        self._dispatch()

    def hold_again(self) -> None:
        """Count a slot as held without waiting: a task cancelled while it waited
        to take its slot back (after a retry's delay) still gives one back when it ends."""
        self.working += 1

    def _dispatch(self) -> None:
        waiters = self._waiters
        while waiters:
            if waiters[0].done():  # cancelled meanwhile
                waiters.popleft()
                continue
            if not self._take_now():
                if self.pool is not None and (self.limit is None or self.working < self.limit):
                    self.pool.watch(self._dispatch)
                return
            waiters.popleft().set_result(None)
        if self.pool is not None:
            self.pool.unwatch()

    def command_started(self) -> None:
        """A command that may use the pool started."""
        self._commands += 1

    def command_ended(self, record: TaskRun, *, stopped: bool) -> TokenLeak | None:
        """A command that may use the pool ended (``stopped``: it was signalled).

        Once none runs, every token of a pool this run made is in the pool
        or held by flow2's tasks: what is missing was kept by a command
        stopped before it gave its tokens back. It is put back, and the leak
        names the stopped tasks that ended since the pool was last whole.
        See tests/test_jobs.py::test_tokens_a_killed_command_kept_are_taken_back.

        :returns: the leak found now, if any
        """
        self._commands -= 1
        self._ended.append((record, stopped))
        pool = self.pool
        if self._commands or pool is None or pool.size is None:
            return None
        ended, self._ended = self._ended, []
        missing = pool.refill(pool.size - self._tokens)
        self._dispatch()
        if not missing:
            return None
        suspects = [record for record, stopped in ended if stopped] or [
            record for record, _ in ended
        ]
        leak = TokenLeak(tuple(record.path for record in suspects), missing)
        self.leaks.append(leak)
        return leak

    def close(self) -> None:
        """Close the pool (at the run's end)."""
        if self.pool is not None:
            self.pool.close()
