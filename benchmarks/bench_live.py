"""The cost of the live view: a 10,000-task run with it on, against output off.

Run: ``python benchmarks/bench_live.py`` (``--quick`` for fewer repeats).
Every figure is the median of ``--repeat`` runs; the variants are
interleaved in one process so that the noise of a shared machine hits them
alike. The target is a ratio of at most 1.5 for the live view.

Variants, each on the same tree (built before the clock starts):

- ``none``: ``display="none"``: events reach only the logging listener.
- ``live``: ``display="live"`` drawing to /dev/null through a rich console
  forced into terminal mode (80x25), with the end-of-run summary — exactly
  what a terminal receives, minus the terminal's own drawing time.
- ``plain``: ``display="plain"`` to /dev/null, with the summary, for reference.

Trees:

- ``flat``: a ParallelTaskGroup of 10,000 CallbackTasks, each ``await
  asyncio.sleep(0)`` once (so the run lasts long enough for the view to
  redraw several times).
- ``nested``: a SerialTaskGroup of 10 ParallelTaskGroups of 1,000 such tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import flow2


async def step(context: dict[str, Any]) -> None:
    await asyncio.sleep(0)


def flat(count: int) -> flow2.Task:
    return flow2.ParallelTaskGroup(
        "Flat", *(flow2.CallbackTask(f"Task {index}", step) for index in range(count))
    )


def nested(count: int) -> flow2.Task:
    groups = 10
    return flow2.SerialTaskGroup(
        "Nested",
        *(
            flow2.ParallelTaskGroup(
                f"Group {group}",
                *(
                    flow2.CallbackTask(f"Task {group}-{index}", step)
                    for index in range(count // groups)
                ),
            )
            for group in range(groups)
        ),
    )


def time_run(tree: flow2.Task, runner: flow2.Runner) -> float:
    async def main() -> float:
        started = time.perf_counter()
        await runner.run(tree)
        return time.perf_counter() - started

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    options = parser.parse_args()
    repeat = 3 if options.quick else options.repeat
    os.environ.pop("FLOW2_EVENTS", None)

    with open(os.devnull, "w") as devnull:
        runners: dict[str, Callable[[], flow2.Runner]] = {
            "none": lambda: flow2.Runner(display="none"),
            "live": lambda: flow2.Runner(display="live", stream=devnull, color=True),
            "plain": lambda: flow2.Runner(display="plain", stream=devnull, color=False),
        }
        # Warm up: imports (rich), first-run allocations.
        for make in runners.values():
            time_run(flat(200), make())
        print(f"{options.tasks:,} tasks, median of {repeat} runs, variants interleaved")
        for shape in (flat, nested):
            times: dict[str, list[float]] = {name: [] for name in runners}
            for _ in range(repeat):
                for name, make in runners.items():
                    times[name].append(time_run(shape(options.tasks), make()))
            medians = {name: statistics.median(values) for name, values in times.items()}
            base = medians["none"]
            print(f"\n{shape.__name__}:")
            for name, seconds in medians.items():
                print(f"  {name:<6} {seconds * 1000:8.1f} ms   {seconds / base:5.2f}x of none")


if __name__ == "__main__":
    main()
