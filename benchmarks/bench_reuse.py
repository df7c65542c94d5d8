"""What deciding reuse costs: a no-change second run, and the keys of a 10,000-task run.

Run: ``python benchmarks/bench_reuse.py`` (``--repeat``, ``--rounds``,
``--only decide|keys``).

``decide``: a flow of 1,000 tasks, each declaring 10 of 10,000 source files
(100 bytes each) and ``cache: true``, run once; then, with nothing changed
and the files in the OS cache, each further run is timed from the run's
start (its first event) to its last decision (the last task reported
CACHED), and whole, against a run of an empty tree with the same store.
Target: every decision within 1 s.

``keys``: 10,000 no-op tasks in a parallel group, output off, recorded in
an existing store with the cache off (``cache="off"``), against the same
run with the store and no keys (the reuser's ``decide`` replaced by one
that decides nothing, in this benchmark's process only: the switch flow2
does not have), and against no store. Interleaved in each process, medians
of ``--repeat`` runs; ``--rounds`` fresh processes, the figure quoted is
the median of their ratios. Target: the keys add at most 10%.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import flow2


async def noop(context: dict[str, Any]) -> None:
    return None


# decide ------------------------------------------------------------------------------


def sourced_tree(tasks: int, sources: int) -> flow2.Task:
    return flow2.ParallelTaskGroup(
        "Sourced",
        *(
            flow2.CallbackTask(
                f"Task {index}",
                noop,
                sources=[f"src/{index}/file{number}.txt" for number in range(sources)],
            )
            for index in range(tasks)
        ),
        cache=True,
    )


def write_sources(folder: Path, tasks: int, sources: int) -> None:
    for index in range(tasks):
        directory = folder / "src" / str(index)
        directory.mkdir(parents=True)
        for number in range(sources):
            (directory / f"file{number}.txt").write_bytes(os.urandom(50).hex().encode())


def time_decisions(tree: flow2.Task, store: Path) -> tuple[float, float, int]:
    """Seconds from the run's first event to its last CACHED task, the whole run's, and
    how many tasks were taken from the cache."""
    marks: list[float] = []
    cached: list[float] = []

    def listen(event: flow2.Event) -> None:
        now = time.perf_counter()
        if not marks:
            marks.append(now)
        if isinstance(event, flow2.TaskEvent) and event.status is flow2.Status.CACHED:
            cached.append(now)

    runner = flow2.Runner(display="none", store=store, listeners=[listen])

    async def main() -> float:
        gc.collect()
        started = time.perf_counter()
        await runner.run(tree)
        return time.perf_counter() - started

    whole = asyncio.run(main())
    return (cached[-1] - marks[0] if cached else float("nan")), whole, len(cached)


def measure_decisions(repeat: int, tasks: int = 1_000, sources: int = 10) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        write_sources(base, tasks, sources)
        here = os.getcwd()
        os.chdir(base)  # sources: are relative to the working directory
        try:
            store = base / ".flow2"
            tree = sourced_tree(tasks, sources)
            empty = flow2.ParallelTaskGroup("Empty")
            time_decisions(tree, store)  # the first run: everything runs, entries written
            decisions, wholes, empties, counts = [], [], [], []
            for _ in range(repeat):
                decided, whole, count = time_decisions(tree, store)
                decisions.append(decided)
                wholes.append(whole)
                counts.append(count)
                empties.append(time_decisions(empty, store)[1])
        finally:
            os.chdir(here)
    print(
        f"decide: {tasks:,} tasks x {sources} sources ({tasks * sources:,} files), "
        f"nothing changed, {repeat} runs: cached {min(counts)}-{max(counts)} tasks"
    )
    print(
        f"  start to last decision: median {statistics.median(decisions):.3f}s "
        f"(min {min(decisions):.3f}s, max {max(decisions):.3f}s; target < 1 s)"
    )
    print(
        f"  whole run {statistics.median(wholes):.3f}s, an empty tree's run "
        f"{statistics.median(empties):.3f}s"
    )


# keys --------------------------------------------------------------------------------


def time_run(count: int, store: str | None) -> float:
    root = flow2.ParallelTaskGroup(
        "Bench", *(flow2.CallbackTask(f"Task {index}", noop) for index in range(count))
    )
    runner = flow2.Runner(
        display="none",
        store=store if store is not None else False,
        cache="off" if store is not None else None,
    )

    async def main() -> float:
        gc.collect()
        started = time.perf_counter()
        await runner.run(root)
        return time.perf_counter() - started

    return asyncio.run(main())


class NoKeys:
    """Within the block, the reuser decides nothing and computes no key."""

    def __enter__(self) -> None:
        from flow2._store._reuse import ReusePlan

        self.original = ReusePlan.decide

        async def decide(plan: Any, record: Any, context: Any) -> None:
            return None

        ReusePlan.decide = decide  # type: ignore[method-assign,assignment]

    def __exit__(self, *exception: object) -> None:
        from flow2._store._reuse import ReusePlan

        ReusePlan.decide = self.original  # type: ignore[method-assign]


def measure_keys(tasks: int, repeat: int) -> tuple[float, float, float]:
    """Median seconds without the store, with it and no keys, with it and keys."""
    plain: list[float] = []
    no_keys: list[float] = []
    keys: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        time_run(tasks, None)  # warm up imports and caches
        time_run(tasks, folder)  # creates the store
        for _ in range(repeat):
            plain.append(time_run(tasks, None))
            with NoKeys():
                no_keys.append(time_run(tasks, folder))
            keys.append(time_run(tasks, folder))
    return statistics.median(plain), statistics.median(no_keys), statistics.median(keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks of the keys run")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes for keys")
    parser.add_argument("--only", choices=["decide", "keys"], default=None)
    parser.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one_round:
        print(*measure_keys(arguments.tasks, arguments.repeat))
        return
    if arguments.only != "keys":
        measure_decisions(arguments.repeat)
    if arguments.only == "decide":
        return
    print(
        f"keys: {arguments.tasks:,} no-op tasks, cache off; {arguments.rounds} processes, "
        f"each the median of {arguments.repeat} interleaved runs of each"
    )
    ratios = []
    for round_number in range(1, arguments.rounds + 1):
        command = [sys.executable, __file__, "--one-round", "--tasks", str(arguments.tasks)]
        command += ["--repeat", str(arguments.repeat)]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        plain, no_keys, keys = map(float, output.split())
        ratios.append(keys / no_keys)
        print(
            f"  process {round_number}: no store {plain:.3f}s, store without keys "
            f"{no_keys:.3f}s, store with keys {keys:.3f}s: keys add {keys / no_keys - 1:+.0%}"
        )
    print(f"  median: the keys add {statistics.median(ratios) - 1:+.0%}  (target <= +10%)")


if __name__ == "__main__":
    main()
