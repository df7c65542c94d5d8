"""The child processes flow2 started, so that an interrupted run can stop every one.

A shell task registers its command's process group while the command runs;
the process executor registers each worker process. When a signal
interrupts a run (``Runner(handle_signals=True)``, ``flow2 run``), the
runner kills whatever is still registered once the grace period is over, or
at once on a second signal: nothing a run started outlives it, even a
command that ignores SIGTERM.

The registry is per process: signals are too.

A process group is also reported to a watcher, a small process of its own
started with the first command (:class:`_Watcher`): when flow2 dies
without cleaning up (``kill -9``, an out-of-memory kill), the watcher sees
its parent gone and stops every group still registered, SIGTERM then
SIGKILL after the task's grace period, so no command's side effect happens
after flow2 is gone.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


class ChildProcess:
    """A process (or a whole process group) flow2 started and must stop.

    :ivar pid: the process id; for a group, the group's id
    :ivar is_group: signals go to the whole process group
    :ivar description: what it is, for a person (``"task 'Build' (pid 1234)"``)
    :ivar terminated: SIGTERM was sent already
    """

    __slots__ = ("description", "is_group", "pid", "terminated")

    def __init__(self, pid: int, *, is_group: bool, description: str) -> None:
        self.pid = pid
        self.is_group = is_group
        self.description = description
        self.terminated = False

    def send(self, signal_number: int) -> bool:
        """Send ``signal_number``; False when the process (group) is gone."""
        try:
            if sys.platform == "win32":  # pragma: no cover - no process groups
                os.kill(self.pid, signal_number)
            elif self.is_group:
                os.killpg(self.pid, signal_number)
            else:
                os.kill(self.pid, signal_number)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def is_alive(self) -> bool:
        """Whether the process (a member of the group) still runs; zombies do not count.

        A zombie has exited and only waits for its parent to reap it; an
        orphan's new parent (init, a container's first process) may take its
        time to do that.
        """
        if not self.send(0):
            return False
        if not self.is_group or not os.path.isdir("/proc/self"):
            return True
        # Linux: look for a member of the group that is not a zombie.
        with os.scandir("/proc") as entries:
            for entry in entries:
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/stat", "rb") as file:
                        fields = file.read().rsplit(b")", 1)[1].split()
                except (OSError, IndexError):
                    continue  # it ended meanwhile
                if int(fields[2]) == self.pid and fields[0] not in (b"Z", b"X"):
                    return True
        return False

    def terminate(self) -> bool:
        """SIGTERM, once: a program counting signals must not read a second one as "force"."""
        if self.terminated:
            return True
        self.terminated = True
        return self.send(signal.SIGTERM)

    def kill(self) -> bool:
        """SIGKILL: what cannot be ignored (SIGTERM on Windows)."""
        return self.send(getattr(signal, "SIGKILL", signal.SIGTERM))


_children: dict[int, ChildProcess] = {}

#: What the watcher runs: read "+ group grace" and "- group" lines from
#: stdin; once flow2 is gone (its parent changed, or the pipe closed), stop
#: the groups still registered.
_WATCHER_CODE = """
import os, select, signal, sys, time
parent = int(sys.argv[1])
groups = {}
pending = b""
while True:
    ready = select.select([0], [], [], 0.2)[0]
    if ready:
        data = os.read(0, 65536)
        if not data:
            break
        *lines, pending = (pending + data).split(b"\\n")
        for line in lines:
            parts = line.split()
            if len(parts) == 3 and parts[0] == b"+":
                groups[int(parts[1])] = float(parts[2])
            elif len(parts) == 2 and parts[0] == b"-":
                groups.pop(int(parts[1]), None)
    elif os.getppid() != parent:
        break
def send(group, number):
    try:
        os.killpg(group, number)
    except OSError:
        return False
    return True
alive = [group for group in groups if send(group, signal.SIGTERM)]
deadline = time.monotonic() + max([groups[group] for group in alive], default=0.0)
while alive and time.monotonic() < deadline:
    time.sleep(0.05)
    alive = [group for group in alive if send(group, 0)]
for group in alive:
    send(group, signal.SIGKILL)
"""


class _Watcher:
    """The process that stops flow2's process groups when flow2 dies without doing it.

    No parent-death signal set in the child between fork and exec (unsafe
    with threads), no helper program that may be missing: one Python
    process per flow2 process, in a session of its own so that a terminal's
    Ctrl-C does not reach it, told of each group through a pipe.
    See tests/test_shell.py::test_kill_9_of_flow2_stops_its_commands.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pipe: int | None = None
        self.owner = 0  # the pid that started it: a forked child starts its own

    def _start(self) -> int | None:
        read_end, write_end = os.pipe()
        try:
            os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", "-c", _WATCHER_CODE, str(os.getpid())],
                os.environ,
                file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0)],
                setsid=True,
            )
        except OSError:
            os.close(write_end)
            return None
        finally:
            os.close(read_end)
        self.owner = os.getpid()
        return write_end

    def send(self, line: str) -> None:
        if sys.platform == "win32" or not hasattr(os, "posix_spawn"):  # pragma: no cover
            return
        with self.lock:
            if self.pipe is None or self.owner != os.getpid():
                if line.startswith("-"):
                    return
                self.pipe = self._start()
            if self.pipe is None:  # pragma: no cover - no process could start
                return
            try:
                os.write(self.pipe, line.encode("ascii"))
            except OSError:  # pragma: no cover - the watcher died: start another next time
                os.close(self.pipe)
                self.pipe = None


_watcher = _Watcher()


def track(
    pid: int, *, is_group: bool, description: str, grace: float | None = None
) -> ChildProcess:
    """Register a process flow2 started; :func:`forget` it once it is gone.

    :param grace: for a group, seconds between SIGTERM and SIGKILL should
        flow2 die while it runs: the watcher then stops it
    """
    child = ChildProcess(pid, is_group=is_group, description=description)
    _children[id(child)] = child
    if is_group and grace is not None:
        _watcher.send(f"+ {pid} {grace!r}\n")
    return child


def forget(child: ChildProcess) -> None:
    """Unregister ``child``: it has exited and been reaped."""
    if _children.pop(id(child), None) is not None and child.is_group:
        _watcher.send(f"- {child.pid}\n")


def live_children() -> list[ChildProcess]:
    """Every registered process, oldest first."""
    return list(_children.values())


def terminate_children() -> None:
    """SIGTERM every registered process that has not had it yet."""
    for child in live_children():
        child.terminate()


def kill_children() -> list[ChildProcess]:
    """SIGKILL every registered process; the ones that still ran.

    One that has exited already (a zombie its task has not reaped yet) is
    not counted: a message about what was killed says what happened.
    """
    return [child for child in live_children() if child.is_alive() and child.kill()]
