"""Nothing on screen is forged: a task's name shows its control characters as text
wherever flow2 draws it, and a task's own escape sequences reach a terminal only."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

import flow2
from flow2._listeners._console import PlainConsole
from flow2._listeners._live import LiveView

from .conftest import run, write_flow
from .test_cli import flow2 as cli

#: A name that, drawn as it is, would clear the screen, end its line with a
#: fake verdict and start GitHub workflow commands.
FORGED = "build\x1b[2J\nRelease succeeded in 0.01s\n::error::forged\r::add-mask::x\x07\u202e"
#: How it draws.
SHOWN = "build\\x1b[2J\\nRelease succeeded in 0.01s\\n::error::forged\\r::add-mask::x\\x07\\u202e"


async def _fail(context: dict[str, Any]) -> None:
    raise RuntimeError("broken")


async def _skip_reason(context: dict[str, Any]) -> None:
    return None


def _tree() -> flow2.Task:
    return flow2.SerialTaskGroup(
        "Release",
        flow2.CallbackTask(FORGED, _fail),
        flow2.CallbackTask("after", _skip_reason),
    )


def assert_not_forged(text: str) -> None:
    assert "\x1b[2J" not in text and "\x07" not in text and "\u202e" not in text
    for line in text.splitlines():
        assert not line.startswith("Release succeeded"), line
        assert not line.startswith("::add-mask::"), line
        assert not line.startswith("::error::forged"), line


def test_plain_lines_and_the_summary_show_a_forged_name_as_text() -> None:
    stream = io.StringIO()
    result = run(flow2.Runner(display="plain", stream=stream, color=False).execute(_tree()))
    assert result.exit_code == 1
    text = stream.getvalue()
    assert_not_forged(text)
    assert f"FAILED    {SHOWN} (" in text
    assert f"Failed: Release › {SHOWN}" in text  # the summary


def test_github_lines_escape_a_forged_name() -> None:
    stream = io.StringIO()
    console = PlainConsole(stream, color=False, github=True)

    async def noisy(context: dict[str, Any]) -> None:
        print("from the task")
        raise RuntimeError("line one\nline two")

    tree = flow2.SerialTaskGroup("Release", flow2.CallbackTask(FORGED, noisy))
    run(flow2.Runner(display="none", listeners=[console]).run(tree, raises=False))
    text = stream.getvalue()
    assert_not_forged(text)
    annotations = [line for line in text.splitlines() if line.startswith("::error ")]
    assert annotations, text
    # Properties escape ':' and ',', data escapes newlines: one line per command.
    assert "title=Release › build\\x1b[2J\\nRelease succeeded in 0.01s\\n%3A%3Aerror" in text
    assert annotations[0].endswith("::RuntimeError: line one%0Aline two")


def test_the_step_summary_shows_a_forged_name_as_text(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    run(
        flow2.Runner(
            display="plain",
            stream=io.StringIO(),
            environ={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)},
        ).run(_tree(), raises=False)
    )
    text = summary.read_text()
    assert f"`Release › {SHOWN}`" in text
    assert_not_forged(text)


def test_the_live_view_shows_a_forged_name_as_text() -> None:
    stream = io.StringIO()
    view = LiveView(stream, force_terminal=True, color=False)
    run(flow2.Runner(display="none", listeners=[view]).run(_tree(), raises=False))
    lines = view.plain_lines()
    # The row is cut to the terminal's width: its start is enough.
    assert any("✗ build\\x1b[2J\\nRelease succeeded in 0.01s\\n::error" in line for line in lines)
    assert_not_forged("\n".join(lines))
    assert "\x1b[2J" not in stream.getvalue()


def test_reports_show_a_forged_name_as_text(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    run(flow2.Runner(display="none", events=str(events)).run(_tree(), raises=False))
    for report in (flow2.html_report, flow2.junit_report, flow2.markdown_report):
        text = report(events)
        assert "\x1b" not in text and "\x07" not in text, report.__name__
        assert "build\\x1b[2J" in text, report.__name__


COLORED = "\x1b[31mred\x1b[0m \x1b]0;title\x07done"


def test_a_tasks_escape_sequences_pass_to_a_terminal_only(tmp_path: Path) -> None:
    async def colored(context: dict[str, Any]) -> None:
        print(COLORED)

    tree = flow2.SerialTaskGroup("Release", flow2.CallbackTask("paint", colored))
    plain, colors = io.StringIO(), io.StringIO()
    run(flow2.Runner(display="plain", stream=plain, color=False).run(tree))
    run(flow2.Runner(display="plain", stream=colors, color=True).run(tree))
    assert "[paint] red done\n" in plain.getvalue()
    assert "\x1b" not in plain.getvalue()
    assert COLORED in colors.getvalue()  # the user's colors, unchanged


def test_log_files_and_plain_output_of_a_shell_task_have_no_escape_sequences(
    tmp_path: Path,
) -> None:
    flow = write_flow(
        tmp_path, "plugin: shell\nname: paint\ncmd: printf '\\033[32mgreen\\033[0m\\n'\n"
    )
    store = tmp_path / "store"
    ran = cli("run", flow, "--display", "plain", "--store", store, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "[paint] green" in ran.stdout or "green" in ran.stdout
    assert "\x1b" not in ran.stdout
    logs = list(store.rglob("*.log"))
    assert logs and all(log.read_text() == "green\n" for log in logs)


@pytest.mark.parametrize(
    ("name", "shown"),
    [("a\tb", "a\\tb"), ("a\x00b", "a\\x00b"), ("a\x9bb", "a\\x9bb"), ("ok · ✓", "ok · ✓")],
)
def test_each_control_character_shows_as_an_escape(name: str, shown: str) -> None:
    stream = io.StringIO()
    tree = flow2.CallbackTask(name, _skip_reason)
    run(flow2.Runner(display="plain", stream=stream, color=False).run(tree))
    assert f"SUCCESS   {shown} (" in stream.getvalue()
    assert json.dumps(name)  # the name itself is unchanged: only its drawing is


def test_the_summary_and_the_event_file_keep_a_failed_tasks_text_without_its_colors(
    tmp_path: Path,
) -> None:
    async def colored_failure(context: dict[str, Any]) -> None:
        print(COLORED)
        raise RuntimeError("broken")

    tree = flow2.SerialTaskGroup("Release", flow2.CallbackTask("paint", colored_failure))
    stream, events = io.StringIO(), tmp_path / "events.jsonl"
    run(
        flow2.Runner(display="plain", stream=stream, color=False, events=str(events)).run(
            tree, raises=False
        )
    )
    # The summary's details of the failure (above its short list) show the tail.
    summary = stream.getvalue().partition("── Release › paint ──")[2]
    assert "│ red done" in summary
    assert "\x1b" not in stream.getvalue()
    ended = [json.loads(line) for line in events.read_text().splitlines()]
    outputs = [event["output"] for event in ended if event.get("output")]
    assert outputs == ["red done"], outputs


def test_runs_show_draws_a_recorded_forged_name_as_text(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        'plugin: serial\nname: R\ntasks:\n  - name: "evil\\u001b[2J\\nRelease succeeded"\n'
        "    plugin: shell\n    cmd: 'true'\n",
    )
    store = tmp_path / "store"
    assert cli("run", flow, "--store", store, "--display", "none", cwd=tmp_path).returncode == 0
    shown = cli("runs", "show", "last", "--store", store, cwd=tmp_path)
    assert "SUCCESS   evil\\x1b[2J\\nRelease succeeded (" in shown.stdout
    assert_not_forged(shown.stdout)


#: An error whose text, drawn as it is, would end its line with a fake verdict
#: and clear the screen.
FORGED_ERROR = "boom\n✔ 3 tasks succeeded\x1b[2J"


async def _fail_with_forged_text(context: dict[str, Any]) -> None:
    raise RuntimeError(FORGED_ERROR)


def _assert_no_forged_verdict(text: str) -> None:
    assert "\x1b" not in text
    for line in text.splitlines():
        assert not line.startswith("✔"), line


def test_an_error_text_forges_no_line() -> None:
    stream = io.StringIO()
    tree = flow2.SerialTaskGroup("Release", flow2.CallbackTask("Bad", _fail_with_forged_text))
    result = run(flow2.Runner(display="plain", stream=stream, color=False).execute(tree))
    assert result.exit_code == 1
    text = stream.getvalue()
    _assert_no_forged_verdict(text)
    lines = text.splitlines()
    # The console line and the summary's short list: the first line, and a mark for more.
    assert any(
        line.startswith("FAILED    Bad (") and line.endswith("): RuntimeError: boom …")
        for line in lines
    )
    failed = lines.index("Failed: Release › Bad")
    assert lines[failed + 1] == "  RuntimeError: boom"
    # The rest, made visible, only in the indented detail block above.
    assert lines.index("  ✔ 3 tasks succeeded\\x1b[2J") < failed


def test_an_error_text_with_control_characters_shows_them_in_a_retry_line() -> None:
    stream = io.StringIO()
    task = flow2.CallbackTask("Bad", _fail_with_forged_text, retries=1, retry_delay=0)
    run(flow2.Runner(display="plain", stream=stream, color=False).execute(task))
    text = stream.getvalue()
    _assert_no_forged_verdict(text)
    assert "RETRYING  Bad: RuntimeError: boom … (attempt 1 of 2, next in 0s)" in text


def test_the_live_view_shows_an_error_text_made_visible() -> None:
    stream = io.StringIO()
    view = LiveView(stream, force_terminal=True, color=False)

    async def visible_control(context: dict[str, Any]) -> None:
        raise RuntimeError("bell\x07 rings")

    tree = flow2.ParallelTaskGroup(
        "R",
        flow2.CallbackTask("Bad", _fail_with_forged_text),
        flow2.CallbackTask("Bell", visible_control),
    )
    run(flow2.Runner(display="none", listeners=[view]).run(tree, raises=False))
    drawn = "\n".join(view.plain_lines())
    _assert_no_forged_verdict(drawn)
    rows = view.plain_lines()
    assert any("✗ Bad" in row and row.endswith("  RuntimeError: boom …") for row in rows)
    assert any("✗ Bell" in row and row.endswith("  RuntimeError: bell\\x07 rings") for row in rows)
    assert "\x07" not in stream.getvalue() and "\x1b[2J" not in stream.getvalue()
