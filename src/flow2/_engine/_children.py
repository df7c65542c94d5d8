"""The child processes flow2 started, so that an interrupted run can stop every one.

A shell task registers its command's process group while the command runs;
the process executor registers each worker process. When a signal
interrupts a run (``Runner(handle_signals=True)``, ``flow2 run``), the
runner kills whatever is still registered once the grace period is over, or
at once on a second signal: nothing a run started outlives it, even a
command that ignores SIGTERM.

The registry is per process: signals are too.
"""

from __future__ import annotations

import os
import signal
import sys


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


def track(pid: int, *, is_group: bool, description: str) -> ChildProcess:
    """Register a process flow2 started; :func:`forget` it once it is gone."""
    child = ChildProcess(pid, is_group=is_group, description=description)
    _children[id(child)] = child
    return child


def forget(child: ChildProcess) -> None:
    """Unregister ``child``: it has exited and been reaped."""
    _children.pop(id(child), None)


def live_children() -> list[ChildProcess]:
    """Every registered process, oldest first."""
    return list(_children.values())


def terminate_children() -> None:
    """SIGTERM every registered process that has not had it yet."""
    for child in live_children():
        child.terminate()


def kill_children() -> list[ChildProcess]:
    """SIGKILL every registered process; the ones that were still there."""
    return [child for child in live_children() if child.kill()]
