"""The cost of needs: none when unused, linear when used.

Run: ``python benchmarks/bench_needs.py`` (about two minutes; ``--quick`` for
a smaller run). Medians of ``--repeat`` runs; the variants are interleaved in
one process so that the noise of a shared machine hits them alike.

- ``plain``: one ParallelTaskGroup of n no-op CallbackTasks, output off.
- ``chain``: the same group where task i needs task i-1 (``needs=``): every
  task but the first waits for its predecessor, so they run one by one.

Per-task microseconds that stay flat from 10,000 to 100,000 tasks show the
chain's cost is linear in the number of tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from typing import Any

import flow2


async def noop(context: dict[str, Any]) -> None:
    return None


def build(count: int, chained: bool) -> flow2.Task:
    return flow2.ParallelTaskGroup(
        "Benchmark",
        *(
            flow2.CallbackTask(
                f"Task {index}",
                noop,
                needs=f"task_{index - 1}" if chained and index else None,
            )
            for index in range(count)
        ),
    )


def time_run(tree: flow2.Task) -> float:
    runner = flow2.Runner(display="none")

    async def main() -> float:
        gc.collect()
        started = time.perf_counter()
        await runner.run(tree)
        return time.perf_counter() - started

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="up to 30,000 tasks, 3 repeats")
    arguments = parser.parse_args()
    sizes = [10_000, 30_000] if arguments.quick else [10_000, 30_000, 100_000]
    repeat = 3 if arguments.quick else arguments.repeat
    print(f"{'tasks':>8}  {'plain µs/task':>14}  {'chain µs/task':>14}  {'chain/plain':>11}")
    for count in sizes:
        plain_tree, chain_tree = build(count, False), build(count, True)
        plain, chain = [], []
        for _ in range(repeat):
            plain.append(time_run(plain_tree) / count * 1e6)
            chain.append(time_run(chain_tree) / count * 1e6)
        plain_median, chain_median = statistics.median(plain), statistics.median(chain)
        print(
            f"{count:>8,}  {plain_median:>14.1f}  {chain_median:>14.1f}  "
            f"{chain_median / plain_median:>10.2f}x"
        )


if __name__ == "__main__":
    main()
