"""Threads vs processes vs a Dask cluster, and flow2's overhead on Dask.

1. 200 CPU-bound pure-Python tasks of about 20 ms each, in one parallel
   group, on ``executor="thread"``, a :class:`flow2.ProcessExecutor` of 2
   workers, and a LocalCluster of 2 single-threaded worker processes. The
   GIL serializes the threads; processes and Dask use both cores.
2. The same 200 calls submitted straight with ``client.submit`` and
   gathered at once, against flow2 running them as tasks on that client:
   the ratio is flow2's cost per task on Dask. Measured with the 20 ms
   calls and with calls that do nothing (only overhead is left); for the
   latter also against raw calls each submitted and awaited by its own
   coroutine, which is how a task tree uses Dask (one future per task, each
   awaited where it runs).

Each figure is the median of ``--rounds`` runs, every variant measured in
the same process, one after the other, with warm workers. Run::

    python benchmarks/bench_executors.py [--rounds 5] [--tasks 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import flow2

WORKERS = 2


def burn(context: dict[str, Any], *, loops: int) -> int:
    """Pure-Python CPU work: holds the GIL all along."""
    total = 0
    for number in range(loops):
        total += number * number % 7
    return total


def nothing(context: dict[str, Any], *, loops: int) -> int:
    return loops


def calibrate(seconds: float) -> int:
    """How many loops of :func:`burn` take ``seconds`` on this machine."""
    loops = 10_000
    while True:
        started = time.perf_counter()
        burn({}, loops=loops)
        elapsed = time.perf_counter() - started
        if elapsed > 0.05:
            return max(1, int(loops * seconds / elapsed))
        loops *= 2


def flow(tasks: int, function: Callable[..., Any], executor: Any) -> flow2.Task:
    return flow2.ParallelTaskGroup(
        "Batch",
        *(flow2.CallbackTask(f"Call {number}", function) for number in range(tasks)),
        executor=executor,
    )


async def run_flow(tasks: int, function: Callable[..., Any], executor: Any, loops: int) -> None:
    await flow2.Runner(display="none").run(flow(tasks, function, executor), {"loops": loops})


async def medians(
    rounds: int, variants: dict[str, Callable[[], Awaitable[None]]]
) -> dict[str, float]:
    """Median seconds of each variant; rounds interleave them, so load drift hits all alike."""
    for make in variants.values():
        await make()  # warm up: imports, worker start-up, caches
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, make in variants.items():
            started = time.perf_counter()
            await make()
            timings[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in timings.items()}


async def main(rounds: int, tasks: int) -> None:
    import distributed

    loops = calibrate(0.020)
    print(f"{tasks} tasks of ~20 ms ({loops} loops), {WORKERS} workers, median of {rounds} runs")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    async with (
        flow2.ProcessExecutor(max_workers=WORKERS) as processes,
        distributed.LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            asynchronous=True,
        ) as cluster,
        distributed.Client(cluster, asynchronous=True, set_as_default=False) as client,
    ):
        on_dask = flow2.DaskExecutor(client)

        def raw(function: Callable[..., Any]) -> Callable[[], Awaitable[None]]:
            async def submit_and_gather() -> None:
                futures = [
                    client.submit(function, {}, loops=loops, pure=False) for _ in range(tasks)
                ]
                await client.gather(futures)

            return submit_and_gather

        def raw_one_coroutine_per_call(
            function: Callable[..., Any],
        ) -> Callable[[], Awaitable[None]]:
            async def submit_and_await() -> Any:
                return await client.submit(function, {}, loops=loops, pure=False)

            async def all_calls() -> None:
                await asyncio.gather(*(submit_and_await() for _ in range(tasks)))

            return all_calls

        def flow2_on(executor: Any, function: Callable[..., Any]) -> Callable[[], Awaitable[None]]:
            return lambda: run_flow(tasks, function, executor, loops)

        seconds = await medians(
            rounds,
            {
                "thread": flow2_on("thread", burn),
                "process": flow2_on(processes, burn),
                "dask": flow2_on(on_dask, burn),
                "raw burn": raw(burn),
                "flow2 nothing": flow2_on(on_dask, nothing),
                "raw nothing": raw(nothing),
                "raw nothing each": raw_one_coroutine_per_call(nothing),
            },
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    thread, process, dask = seconds["thread"], seconds["process"], seconds["dask"]
    print(f"  thread   {thread:7.2f} s   1.00x")
    print(f"  process  {process:7.2f} s   {thread / process:.2f}x the speed of threads")
    print(f"  dask     {dask:7.2f} s   {thread / dask:.2f}x the speed of threads")
    print("flow2 on Dask against raw client.submit of the same calls:")
    for label, ours, theirs, how in [
        ("20 ms calls", dask, seconds["raw burn"], "all submitted, one gather"),
        (
            "no-op calls",
            seconds["flow2 nothing"],
            seconds["raw nothing"],
            "all submitted, one gather",
        ),
        ("no-op calls", seconds["flow2 nothing"], seconds["raw nothing each"], "await per call"),
    ]:
        print(
            f"  {label}  flow2 {ours:6.3f} s  raw {theirs:6.3f} s ({how})  "
            f"ratio {ours / theirs:.2f}  ({(ours - theirs) / tasks * 1e6:+.0f} us per task)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=200)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.tasks))
