"""Whether a run that never wrote its end is still going on.

The pid alone does not say it: in a container every run is pid 1, and a
pid is given again after its process died. A run records its host, its
pid and its process (the machine's boot and the process's start time),
and writes a heartbeat (``last_seen``) every few seconds.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

#: The statuses a run ends in, plus those the store infers.
RUNNING = "running"
INTERRUPTED = "interrupted"


#: Seconds without a heartbeat after which a run that never ended is interrupted,
#: whatever its pid: the writer writes ``last_seen`` every few seconds.
STALE_AFTER = 300.0


def status_of(
    status: str,
    ended_at: float | None,
    pid: int | None,
    host: str | None,
    *,
    process: str | None = None,
    last_seen: float | None = None,
) -> str:
    """A run's status: its recorded end, else ``running`` while its process lives, else
    ``interrupted``.

    The pid alone does not say it: in a container every run is pid 1, and a
    pid is given again after a process died. The process is the one that
    recorded the run when its ``process`` (the boot, the start time) is
    the same, and a run whose heartbeat (``last_seen``) stopped is
    interrupted whatever its pid (see
    test_a_killed_run_of_a_reused_pid_is_interrupted_and_pruned).
    """
    if ended_at is not None or status != RUNNING:
        return status
    if last_seen is not None and time.time() - last_seen > STALE_AFTER:
        return INTERRUPTED
    if pid is None or host != socket.gethostname() or not _is_alive(pid):
        return INTERRUPTED
    if process is not None and process_identity(pid) not in (None, process):
        return INTERRUPTED
    return RUNNING


def process_identity(pid: int) -> str | None:
    """What tells process ``pid`` from any other that had or will have its pid: the
    machine's boot and the process's start time (Linux), or None where unknown."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        # The command name (field 2) may hold spaces and parentheses: count after it.
        start_ticks = stat[stat.rindex(")") + 2 :].split()[19]
    except (OSError, ValueError, IndexError):
        return None
    return f"{boot}:{start_ticks}"


def _is_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    except OSError:  # pragma: no cover - Windows and others
        return False
    return True
