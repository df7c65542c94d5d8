"""Nothing printed is lost: what tasks print, counted on the screen, in the log files,
the run store and the event file, through bursts, partial lines and worker processes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import flow2
from flow2._listeners import _live
from tests.conftest import Terminal, stored_run, write_flow

BURST = 100_000

CALLBACKS = f"""
import sys

def burst(context):
    sys.stdout.write("".join(f"thread {{number}}\\n" for number in range({BURST})))

def process_burst(context):
    for start in range(0, {BURST}, 1000):
        print("".join(f"process {{number}}\\n" for number in range(start, start + 1000)), end="")

def fragment(context):
    print("first line")
    print("frag", end="")

def printer(context):
    for number in range(1000):
        print(f"out {{number}}")
        if number % 100 == 0:
            print(f"err {{number}}", file=sys.stderr)
    print("tail without newline", end="")

def long_line(context):
    print("L" * 500 + "END")
"""

#: The ``flow2`` command, as a script under the pty (its worker processes import it).
CLI = "import flow2._cli\nif __name__ == '__main__':\n    flow2._cli.main()\n"


def _flow2_arguments(tmp_path: Path, flow: Path, *extra: str) -> tuple[str, ...]:
    return (
        "run",
        str(flow),
        "--store",
        str(tmp_path / "store"),
        "--log-dir",
        str(tmp_path / "logs"),
        "--events",
        str(tmp_path / "events.jsonl"),
        *extra,
    )


def _prepare(tmp_path: Path, flow: str) -> Path:
    (tmp_path / "callbacks.py").write_text(textwrap.dedent(CALLBACKS))
    return write_flow(tmp_path, flow)


def _run_on_terminal(tmp_path: Path, flow: Path, *, feed_screen: bool = True) -> Terminal:
    terminal = Terminal(
        CLI,
        tmp_path,
        rows=24,
        columns=80,
        env={"PYTHONPATH": str(tmp_path)},
        arguments=_flow2_arguments(tmp_path, flow),
        feed_screen=feed_screen,
    )
    terminal.finish()
    return terminal


def _stored_output(tmp_path: Path, name: str) -> str | None:
    run = stored_run(tmp_path / "store")
    found = [task for task in run.tasks if task.path[-1] == name]
    assert len(found) == 1, [task.path for task in run.tasks]
    return found[0].output


def _event_output(tmp_path: Path, name: str) -> str | None:
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    ends = [
        fields
        for fields in map(json.loads, lines)
        if fields["event"] == "task" and fields["task"] == name and fields["status"] != "running"
    ]
    assert len(ends) == 1, ends
    output: str | None = ends[0]["output"]
    return output


def _log(tmp_path: Path, name: str) -> str:
    return (tmp_path / "logs" / f"{name}.log").read_text()


# -- bursts ----------------------------------------------------------------------------

BURSTS = """
    plugin: parallel
    name: Root
    tasks:
      - plugin: callback
        name: Burst
        callback: callbacks:burst
      - plugin: callback
        name: Process burst
        callback: callbacks:process_burst
        executor: process
"""


def test_a_burst_of_100000_lines_reaches_the_terminal_whole(tmp_path: Path) -> None:
    flow = _prepare(tmp_path, BURSTS)
    terminal = _run_on_terminal(tmp_path, flow, feed_screen=False)
    raw = terminal.raw
    for word, name, key in (
        (b"thread", "Burst", "burst"),
        (b"process", "Process burst", "process_burst"),
    ):
        printed = [f"{word.decode()} {number}" for number in range(BURST)]
        # The screen: every line once, prefixed with its task (colors may
        # surround the prefix), none written raw under the tree.
        prefix = rb"\[" + name.encode() + rb"\] (?:\x1b\[0m)?"
        shown = re.findall(prefix + word + rb" (\d+)\r\n", raw)
        assert [int(number) for number in shown] == list(range(BURST))
        assert len(re.findall(word + rb" \d+\r\n", raw)) == BURST
        # The log file: every line, in order.
        assert _log(tmp_path, key) == "".join(line + "\n" for line in printed)
        # The store keeps the last 200 lines, the event file the last 20.
        assert _stored_output(tmp_path, name) == "\n".join(printed[-200:])
        assert _event_output(tmp_path, name) == "\n".join(printed[-20:])
    assert b"not shown" not in raw


@pytest.mark.parametrize("with_logs", [True, False])
def test_a_terminal_taking_nothing_makes_lines_be_left_out_and_says_how_many_and_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_logs: bool
) -> None:
    # Only a terminal that takes nothing while output piles up loses lines
    # from the screen; the line saying so counts them exactly and names the
    # log file that has them.
    monkeypatch.setattr(_live, "MAX_PENDING_CHARACTERS", 2000)
    released = threading.Event()

    class StuckTerminal(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            self.writes += 1
            if self.writes > 1:  # the first write (hiding the cursor) passes
                released.wait(60)
            return super().write(text)

    async def chatty(context: dict[str, Any]) -> None:
        for start in range(0, 500, 10):  # ten lines a write
            print("".join(f"chatty line {number}\n" for number in range(start, start + 10)), end="")
        await asyncio.sleep(0.5)  # a few redraws hand the lines to the stuck writer
        released.set()

    terminal = StuckTerminal()
    log_dir = tmp_path / "logs" if with_logs else None
    runner = flow2.Runner(display="live", stream=terminal, color=False, log_dir=log_dir)
    asyncio.run(runner.run(flow2.CallbackTask("Chatty", chatty)))
    text = terminal.getvalue()
    if with_logs:
        log = tmp_path / "logs" / "chatty.log"
        assert log.read_text().count("\n") == 500
        where = rf"they are in {re.escape(str(log))} \(([\d,]+)\)"
    else:
        where = r"([\d,]+) of them are in no log file"
    found = re.search(rf"… ([\d,]+) lines not shown: [^\n]*; {where}\n", text)
    assert found is not None, text
    dropped = int(found.group(1).replace(",", ""))
    assert int(found.group(2).replace(",", "")) == dropped
    shown = [int(number) for number in re.findall(r"chatty line (\d+)\n", text)]
    assert 0 < dropped < 500 and shown == list(range(dropped, 500))


def test_a_terminal_that_keeps_up_is_never_told_it_could_not(tmp_path: Path) -> None:
    async def chatty(context: dict[str, Any]) -> None:
        print("".join(f"line {number}\n" for number in range(30_000)), end="")

    terminal = io.StringIO()
    runner = flow2.Runner(display="live", stream=terminal, color=False)
    asyncio.run(runner.run(flow2.CallbackTask("Chatty", chatty)))
    text = terminal.getvalue()
    assert "not shown" not in text
    assert re.findall(r"\[Chatty\] line (\d+)\n", text) == [str(n) for n in range(30_000)]


# -- partial lines, worker processes, long lines -----------------------------------------

PARTIALS = """
    plugin: serial
    name: Root
    tasks:
      - plugin: callback
        name: Fragment
        callback: callbacks:fragment
      - plugin: shell
        name: Shell
        cmd: printf 'no newline'
      - plugin: callback
        name: Printer
        callback: callbacks:printer
        executor: process
      - plugin: callback
        name: Long
        callback: callbacks:long_line
"""

#: What each task of PARTIALS prints, line by line.
EXPECTED = {
    "Fragment": ["first line", "frag"],
    "Shell": ["no newline"],
    "Printer": [
        *(
            line
            for number in range(1000)
            for line in [f"out {number}", *([f"err {number}"] if number % 100 == 0 else [])]
        ),
        "tail without newline",
    ],
    "Long": ["L" * 500 + "END"],
}
KEYS = {"Fragment": "fragment", "Shell": "shell", "Printer": "printer", "Long": "long"}


def _check_files(tmp_path: Path) -> None:
    for name, lines in EXPECTED.items():
        assert _log(tmp_path, KEYS[name]) == "".join(line + "\n" for line in lines), name
        assert _stored_output(tmp_path, name) == "\n".join(lines[-200:]), name
        assert _event_output(tmp_path, name) == "\n".join(lines[-20:]), name


def test_partial_long_and_process_lines_are_whole_everywhere_on_a_terminal(
    tmp_path: Path,
) -> None:
    flow = _prepare(tmp_path, PARTIALS)
    terminal = _run_on_terminal(tmp_path, flow, feed_screen=False)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.raw.decode())
    text = re.sub(r"\r(?!\n)", "\n", text)  # a redraw starts with a carriage return
    for name, lines in EXPECTED.items():
        # Each line once, whole, with its task's prefix, in order; a long
        # line is not cut (the terminal wraps it).
        shown = re.findall(rf"^\[{name}\] (.*)\r$", text, flags=re.MULTILINE)
        assert shown == lines, name
    # Nothing of the worker's was written raw, under the tree.
    assert len(re.findall(r"(?:out|err) \d+\r\n", text)) == 1010
    _check_files(tmp_path)


def test_partial_and_process_lines_are_whole_everywhere_in_plain_output_to_a_pipe(
    tmp_path: Path,
) -> None:
    flow = _prepare(tmp_path, PARTIALS)
    done = subprocess.run(
        [sys.executable, "-m", "flow2", *_flow2_arguments(tmp_path, flow, "--display", "plain")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for name, lines in EXPECTED.items():
        shown = re.findall(rf"^\[{name}\] (.*)$", done.stdout, flags=re.MULTILINE)
        assert shown == lines, name
    _check_files(tmp_path)


def test_output_piped_into_head_still_reaches_the_log_files(tmp_path: Path) -> None:
    flow = _prepare(tmp_path, BURSTS)
    command = " ".join(
        [sys.executable, "-m", "flow2", *_flow2_arguments(tmp_path, flow, "--display", "plain")]
    )
    done = subprocess.run(
        f"{command} | head -3",
        shell=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
        timeout=120,
    )
    assert len(done.stdout.splitlines()) == 3
    assert _log(tmp_path, "burst").count("\n") == BURST
    assert _log(tmp_path, "process_burst").count("\n") == BURST
