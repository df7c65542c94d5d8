"""What tasks print, and what a run shows of it: on real pseudo-terminals, in files, in CI."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import flow2
from flow2._listeners import _console
from flow2._listeners._live import LiveView
from tests.conftest import Recorder, Terminal, run, write_flow

ESCAPE = re.compile(r"\x1b\[")


def _has(lines: list[str], *fragments: str) -> bool:
    return any(all(fragment in line for fragment in fragments) for line in lines)


def _elapsed(lines: list[str], name: str) -> float | None:
    for line in lines:
        found = re.search(rf"{name} (\d+\.\d)s", line)
        if found:
            return float(found.group(1))
    return None


# -- the live tree keeps up while a task prints ------------------------------------

STREAMING = """
    import asyncio, sys, threading
    import flow2

    async def stream(context):
        number = 0
        while not stop.is_set():
            number += 1
            print(f"line {number}")
            await asyncio.sleep(0.002)

    async def silent(context):
        await stop.wait()

    async def main():
        global stop
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=lambda: (sys.stdin.readline(), loop.call_soon_threadsafe(stop.set)),
            daemon=True,
        ).start()
        work = flow2.ParallelTaskGroup(
            "Work", flow2.CallbackTask("Stream", stream), flow2.CallbackTask("Silent", silent)
        )
        await flow2.Runner().run(work)

    asyncio.run(main())
"""


@pytest.mark.parametrize("columns", [80, 200])
def test_a_silent_task_shows_its_elapsed_time_growing_while_another_prints(
    tmp_path: Path, columns: int
) -> None:
    terminal = Terminal(STREAMING, tmp_path, columns=columns)
    screen = terminal.read_until(lambda lines: (_elapsed(lines, "Silent") or 0) >= 1.0)
    first = _elapsed(screen, "Silent")
    assert first is not None
    assert _has(screen, "[Stream] line")  # the printed lines, above the tree
    screen = terminal.read_until(lambda lines: (_elapsed(lines, "Silent") or 0) >= first + 0.5)
    assert _has(screen, "[Stream] line")
    assert _has(screen, "Work", "0/2 tasks")
    assert all(len(line) <= columns for line in screen)
    terminal.child.sendline("stop")
    final = terminal.finish()
    assert _has(final, "✓ Work", "2/2 tasks")
    assert _has(final, "Work succeeded in")


RESIZING = """
    import asyncio, sys, threading
    import flow2

    async def wait(context):
        await stop.wait()

    async def main():
        global stop
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=lambda: (sys.stdin.readline(), loop.call_soon_threadsafe(stop.set)),
            daemon=True,
        ).start()
        lanes = [
            flow2.ParallelTaskGroup(
                f"Lane {lane}",
                *[flow2.CallbackTask(f"Task {lane}-{item}", wait) for item in range(8)],
            )
            for lane in range(3)
        ]
        await flow2.Runner().run(flow2.ParallelTaskGroup("Big", *lanes))

    asyncio.run(main())
"""


def test_the_layout_follows_the_terminal_when_it_is_resized(tmp_path: Path) -> None:
    terminal = Terminal(RESIZING, tmp_path, columns=200, rows=50)
    terminal.read_until(lambda lines: _has(lines, "Task 2-7") and _has(lines, "Task 0-0"))
    terminal.resize(12, 80)
    # Too small for 28 tasks: what does not fit is counted, nothing overflows.
    screen = terminal.read_until(lambda lines: _has(lines, "more running"))
    assert _has(screen, "Big", "0/24 tasks")
    assert all(len(line) <= 80 for line in screen)
    terminal.resize(50, 200)
    terminal.read_until(lambda lines: _has(lines, "Task 2-7") and not _has(lines, "more running"))
    terminal.child.sendline("stop")
    final = terminal.finish()
    assert _has(final, "✓ Big", "24/24 tasks")


# -- what the screen shows, in process -----------------------------------------------


def test_wide_characters_are_measured_in_cells_and_times_stay_visible() -> None:
    seen: list[str] = []

    async def look(context: dict[str, Any]) -> None:
        seen.extend(view.plain_lines(width=40))

    name = "ビルド" * 12 + " 🚀"
    view = LiveView(io.StringIO(), force_terminal=True, color=False)
    tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask(name, look))
    run(flow2.Runner(display="none", listeners=[view]).run(tree))
    from rich.cells import cell_len

    line = next(line for line in seen if "ビルド" in line)
    assert cell_len(line) <= 39
    assert "…" in line and re.search(r"\d\.\ds$", line)  # the elapsed time survives


def test_a_multi_line_error_keeps_the_tree_one_line_per_task() -> None:
    async def fail(context: dict[str, Any]) -> None:
        raise ValueError("first line\nsecond line\nthird line")

    view = LiveView(io.StringIO(), force_terminal=True, color=False)
    tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Bad", fail))
    run(flow2.Runner(display="none", listeners=[view]).run(tree, raises=False))
    lines = view.plain_lines()
    assert len(lines) == 2
    assert "ValueError: first line …" in lines[1]
    assert not any("second line" in line for line in lines)


def test_group_counts_tell_succeeded_failed_skipped_and_cancelled_apart() -> None:
    async def fine(context: dict[str, Any]) -> None:
        return None

    async def fail(context: dict[str, Any]) -> None:
        raise OSError("disk full")

    async def hang(context: dict[str, Any]) -> None:
        await asyncio.sleep(30)

    lane = flow2.SerialTaskGroup(
        "Lane",
        flow2.CallbackTask("One", fine),
        flow2.CallbackTask("Two", fail),
        *[flow2.CallbackTask(f"Later {n}", fine) for n in range(3)],
    )
    stopped = flow2.ParallelTaskGroup(
        "Stopped",
        flow2.CallbackTask("Hang 1", hang),
        flow2.CallbackTask("Hang 2", hang),
        timeout=0.05,
    )
    view = LiveView(io.StringIO(), force_terminal=True, color=False)
    tree = flow2.ParallelTaskGroup("Root", lane, stopped)
    run(flow2.Runner(display="none", listeners=[view]).run(tree, raises=False))
    lines = view.plain_lines()
    lane_line = next(line for line in lines if " Lane " in line)
    assert "2/5 1 failed 3 skipped" in lane_line
    stopped_line = next(line for line in lines if " Stopped " in line)
    assert "0/2 2 cancelled" in stopped_line and "2/2" not in stopped_line
    assert "7/7 tasks 1 failed 3 skipped 2 cancelled" in lines[0]


# -- every line attributed -----------------------------------------------------------


def test_prints_are_attributed_in_threads_too_and_same_names_by_path() -> None:
    release = asyncio.Event()

    def in_a_thread(context: dict[str, Any]) -> None:
        print("from a worker thread")
        sys.stderr.write("to stderr\n")

    async def partial(context: dict[str, Any]) -> None:
        print("begun", end="")
        await release.wait()
        print(" and ended")

    async def chatty(context: dict[str, Any]) -> None:
        for number in range(5):
            print(f"chat {number}")
            await asyncio.sleep(0)
        release.set()

    tree = flow2.ParallelTaskGroup(
        "Root",
        flow2.SerialTaskGroup("A", flow2.CallbackTask("Same", in_a_thread, register="a")),
        flow2.SerialTaskGroup("B", flow2.CallbackTask("Same", in_a_thread, register="b")),
        flow2.CallbackTask("Partial", partial),
        flow2.CallbackTask("Chatty", chatty),
    )
    stream = io.StringIO()
    run(flow2.Runner(display="plain", stream=stream).run(tree))
    lines = stream.getvalue().splitlines()
    assert "[Root › A › Same] from a worker thread" in lines
    assert "[Root › B › Same] to stderr" in lines
    assert "[Partial] begun and ended" in lines  # never torn by Chatty's lines
    assert "[Chatty] chat 4" in lines


def test_progress_lines_show_their_last_state_not_every_step(tmp_path: Path) -> None:
    script = "import sys\nfor n in range(1000): sys.stdout.write(f'\\r{n}%')\nprint()\n"
    tree = flow2.SerialTaskGroup("Root", flow2.ShellTask("Bar", [sys.executable, "-c", script]))
    stream = io.StringIO()
    run(flow2.Runner(display="plain", stream=stream).run(tree))
    bar_lines = [line for line in stream.getvalue().splitlines() if line.startswith("[Bar]")]
    assert bar_lines == ["[Bar] 999%"]


# -- failures you can act on ----------------------------------------------------------

INTERLEAVED = (
    "import sys, time\n"
    "for n in range(3):\n"
    "    print(f'out {n}', flush=True); time.sleep(0.2)\n"
    "    print(f'err {n}', file=sys.stderr, flush=True); time.sleep(0.2)\n"
    "sys.exit(2)\n"
)


@pytest.mark.parametrize("verbosity", ["quiet", "normal", "verbose"])
def test_a_failed_task_s_last_lines_are_in_the_summary_in_order(verbosity: str) -> None:
    tree = flow2.SerialTaskGroup(
        "Release", flow2.ShellTask("Check", [sys.executable, "-c", INTERLEAVED])
    )
    stream = io.StringIO()
    run(flow2.Runner(display="plain", stream=stream, verbosity=verbosity).run(tree, raises=False))
    summary = stream.getvalue().rpartition("\n\n")[2]
    tail = [line for line in summary.splitlines() if line.startswith("  │ ")]
    # (Verbose runs also keep the task's DEBUG record, "running: …", before them.)
    assert tail[-6:] == [f"  │ {kind} {n}" for n in range(3) for kind in ("out", "err")]
    assert summary.splitlines()[-1].startswith("Release failed in ")


def test_failures_in_tree_order_and_the_same_error_grouped_with_every_task() -> None:
    async def slow_fail(context: dict[str, Any]) -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("first in the tree, last to fail")

    async def same(context: dict[str, Any]) -> None:
        raise ConnectionError("registry unreachable")

    tree = flow2.ParallelTaskGroup(
        "Release",
        flow2.CallbackTask("Early", slow_fail),
        *[flow2.CallbackTask(f"Push {n}", same) for n in range(3)],
    )
    stream = io.StringIO()
    run(flow2.Runner(display="plain", stream=stream).run(tree, raises=False))
    summary = stream.getvalue().rpartition("\n\n")[2]
    assert summary.index("Failed: Release › Early") < summary.index("the same error in 3 tasks")
    assert "Failed: the same error in 3 tasks: ConnectionError: registry unreachable" in summary
    for number in range(3):
        assert f"  - Release › Push {number}" in summary
    assert "flow2 log" not in summary


def test_a_library_run_writes_no_log_file_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tree = flow2.SerialTaskGroup(
        "Root", flow2.ShellTask("Echo", [sys.executable, "-c", "print('hello'); exit(1)"])
    )
    stream = io.StringIO()
    run(flow2.Runner(display="plain", stream=stream).run(tree, raises=False))
    assert list(tmp_path.iterdir()) == []
    assert "Logs:" not in stream.getvalue()
    stream = io.StringIO()
    runner = flow2.Runner(display="plain", stream=stream, log_dir="logs/{run_id}")
    run(runner.run(tree, raises=False))
    (run_folder,) = (tmp_path / "logs").iterdir()
    log = run_folder / "echo.log"
    assert log.read_text().startswith("hello\nFAILED: CommandError")
    assert f"Log: {os.path.relpath(log)}" in stream.getvalue()


def test_flow2_run_writes_each_task_s_log_under_flow2_runs(
    tmp_path: Path, python_first_on_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOW2_STORE")  # the default: .flow2 in the working directory
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        name: Release
        tasks:
          - {plugin: shell, name: Build, cmd: "python -c \\"print('compiled'); exit(3)\\""}
        """,
    )
    completed = subprocess.run(
        [sys.executable, "-m", "flow2", "run", str(path), "--display", "plain"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert completed.returncode == 1, completed.stderr
    (log,) = (tmp_path / ".flow2" / "runs").glob("*/logs/build.log")
    assert log.read_text().startswith("compiled\n")
    logs = os.path.join(".flow2", "runs", log.parent.parent.name, "logs")
    assert f"Logs: {logs}{os.sep}" in completed.stdout
    assert completed.stdout.splitlines()[-1].startswith("Release failed in")


def test_the_event_file_carries_each_task_s_output(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    tree = flow2.SerialTaskGroup(
        "Root", flow2.ShellTask("Echo", [sys.executable, "-c", "print('one'); print('two')"])
    )
    run(flow2.Runner(display="plain", stream=io.StringIO(), events=events).run(tree))
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    done = next(
        line for line in lines if line.get("task") == "Echo" and line["status"] != "running"
    )
    assert done["output"] == "one\ntwo"


# -- the environment decides -----------------------------------------------------------

SMALL = """
    import asyncio
    import flow2

    async def work(context):
        print("working")

    async def broken(context):
        raise ValueError("bad input")

    asyncio.run(
        flow2.Runner().run(
            flow2.SerialTaskGroup(
                "Root", flow2.CallbackTask("Build", work), flow2.CallbackTask("Bad", broken)
            ),
            raises=False,
        )
    )
"""


def test_ci_gets_plain_lines_even_on_a_terminal(tmp_path: Path) -> None:
    terminal = Terminal(SMALL, tmp_path, env={"CI": "true"})
    final = terminal.finish()
    assert _has(final, "STARTING  Build") and _has(final, "[Build] working")
    assert b"\x1b[?25l" not in terminal.raw  # no live view


def test_term_dumb_gets_no_color(tmp_path: Path) -> None:
    terminal = Terminal(SMALL, tmp_path, env={"TERM": "dumb"})
    terminal.finish()
    assert not ESCAPE.search(terminal.raw.decode())


def test_github_actions_groups_output_and_writes_the_step_summary(tmp_path: Path) -> None:
    step_summary = tmp_path / "summary.md"
    script = tmp_path / "flow.py"
    script.write_text(textwrap.dedent(SMALL))
    environment = {key: value for key, value in os.environ.items() if key != "CI"}
    environment.update(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(step_summary))
    completed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=environment, timeout=60
    )
    lines = completed.stdout.splitlines()
    # Build runs alone: its lines are folded, and its status line closes the group.
    start = lines.index("::group::Build")
    assert lines[start + 1 : start + 3] == ["[Build] working", "::endgroup::"]
    assert lines[start + 3].startswith("SUCCESS   Build")
    assert "::error title=Root › Bad::ValueError: bad input" in lines
    markdown = step_summary.read_text()
    assert markdown.startswith("### ❌ Root failed in")
    assert "ValueError: bad input" in markdown
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert table == [
        "| succeeded | failed | skipped | cancelled | reused | cached |",
        "|---|---|---|---|---|---|",
        "| 1 | 1 | 0 | 0 | 0 | 0 |",
    ]


LIVE_IN_CI = """
    import os, sys, threading, time
    import flow2

    both_running = threading.Barrier(2, timeout=30)

    def build(context):
        print("first line", flush=True)
        # Waits until the test has seen the line (30 s at most).
        deadline = time.monotonic() + 30
        while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
            time.sleep(0.01)
        print("second line", flush=True)

    def check(context):
        both_running.wait()  # side by side, for sure, while both print
        print("checked", flush=True)
        both_running.wait()

    result = flow2.run(
        flow2.SerialTaskGroup(
            "Root",
            flow2.CallbackTask("Build", build),
            flow2.ParallelTaskGroup(
                "Checks", flow2.CallbackTask("Lint", check), flow2.CallbackTask("Test", check)
            ),
        )
    )
    raise SystemExit(result.exit_code)
"""


def test_github_actions_shows_each_line_as_it_is_printed(tmp_path: Path) -> None:
    script, seen = tmp_path / "flow.py", tmp_path / "seen"
    script.write_text(textwrap.dedent(LIVE_IN_CI))
    environment = {key: value for key, value in os.environ.items() if key != "CI"}
    environment.update(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    with subprocess.Popen(
        [sys.executable, str(script), str(seen)],
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
    ) as process:
        assert process.stdout is not None
        before, rest = _read_while_waiting(process.stdout, seen)
        process.wait(timeout=60)
    assert process.returncode == 0
    assert before[-2:] == ["::group::Build", "[Build] first line"]
    # The task was still running: it waits for the file the test wrote after that line.
    assert not any("second line" in line or "SUCCESS" in line for line in before)
    lines = before + rest
    assert lines[lines.index("[Build] second line") + 1] == "::endgroup::"
    # Lint and Test run side by side: their lines are not folded, but prefixed.
    assert "[Lint] checked" in lines and "[Test] checked" in lines
    assert "::group::Lint" not in lines and "::group::Test" not in lines
    assert lines.count("::group::Build") == 1
    assert lines.count("::endgroup::") == 1


def _read_while_waiting(stdout: Any, seen: Path) -> tuple[list[str], list[str]]:
    """The lines up to "first line", then (once ``seen`` exists) the rest."""
    before: list[str] = []
    try:
        for line in stdout:
            before.append(line.rstrip("\n"))
            if "first line" in line:
                break
    finally:
        seen.touch()
    return before, stdout.read().splitlines()


def test_a_quiet_run_still_prints_a_progress_line_now_and_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_console, "HEARTBEAT_INTERVAL", 0.05)
    beat = asyncio.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    class Watched(io.StringIO):
        # Written by the console's writer thread: wake the loop thread-safely.
        def write(self, text: str) -> int:
            if "tasks finished" in text:
                loops[0].call_soon_threadsafe(beat.set)
            return super().write(text)

    stream = Watched()

    async def wait_for_a_sign_of_life(context: dict[str, Any]) -> None:
        loops.append(asyncio.get_running_loop())
        await beat.wait()

    tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Long", wait_for_a_sign_of_life))
    run(flow2.Runner(display="plain", stream=stream, verbosity="quiet").run(tree))
    assert re.search(r"… \d+s: 0/1 tasks finished, 1 running: Long", stream.getvalue())


# -- secrets never leave the process ----------------------------------------------------

SECRETS = {
    "environment": "env-Secret-4711",
    "context": "ctx-Secret-0815",
    "declared": "decl-Secret-2024",
}

LEAKY = """
    import asyncio, sys
    import flow2

    async def leak(context):
        print("context says", context["db_password"])
        flow2.logger.warning("declared %s", "decl-Secret-2024")
        raise PermissionError(f"rejected {context['db_password']} and decl-Secret-2024")

    tree = flow2.ParallelTaskGroup(
        "Root",
        flow2.ShellTask("Shell", ["sh", "-c", "echo token is $MY_API_TOKEN; exit 1"]),
        flow2.CallbackTask("Leak", leak),
    )
    runner = flow2.Runner(
        events=sys.argv[1], log_dir=sys.argv[2], secrets=["decl-Secret-2024"]
    )
    asyncio.run(runner.run(tree, {"db_password": "ctx-Secret-0815"}, raises=False))
"""


def _no_secret_in(text: str, where: str) -> None:
    for kind, secret in SECRETS.items():
        assert secret not in text, f"the {kind} secret leaked into {where}"


@pytest.mark.parametrize("display", ["plain", "live"])
def test_secrets_are_masked_everywhere_output_goes(tmp_path: Path, display: str) -> None:
    events, logs = tmp_path / "events.jsonl", tmp_path / "logs"
    step_summary = tmp_path / "summary.md"
    environment = {
        "MY_API_TOKEN": SECRETS["environment"],
        "FLOW2_DISPLAY": display,
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(step_summary),
    }
    terminal = Terminal(LEAKY, tmp_path, env=environment, arguments=(str(events), str(logs)))
    terminal.finish()
    screen = terminal.raw.decode()
    assert "Failed: Root › Leak" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert "***" in screen
    _no_secret_in(screen, "the terminal")
    _no_secret_in(events.read_text(), "the event file")
    assert "rejected *** and ***" in events.read_text()
    log_files = list(logs.iterdir())
    assert {path.name for path in log_files} == {"shell.log", "leak.log"}
    for path in log_files:
        _no_secret_in(path.read_text(), path.name)
    assert "token is ***" in (logs / "shell.log").read_text()
    _no_secret_in(step_summary.read_text(), "the step summary")


def test_log_records_reaching_the_application_are_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def leak(context: dict[str, Any]) -> None:
        flow2.logger.info("using %s", "decl-Secret-2024")
        raise ValueError("decl-Secret-2024 was refused")

    tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Leak", leak))
    runner = flow2.Runner(display="none", secrets=["decl-Secret-2024"])
    with caplog.at_level("INFO", logger="flow2"):
        run(runner.run(tree, raises=False))
    text = caplog.text + "".join(record.exc_text or "" for record in caplog.records)
    assert "using ***" in caplog.text and "*** was refused" in text
    _no_secret_in(text, "the log records")


VARIABLES = ("deploy_key=decl-Secret-2024", "api_token=ctx-Secret-0815")


def test_flow_show_and_render_mask_declared_and_secret_named_variables(
    tmp_path: Path,
) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: shell
        name: Deploy
        secrets: [deploy_key]
        cmd: "deploy --key {{ deploy_key }} --token {{ api_token }}"
        """,
    )
    for command in ("show", "render"):
        completed = subprocess.run(
            [sys.executable, "-m", "flow2", command, str(path), *VARIABLES],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert completed.returncode == 0, completed.stderr
        assert "--key *** --token ***" in completed.stdout
        _no_secret_in(completed.stdout, f"flow2 {command}")


# -- Ctrl-C --------------------------------------------------------------------------------

STUBBORN = """
    import asyncio
    import flow2

    async def nap(context):
        await asyncio.sleep(3600)

    tree = flow2.ParallelTaskGroup(
        "Root",
        flow2.ShellTask(
            "Stubborn", ["sh", "-c", "trap '' TERM; echo ready; sleep 30"], kill_grace=30
        ),
        flow2.CallbackTask("Nap", nap),
    )
    asyncio.run(tree.run())
"""


def test_ctrl_c_says_it_is_stopping_and_the_script_ends_in_one_line(tmp_path: Path) -> None:
    terminal = Terminal(STUBBORN, tmp_path)
    terminal.read_until(lambda lines: _has(lines, "[Stubborn] ready"))
    terminal.child.sendintr()
    # Stubborn ignores SIGTERM: the view says what it waits for and how to stop it now.
    screen = terminal.read_until(lambda lines: _has(lines, "waiting for 1 task to stop: Stubborn"))
    assert _has(screen, "Stopping (Ctrl-C)")
    assert _has(screen, "Press Ctrl-C again to kill them now.")
    assert _has(screen, "⊘ Nap")
    terminal.child.sendintr()
    final = terminal.finish(check=False)
    text = "\n".join(line for line in final if line)
    assert "Traceback" not in terminal.raw.decode()
    assert text.splitlines()[-2].startswith("Root was cancelled in")
    assert text.splitlines()[-1] == "flow2: interrupted (Ctrl-C); the run of 'Root' was stopped"


def test_an_interrupted_script_prints_the_summary_then_one_line(tmp_path: Path) -> None:
    script = STUBBORN.replace("\"trap '' TERM; echo ready; sleep 30\"", '"echo ready; sleep 30"')
    terminal = Terminal(script, tmp_path, env={"FLOW2_DISPLAY": "plain"})
    terminal.read_until(lambda lines: _has(lines, "[Stubborn] ready"))
    terminal.child.sendintr()
    final = terminal.finish(check=False)
    text = [line for line in final if line]
    assert "Traceback" not in terminal.raw.decode()
    assert _has(text, "flow2: stopping (Ctrl-C): waiting for 2 tasks to stop")
    assert text[-2].startswith("Root was cancelled in")
    assert text[-1] == "flow2: interrupted (Ctrl-C); the run of 'Root' was stopped"


# -- reading and drawing are apart ------------------------------------------------------


def _live_runner(
    stream: Any, monkeypatch: pytest.MonkeyPatch, listeners: tuple[Any, ...] = ()
) -> tuple[flow2.Runner, list[LiveView]]:
    """A runner drawing the live view into ``stream``, and (once it runs) its view."""
    views: list[LiveView] = []
    made = LiveView.__init__

    def remember(view: LiveView, *args: Any, **kwargs: Any) -> None:
        made(view, *args, **kwargs)
        views.append(view)

    monkeypatch.setattr(LiveView, "__init__", remember)
    runner = flow2.Runner(display="live", stream=stream, color=False, listeners=listeners)
    return runner, views


def test_a_line_still_being_written_shows_next_to_its_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []

    async def progress(context: dict[str, Any]) -> None:
        sys.stdout.write("downloading 45%")
        await asyncio.sleep(0)
        seen.extend(views[0].plain_lines())
        sys.stdout.write("\rdownloading 100%\n")

    runner, views = _live_runner(io.StringIO(), monkeypatch)
    run(runner.run(flow2.SerialTaskGroup("Root", flow2.CallbackTask("Fetch", progress))))
    line = next(line for line in seen if "Fetch" in line)
    assert line.endswith("  downloading 45%")


def test_a_slow_terminal_does_not_slow_the_tasks_or_skew_their_durations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class SlowTerminal(io.StringIO):
        def write(self, text: str) -> int:
            import time

            time.sleep(0.8)  # a terminal taking most of a second per write
            return super().write(text)

    durations: dict[str, float] = {}

    def remember(event: flow2.Event) -> None:
        if isinstance(event, flow2.TaskEvent) and event.duration is not None:
            durations[event.task.name] = event.duration

    async def nap(context: dict[str, Any]) -> None:
        await asyncio.sleep(0.3)

    async def chatty(context: dict[str, Any]) -> None:
        for number in range(200):
            print(f"line {number}")
            await asyncio.sleep(0.001)

    runner, _ = _live_runner(SlowTerminal(), monkeypatch, (remember,))
    tree = flow2.ParallelTaskGroup(
        "Root", flow2.CallbackTask("Nap", nap), flow2.CallbackTask("Chatty", chatty)
    )
    run(runner.run(tree))
    # Drawing on the loop would add at least one such write to the nap.
    assert 0.3 <= durations["Nap"] < 0.7


def test_a_slow_plain_console_never_slows_a_task_or_skews_its_time(recorder: Recorder) -> None:
    # Every write to this stream takes 0.2 s, as on a terminal that cannot
    # keep up; written on the event loop, ten lines would hold each task
    # for about two seconds.
    class Slow(io.StringIO):
        def write(self, text: str) -> int:
            time.sleep(0.2)
            return super().write(text)

    async def brief(context: dict[str, Any]) -> None:
        await asyncio.sleep(0.05)

    tree = flow2.ParallelTaskGroup(
        "Root", *(flow2.CallbackTask(f"T{index}", brief) for index in range(4))
    )
    stream = Slow()
    run(flow2.Runner(display="plain", stream=stream, listeners=[recorder]).run(tree))
    durations = [
        event.duration
        for event in recorder.events
        if isinstance(event, flow2.TaskEvent) and event.status is flow2.Status.SUCCEEDED
    ]
    assert len(durations) == 5 and all(d is not None and d < 1.0 for d in durations), durations
    assert stream.getvalue().count("SUCCESS") == 5  # every line still written, in the end


def test_plain_lines_reach_the_stream_while_the_run_goes_on() -> None:
    # Lines are written by a thread every FLUSH_DELAY seconds, not only when
    # the run ends: a CI log shows a long task's STARTING line while it runs.
    stream = io.StringIO()
    seen_while_running: list[str] = []

    async def long_task(context: dict[str, Any]) -> None:
        await asyncio.sleep(0.5)  # ten times FLUSH_DELAY
        seen_while_running.append(stream.getvalue())

    async def quick(context: dict[str, Any]) -> None:
        return None

    # The first line starts the writer; the later ones wait for its next turn.
    tree = flow2.SerialTaskGroup(
        "Root", flow2.CallbackTask("Quick", quick), flow2.CallbackTask("Long", long_task)
    )
    run(flow2.Runner(display="plain", stream=stream).run(tree))
    assert "STARTING  Long" in seen_while_running[0]
    assert "SUCCESS   Long" not in seen_while_running[0]
    assert "SUCCESS   Long" in stream.getvalue()
