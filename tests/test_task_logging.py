"""What tasks log reaches the display, attributed to the task that logged it."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from typing import Any

import pytest

import flow2
from flow2._listeners._live import LiveView
from flow2._listeners._logging import tasks_logger
from tests.conftest import run


def output_of(tree: flow2.Task, **options: Any) -> str:
    stream = io.StringIO()
    run(flow2.Runner(display="plain", stream=stream, **options).run(tree, raises=False))
    return stream.getvalue()


def record_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("[")]


def test_parallel_async_tasks_interleave_but_each_line_names_its_task() -> None:
    # Barriers force the interleaving A, B, A, B: without the prefixes the
    # lines could not be told apart.
    a_logged, b_logged = asyncio.Event(), asyncio.Event()

    async def first(context: dict[str, Any]) -> None:
        flow2.logger.info("step 1")
        a_logged.set()
        await b_logged.wait()
        flow2.logger.info("step 2")

    async def second(context: dict[str, Any]) -> None:
        await a_logged.wait()
        flow2.logger.info("step 1")
        b_logged.set()
        await asyncio.sleep(0)
        flow2.logger.info("step 2")

    async def main() -> str:
        tree = flow2.ParallelTaskGroup(
            "Both", flow2.CallbackTask("Alpha", first), flow2.CallbackTask("Beta", second)
        )
        stream = io.StringIO()
        await flow2.Runner(display="plain", stream=stream).run(tree)
        return stream.getvalue()

    lines = record_lines(run(main()))
    assert lines[:2] == ["[Alpha] step 1", "[Beta] step 1"]
    assert sorted(lines[2:]) == ["[Alpha] step 2", "[Beta] step 2"]


def test_sync_tasks_in_worker_threads_are_attributed_too() -> None:
    barrier = threading.Barrier(3, timeout=30)

    def worker(context: dict[str, Any]) -> None:
        barrier.wait()  # all three threads log at once
        for number in range(20):
            flow2.logger.info("line %d from %s", number, threading.current_thread().name)

    tree = flow2.ParallelTaskGroup(
        "Workers", *[flow2.CallbackTask(f"Worker {n}", worker) for n in range(3)]
    )
    stream = io.StringIO()
    runner = flow2.Runner(display="plain", stream=stream, listeners=[])
    run(runner.run(tree))
    lines = record_lines(stream.getvalue())
    assert len(lines) == 60
    for line in lines:
        name, _, message = line.partition("] ")
        assert message.startswith("line ")
    # Every record of one task came from one thread: the prefix follows the task.
    threads: dict[str, set[str]] = {}
    for line in lines:
        name, _, message = line.partition("] ")
        threads.setdefault(name, set()).add(message.rsplit(" from ", 1)[1])
    assert sorted(threads) == ["[Worker 0", "[Worker 1", "[Worker 2"]
    assert all(len(names) == 1 for names in threads.values())
    assert len(set().union(*threads.values())) == 3


def test_task_logger_property_multiline_and_exceptions() -> None:
    class Report(flow2.Task):
        async def run(self, context: dict[str, Any]) -> None:
            self.logger.info("header\nsecond line")
            try:
                raise LookupError("gone")
            except LookupError:
                self.logger.exception("lookup failed")

    output = output_of(flow2.SerialTaskGroup("Root", Report("Report")))
    lines = output.splitlines()
    assert "[Report] header" in lines and "[Report] second line" in lines
    assert "[Report] ERROR: lookup failed" in lines
    assert "[Report] ERROR: LookupError: gone" in lines  # the traceback, prefixed too


@pytest.mark.parametrize(
    ("verbosity", "shown"),
    [
        ("quiet", ["[T] WARNING: warning"]),
        ("normal", ["[T] info", "[T] WARNING: warning"]),
        ("verbose", ["[T] debug", "[T] info", "[T] WARNING: warning"]),
    ],
)
def test_verbosity_chooses_the_lowest_level_shown(verbosity: str, shown: list[str]) -> None:
    async def chatty(context: dict[str, Any]) -> None:
        flow2.logger.debug("debug")
        flow2.logger.info("info")
        flow2.logger.warning("warning")

    output = output_of(flow2.CallbackTask("T", chatty), verbosity=verbosity)
    assert record_lines(output) == shown
    assert tasks_logger.level == logging.NOTSET  # restored after the run
    assert not [h for h in tasks_logger.handlers if type(h).__name__ == "_RunHandler"]


def test_a_level_the_application_set_is_respected() -> None:
    async def chatty(context: dict[str, Any]) -> None:
        flow2.logger.info("info")
        flow2.logger.error("error")

    tasks_logger.setLevel(logging.ERROR)
    try:
        output = output_of(flow2.CallbackTask("T", chatty), verbosity="verbose")
        assert tasks_logger.level == logging.ERROR
    finally:
        tasks_logger.setLevel(logging.NOTSET)
    assert record_lines(output) == ["[T] ERROR: error"]


def test_records_still_reach_the_applications_handlers(caplog: pytest.LogCaptureFixture) -> None:
    async def chatty(context: dict[str, Any]) -> None:
        flow2.logger.warning("disk almost full")

    with caplog.at_level(logging.WARNING, logger="flow2.tasks"):
        output = output_of(flow2.CallbackTask("T", chatty))
    assert "[T] WARNING: disk almost full" in output
    [record] = [r for r in caplog.records if r.name == "flow2.tasks"]
    assert record.task == "T"  # type: ignore[attr-defined]


def test_two_concurrent_runs_each_show_only_their_own_records() -> None:
    async def say(context: dict[str, Any]) -> None:
        for _ in range(3):
            flow2.logger.info("hello")
            await asyncio.sleep(0)

    async def main() -> tuple[str, str]:
        first, second = io.StringIO(), io.StringIO()
        await asyncio.gather(
            flow2.Runner(display="plain", stream=first).run(flow2.CallbackTask("One", say)),
            flow2.Runner(display="plain", stream=second).run(flow2.CallbackTask("Two", say)),
        )
        return first.getvalue(), second.getvalue()

    first, second = run(main())
    assert record_lines(first) == ["[One] hello"] * 3
    assert record_lines(second) == ["[Two] hello"] * 3


def test_a_run_ending_first_leaves_the_level_for_a_run_still_going() -> None:
    async def main() -> str:
        second_started, first_ended = asyncio.Event(), asyncio.Event()

        async def first(context: dict[str, Any]) -> None:
            await second_started.wait()  # both runs are going

        async def second(context: dict[str, Any]) -> None:
            second_started.set()
            await first_ended.wait()
            flow2.logger.info("still shown")

        stream = io.StringIO()
        first_run = asyncio.create_task(
            flow2.Runner(display="plain", stream=io.StringIO()).run(
                flow2.CallbackTask("First", first)
            )
        )
        await asyncio.sleep(0)  # the first run starts, and sets the level, first
        second_run = asyncio.create_task(
            flow2.Runner(display="plain", stream=stream).run(flow2.CallbackTask("Second", second))
        )
        await first_run
        first_ended.set()
        await second_run
        return stream.getvalue()

    assert record_lines(run(main())) == ["[Second] still shown"]
    assert tasks_logger.level == logging.NOTSET  # restored after the last run


def test_colored_prefix_on_a_terminal() -> None:
    async def chatty(context: dict[str, Any]) -> None:
        flow2.logger.info("info")
        flow2.logger.error("error")

    output = output_of(flow2.CallbackTask("T", chatty), color=True)
    assert "\033[36m[T] \033[0minfo" in output
    assert "\033[31;1m[T] ERROR: \033[0merror" in output


def test_records_outside_any_run_are_not_shown() -> None:
    # While a run is going on, records logged by code outside it (another
    # asyncio task, another run) do not appear in its output.
    stream = io.StringIO()
    other_stream = io.StringIO()

    async def main() -> None:
        inside, outside_done = asyncio.Event(), asyncio.Event()

        async def outsider() -> None:
            await inside.wait()
            flow2.logger.warning("logged outside any run")
            outside_done.set()

        async def task_code(context: dict[str, Any]) -> None:
            inside.set()
            await outside_done.wait()
            flow2.logger.warning("logged inside the run")

        async def other_code(context: dict[str, Any]) -> None:
            await inside.wait()
            flow2.logger.warning("logged by the other run")

        # Created before the runs: its context has no run.
        stranger = asyncio.create_task(outsider())
        await asyncio.gather(
            flow2.Runner(display="plain", stream=stream).run(flow2.CallbackTask("T", task_code)),
            flow2.Runner(display="plain", stream=other_stream).run(
                flow2.CallbackTask("Other", other_code)
            ),
        )
        await stranger

    run(main())
    assert "logged inside the run" in stream.getvalue()
    assert "logged outside any run" not in stream.getvalue()
    assert "logged by the other run" not in stream.getvalue()
    assert "logged by the other run" in other_stream.getvalue()


def test_live_view_shows_records_above_and_next_to_the_running_task() -> None:
    async def main() -> tuple[list[str], list[str]]:
        logged, release = asyncio.Event(), asyncio.Event()

        async def busy(context: dict[str, Any]) -> None:
            flow2.logger.info("compiling module 3 of 12")
            logged.set()
            await release.wait()

        view = LiveView(io.StringIO(), force_terminal=True, color=False)
        tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Compile", busy))
        runner = flow2.Runner(
            display="none",
            listeners=[
                flow2._listeners._logging.TaskRecordRouter(view.show_record, logging.INFO),
                view,
            ],
        )
        running = asyncio.create_task(runner.run(tree))
        await logged.wait()
        above = "".join(waiting.text for waiting in view._above).splitlines()
        lines = view.plain_lines()
        release.set()
        await running
        return above, lines

    above, lines = run(main())
    assert above == ["[Compile] compiling module 3 of 12"]
    assert "Compile" in lines[1] and lines[1].endswith("  compiling module 3 of 12")
