"""The summary printed when a run ends: counts, time, slowest tasks, failures."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import flow2
from flow2._listeners._summary import HEADLINE_WIDTH, MAX_FAILURES_SHOWN
from flow2._listeners._text import MAX_FRAMES, is_user_frame, user_traceback
from tests.conftest import Terminal, run


def summary_of(tree: flow2.Task, **options: Any) -> str:
    """Only the summary: the lines after the last blank line the run printed."""
    stream = io.StringIO()
    runner = flow2.Runner(display="plain", stream=stream, **options)
    run(runner.run(tree, raises=False))
    return stream.getvalue().rpartition("\n\n")[2]


async def _nothing(context: dict[str, Any]) -> None:
    return None


def _sleeper(seconds: float) -> Any:
    async def sleep(context: dict[str, Any]) -> None:
        await asyncio.sleep(seconds)

    return sleep


def parse_secret_and_fail(context: dict[str, Any]) -> None:
    api_token = "tok-SUPERSECRET"  # a local a traceback printer must never show
    _check(api_token)


def _check(token: str) -> None:
    password = "hunter2"  # noqa: F841  (must not appear either)
    raise PermissionError(f"token rejected by server (length {len(token)})")


def test_counts_wall_time_and_slowest_tasks() -> None:
    tree = flow2.SerialTaskGroup(
        "Release",
        flow2.ParallelTaskGroup(
            "Build",
            flow2.CallbackTask("Slow", _sleeper(0.2)),
            flow2.CallbackTask("Quick", _nothing),
        ),
        flow2.CallbackTask("Publish", _sleeper(0.05)),
    )
    lines = summary_of(tree).splitlines()
    verdict = lines[-1]  # last, where the eye and a CI log's tail land
    assert verdict.startswith("Release succeeded in ")
    seconds = float(verdict.split(" in ")[1].split("s:")[0])
    assert 0.25 <= seconds < 10
    assert verdict.endswith(": 3 succeeded, 0 failed, 0 skipped, 0 cancelled")
    assert lines[0] == "Slowest:"
    # Build is left out: Slow, inside it, explains its time; Quick took none.
    slowest = [line.split("s  ", 1)[1] for line in lines[1:3]]
    assert slowest == ["Release › Build › Slow", "Release › Publish"]
    assert len(lines) == 4


def test_slowest_is_left_out_when_it_would_tell_nothing() -> None:
    quick = flow2.ParallelTaskGroup(
        "Root", *[flow2.CallbackTask(f"T{n}", _nothing) for n in range(5)]
    )
    assert "Slowest" not in summary_of(quick)  # every task took 0.00s
    single = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Only", _sleeper(0.05)))
    assert "Slowest" not in summary_of(single)  # the verdict gives its time


def test_failure_has_its_place_type_message_and_only_user_frames() -> None:
    tree = flow2.SerialTaskGroup(
        "Release",
        flow2.SerialTaskGroup("Build", flow2.CallbackTask("Wheel", parse_secret_and_fail)),
        flow2.CallbackTask("Publish", _nothing),
    )
    summary = summary_of(tree)
    lines = summary.splitlines()
    assert lines[-1].startswith("Release failed in ")
    assert lines[-1].endswith(": 0 succeeded, 1 failed, 1 skipped, 0 cancelled")
    # The cause right above the verdict, the traceback above it.
    assert lines[-3:-1] == [
        "Failed: Release › Build › Wheel",
        "  PermissionError: token rejected by server (length 15)",
    ]
    start = lines.index("── Release › Build › Wheel ──")
    assert lines[start + 1] == "  Traceback (your code, most recent call last):"
    frames = [line.strip() for line in lines[start + 2 :] if line.strip().startswith("File ")]
    assert [frame.rsplit(" in ", 1)[1] for frame in frames] == ["parse_secret_and_fail", "_check"]
    assert all(f'"{os.path.relpath(__file__)}"' in frame for frame in frames)
    assert "_check(api_token)" in summary
    # Never flow2's internals, asyncio's or the thread pool's, never a local's value.
    assert "flow2" + os.sep not in summary and "asyncio" not in summary
    assert "concurrent" not in summary and "threading" not in summary
    assert "SUPERSECRET" not in summary and "hunter2" not in summary


def test_causes_are_followed() -> None:
    async def load(context: dict[str, Any]) -> None:
        try:
            {}["config"]
        except KeyError as error:
            raise RuntimeError("cannot load the configuration") from error

    summary = summary_of(flow2.SerialTaskGroup("Root", flow2.CallbackTask("Load", load)))
    assert "  RuntimeError: cannot load the configuration" in summary
    assert "  Caused by KeyError: 'config'" in summary
    assert summary.count("Traceback (your code") == 2


def test_a_timeout_shows_its_message_without_a_traceback_of_internals() -> None:
    tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Hang", _sleeper(30), timeout=0.05))
    summary = summary_of(tree)
    assert "Failed: Root › Hang" in summary
    assert "TaskTimeoutError: task 'Hang' timed out after 0.05s" in summary
    # Where the user's code was waiting when the timeout cancelled it.
    assert "Traceback (your code, where it was cancelled):" in summary
    assert "await asyncio.sleep(seconds)" in summary
    assert "Caused by" not in summary
    assert "flow2" + os.sep not in summary and os.sep + "asyncio" + os.sep not in summary


def test_group_failing_on_its_own_is_listed_once_with_its_place() -> None:
    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.ParallelTaskGroup("Checks", flow2.CallbackTask("Wait", _sleeper(30)), timeout=0.05),
    )
    summary = summary_of(tree)
    assert summary.count("Failed: ") == 1
    assert "Failed: Root › Checks" in summary
    assert "0 succeeded, 0 failed, 0 skipped, 1 cancelled" in summary


def test_many_failures_are_counted_but_not_all_shown() -> None:
    def failing(number: int) -> Any:
        async def fail(context: dict[str, Any]) -> None:
            raise ValueError(f"bad input {number}")  # each its own error: none grouped

        return fail

    count = MAX_FAILURES_SHOWN + 5
    tree = flow2.ParallelTaskGroup(
        "Root", *[flow2.CallbackTask(f"T{n}", failing(n)) for n in range(count)]
    )
    summary = summary_of(tree)
    assert f"0 succeeded, {count} failed" in summary
    assert summary.count("Failed: Root › T") == MAX_FAILURES_SHOWN
    assert "… and 5 more failures" in summary


def test_quiet_prints_the_headline_and_failures_only() -> None:
    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.CallbackTask("Fine", _nothing),
        flow2.CallbackTask("Broken", parse_secret_and_fail),
    )
    summary = summary_of(tree, verbosity="quiet")
    assert "Slowest" not in summary
    assert summary.splitlines()[-1].startswith("Root failed in")
    assert "Failed: Root › Broken" in summary


def test_verbose_lists_ten_slowest() -> None:
    tree = flow2.ParallelTaskGroup(
        "Root", *[flow2.CallbackTask(f"T{n}", _sleeper(0.02)) for n in range(15)]
    )
    lines = summary_of(tree, verbosity="verbose").splitlines()
    assert len([line for line in lines if "Root › T" in line]) == 10


def test_colored_on_request_plain_otherwise() -> None:
    tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Broken", parse_secret_and_fail))
    assert "\033[" not in summary_of(tree)
    assert "\033[31;1mRoot failed in" in summary_of(tree, color=True)


def test_a_cancelled_run_says_so() -> None:
    async def main() -> str:
        started = asyncio.Event()

        async def block(context: dict[str, Any]) -> None:
            started.set()
            await asyncio.sleep(30)

        stream = io.StringIO()
        tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Block", block))
        running = asyncio.create_task(flow2.Runner(display="plain", stream=stream).run(tree))
        await started.wait()
        running.cancel()
        try:
            await running
        except asyncio.CancelledError:
            pass
        return stream.getvalue()

    output = run(main())
    assert "Root was cancelled in" in output
    assert "0 succeeded, 0 failed, 0 skipped, 1 cancelled" in output


def test_user_frames_filter() -> None:
    assert is_user_frame(__file__)
    assert not is_user_frame(flow2.__file__)
    assert not is_user_frame(asyncio.__file__)


def test_deep_recursion_keeps_the_innermost_frames() -> None:
    def recurse(depth: int) -> None:
        if depth == 0:
            raise RecursionError("too deep")
        recurse(depth - 1)

    try:
        recurse(30)
    except RecursionError as error:
        lines = user_traceback(error)
    assert lines[1].startswith("  … ") and "earlier frames" in lines[1]
    assert len([line for line in lines if line.startswith("  File ")]) == MAX_FRAMES
    assert lines[-1] == '    raise RecursionError("too deep")'


def test_summary_shows_each_line_of_output_once() -> None:
    script = "for n in 1 2 3; do echo out-$n; done\necho err-1 >&2\necho err-2 >&2\nexit 3"
    tree = flow2.SerialTaskGroup("Root", flow2.ShellTask("Build", script))
    stream = io.StringIO()
    run(flow2.Runner(display="plain", stream=stream).run(tree, raises=False))
    everything = stream.getvalue()
    summary = everything.rpartition("\n\n")[2]
    for line in ("out-1", "out-3", "err-1", "err-2"):
        assert summary.count(line) == 1, summary
        # Once as it was printed, once in the summary: never in the error's text.
        assert everything.count(line) == 2, everything
    lines = summary.splitlines()
    assert lines[-3:-1] == [
        "Failed: Root › Build",
        "  CommandError: command exited with code 3: for n in 1 2 3; do echo out-$n; done"
        " … (4 lines)",
    ]


PTY_FAILURES = """
    import sys
    import flow2

    def parse(context):
        raise ValueError("bad value in setup.cfg")

    build = (
        "for n in $(seq 1 30); do echo compiling module $n; done\\n"
        "echo linker failed >&2\\nexit 3"
    )
    tree = flow2.ParallelTaskGroup(
        "Root",
        flow2.ShellTask("Build", build),
        flow2.CallbackTask("Parse", parse),
        flow2.ShellTask("Docs", "echo docs built"),
    )
    raise SystemExit(flow2.run(tree).exit_code)
"""


def test_the_last_screen_names_each_failure_right_above_the_verdict(tmp_path: Path) -> None:
    terminal = Terminal(PTY_FAILURES, tmp_path, columns=80, rows=24)
    screen = terminal.finish(check=False)
    assert terminal.child.exitstatus == 1
    verdict = next(n for n, line in enumerate(screen) if line.startswith("Root finished with"))
    # Each failure's path and error (the terminal wraps the long one), in tree order.
    assert screen[verdict - 5 : verdict] == [
        "Failed: Root › Build",
        "  CommandError: command exited with code 3: for n in $(seq 1 30); do echo compil",
        "ing module $n; done … (3 lines)",
        "Failed: Root › Parse",
        "  ValueError: bad value in setup.cfg",
    ], "\n".join(screen)
    # The output tail is above them, and each of its lines is there once.
    text = "\n".join(screen[:verdict])
    assert text.count("linker failed") == 1
    assert text.index("linker failed") < text.index("Failed: Root › Build")


def test_reused_tasks_are_not_among_the_slowest(tmp_path: Path) -> None:
    def tree() -> flow2.Task:
        return flow2.SerialTaskGroup(
            "Root",
            flow2.SerialTaskGroup(
                "Prepare",
                flow2.CallbackTask("Fetch", _sleeper(0.05)),
                flow2.CallbackTask("Parse", _sleeper(0.05)),
            ),
            flow2.CallbackTask("Finish", _sleeper(0.05)),
        )

    store = tmp_path / "store"
    first = summary_of(tree(), store=store)
    assert "Slowest:" in first and "Root › Prepare › Fetch" in first
    # Everything is reused: its time was the first run's, nothing to rank.
    again = summary_of(tree(), store=store, resume="last")
    assert "3 reused" in again.splitlines()[-1]
    assert "Slowest" not in again


def test_a_long_error_takes_two_lines_above_the_verdict_and_is_whole_above() -> None:
    message = "could not parse " + "x" * 300

    async def fail(context: dict[str, Any]) -> None:
        raise ValueError(message)

    lines = summary_of(
        flow2.SerialTaskGroup("Root", flow2.CallbackTask("Parse", fail))
    ).splitlines()
    assert lines[-3] == "Failed: Root › Parse"
    error = lines[-2]
    assert len(error) <= 2 * 80 and error.endswith("…")
    assert error.startswith("  ValueError: could not parse xxx")
    assert len(error) == 2 + HEADLINE_WIDTH
    # The whole message is in the details above.
    assert f"  ValueError: {message}" in lines[: len(lines) - 3]
