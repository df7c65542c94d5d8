"""What recording a run in the store costs: 10,000 no-op tasks with the store and without.

Run: ``python benchmarks/bench_store.py`` (``--tasks``, ``--repeat``). The two
variants are interleaved in one process, so the noise of a shared machine
hits them alike; each figure is the median of ``--repeat`` runs. A run is
timed from ``Runner.run`` until it returns, which for the store includes the
writer thread's last commit. The runs with the store record into one store
that already exists (as after a project's first run), with the default
retention (the newest 100 runs are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from typing import Any

import flow2


async def noop(context: dict[str, Any]) -> None:
    return None


def time_run(count: int, store: str | None) -> float:
    root = flow2.ParallelTaskGroup(
        "Bench", *(flow2.CallbackTask(f"Task {index}", noop) for index in range(count))
    )
    runner = flow2.Runner(display="none", store=store if store is not None else False)

    async def main() -> float:
        gc.collect()
        started = time.perf_counter()
        await runner.run(root)
        return time.perf_counter() - started

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=9)
    arguments = parser.parse_args()
    without: list[float] = []
    with_store: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        time_run(arguments.tasks, None)  # warm up imports and caches
        time_run(arguments.tasks, folder)  # creates the store
        for _ in range(arguments.repeat):
            without.append(time_run(arguments.tasks, None))
            with_store.append(time_run(arguments.tasks, folder))
    plain, stored = statistics.median(without), statistics.median(with_store)
    print(f"{arguments.tasks:,} no-op tasks, median of {arguments.repeat} runs each")
    print(f"  store off: {plain:.3f}s")
    print(f"  store on:  {stored:.3f}s")
    print(f"  ratio:     {stored / plain:.2f}x  (target <= 1.25x)")


if __name__ == "__main__":
    main()
