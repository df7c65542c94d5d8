"""The reports of a 10,000-task run: how long each takes to build, how big it is.

Run: ``python benchmarks/bench_reports.py`` (``--quick`` for fewer repeats,
``--browser`` to also time the HTML page in headless Chromium).

One run of a SerialTaskGroup of 10 ParallelTaskGroups of 1,000 tasks
(``max_parallel=8``, one of them retried once, one failing) writes its event
file; then each step is timed, the median of ``--repeat`` repeats:

- ``read``: :func:`flow2.read_events` (the event file into a record);
- ``html``, ``trace``, ``junit``, ``markdown``: each report from the record;
- ``collect``: the in-memory collector behind ``flow2 run --report``, as the
  extra cost of a run with it (run time with it / without it, interleaved);
- ``browser`` (with ``--browser``): the page's script time
  (``window.flow2Report.renderMs``), the time from opening the page to its
  first frame with everything drawn (``paintedMs``), and the wall time from
  launching Chromium to the load event (browser start-up included).

Targets: the HTML at most 10 MB and drawn in under 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flow2
from flow2._reports._model import RunCollector

TASKS_PER_SHARD = 1000
SHARDS = 10


def make_tree() -> flow2.Task:
    flaky = {"left": 1}

    async def nothing(context: dict[str, Any]) -> None:
        await asyncio.sleep(0)

    async def retried(context: dict[str, Any]) -> None:
        if flaky["left"]:
            flaky["left"] -= 1
            raise ConnectionError("not yet")

    async def broken(context: dict[str, Any]) -> None:
        raise ValueError("broken on purpose")

    shards = []
    for shard in range(SHARDS):
        tasks: list[flow2.Task] = [
            flow2.CallbackTask(f"Task {shard}.{n}", nothing) for n in range(TASKS_PER_SHARD - 1)
        ]
        if shard == 0:
            tasks.append(flow2.CallbackTask("Flaky", retried, retries=1, retry_delay=0.001))
        elif shard == 1:
            tasks.append(flow2.CallbackTask("Broken", broken))
        else:
            tasks.append(flow2.CallbackTask(f"Task {shard}.last", nothing))
        shards.append(flow2.ParallelTaskGroup(f"Shard {shard}", *tasks, max_parallel=8))
    return flow2.SerialTaskGroup("Big run", *shards)


def median_of(repeat: int, function: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--browser", action="store_true")
    options = parser.parse_args()
    repeat = 3 if options.quick else options.repeat
    folder = Path(tempfile.mkdtemp(prefix="flow2-bench-reports-"))
    events = folder / "events.jsonl"
    runner = flow2.Runner(display="none", events=str(events))
    asyncio.run(runner.run(make_tree(), raises=False))
    print(f"event file: {events.stat().st_size / 1e6:.1f} MB, {SHARDS * TASKS_PER_SHARD} tasks")

    seconds, record = median_of(repeat, lambda: flow2.read_events(events))
    assert isinstance(record, flow2.RunRecord)
    print(f"read      {seconds * 1000:8.0f} ms")
    builders: dict[str, Callable[[flow2.RunRecord], str]] = {
        "html": flow2.html_report,
        "trace": flow2.trace_report,
        "junit": flow2.junit_report,
        "markdown": flow2.markdown_report,
    }
    for name, build in builders.items():
        seconds, text = median_of(repeat, lambda build=build: build(record))  # type: ignore[misc]
        assert isinstance(text, str)
        (folder / f"report.{name}").write_text(text, encoding="utf-8")
        size = len(text.encode())
        print(f"{name:9} {seconds * 1000:8.0f} ms  {size / 1e6:6.2f} MB")

    plain: list[float] = []
    collected: list[float] = []
    for _ in range(repeat):
        for listeners, into in (([], plain), ([RunCollector()], collected)):
            tree = make_tree()
            start = time.perf_counter()
            asyncio.run(flow2.Runner(display="none", listeners=listeners).run(tree, raises=False))
            into.append(time.perf_counter() - start)
    ratio = statistics.median(collected) / statistics.median(plain)
    print(
        f"collect   run {statistics.median(plain) * 1000:.0f} ms without, "
        f"{statistics.median(collected) * 1000:.0f} ms with the collector: {ratio:.2f}x"
    )

    if options.browser:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.browser import load_page

        scripts, painted, walls = [], [], []
        expressions = {
            "script": "window.flow2Report.renderMs",
            "painted": "new Promise(done => setTimeout(() => done(flow2Report.paintedMs), 100))",
        }
        for _ in range(repeat):
            start = time.perf_counter()
            result = load_page(folder / "report.html", expressions)
            walls.append(time.perf_counter() - start)
            scripts.append(float(result.values["script"]))
            painted.append(float(result.values["painted"]))
            assert not result.errors, result.errors
        print(
            f"browser   script {statistics.median(scripts):.0f} ms, first full frame "
            f"{statistics.median(painted):.0f} ms after opening the page; "
            f"{statistics.median(walls):.1f} s from launching Chromium to the load event"
        )
    print(f"files in {folder}")


if __name__ == "__main__":
    main()
