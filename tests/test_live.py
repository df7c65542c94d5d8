"""The live view, read off a real pseudo-terminal through a terminal emulator."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path
from typing import Any

import pytest

import flow2
from flow2._listeners._live import SPINNER, LiveView, format_seconds
from tests.conftest import Terminal, run

RELEASE = """
    import asyncio, sys
    import flow2

    async def version(context):
        return "1.4.0"

    def wait_for_go(context):
        flow2.logger.info("waiting for go")
        sys.stdin.readline()
        return None

    def wheel(context):
        token = "s3cr3t-token"
        raise ValueError("no such file: dist/demo.whl")

    workflow = flow2.SerialTaskGroup(
        "Release",
        flow2.CallbackTask("Version", version),
        flow2.ParallelTaskGroup(
            "Build",
            flow2.CallbackTask("Docs", wait_for_go),
            flow2.CallbackTask("Wheel", wheel),
            on_error="raise",
        ),
        flow2.CallbackTask("Publish", version, register="published"),
    )
    asyncio.run(flow2.Runner().run(workflow, raises=False))
"""


def _has(lines: list[str], *fragments: str) -> bool:
    return any(all(fragment in line for fragment in fragments) for line in lines)


def test_live_tree_then_final_marks_summary_and_failure_place(tmp_path: Path) -> None:
    terminal = Terminal(RELEASE, tmp_path, rows=40)
    # While Docs waits: the tree, a spinner on the running tasks, the waiting
    # task's mark, the failed sibling with its error, the log line above.
    screen = terminal.read_until(
        lambda lines: _has(lines, "✗ Wheel", "ValueError") and _has(lines, "Docs", "waiting for go")
    )
    text = "\n".join(screen)
    assert "[Docs] waiting for go" in text  # the record, above the tree
    assert _has(screen, "├─ ✓ Version")
    assert any(
        line.lstrip("│ ├└─").startswith(tuple(SPINNER)) and "Docs" in line for line in screen
    )
    assert _has(screen, "└─ · Publish")
    assert _has(screen, "Build", "1/2", "1 failed")

    terminal.child.sendline("go")
    final = terminal.finish()
    text = "\n".join(final)
    # The spinner is gone: every node ends with its final mark.
    assert not any(frame in text for frame in SPINNER)
    assert _has(final, "✗ Release", "4/4 tasks", "1 failed", "1 skipped")
    assert _has(final, "├─ ✓ Version")
    assert _has(final, "✗ Build", "2/2", "1 failed")
    assert _has(final, "✓ Docs")
    assert _has(final, "✗ Wheel", "ValueError: no such file")
    assert _has(final, "└─ - Publish")
    # The summary, with the failure's place, type, message and the user's frame only.
    assert _has(final, "Release failed in", "2 succeeded, 1 failed, 1 skipped, 0 cancelled")
    assert "Failed: Release › Build › Wheel" in text
    assert "ValueError: no such file: dist/demo.whl" in text
    assert 'raise ValueError("no such file: dist/demo.whl")' in text
    assert "s3cr3t-token" not in text
    assert "flow2/" not in text and "asyncio" not in text


def test_a_large_run_collapses_and_never_scrolls(tmp_path: Path) -> None:
    terminal = Terminal(
        """
        import asyncio
        import flow2

        async def nothing(context):
            return None

        async def broken(context):
            raise RuntimeError("disk full")

        groups = [
            flow2.ParallelTaskGroup(
                f"Shard {shard}",
                *[flow2.CallbackTask(f"Item {shard}-{item}", nothing) for item in range(500)],
            )
            for shard in range(6)
        ]
        groups[2].tasks.append(flow2.CallbackTask("Item 2-broken", broken))
        workflow = flow2.SerialTaskGroup("Big", *groups)
        asyncio.run(flow2.Runner().run(workflow, raises=False))
        """,
        tmp_path,
        rows=30,
    )
    final = terminal.finish()
    text = "\n".join(final)
    # Finished groups are one line each with their counts; the failure stays expanded.
    assert _has(final, "! Big", "3001/3001 tasks", "1 failed")
    assert _has(final, "└─ … 5 done")
    assert _has(final, "! Shard 2", "501/501", "1 failed")
    assert _has(final, "✗ Item 2-broken", "RuntimeError: disk full")
    assert "Item 1-7" not in text
    assert "Big finished with failures" in text
    # 3,001 tasks, yet far fewer lines ever reached the terminal than a
    # plain listing would print (6,000+): the view redraws in place.
    assert terminal.raw.count(b"\n") < 1500


def test_long_names_are_cut_to_the_terminal_width(tmp_path: Path) -> None:
    terminal = Terminal(
        """
        import asyncio
        import flow2

        async def nothing(context):
            return None

        name = "Compile " + "very " * 40 + "long name"
        workflow = flow2.SerialTaskGroup("Root", flow2.CallbackTask(name, nothing))
        asyncio.run(flow2.Runner().run(workflow))
        """,
        tmp_path,
        columns=60,
    )
    final = terminal.finish()
    tree_line = next(line for line in final if "Compile very" in line)
    assert "…" in tree_line
    assert len(tree_line) <= 60
    following = final[final.index(tree_line) + 1]
    assert "very" not in following  # nothing wrapped onto the next line


def test_quiet_live_view_is_erased_leaving_the_summary(tmp_path: Path) -> None:
    terminal = Terminal(
        """
        import asyncio
        import flow2

        async def nothing(context):
            return "result"

        workflow = flow2.SerialTaskGroup("Quiet run", flow2.CallbackTask("Step", nothing))
        asyncio.run(flow2.Runner(verbosity="quiet").run(workflow))
        """,
        tmp_path,
    )
    final = terminal.finish()
    text = "\n".join(final)
    assert "Quiet run succeeded in" in text
    assert "✓ Step" not in text and "result" not in text and "Slowest" not in text


def test_results_and_prints_appear_above_the_tree(tmp_path: Path) -> None:
    terminal = Terminal(
        """
        import asyncio
        import flow2

        async def fetch(context):
            print("printed by the task")
            return {"version": "2.0"}

        workflow = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Fetch", fetch))
        asyncio.run(flow2.Runner().run(workflow))
        """,
        tmp_path,
    )
    final = terminal.finish()
    printed = final.index("[Fetch] printed by the task")
    result = final.index("Fetch")
    assert final[result + 1] == "  version: 2.0"
    root = next(index for index, line in enumerate(final) if line.startswith("✓ Root"))
    assert printed < root and result < root


# -- in process: the collapsing rules, on a console forced to be a terminal --


def _view_after(tree: flow2.Task, **options: Any) -> tuple[LiveView, str]:
    stream = io.StringIO()
    view = LiveView(stream, force_terminal=True, color=False, **options)
    run(flow2.Runner(display="none", listeners=[view]).run(tree, raises=False))
    return view, stream.getvalue()


def _plain_lines(view: LiveView) -> list[str]:
    return view.plain_lines()


async def _nothing(context: dict[str, Any]) -> None:
    return None


async def _fail(context: dict[str, Any]) -> None:
    raise KeyError("missing")


def test_a_tree_that_fits_is_drawn_whole() -> None:
    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.ParallelTaskGroup(
            "Group", *[flow2.CallbackTask(f"T{n}", _nothing) for n in range(3)]
        ),
    )
    view, _ = _view_after(tree)
    lines = _plain_lines(view)
    assert [line.split()[0:2] for line in lines] == [
        ["✓", "Root"],
        ["└─", "✓"],
        ["├─", "✓"],
        ["├─", "✓"],
        ["└─", "✓"],
    ]


def test_a_tree_too_big_collapses_to_failures_and_counts() -> None:
    tree = flow2.ParallelTaskGroup(
        "Root",
        *[flow2.CallbackTask(f"T{n}", _nothing) for n in range(100)],
        flow2.CallbackTask("Bad", _fail),
    )
    view, _ = _view_after(tree)
    lines = _plain_lines(view)
    assert lines[0].startswith("! Root 101/101 tasks 1 failed")
    assert lines[1].startswith("├─ ✗ Bad") and "KeyError: 'missing'" in lines[1]
    assert lines[2] == "└─ … 100 done"
    assert len(lines) == 3


def test_running_tasks_stay_expanded_and_the_view_is_cut_at_the_screen_height() -> None:
    async def main() -> tuple[list[str], int]:
        release, all_started = asyncio.Event(), asyncio.Event()
        started = 0

        async def block(context: dict[str, Any]) -> None:
            nonlocal started
            started += 1
            if started == 50:
                all_started.set()
            await release.wait()

        tree = flow2.ParallelTaskGroup(
            "Root", *[flow2.CallbackTask(f"T{n}", block) for n in range(200)], max_parallel=50
        )
        view = LiveView(io.StringIO(), force_terminal=True, color=False)
        running = asyncio.create_task(flow2.Runner(display="none", listeners=[view]).run(tree))
        await all_started.wait()
        lines = _plain_lines(view)
        release.set()
        await running
        return lines, 25 - 2

    lines, budget = run(main())
    assert lines[0].startswith(tuple(SPINNER)) and "Root 0/200 tasks" in lines[0]
    assert lines[1].startswith("├─ ") and " T0 " in lines[1] + " "
    # The 50 running tasks do not all fit: the hidden ones are counted.
    shown = sum(1 for line in lines if line.startswith("├─ ") and " T" in line)
    assert lines[-1] == f"… {50 - shown} more running"
    assert len(lines) == budget  # the terminal's height, minus room for the cursor


def test_retrying_task_shows_the_next_attempt() -> None:
    attempts = 0

    async def flaky(context: dict[str, Any]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise OSError("try again")

    seen: list[str] = []

    def look(event: flow2.Event) -> None:
        if isinstance(event, flow2.TaskEvent) and event.status is flow2.Status.RETRYING:
            seen.append(_plain_lines(view)[1])

    view = LiveView(io.StringIO(), force_terminal=True, color=False)
    tree = flow2.SerialTaskGroup(
        "Root", flow2.CallbackTask("Flaky", flaky, retries=3, retry_delay=0)
    )
    run(flow2.Runner(display="none", listeners=[view, look]).run(tree))
    assert "↻ Flaky retry 2/4" in seen[0] and "OSError: try again" in seen[0]
    assert "retry 3/4" in seen[1]
    assert _plain_lines(view)[1].startswith("└─ ✓ Flaky attempt 3/4")


def test_without_a_terminal_the_forced_view_still_ends_with_the_final_tree() -> None:
    tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Only", _nothing))
    stream = io.StringIO()
    run(flow2.Runner(display="live", stream=stream, color=False).run(tree))
    output = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    assert "✓ Root" in output and "└─ ✓ Only" in output
    assert "Root succeeded in" in output


def test_a_view_that_fails_stops_drawing(monkeypatch: pytest.MonkeyPatch) -> None:
    view = LiveView(io.StringIO(), force_terminal=True, color=False)

    def broken(event: flow2.TaskEvent) -> None:
        raise RuntimeError("drawing bug")

    monkeypatch.setattr(view, "_record", broken)
    tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Only", _nothing))
    context = run(flow2.Runner(display="none", listeners=[view]).run(tree))
    assert context == {"only": None}  # the run went on without the view
    assert view._writer is None and view._timer is None  # no timer left redrawing


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.04, "0.0s"), (12.34, "12.3s"), (125, "2m05s"), (3720, "1h02m")]
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_ctrl_c_leaves_the_final_tree_the_summary_and_the_cursor(tmp_path: Path) -> None:
    terminal = Terminal(
        """
        import asyncio, sys
        import flow2

        async def forever(context):
            flow2.logger.info("started")
            await asyncio.sleep(3600)

        workflow = flow2.SerialTaskGroup(
            "Root", flow2.CallbackTask("Sleep", forever), flow2.CallbackTask("Next", forever)
        )
        try:
            asyncio.run(flow2.Runner().run(workflow))
        except KeyboardInterrupt:
            sys.exit(0)
        """,
        tmp_path,
    )
    terminal.read_until(lambda lines: _has(lines, "Sleep", "started") and _has(lines, "· Next"))
    terminal.child.sendintr()
    final = terminal.finish()
    assert _has(final, "⊘ Root")
    assert _has(final, "├─ ⊘ Sleep")
    assert _has(final, "└─ ⊘ Next")
    assert _has(final, "Root was cancelled in", "0 succeeded, 0 failed, 0 skipped, 2 cancelled")
    hidden = terminal.raw.rfind(b"\x1b[?25l")
    assert 0 <= hidden < terminal.raw.rfind(b"\x1b[?25h")  # the cursor is back


def test_cleanup_tasks_are_drawn_under_their_group_and_marked() -> None:
    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.CallbackTask("Work", _fail),
        on_failure=[flow2.CallbackTask("Report", _nothing)],
        finally_tasks=[flow2.CallbackTask("Clean", _nothing)],
    )
    view, _ = _view_after(tree)
    lines = _plain_lines(view)
    assert lines[1].startswith("├─ ✗ Work")
    assert lines[2].startswith("├─ ✓ Report (on failure)")
    assert lines[3].startswith("└─ ✓ Clean (finally)")
