"""Per-task overhead of the engine, side by side with raw asyncio.gather.

Run: ``python benchmarks/bench_engine.py`` (about six minutes; ``--quick`` for a
smaller run). Every figure is the median of ``--repeat`` runs, and the runs
of the compared variants are interleaved in one process so that the noise of
a shared machine hits them alike.

What is measured, per task (the tree is built before the clock starts; the
run includes checking the tree, every event, and the console lines):

- ``gather``: ``await asyncio.gather(*(noop(context) for _ in range(n)))``.
- ``parallel, console to /dev/null``: a ParallelTaskGroup of n CallbackTasks
  around the same ``noop``, plain console lines written to /dev/null.
- ``parallel, console to a file``: the same, lines written to a real file.
- ``parallel, output off``: ``display="none"``.
- ``serial, console to /dev/null``: a SerialTaskGroup of the same.
- ``parallel, INFO handler``: console off, and a logging.StreamHandler at
  INFO on the ``flow2`` logger writing to /dev/null (every success becomes a
  log record: this is the cost of logging, not of the engine).

Before each timed run the garbage collector runs once, so that no variant
pays for the garbage of the one before; it stays on during the run.

The sweep at the end times ``parallel, output off`` and ``gather`` alone at
1,000 to 300,000 tasks: a flat ratio shows flow2 adds no path that grows
faster than asyncio's own. ``--sweep`` runs only the sweep, in a fresh
process (after the table's runs the heap is large, which slows every large
run in the same process alike).

Logging is left as Python starts it unless stated: the ``flow2`` logger has
only its NullHandler and the root logger is at WARNING, so no record is made.
The garbage collector is on, as in any program.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import flow2


async def noop(context: dict[str, Any]) -> None:
    return None


def time_gather(count: int) -> float:
    async def main() -> float:
        context: dict[str, Any] = {}
        gc.collect()  # every variant starts the clock with no garbage pending
        started = time.perf_counter()
        await asyncio.gather(*(noop(context) for _ in range(count)))
        return time.perf_counter() - started

    return asyncio.run(main())


def time_task_group(count: int) -> float:
    """One ``asyncio.TaskGroup`` task per leaf: what a serial group is held against."""

    async def main() -> float:
        context: dict[str, Any] = {}
        gc.collect()
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(count):
                group.create_task(noop(context))
        return time.perf_counter() - started

    return asyncio.run(main())


def time_flow(count: int, group: type[flow2.TaskGroup], runner: flow2.Runner) -> float:
    tree = group(
        "Benchmark", *(flow2.CallbackTask(f"Task {index}", noop) for index in range(count))
    )

    async def main() -> float:
        gc.collect()
        started = time.perf_counter()
        await runner.run(tree)
        return time.perf_counter() - started

    return asyncio.run(main())


def import_ratio(repeat: int) -> tuple[float, float]:
    """Median seconds of ``import asyncio`` and of ``import flow2``, each in a fresh interpreter.

    Both are timed as a user's installed copy imports: from compiled bytecode.
    The children may write ``.pyc`` files (PYTHONDONTWRITEBYTECODE is dropped
    from their environment) and one untimed import of each comes first, so no
    timed import compiles source.
    """
    environment = {
        name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"
    }

    def seconds(module: str) -> float:
        code = (
            f"import time; s = time.perf_counter(); import {module}; print(time.perf_counter() - s)"
        )
        command = [sys.executable, "-c", code]
        output = subprocess.run(
            command, capture_output=True, text=True, check=True, env=environment
        ).stdout
        return float(output)

    seconds("asyncio"), seconds("flow2")  # writes any missing bytecode
    asyncio_times, flow2_times = [], []
    for _ in range(repeat):
        asyncio_times.append(seconds("asyncio"))
        flow2_times.append(seconds("flow2"))
    return statistics.median(asyncio_times), statistics.median(flow2_times)


def measure_one(count: int) -> None:
    """Print µs per task (flow2, output off; and gather) and peak memory per task, as JSON."""
    import json
    import resource

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    flowed = time_flow(count, flow2.ParallelTaskGroup, flow2.Runner(display="none"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    gathered = time_gather(count)
    print(
        json.dumps(
            {
                "flow2": flowed / count * 1e6,
                "gather": gathered / count * 1e6,
                "bytes_per_task": (peak - baseline) * 1024 / count,
            }
        )
    )


def million(repeat: int = 3) -> None:
    """flow2's per-task cost at 1,000,000 tasks against 10,000, fresh processes, medians."""
    import json

    figures: dict[int, list[dict[str, float]]] = {10_000: [], 1_000_000: []}
    for _ in range(repeat):
        for count in figures:
            output = subprocess.run(
                [sys.executable, __file__, "--one", str(count)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            figures[count].append(json.loads(output))
    print("one parallel group of no-op callbacks, output off; medians of fresh processes")
    medians = {}
    for count, samples in figures.items():
        medians[count] = {
            key: statistics.median(sample[key] for sample in samples) for key in samples[0]
        }
        row = medians[count]
        print(
            f"  {count:>9,} tasks: flow2 {row['flow2']:5.1f} µs/task, gather "
            f"{row['gather']:5.1f} µs/task, peak memory {row['bytes_per_task']:,.0f} bytes/task"
        )
    growth = medians[1_000_000]["flow2"] / medians[10_000]["flow2"]
    gather_growth = medians[1_000_000]["gather"] / medians[10_000]["gather"]
    print(f"  1,000,000 vs 10,000: flow2 {growth:.2f}x, gather {gather_growth:.2f}x")


def sweep(quick: bool) -> None:
    """Print flow2 (output off) against gather at growing sizes."""
    print("\nsweep, output off: µs per task (flow2 / gather)")
    for count, repeat in ((1_000, 40), (10_000, 10), (100_000, 5), (300_000, 3)):
        if quick and count > 10_000:
            break
        gathered, flowed = [], []
        for _ in range(repeat):
            gathered.append(time_gather(count))
            flowed.append(time_flow(count, flow2.ParallelTaskGroup, flow2.Runner(display="none")))
        per_gather = statistics.median(gathered) / count * 1e6
        per_flow = statistics.median(flowed) / count * 1e6
        print(
            f"  {count:>7,} tasks: gather {per_gather:5.1f}, flow2 {per_flow:5.1f} "
            f"({per_flow / per_gather:.2f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10,000 tasks, 3 repeats")
    parser.add_argument("--sweep", action="store_true", help="only the sweep, 1,000 to 300,000")
    parser.add_argument(
        "--million",
        action="store_true",
        help="per-task cost and peak memory at 10,000 and 1,000,000 tasks, each in a fresh process",
    )
    parser.add_argument(
        "--imports", action="store_true", help="only import flow2 against import asyncio, 25 times"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child of --million
    options = parser.parse_args()
    if options.one:
        measure_one(options.one)
        return
    if options.million:
        million()
        return
    if options.imports:
        print_import_ratio(25)
        return
    if options.quick:
        options.tasks, options.repeat = 10_000, 3
    if options.sweep:
        sweep(options.quick)
        return

    devnull = open(os.devnull, "w")
    real_file = tempfile.TemporaryFile("w")
    info_handler = logging.StreamHandler(devnull)
    info_handler.setLevel(logging.INFO)
    flow_logger = logging.getLogger("flow2")

    def with_info_handler(count: int) -> float:
        flow_logger.addHandler(info_handler)
        flow_logger.setLevel(logging.INFO)
        try:
            return time_flow(count, flow2.ParallelTaskGroup, flow2.Runner(display="none"))
        finally:
            flow_logger.removeHandler(info_handler)
            flow_logger.setLevel(logging.NOTSET)

    def to_devnull(group: type[flow2.TaskGroup]) -> Callable[[int], float]:
        return lambda count: time_flow(count, group, flow2.Runner(display="plain", stream=devnull))

    variants: dict[str, Callable[[int], float]] = {
        "gather": time_gather,
        "parallel, console to /dev/null": to_devnull(flow2.ParallelTaskGroup),
        "parallel, console to a file": lambda count: time_flow(
            count, flow2.ParallelTaskGroup, flow2.Runner(display="plain", stream=real_file)
        ),
        "parallel, output off": lambda count: time_flow(
            count, flow2.ParallelTaskGroup, flow2.Runner(display="none")
        ),
        "asyncio.TaskGroup, a task per leaf": time_task_group,
        "serial, console to /dev/null": to_devnull(flow2.SerialTaskGroup),
        "serial, output off": lambda count: time_flow(
            count, flow2.SerialTaskGroup, flow2.Runner(display="none")
        ),
        "parallel, INFO handler": with_info_handler,
    }

    def measure(count: int, repeat: int) -> dict[str, float]:
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeat):
            for name, variant in variants.items():
                samples[name].append(variant(count) / count * 1e6)
        return {name: statistics.median(values) for name, values in samples.items()}

    large = measure(options.tasks, options.repeat)
    # Small runs are short: repeat them more for a stable median.
    small = measure(options.small, max(options.repeat * 10, 30))

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; medians of runs")
    print(
        f"{options.repeat} x {options.tasks:,} tasks and {max(options.repeat * 10, 30)} x "
        f"{options.small:,} tasks; µs per task\n"
    )
    print(
        f"| variant | {options.small:,} tasks | {options.tasks:,} tasks | "
        f"x gather at {options.tasks:,} | {options.tasks:,} vs {options.small:,} |"
    )
    print("|---|---:|---:|---:|---:|")
    for name in variants:
        print(
            f"| {name} | {small[name]:.1f} | {large[name]:.1f} | "
            f"{large[name] / large['gather']:.2f} | {large[name] / small[name]:.2f} |"
        )
    file_vs_off = large["parallel, console to a file"] / large["parallel, output off"]
    print(f"\nconsole to a real file vs output off: {file_vs_off:.2f}x")

    sweep(options.quick)

    print_import_ratio(max(options.repeat * 2, 7))


def print_import_ratio(repeat: int) -> None:
    asyncio_seconds, flow2_seconds = import_ratio(repeat)
    print(
        f"import asyncio {asyncio_seconds * 1e3:.0f} ms, import flow2 {flow2_seconds * 1e3:.0f} ms "
        f"(includes asyncio), medians of {repeat} fresh interpreters: "
        f"{flow2_seconds / asyncio_seconds:.2f}x"
    )


if __name__ == "__main__":
    main()
