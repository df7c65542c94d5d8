"""Big runs and the garbage collector: what exists when a big run starts is set aside.

Python's collector walks every tracked object of the oldest generation each
time that generation has grown by a quarter. During a run of a million
tasks that is the whole tree and its records, several times over: most of
the difference between the per-task cost of small and big runs (see
``python benchmarks/bench_engine.py --million``). A run of
:data:`FREEZE_FROM` tasks or more therefore calls :func:`gc.freeze` once its
tree is checked, so that collections during the run look only at what the
run creates, and :func:`gc.unfreeze` when it ends. Nothing is collected
less: objects that become garbage while frozen are collected after the run.

Runs that overlap (in threads, or side by side on one loop) share one
freeze, undone when the last of them ends. When something else has frozen
objects already (a server that freezes before forking, say), flow2 leaves
the collector alone.
"""

from __future__ import annotations

import gc
import threading

#: From this many tasks up, a run freezes the collector's view while it lasts.
FREEZE_FROM = 50_000

_lock = threading.Lock()
#: Runs under way that share flow2's freeze.
_frozen_runs = 0


def freeze_for(task_count: int) -> bool:
    """Freeze for a run of ``task_count`` tasks when it is big; True when the run must thaw."""
    global _frozen_runs
    if task_count < FREEZE_FROM:
        return False
    with _lock:
        if _frozen_runs == 0:
            if gc.get_freeze_count():  # frozen by someone else: not ours to undo
                return False
            gc.freeze()
        _frozen_runs += 1
    return True


def thaw() -> None:
    """End one big run's share of the freeze; the last one unfreezes."""
    global _frozen_runs
    with _lock:
        _frozen_runs -= 1
        if _frozen_runs == 0:
            gc.unfreeze()
