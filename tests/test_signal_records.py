"""Whatever signals arrive, the screen, the summary, the event file and the store agree.

``flow2 run`` runs under a pseudo-terminal with the live view, as a person
sees it; real signals arrive at moments the flow itself marks (files its
commands and callbacks write), never after a sleep racing the machine. Then
the final screen, the event file, the run store and ``ps`` are compared.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import flow2
from flow2 import Status

from .conftest import Recorder, Terminal, run, stored_run, write_flow
from .test_signals import leftovers, wait_for_no_leftovers

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pseudo-terminals"),
    pytest.mark.usefixtures("python_first_on_path"),
]

#: What the pseudo-terminal runs: the command line, as ``flow2`` would.
COMMAND_LINE = """
import sys
from flow2._cli import main

sys.argv[0] = "flow2"
main()
"""

WORK = """
import os, time

def blocked(context):
    open("ready-thread", "w").close()
    time.sleep(600)  # a thread cannot be stopped: it is left behind

def quick(context):
    return 1
"""

#: The live view's spinner: no finished run keeps one.
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
#: The final statuses a task may have in a finished run.
FINAL = {"succeeded", "failed", "skipped", "cancelled", "reused", "partial"}


def eight_tasks(folder: Path, marker: str, *, stubborn: bool = True) -> Path:
    """Six leaves: a command, one that ignores SIGTERM, a thread, a quick one, a serial pair."""
    (folder / "work.py").write_text(WORK)
    second = (
        f"""cmd: "trap '' TERM; touch ready-stubborn; sleep {marker}" """
        if stubborn
        else f'cmd: "touch ready-stubborn; sleep {marker}"'
    )
    return write_flow(
        folder,
        f"""
        plugin: parallel
        name: Eight
        tasks:
          - {{plugin: shell, name: Silent, cmd: "touch ready-silent; sleep {marker}"}}
          - plugin: shell
            name: Stubborn
            {second}
          - {{plugin: callback, name: Blocked, callback: "work:blocked"}}
          - {{plugin: callback, name: Quick, callback: "work:quick"}}
          - plugin: serial
            name: Later
            tasks:
              - {{plugin: shell, name: First, cmd: "touch ready-first; sleep {marker}"}}
              - {{plugin: shell, name: Never, cmd: "echo never"}}
        """,
    )


def start(folder: Path, *, grace: float) -> Terminal:
    return Terminal(
        COMMAND_LINE,
        folder,
        cwd=folder,
        env={"PYTHONPATH": str(folder)},
        arguments=(
            "run",
            "flow.yml",
            "--grace",
            str(grace),
            "--events",
            "events.jsonl",
            "--store",
            str(folder / "store"),
        ),
    )


def wait_for(terminal: Terminal, condition: object) -> None:
    """Read the terminal (so the view never blocks on it) until ``condition()`` holds."""
    terminal.read_until(lambda lines: condition())  # type: ignore[operator]


def events_of(folder: Path) -> list[dict[str, object]]:
    path = folder / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def is_handled(folder: Path) -> bool:
    """The first signal was handled: a task was reported cancelled."""
    return any(event.get("status") == "cancelled" for event in events_of(folder))


def check_the_record_agrees(folder: Path, terminal: Terminal, lines: list[str]) -> None:
    """Screen, summary, event file and store say the same, and every task ended."""
    screen = "\n".join(lines)
    raw = terminal.raw.decode(errors="replace")
    assert "Traceback" not in raw and "Exception ignored" not in raw, raw[-3000:]
    # The cursor is shown again after the last time the view hid it.
    assert raw.rfind("\x1b[?25h") > raw.rfind("\x1b[?25l")
    assert not set(SPINNER) & set(screen), screen
    verdict = re.search(
        r"Eight was cancelled in [\d.]+s: (\d+) succeeded, (\d+) failed, (\d+) skipped, "
        r"(\d+) cancelled",
        screen,
    )
    assert verdict is not None, screen
    counts = [int(number) for number in verdict.groups()]
    assert counts == [1, 0, 0, 5], screen  # all six leaves counted
    assert "6/6 tasks" in screen
    # The event file: the run's end is its last line, every task ended before.
    events = events_of(folder)
    assert events[-1]["event"] == "run" and events[-1]["status"] == "cancelled"
    ends = [index for index, event in enumerate(events) if event["event"] == "run"]
    assert len(ends) == 2 and ends[-1] == len(events) - 1
    last: dict[tuple[str, ...], object] = {}
    for event in events:
        if event["event"] == "task":
            last[tuple(event["path"])] = event["status"]  # type: ignore[arg-type]
    assert len(last) == 8 and set(last.values()) <= FINAL, last
    leaves = [status for path, status in last.items() if path[-1] not in ("Eight", "Later")]
    assert sorted(leaves) == ["cancelled"] * 5 + ["succeeded"]
    # The store: the same run, finished, no task left running.
    stored = stored_run(folder / "store")
    assert stored.status == "cancelled" and stored.ended_at is not None
    assert {task.path: task.status for task in stored.tasks} == last
    assert stored.counts["succeeded"] == 1 and stored.counts["cancelled"] == 5


def kill_message(lines: list[str]) -> tuple[float, str]:
    """The seconds and the cause the kill message gives."""
    text = "".join(lines)  # the message wraps at 80 columns
    found = re.search(r"killed what still ran (\d+\.\d)s after the signal \((.*?)\)", text)
    assert found is not None, "\n".join(lines)
    return float(found[1]), found[2]


def test_one_signal_waits_the_grace_period_and_says_how_long(tmp_path: Path) -> None:
    marker = f"{os.getpid() % 1000 + 100}.61"
    eight_tasks(tmp_path, marker)
    terminal = start(tmp_path, grace=2)
    wait_for(terminal, lambda: len(list(tmp_path.glob("ready-*"))) == 4)
    terminal.child.kill(signal.SIGINT)
    lines = terminal.finish(check=False)
    assert terminal.child.exitstatus == 130
    check_the_record_agrees(tmp_path, terminal, lines)
    seconds, cause = kill_message(lines)
    assert seconds >= 2.0 and cause == "the grace period ended"
    assert wait_for_no_leftovers(marker) == []


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (signal.SIGINT, signal.SIGINT),
        (signal.SIGTERM, signal.SIGTERM),
        (signal.SIGHUP, signal.SIGINT),
    ],
    ids=["two-ctrl-c", "two-sigterm", "sighup-then-ctrl-c"],
)
def test_a_second_signal_during_the_grace_wait_leaves_a_true_record(
    tmp_path: Path, first: int, second: int
) -> None:
    marker = f"{os.getpid() % 1000 + 100}.{first}{second}3"
    eight_tasks(tmp_path, marker)
    terminal = start(tmp_path, grace=600)
    wait_for(terminal, lambda: len(list(tmp_path.glob("ready-*"))) == 4)
    terminal.child.kill(first)
    # The stubborn command keeps the run in its 600 s grace wait.
    wait_for(terminal, lambda: is_handled(tmp_path))
    terminal.child.kill(second)
    lines = terminal.finish(check=False)
    assert terminal.child.exitstatus == 128 + first
    check_the_record_agrees(tmp_path, terminal, lines)
    # Killed at once, and said so: not "600s after the signal".
    seconds, cause = kill_message(lines)
    assert seconds < 600 and cause == f"{signal.Signals(second).name}, a second signal"
    # No more waiting for the thread left behind either.
    assert "without waiting (a signal)" in "".join(lines)
    assert wait_for_no_leftovers(marker) == []


def test_three_signals_leave_a_true_record(tmp_path: Path) -> None:
    marker = f"{os.getpid() % 1000 + 100}.67"
    eight_tasks(tmp_path, marker)
    terminal = start(tmp_path, grace=600)
    wait_for(terminal, lambda: len(list(tmp_path.glob("ready-*"))) == 4)
    # Three different signals (one sent twice could merge), one after the other.
    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        terminal.child.kill(number)
    lines = terminal.finish(check=False)
    # Signals pending together may be taken in any order: the exit code is
    # that of the one taken first, which the last line names.
    first = re.search(r"interrupted by (SIG[A-Z]+)", "".join(lines))
    assert first is not None, lines
    assert terminal.child.exitstatus == 128 + signal.Signals[first[1]]
    check_the_record_agrees(tmp_path, terminal, lines)
    assert "exiting at once" not in "".join(lines)  # the run ended, whole, in time
    assert wait_for_no_leftovers(marker) == []


def cleaning_flow(folder: Path, marker: str) -> Path:
    """A group whose finally: runs until killed, a second cleanup after it, an outer one."""
    return write_flow(
        folder,
        f"""
        plugin: serial
        name: Deploy
        tasks:
          - plugin: serial
            name: Stack
            tasks:
              - {{plugin: shell, name: Serve, cmd: "touch ready-serve; sleep {marker}"}}
            finally:
              - plugin: shell
                name: Tear down
                cmd: "touch ready-cleaning; sleep {marker}"
              - {{plugin: shell, name: Never, cmd: "touch never"}}
        finally:
          - {{plugin: shell, name: Outer, cmd: "touch outer"}}
        """,
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGTERM)],
    ids=["two-ctrl-c", "two-sigterm"],
)
def test_a_cleanup_killed_by_a_second_signal_is_cancelled(
    tmp_path: Path, first: int, second: int
) -> None:
    marker = f"{os.getpid() % 1000 + 100}.{first}{second}9"
    cleaning_flow(tmp_path, marker)
    terminal = start(tmp_path, grace=600)
    wait_for(terminal, lambda: (tmp_path / "ready-serve").exists())
    terminal.child.kill(first)
    # The cleanup started after the first signal; the second one kills its command.
    wait_for(terminal, lambda: (tmp_path / "ready-cleaning").exists())
    terminal.child.kill(second)
    lines = terminal.finish(check=False)
    assert terminal.child.exitstatus == 128 + first
    screen = "\n".join(lines)
    raw = terminal.raw.decode(errors="replace")
    assert "Traceback" not in raw, raw[-3000:]
    # Stopped by the person, as every other task: cancelled, not failed by the kill.
    assert "FAILED" not in raw and "killed by SIGKILL" not in raw, raw[-3000:]
    assert "0 succeeded, 0 failed, 0 skipped, 4 cancelled" in screen, screen
    _, cause = kill_message(lines)
    assert cause == f"{signal.Signals(second).name}, a second signal"
    # Nothing starts after the second signal: neither the next cleanup nor the outer one.
    assert not (tmp_path / "never").exists() and not (tmp_path / "outer").exists()
    last: dict[str, object] = {}
    for event in events_of(tmp_path):
        if event["event"] == "task":
            last["/".join(event["path"])] = event["status"]  # type: ignore[arg-type]
    assert last == {
        "Deploy": "cancelled",
        "Deploy/Stack": "cancelled",
        "Deploy/Stack/Serve": "cancelled",
        "Deploy/Stack/Tear down": "cancelled",
        "Deploy/Stack/Never": "cancelled",
        "Deploy/Outer": "cancelled",
    }
    stored = stored_run(tmp_path / "store")
    assert stored.status == "cancelled"
    assert {"/".join(task.path): task.status for task in stored.tasks} == last
    assert stored.counts["cancelled"] == 4 and stored.counts["failed"] == 0
    assert wait_for_no_leftovers(marker) == []


def test_a_signal_during_the_wait_for_a_stopped_thread_ends_it_quietly(tmp_path: Path) -> None:
    marker = f"{os.getpid() % 1000 + 100}.71"
    eight_tasks(tmp_path, marker, stubborn=False)
    terminal = start(tmp_path, grace=600)
    wait_for(terminal, lambda: len(list(tmp_path.glob("ready-*"))) == 4)
    terminal.child.kill(signal.SIGTERM)
    # The run ends at once; the process then waits for the thread left
    # behind (600 s of grace) until a signal says not to.
    terminal.read_until(lambda lines: any("interrupted by SIGTERM" in line for line in lines))
    assert terminal.child.isalive()
    terminal.child.kill(signal.SIGINT)
    lines = terminal.finish(check=False)
    assert terminal.child.exitstatus == 143  # the run's outcome: the first signal
    check_the_record_agrees(tmp_path, terminal, lines)
    text = "".join(lines)
    assert "exiting without 1 worker thread" in text and "without waiting (a signal)" in text
    assert wait_for_no_leftovers(marker) == []


class Shell:
    """An interactive bash under a pseudo-terminal, with job control: Ctrl-Z and ``fg`` work."""

    def __init__(self, folder: Path) -> None:
        import pexpect
        import pyte

        self.screen = pyte.Screen(80, 24)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = b""
        environment = dict(os.environ, TERM="xterm-256color", PS1="$ ", PYTHONPATH=str(folder))
        environment.pop("NO_COLOR", None)
        self.child = pexpect.spawn(
            "bash",
            ["--norc", "--noprofile", "-i"],
            env=environment,
            cwd=str(folder),
            dimensions=(24, 80),
            echo=False,
            timeout=60,
        )

    def read_until(self, predicate: object, timeout: float = 60) -> None:
        import pexpect

        deadline = time.monotonic() + timeout
        while not predicate():  # type: ignore[operator]
            assert time.monotonic() < deadline, "\n".join(self.lines())
            try:
                chunk = self.child.read_nonblocking(65536, timeout=0.5)
            except pexpect.TIMEOUT:
                continue
            self.raw += chunk
            self.stream.feed(chunk)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def shows(self, text: str) -> bool:
        return any(text in line for line in self.lines())

    def cursor_shown(self) -> bool:
        return self.raw.rfind(b"\x1b[?25h") > self.raw.rfind(b"\x1b[?25l")


def test_ctrl_z_restores_the_terminal_and_fg_redraws_the_tree(tmp_path: Path) -> None:
    write_flow(
        tmp_path,
        """
        plugin: parallel
        name: Pausable
        tasks:
          - plugin: shell
            name: Waiting
            cmd: "touch ready; while [ ! -e go ]; do sleep 0.05; done"
        """,
    )
    shell = Shell(tmp_path)
    try:
        shell.child.sendline(f"{sys.executable} -m flow2 run flow.yml --no-store")
        shell.read_until(lambda: (tmp_path / "ready").exists() and shell.shows("Waiting"))
        assert not shell.cursor_shown()  # the view hides it while drawing
        shell.child.send("\x1a")  # Ctrl-Z: SIGTSTP to the foreground job
        shell.read_until(lambda: shell.shows("Stopped"))
        # Before stopping, the view gave the terminal back: the cursor shown,
        # the tree erased, the shell's prompt on a clean screen.
        assert shell.cursor_shown()
        assert not shell.shows("Waiting"), shell.lines()
        drawn = len(shell.raw)
        shell.child.sendline("fg")  # SIGCONT
        shell.read_until(lambda: shell.shows("Waiting") and len(shell.raw) > drawn)
        assert b"\x1b[?25l" in shell.raw[drawn:]  # drawing again, cursor hidden
        (tmp_path / "go").touch()
        shell.read_until(lambda: shell.shows("Pausable succeeded"))
        shell.child.sendline("echo exit=$?")
        shell.read_until(lambda: shell.shows("exit="))
        assert shell.shows("exit=0"), shell.lines()
        assert shell.cursor_shown()
        assert b"Traceback" not in shell.raw
    finally:
        shell.child.sendline("exit")
        shell.child.close(force=True)


def test_leftovers_helper_sees_a_running_command(tmp_path: Path) -> None:
    # The check for leftovers above proves something only if it finds one.
    marker = f"{os.getpid() % 1000 + 100}.73"
    import subprocess

    process = subprocess.Popen(["sleep", marker])
    try:
        assert leftovers(marker) != []
    finally:
        process.kill()
        process.wait()


# In one process: the moments a pseudo-terminal cannot pin ---------------------------


class SignalAt:
    """An event listener sending a real signal to this process at the run's start or end."""

    def __init__(self, number: int, *, at_end: bool) -> None:
        self.number = number
        self.at_end = at_end

    def __call__(self, event: flow2.Event) -> None:
        if (
            isinstance(event, flow2.RunEvent)
            and (event.status is not Status.RUNNING) is self.at_end
        ):
            os.kill(os.getpid(), self.number)


class SlowStart:
    """An executor whose start takes a few turns of the loop (a cluster connecting, say)."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()

    async def start(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    async def call(
        self, task: flow2.Task, function: Callable[[Any], Any], context: dict[str, Any]
    ) -> Any:
        return function(context)

    async def aclose(self) -> None:
        self.closing.set()
        for _ in range(5):
            await asyncio.sleep(0)


def three_leaves() -> flow2.Task:
    return flow2.ParallelTaskGroup(
        "Three",
        flow2.CallbackTask("One", lambda context: 1),
        flow2.SerialTaskGroup(
            "Pair",
            flow2.CallbackTask("Two", lambda context: 2),
            flow2.CallbackTask("Three", lambda context: 3),
        ),
    )


def test_a_signal_before_the_first_task_cancels_every_task(recorder: Recorder) -> None:
    # SIGTERM as the run starts: its executor is still starting, no task has.
    result = flow2.run(
        three_leaves(),
        display="none",
        executor=SlowStart(),
        listeners=[recorder, SignalAt(signal.SIGTERM, at_end=False)],
        handle_signals=True,
    )
    assert result.signal is signal.SIGTERM and result.exit_code == 143
    assert result.counts.cancelled == 3 and result.status is Status.CANCELLED
    tasks = [event for event in recorder.events if isinstance(event, flow2.TaskEvent)]
    assert len(tasks) == 5 and all(event.status is Status.CANCELLED for event in tasks)
    assert isinstance(recorder.events[-1], flow2.RunEvent)


def test_a_signal_while_the_summary_prints_changes_nothing(
    recorder: Recorder, tmp_path: Path
) -> None:
    # SIGINT as the run's end is handed to the listeners (the summary
    # printing): every task has reported; the outcome and the record stay.
    store = tmp_path / "store"
    stream = io.StringIO()
    result = flow2.run(
        three_leaves(),
        display="plain",
        stream=stream,
        store=str(store),
        listeners=[recorder, SignalAt(signal.SIGINT, at_end=True)],
        handle_signals=True,
    )
    assert result.signal is None and result.exit_code == 0, result
    assert result.status is Status.SUCCEEDED and result.counts.succeeded == 3
    assert "Three succeeded in" in stream.getvalue()
    stored = stored_run(store)
    assert stored.status == "succeeded" and {task.status for task in stored.tasks} == {"succeeded"}


def test_cancelled_while_closing_still_ends_the_run(recorder: Recorder) -> None:
    executor = SlowStart()

    async def main() -> None:
        runner = flow2.Runner(display="none", executor=executor, listeners=[recorder])
        running = asyncio.create_task(runner.execute(three_leaves()))
        await executor.closing.wait()  # every task has ended; the run closes
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    run(main())
    end = recorder.events[-1]
    assert isinstance(end, flow2.RunEvent) and end.status is Status.SUCCEEDED


def test_ctrl_c_in_a_loop_run_until_complete_ends_the_run_whole(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As IPython and a notebook's kernel run a cell: the loop is theirs,
    # and Python's own handler would raise KeyboardInterrupt wherever the
    # main thread is when Ctrl-C comes.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as IPython has it
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    release = threading.Event()

    async def waits(context: dict[str, Any]) -> None:
        # Ctrl-C while the loop waits in select(), not inside a task's code.
        asyncio.get_running_loop().call_soon(signal.raise_signal, signal.SIGINT)
        await asyncio.Event().wait()

    def blocks(context: dict[str, Any]) -> None:
        release.wait(60)

    async def forever(context: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    tree = flow2.ParallelTaskGroup(
        "Cell",
        flow2.CallbackTask("Waits", waits),
        flow2.CallbackTask("Blocks", blocks),
        flow2.SerialTaskGroup(
            "Then",
            flow2.CallbackTask("Forever", forever),
            flow2.CallbackTask("Never", lambda context: 1),
        ),
    )
    stream = io.StringIO()
    runner = flow2.Runner(display="plain", stream=stream, listeners=[recorder])
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    try:
        running = loop.create_task(runner.execute(tree))
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(running)
        # Nothing of the run is left to wake up in the next cell.
        assert asyncio.all_tasks(loop) == set()
        seen = len(recorder.events)
        loop.run_until_complete(asyncio.sleep(0))
        assert len(recorder.events) == seen
    finally:
        release.set()
        loop.close()
        given_back = signal.signal(signal.SIGINT, previous)
    assert given_back is signal.default_int_handler  # flow2's handler is gone
    end = recorder.events[-1]
    assert isinstance(end, flow2.RunEvent) and end.status is Status.CANCELLED
    finals = {
        event.task.name: event.status
        for event in recorder.events
        if isinstance(event, flow2.TaskEvent)
    }
    assert set(finals) == {"Cell", "Waits", "Blocks", "Then", "Forever", "Never"}
    assert set(finals.values()) == {Status.CANCELLED}
    assert "Cell was cancelled in" in stream.getvalue()  # the summary


SLOW_IMPORT = """
import os, time

open("ready-import", "w").close()
while not os.path.exists("go"):  # another process decides when the import ends
    time.sleep(0.05)

def work(context):
    return 1
"""


def test_sigterm_while_the_flow_loads_exits_143_quietly(tmp_path: Path) -> None:
    (tmp_path / "slow_import.py").write_text(SLOW_IMPORT)
    write_flow(tmp_path, "plugin: callback\nname: Loaded\ncallback: slow_import:work\n")
    terminal = start(tmp_path, grace=5)
    wait_for(terminal, lambda: (tmp_path / "ready-import").exists())
    terminal.child.kill(signal.SIGTERM)
    terminal.finish(check=False)
    assert terminal.child.exitstatus == 143 and terminal.child.signalstatus is None
    assert b"Traceback" not in terminal.raw
    assert not (tmp_path / "events.jsonl").exists()  # nothing ran
