"""The cost of a task's output: 100,000 lines through flow2, against the bare command.

Run: ``python benchmarks/bench_output.py`` (``--lines N``, ``--repeat N``).
Each variant runs ``seq N`` (one short line per number) as a ShellTask; the
variants are interleaved in one process and every figure is the median of
``--repeat`` runs, so the noise of a shared machine hits them alike. The
cost per line is (variant - bare) / N. Targets: at most 10 µs per line in
plain mode to a file, at most 20 µs in the live view.

Variants:

- ``bare``: the command alone, its output read to the end through a pipe by
  asyncio (what any runner must at least do), no flow2;
- ``none``: ``display="none"``: the lines become records of the task's logger;
- ``plain``: ``display="plain"`` writing to a file, with the summary;
- ``plain+logs``: the same, plus the task's log file (``log_dir=``);
- ``live``: ``display="live"`` drawing to /dev/null as a terminal would get it.

A last check: while ``seq`` floods the live view, a parallel ``sleep 1``
is reported with its true duration (drawing never holds the loop).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import flow2


async def bare(lines: int) -> None:
    process = await asyncio.create_subprocess_exec(
        "seq", str(lines), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    while await process.stdout.read(65536):
        pass
    await process.wait()


def run_bare(lines: int) -> None:
    asyncio.run(bare(lines))


def through_flow2(**options: Any) -> Callable[[int], None]:
    def variant(lines: int) -> None:
        task = flow2.SerialTaskGroup("Bench", flow2.ShellTask("Seq", ["seq", str(lines)]))
        with open(os.devnull if options.get("display") == "live" else _file(), "w") as stream:
            asyncio.run(flow2.Runner(stream=stream, color=False, **options).run(task))

    return variant


def _file() -> str:
    return os.path.join(tempfile.gettempdir(), "flow2-bench-output.txt")


def sleep_while_flooded(lines: int) -> float:
    durations: list[float] = []

    def remember(event: flow2.Event) -> None:
        if isinstance(event, flow2.TaskEvent) and event.task.name == "Sleep":
            if event.duration is not None:
                durations.append(event.duration)

    task = flow2.ParallelTaskGroup(
        "Bench",
        flow2.ShellTask("Seq", ["seq", str(lines * 5)]),
        flow2.ShellTask("Sleep", ["sleep", "1"]),
    )
    with open(os.devnull, "w") as stream:
        runner = flow2.Runner(display="live", stream=stream, listeners=[remember])
        asyncio.run(runner.run(task))
    return durations[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    arguments = parser.parse_args()
    lines = arguments.lines
    with tempfile.TemporaryDirectory() as logs:
        variants: dict[str, Callable[[int], None]] = {
            "bare": run_bare,
            "none": through_flow2(display="none"),
            "plain": through_flow2(display="plain"),
            "plain+logs": through_flow2(display="plain", log_dir=os.path.join(logs, "{run_id}")),
            "live": through_flow2(display="live"),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(arguments.repeat):
            for name, variant in variants.items():
                start = time.perf_counter()
                variant(lines)
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"seq {lines}, median of {arguments.repeat} runs")
    print(f"{'variant':<12} {'seconds':>8} {'µs/line over bare':>18}")
    for name, median in medians.items():
        extra = (median - medians["bare"]) / lines * 1e6
        print(f"{name:<12} {median:8.3f} {extra:18.2f}")
    reported = sleep_while_flooded(lines)
    print(f"a parallel `sleep 1` while seq {lines * 5} floods the live view: {reported:.2f}s")


if __name__ == "__main__":
    main()
