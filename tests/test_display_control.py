"""Choosing the display and the verbosity, in code and by environment variables."""

from __future__ import annotations

import importlib.util
import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import flow2
from flow2._listeners._console import PlainConsole
from flow2._listeners._live import LiveView
from flow2._listeners._summary import SummaryListener
from tests.conftest import run

ESCAPE = re.compile(r"\x1b")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def _nothing(context: dict[str, Any]) -> str:
    return "value"


async def _broken(context: dict[str, Any]) -> None:
    raise ValueError("bad input")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("FLOW2_DISPLAY", "FLOW2_VERBOSITY", "FLOW2_EVENTS", "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(variable, raising=False)


def _kinds(runner: flow2.Runner) -> list[type]:
    from flow2._running._assembly import RunListeners

    return [type(listener) for listener in RunListeners(runner.settings).listeners]


def test_auto_is_live_on_a_terminal_and_plain_elsewhere() -> None:
    assert LiveView in _kinds(flow2.Runner(stream=FakeTerminal()))
    kinds = _kinds(flow2.Runner(stream=io.StringIO()))
    assert PlainConsole in kinds and LiveView not in kinds and SummaryListener in kinds


def test_auto_is_plain_on_a_dumb_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    kinds = _kinds(flow2.Runner(stream=FakeTerminal()))
    assert PlainConsole in kinds and LiveView not in kinds


def test_auto_falls_back_to_plain_without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "rich" else real(name)
    )
    assert PlainConsole in _kinds(flow2.Runner(stream=FakeTerminal()))
    with pytest.raises(flow2.ConfigurationError, match=r"install flow2\[live\]"):
        _kinds(flow2.Runner(display="live"))


def test_none_prints_nothing_not_even_a_summary() -> None:
    kinds = _kinds(flow2.Runner(display="none", stream=io.StringIO()))
    assert PlainConsole not in kinds and SummaryListener not in kinds


def test_display_and_verbosity_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW2_DISPLAY", "PLAIN")
    monkeypatch.setenv("FLOW2_VERBOSITY", "Verbose")
    runner = flow2.Runner(stream=FakeTerminal())
    assert runner.settings.display is flow2.Display.PLAIN
    assert runner.settings.verbosity is flow2.Verbosity.VERBOSE
    # An argument wins over the environment.
    assert flow2.Runner(verbosity=flow2.Verbosity.QUIET).settings.verbosity is flow2.Verbosity.QUIET
    assert flow2.Runner(verbosity="quiet").settings.verbosity is flow2.Verbosity.QUIET


def test_default_verbosity_is_normal() -> None:
    assert flow2.Runner().settings.verbosity is flow2.Verbosity.NORMAL


def test_bad_values_are_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW2_VERBOSITY", "loud")
    with pytest.raises(flow2.ConfigurationError) as caught:
        flow2.Runner()
    assert str(caught.value) == (
        "environment variable FLOW2_VERBOSITY verbosity='loud' is not one of: "
        "quiet, normal, verbose"
    )
    monkeypatch.delenv("FLOW2_VERBOSITY")
    with pytest.raises(flow2.ConfigurationError, match="argument verbosity=3 is not one of"):
        flow2.Runner(verbosity=3)  # type: ignore[arg-type]
    monkeypatch.setenv("FLOW2_DISPLAY", "fancy")
    with pytest.raises(flow2.ConfigurationError, match="FLOW2_DISPLAY display='fancy'"):
        flow2.Runner()


def test_quiet_plain_prints_failures_and_a_short_summary() -> None:
    stream = io.StringIO()
    tree = flow2.SerialTaskGroup(
        "Root", flow2.CallbackTask("Fine", _nothing), flow2.CallbackTask("Broken", _broken)
    )
    run(flow2.Runner(display="plain", stream=stream, verbosity="quiet").run(tree, raises=False))
    output = stream.getvalue()
    assert "STARTING" not in output and "SUCCESS" not in output and "value" not in output
    assert "FAILED    Broken" in output and "Failed: Root › Broken" in output
    assert "Slowest" not in output


def test_verbose_plain_prints_whole_paths() -> None:
    stream = io.StringIO()
    tree = flow2.SerialTaskGroup(
        "Root", flow2.SerialTaskGroup("Inner", flow2.CallbackTask("Leaf", _nothing))
    )
    run(flow2.Runner(display="plain", stream=stream, verbosity="verbose").run(tree))
    assert "STARTING  Root › Inner › Leaf" in stream.getvalue()


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "flow.py"
    path.write_text(textwrap.dedent(body))
    return path


FLOW = """
    import asyncio
    import flow2

    async def chatty(context):
        flow2.logger.warning("careful")
        return {"answer": 42}

    async def broken(context):
        raise ValueError("bad input")

    workflow = flow2.ParallelTaskGroup(
        "Root", flow2.CallbackTask("Chatty", chatty), flow2.CallbackTask("Broken", broken)
    )
    flow2.run(workflow)
"""


def _run_piped(tmp_path: Path, **environment: str) -> str:
    env = dict(os.environ)  # clean_environ has cleared FLOW2_* and the color variables
    env.update(environment)
    completed = subprocess.run(
        [sys.executable, str(_script(tmp_path, FLOW))],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return completed.stdout


def test_plain_mode_in_a_pipe_writes_no_escape_codes(tmp_path: Path) -> None:
    output = _run_piped(tmp_path)
    assert not ESCAPE.search(output)
    assert "FAILED    Broken" in output and "[Chatty] WARNING: careful" in output
    assert "Failed: Root › Broken" in output and "  answer: 42" in output


def test_force_color_colors_a_pipe(tmp_path: Path) -> None:
    output = _run_piped(tmp_path, FORCE_COLOR="1")
    assert "\033[31;1mFAILED" in output


def test_no_color_on_a_terminal_still_draws_the_tree_without_colors(tmp_path: Path) -> None:
    import pexpect

    child = pexpect.spawn(
        sys.executable,
        [str(_script(tmp_path, FLOW))],
        env={
            **os.environ,
            "NO_COLOR": "1",
        },
        dimensions=(30, 80),
        timeout=60,
    )
    output = child.read().decode()
    child.close()
    assert "✗ Broken" in re.sub(r"\x1b\[[0-9;]*m", "", output)  # the live tree
    parameters = {
        int(number)
        for codes in re.findall(r"\x1b\[([0-9;]*)m", output)
        for number in codes.split(";")
        if number
    }
    assert parameters <= {0, 1, 2}  # bold and dim, never a color
    # Drawn in place: the cursor hidden while drawing, and shown again.
    assert 0 <= output.find("\x1b[?25l") < output.rfind("\x1b[?25h")


def test_importing_flow2_does_not_import_rich() -> None:
    code = "import sys, flow2; print('rich' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == "False"
