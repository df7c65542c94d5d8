"""How much of a 100,000-task run is the garbage collector's.

Run: ``python benchmarks/bench_gc.py`` (``--tasks N`` to change the size).

Times one run of raw ``asyncio.gather`` over 100,000 no-op callbacks, one
flow2 ParallelTaskGroup run of the same (output off; from 50,000 tasks up
the run freezes the collector's view of its tree by itself, see
``flow2._engine._collector``), the same run with that freeze turned off,
and the same run after the program itself called ``gc.freeze()`` before it
(flow2 then leaves the collector alone). For each it reports the wall time
and, from ``gc.callbacks``, how many collections of each generation ran and
the milliseconds they took.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable, Coroutine
from typing import Any

import flow2
from flow2._engine import _collector

collections = {0: 0, 1: 0, 2: 0}
milliseconds = {0: 0.0, 1: 0.0, 2: 0.0}
_started = 0.0


def on_collection(phase: str, info: dict[str, int]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
    else:
        collections[info["generation"]] += 1
        milliseconds[info["generation"]] += (time.perf_counter() - _started) * 1e3


async def noop(context: dict[str, Any]) -> None:
    return None


def measure(label: str, make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    gc.collect()
    for generation in collections:
        collections[generation], milliseconds[generation] = 0, 0.0
    gc.callbacks.append(on_collection)
    started = time.perf_counter()
    asyncio.run(make())
    total = (time.perf_counter() - started) * 1e3
    gc.callbacks.remove(on_collection)
    by_generation = ", ".join(
        f"gen{generation} {collections[generation]} x = {milliseconds[generation]:.0f} ms"
        for generation in collections
    )
    print(f"{label:30} {total:6.0f} ms   {by_generation}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    count = parser.parse_args().tasks

    async def gather() -> None:
        context: dict[str, Any] = {}
        await asyncio.gather(*(noop(context) for _ in range(count)))

    tree = flow2.ParallelTaskGroup(
        "Benchmark", *(flow2.CallbackTask(f"Task {index}", noop) for index in range(count))
    )
    measure("asyncio.gather", gather)
    measure("flow2, output off", lambda: flow2.Runner(display="none").run(tree))
    threshold = _collector.FREEZE_FROM
    _collector.FREEZE_FROM = count + 1
    try:
        measure("flow2, no freeze by flow2", lambda: flow2.Runner(display="none").run(tree))
    finally:
        _collector.FREEZE_FROM = threshold
    gc.collect()
    gc.freeze()
    measure("flow2 after gc.freeze()", lambda: flow2.Runner(display="none").run(tree))
    gc.unfreeze()


if __name__ == "__main__":
    main()
