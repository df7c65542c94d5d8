"""Signals, closed outputs and crashes, as a person meets them: real processes, real signals.

Each test starts ``flow2 run`` (or a script) in a subprocess, waits until its
commands really run (they write pid files), sends a real signal, then looks
at the exit code, the summary, the event file and ``ps`` for leftovers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import write_flow
from .test_cli import environment

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups"),
    pytest.mark.usefixtures("python_first_on_path"),
]


def start_flow2(*arguments: str | Path, cwd: Path, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "flow2", *map(str, arguments)],
        stdout=popen.pop("stdout", subprocess.PIPE),
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=environment(PYTHONPATH=str(cwd)),
        **popen,
    )


def wait_for_files(folder: Path, pattern: str, count: int, process: subprocess.Popen[str]) -> None:
    """Wait until ``count`` files match ``pattern`` (the commands are running)."""
    deadline = time.monotonic() + 60
    while len(list(folder.glob(pattern))) < count:
        if process.poll() is not None:
            raise AssertionError(f"flow2 ended first: {process.communicate()}")
        assert time.monotonic() < deadline, "the commands never started"
        time.sleep(0.02)  # another process's progress cannot be awaited


def leftovers(marker: str) -> list[str]:
    """Processes whose command line holds ``marker``, zombies left out (``ps``)."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,ppid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    return [
        line
        for line in listing.splitlines()
        if marker in line and "ps -eo" not in line and line.split()[2][0] not in "ZX"
    ]


def wait_for_no_leftovers(marker: str) -> list[str]:
    # A killed process may take a moment to leave the table.
    deadline = time.monotonic() + 5
    while (found := leftovers(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


WORKERS = """
import os, signal, sys, time

def stubborn(context):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open(os.path.join(sys.argv[0] and os.getcwd(), f"ready-worker-{os.getpid()}"), "w").close()
    time.sleep(600)
"""


def rough_flow(folder: Path, marker: str) -> Path:
    """Silent, stubborn (ignores SIGTERM, and so does its child), streaming, and a worker."""
    (folder / "workers.py").write_text(WORKERS)
    return write_flow(
        folder,
        f"""
        plugin: parallel
        name: Rough
        tasks:
          - plugin: shell
            name: Silent
            cmd: "touch ready-silent; sleep {marker}"
          - plugin: shell
            name: Stubborn
            cmd: "trap '' TERM; touch ready-stubborn; sleep {marker}; echo never"
          - plugin: shell
            name: Streaming
            cmd: "touch ready-streaming; while true; do echo tick; sleep 0.1; done"
          - plugin: parallel
            name: Workers
            executor: process
            tasks:
              - {{plugin: callback, name: Crunch, callback: "workers:stubborn"}}
        """,
    )


@pytest.mark.parametrize(
    ("signal_number", "code"),
    [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)],
    ids=["SIGTERM", "SIGHUP", "SIGINT"],
)
def test_a_signal_stops_the_run_and_every_process_it_started(
    tmp_path: Path, signal_number: int, code: int
) -> None:
    marker = f"{os.getpid() % 1000 + 100}.{signal_number}17"
    path = rough_flow(tmp_path, marker)
    events = tmp_path / "events.jsonl"
    process = start_flow2(
        "run", path, "--display", "plain", "--grace", "1", "--events", events, cwd=tmp_path
    )
    try:
        wait_for_files(tmp_path, "ready-*", 4, process)
        process.send_signal(signal_number)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == code, stdout + stderr
    assert "Rough was cancelled in" in stdout  # the summary
    for name in ("Silent", "Stubborn", "Streaming", "Crunch"):
        assert f"CANCELLED {name}" in " ".join(stdout.split())
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert f"interrupted by {signal.Signals(signal_number).name}" in stderr
    # What ignored SIGTERM was killed when the grace period ended, and said so,
    # with the time measured (at least the 1 s grace period).
    killed = re.search(r"killed what still ran (\d+\.\d)s after the signal \((.*?)\)", stderr)
    assert killed is not None, stderr
    assert float(killed[1]) >= 1.0 and killed[2] == "the grace period ended"
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert lines[-1]["event"] == "run" and lines[-1]["status"] == "cancelled"
    assert wait_for_no_leftovers(marker) == []
    for ready in tmp_path.glob("ready-worker-*"):
        pid = int(ready.name.rsplit("-", 1)[1])
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_a_second_signal_kills_at_once(tmp_path: Path) -> None:
    marker = f"{os.getpid() % 1000 + 100}.23"
    path = rough_flow(tmp_path, marker)
    events = tmp_path / "events.jsonl"
    process = start_flow2(
        "run", path, "--display", "plain", "--grace", "600", "--events", events, cwd=tmp_path
    )
    try:
        wait_for_files(tmp_path, "ready-*", 4, process)
        process.send_signal(signal.SIGTERM)
        # The first signal was handled once a task is reported cancelled
        # (the event file is written at each task's end).
        deadline = time.monotonic() + 60
        while '"cancelled"' not in events.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        # Well under the 600 s grace period: nothing waits for it any more.
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, stdout + stderr
    assert "Rough was cancelled in" in stdout
    assert wait_for_no_leftovers(marker) == []


SCRIPT = """
    import asyncio, signal, sys
    import flow2

    tree = flow2.ParallelTaskGroup(
        "Script",
        flow2.ShellTask("Silent", "touch ready; sleep {marker}"),
        flow2.ShellTask("Stubborn", "trap '' TERM; sleep {marker}"),
    )
    try:
        asyncio.run(flow2.Runner(display="plain", handle_signals=True, grace=0.5).run(tree))
    finally:
        print("handler restored:", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
"""


def test_a_script_with_handle_signals_stops_like_flow2_run(tmp_path: Path) -> None:
    marker = f"{os.getpid() % 1000 + 100}.29"
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT.format(marker=marker)))
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=environment(),
    )
    try:
        wait_for_files(tmp_path, "ready", 1, process)
        time.sleep(0.2)  # the stubborn command sets its trap
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, stdout + stderr
    assert "Script was cancelled in" in stdout
    assert "handler restored: True" in stdout
    assert "Traceback" not in stderr
    assert wait_for_no_leftovers(marker) == []


def test_without_handle_signals_flow2_installs_no_handler() -> None:
    import asyncio

    import flow2

    seen: dict[str, object] = {}

    async def look(context: dict[str, object]) -> None:
        seen["plain"] = signal.getsignal(signal.SIGTERM)

    async def look_handled(context: dict[str, object]) -> None:
        seen["handled"] = signal.getsignal(signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    asyncio.run(flow2.Runner(display="none").run(flow2.CallbackTask("Look", look)))
    asyncio.run(
        flow2.Runner(display="none", handle_signals=True).run(
            flow2.CallbackTask("Look", look_handled)
        )
    )
    assert seen["plain"] is before
    assert seen["handled"] is not before  # taken while the run ran …
    assert signal.getsignal(signal.SIGTERM) is before  # … and given back


def test_grace_must_be_a_number_of_seconds() -> None:
    import flow2

    with pytest.raises(flow2.ConfigurationError, match="grace=-1"):
        flow2.Runner(grace=-1)
    os.environ["FLOW2_GRACE"] = "soon"
    try:
        with pytest.raises(flow2.ConfigurationError, match="FLOW2_GRACE='soon'"):
            flow2.Runner()
    finally:
        del os.environ["FLOW2_GRACE"]


def test_the_live_view_leaves_the_cursor_visible_after_sigterm(tmp_path: Path) -> None:
    import pexpect

    marker = f"{os.getpid() % 1000 + 100}.31"
    path = write_flow(
        tmp_path,
        f"""
        plugin: parallel
        name: Live
        tasks:
          - {{plugin: shell, name: Silent, cmd: "echo started; sleep {marker}"}}
        """,
    )
    env = {key: value for key, value in environment().items() if key != "NO_COLOR"}
    env["TERM"] = "xterm-256color"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "flow2", "run", str(path), "--grace", "1"],
        env=env,
        cwd=str(tmp_path),
        dimensions=(24, 80),
        timeout=60,
    )
    child.expect("started")
    child.kill(signal.SIGTERM)
    child.expect(pexpect.EOF)
    raw = (child.before or b"").decode()
    child.close()
    assert child.exitstatus == 143
    assert "Live was cancelled in" in raw
    hidden = raw.rfind("\x1b[?25l")
    assert hidden == -1 or raw.rfind("\x1b[?25h") > hidden  # the cursor is shown again
    assert raw.rstrip(" ").endswith("\n")  # the shell's prompt starts on a line of its own
    assert wait_for_no_leftovers(marker) == []


# Closed outputs ----------------------------------------------------------------


def test_a_closed_stdout_fails_no_task(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - {plugin: shell, name: Chatty, cmd: "for i in $(seq 1 3000); do echo line $i; done"}
          - {plugin: shell, name: After, cmd: "touch after"}
        """,
    )
    process = start_flow2("run", path, "--display", "plain", cwd=tmp_path)
    assert process.stdout is not None and process.stderr is not None
    first = [process.stdout.readline(), process.stdout.readline()]  # what `| head -2` reads
    process.stdout.close()
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=60) == 0, stderr
    assert first[0].startswith("STARTING")
    assert (tmp_path / "after").exists()  # the run went on
    for noise in ("Exception ignored", "object at 0x", "Traceback", "BrokenPipeError"):
        assert noise not in stderr


def test_ctrl_c_under_tee_exits_130(tmp_path: Path) -> None:
    marker = f"{os.getpid() % 1000 + 100}.37"
    path = write_flow(
        tmp_path,
        f"""
        plugin: shell
        name: Silent
        cmd: "touch ready; sleep {marker}"
        """,
    )
    # A terminal's Ctrl-C reaches the whole foreground group: flow2 and tee.
    pipeline = (
        f"{sys.executable} -m flow2 run {path} --display plain --grace 1 2>err | tee out "
        f">/dev/null; echo ${{PIPESTATUS[0]}} > code"
    )
    shell = subprocess.Popen(
        ["bash", "-c", pipeline], cwd=tmp_path, env=environment(), start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists():
            assert time.monotonic() < deadline and shell.poll() is None
            time.sleep(0.02)
        os.killpg(shell.pid, signal.SIGINT)
        shell.wait(timeout=60)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    error = (tmp_path / "err").read_text()
    assert (tmp_path / "code").read_text().strip() == "130", error
    assert "Exception ignored" not in error and "Traceback" not in error
    assert wait_for_no_leftovers(marker) == []


# Threads that never return --------------------------------------------------------


BLOCKED = """
    import asyncio, threading
    import flow2

    def block(context):
        threading.Event().wait()

    asyncio.run(
        flow2.Runner(display="plain", grace=0.5).run(
            flow2.CallbackTask("Block", block, timeout=0.2), raises=False
        )
    )
    print("run over", flush=True)
"""


def test_a_thread_blocked_for_ever_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    script = tmp_path / "blocked.py"
    script.write_text(textwrap.dedent(BLOCKED))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=environment()
    )
    assert result.returncode == 0, result.stderr
    assert "TaskTimeoutError" in result.stdout and "run over" in result.stdout
    assert "'flow2-worker-1' (task 'Block')" in result.stderr


def test_flow2_run_ends_despite_a_blocked_thread(tmp_path: Path) -> None:
    (tmp_path / "blocking.py").write_text(
        "import threading\ndef block(context):\n    threading.Event().wait()\n"
    )
    path = write_flow(
        tmp_path, "plugin: callback\nname: Block\ncallback: blocking:block\ntimeout: 0.2\n"
    )
    process = start_flow2("run", path, "--display", "plain", "--grace", "0.5", cwd=tmp_path)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stdout + stderr
    assert "exiting without 1 worker thread" in stderr and "(task 'Block')" in stderr


def test_handle_signals_outside_the_main_thread_is_refused() -> None:
    import asyncio
    import threading

    import flow2

    caught: list[BaseException] = []

    def in_a_thread() -> None:
        runner = flow2.Runner(display="none", handle_signals=True)
        try:
            asyncio.run(runner.run(flow2.CallbackTask("A", lambda context: 1)))
        except flow2.ConfigurationError as error:
            caught.append(error)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join(60)
    assert len(caught) == 1 and "needs the main thread" in str(caught[0])


def test_interrupted_carries_the_signal_and_the_exit_code() -> None:
    import flow2

    stop = flow2.Interrupted(signal.SIGTERM)
    assert isinstance(stop, SystemExit) and stop.code == 143
    assert stop.signal is signal.SIGTERM and str(stop) == "interrupted by SIGTERM"
    assert repr(type(stop)).startswith("<class 'flow2.Interrupted'")


BLOCKING_LOOP = """
    import asyncio, os, time
    import flow2
    from flow2._engine._children import live_children

    async def hog(context):
        # The command runs, and its shell task has registered it (the
        # process starts a few loop turns before the task records it).
        while not os.path.exists("shell-ready") or not live_children():
            await asyncio.sleep(0.01)
        open("ready", "w").close()
        time.sleep(600)  # blocks the event loop: no signal reaches the run

    tree = flow2.ParallelTaskGroup(
        "Hog",
        flow2.CallbackTask("Hog", hog),
        flow2.ShellTask("Silent", "touch shell-ready; sleep {marker}"),
    )
    asyncio.run(flow2.Runner(display="plain", handle_signals=True).run(tree))
"""


def test_a_third_signal_exits_even_when_the_loop_is_blocked(tmp_path: Path) -> None:
    marker = f"{os.getpid() % 1000 + 100}.41"
    script = tmp_path / "hog.py"
    script.write_text(textwrap.dedent(BLOCKING_LOOP.format(marker=marker)))
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=environment(),
    )
    try:
        wait_for_files(tmp_path, "ready", 1, process)
        # Three different signals: the same one sent twice could merge into one.
        for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            process.send_signal(number)
            time.sleep(0.1)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, stdout + stderr
    assert "SIGINT, the third signal: exiting at once" in stderr
    assert wait_for_no_leftovers(marker) == []


SIDE_EFFECTS = """
import os, time

def work(context):
    open(f"ready-worker-{os.getpid()}", "w").close()
    time.sleep(3)
    open(f"side-effect-{os.getpid()}", "w").close()
    time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_flow2_stops_its_process_workers(tmp_path: Path) -> None:
    (tmp_path / "side_effects.py").write_text(SIDE_EFFECTS)
    path = write_flow(
        tmp_path,
        """
        plugin: parallel
        name: Workers
        executor: process
        tasks:
          - {plugin: callback, name: One, callback: "side_effects:work"}
          - {plugin: callback, name: Two, callback: "side_effects:work"}
        """,
    )
    process = start_flow2("run", path, "--display", "plain", "--no-store", cwd=tmp_path)
    try:
        wait_for_files(tmp_path, "ready-worker-*", 2, process)
    finally:
        process.kill()  # SIGKILL: flow2 cleans nothing up
        process.communicate(timeout=60)
    workers = [int(ready.name.rsplit("-", 1)[1]) for ready in tmp_path.glob("ready-worker-*")]

    def is_alive(pid: int) -> bool:
        try:
            return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10
    while any(map(is_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)  # another process's end cannot be awaited
    assert [pid for pid in workers if is_alive(pid)] == []
    # Past the moment the work would have had its side effect: none happened.
    time.sleep(3.5)
    assert list(tmp_path.glob("side-effect-*")) == []


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_an_ignored_sigint_stays_ignored_and_silent(tmp_path: Path) -> None:
    # Started with SIGINT ignored, as nohup or a script's background job does.
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        name: Steady
        tasks:
          - plugin: shell
            name: Wait
            cmd: "touch ready; while [ ! -e go ]; do sleep 0.05; done"
          - {plugin: shell, name: After, cmd: "touch after"}
        """,
    )
    process = start_flow2(
        "run", path, "--display", "plain", "--no-store", cwd=tmp_path, preexec_fn=_ignore_sigint
    )
    try:
        wait_for_files(tmp_path, "ready", 1, process)
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGINT)
        (tmp_path / "go").touch()
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stdout + stderr
    assert (tmp_path / "after").exists()
    assert "stopping" not in stdout.lower() + stderr.lower()
    assert "Ctrl-C" not in stdout + stderr and "interrupted" not in stderr
