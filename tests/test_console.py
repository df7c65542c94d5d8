"""Plain console lines, colors and results."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import flow2
from flow2._listeners._console import PlainConsole
from flow2._listeners._text import format_result, wants_color
from tests.conftest import run


def give(name: str, value: object, **options: Any) -> flow2.CallbackTask:
    async def callback(context: dict[str, Any]) -> object:
        return value

    return flow2.CallbackTask(name, callback, **options)


def output_of(tree: flow2.Task, *, color: bool | None = None, raises: bool = True) -> str:
    stream = io.StringIO()
    run(flow2.Runner(display="plain", stream=stream, color=color).run(tree, raises=raises))
    return stream.getvalue()


def test_one_plain_line_per_event_without_escape_codes() -> None:
    tree = flow2.SerialTaskGroup("Deploy", give("Fetch", "v1"))
    lines = output_of(tree).splitlines()
    assert lines[0] == "STARTING  Deploy"
    assert lines[1] == "STARTING  Fetch"
    assert lines[2].startswith("SUCCESS   Fetch (") and lines[2].endswith("s)")
    assert lines[3] == "  v1"
    assert lines[4].startswith("SUCCESS   Deploy (")
    assert "\033" not in "\n".join(lines)


def test_results_are_shown_yaml_like_and_output_false_silences() -> None:
    tree = flow2.SerialTaskGroup(
        "S",
        give("Shown", {"version": "1.2", "files": ["a.whl", "b.tar.gz"], "ok": True}),
        give("Hidden", "secret-token", output=False),
        give("Nothing", None),
    )
    text = output_of(tree)
    assert "  version: 1.2\n  files:\n    - a.whl\n    - b.tar.gz\n  ok: true\n" in text
    assert "secret-token" not in text
    nothing_line = next(line for line in text.splitlines() if line.startswith("SUCCESS   Nothing"))
    following = text.splitlines()[text.splitlines().index(nothing_line) + 1]
    assert following.startswith("SUCCESS   S")


def test_failed_line_names_the_error() -> None:
    async def fail(context: dict[str, Any]) -> None:
        raise FileNotFoundError("setup.cfg")

    text = output_of(flow2.CallbackTask("Read", fail), raises=False)
    assert "FAILED    Read (" in text and "): FileNotFoundError: setup.cfg" in text


def test_skipped_and_group_failure_lines() -> None:
    async def fail(context: dict[str, Any]) -> None:
        raise ValueError

    tree = flow2.SerialTaskGroup("S", flow2.CallbackTask("Bad", fail), give("Later", 1))
    text = output_of(tree, raises=False)
    assert "FAILED    Bad (" in text and "): ValueError\n" in text
    assert "SKIPPED   Later: task 'Bad' before it failed\n" in text
    assert "FAILED    S (" in text and "): 1 task failed inside" in text


def test_forced_color_paints_the_status_words() -> None:
    text = output_of(give("Colored", 1), color=True)
    assert "\033[33mSTARTING  \033[0mColored" in text
    assert "\033[32mSUCCESS   \033[0mColored" in text


def test_long_results_are_cut() -> None:
    text = format_result(list(range(100)), max_lines=5)
    assert text.splitlines() == [
        "  - 0",
        "  - 1",
        "  - 2",
        "  - 3",
        "  - 4",
        "  … more lines not shown",
    ]
    assert format_result(list(range(5)), max_lines=5).splitlines()[-1] == "  - 4"


def test_a_huge_result_formats_only_the_lines_shown() -> None:
    class Counted:
        formatted = 0

        def __repr__(self) -> str:
            Counted.formatted += 1
            return "item"

    format_result([Counted() for _ in range(10_000)], max_lines=5)
    assert Counted.formatted <= 6


def test_result_formatting_of_odd_values() -> None:
    assert format_result("multi\nline") == "  multi\n  line"
    assert format_result({"empty": [], "blank": "", "none": None}) == (
        "  empty: []\n  blank: ''\n  none: null"
    )
    assert format_result([{"a": 1}]) == "  -\n    a: 1"
    assert format_result(3.5) == "  3.5"
    assert format_result(object).startswith("  <class")


def test_color_decision_follows_no_color_and_force_color(monkeypatch: pytest.MonkeyPatch) -> None:
    assert wants_color(io.StringIO()) is False
    assert flow2.Runner().settings.color is None  # the stream decides
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert flow2.Runner().settings.color is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert flow2.Runner().settings.color is False
    assert flow2.Runner(environ={"TERM": "dumb"}).settings.color is False
    assert flow2.Runner(color=True, environ={"NO_COLOR": "1"}).settings.color is True


def test_color_on_a_real_terminal_and_not_with_no_color() -> None:
    script = textwrap.dedent(
        """
        import asyncio, flow2
        async def work(context):
            return "done"
        asyncio.run(flow2.Runner(display="plain").run(flow2.CallbackTask("T", work)))
        """
    )
    for no_color, expect_escape in (("", True), ("1", False)):
        controller, terminal = pty.openpty()
        environment = {**os.environ, "NO_COLOR": no_color}
        environment.pop("FORCE_COLOR", None)
        process = subprocess.run(
            [sys.executable, "-c", script],
            stdout=terminal,
            stderr=subprocess.PIPE,
            env=environment,
            timeout=60,
            check=True,
        )
        os.close(terminal)
        output = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        os.close(controller)
        assert process.returncode == 0
        assert b"SUCCESS" in output
        assert (b"\033[" in output) is expect_escape, output


def test_display_none_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    run(flow2.Runner(display="none").run(give("Quiet", "x")))
    assert capsys.readouterr().out == ""


def test_display_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOW2_DISPLAY", "none")
    run(give("Quiet", "x").process())
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("FLOW2_DISPLAY", "sparkles")
    with pytest.raises(flow2.ConfigurationError, match="FLOW2_DISPLAY display='sparkles'.*plain"):
        flow2.Runner()
    with pytest.raises(flow2.ConfigurationError, match="argument display='x'"):
        flow2.Runner(display="x")


def test_default_run_prints_to_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOW2_DISPLAY", "plain")
    run(give("Loud", "x").process())
    assert "SUCCESS   Loud" in capsys.readouterr().out


def test_console_flushes_outside_an_event_loop() -> None:
    # A text stream over a buffer keeps what it is given until flushed.
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    PlainConsole(stream).write("line\n")
    assert raw.getvalue() == b"line\n"
