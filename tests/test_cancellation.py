"""Cancelling a run from outside: the caller's cancel, its timeout, Ctrl-C."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

import flow2
from tests.conftest import Recorder, run

S = flow2.Status


def tree_of_sleepers(started: asyncio.Event, survivors: list[str]) -> flow2.Task:
    count = 0

    async def sleeper(context: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        if count == 3:
            started.set()
        await asyncio.sleep(60)
        survivors.append("woke up")

    return flow2.SerialTaskGroup(
        "Root",
        flow2.ParallelTaskGroup(
            "Parallel",
            flow2.CallbackTask("A", sleeper),
            flow2.CallbackTask("B", sleeper),
            flow2.SerialTaskGroup("Inner", flow2.CallbackTask("C", sleeper), flow2.Task("D")),
        ),
        flow2.Task("Never"),
    )


def test_cancelling_the_caller_cancels_every_running_task(recorder: Recorder) -> None:
    survivors: list[str] = []

    async def main() -> None:
        started = asyncio.Event()
        runner = flow2.Runner(display="plain", stream=io.StringIO(), listeners=[recorder])
        job = asyncio.create_task(runner.run(tree_of_sleepers(started, survivors)))
        await started.wait()
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        # Nothing of the tree is still scheduled behind the caller's back.
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        assert others == []

    run(main())
    assert survivors == []
    for name in ("A", "B", "C", "Inner", "Parallel", "Root"):
        assert recorder.final(name) is S.CANCELLED, name
    assert recorder.statuses("D") == [S.CANCELLED]
    assert recorder.statuses("Never") == [S.CANCELLED]
    assert not any(event.status is S.FAILED for event in recorder.events)
    run_end = recorder.events[-1]
    assert isinstance(run_end, flow2.RunEvent) and run_end.status is S.CANCELLED


def test_callers_timeout_cancels_the_tree(recorder: Recorder) -> None:
    survivors: list[str] = []

    async def main() -> None:
        runner = flow2.Runner(display="none", listeners=[recorder])
        started = asyncio.Event()

        async def expire_once_started(deadline: asyncio.Timeout) -> None:
            await started.wait()  # the three sleepers are running
            deadline.reschedule(asyncio.get_running_loop().time())

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(None) as deadline:
                watcher = asyncio.create_task(expire_once_started(deadline))
                await runner.run(tree_of_sleepers(started, survivors))
        await watcher

    run(main())
    for name in ("A", "B", "C", "Inner", "Parallel", "Root"):
        assert recorder.statuses(name)[0] is S.RUNNING, name
        assert recorder.final(name) is S.CANCELLED, name
    assert survivors == []


def test_wait_for_cancels_the_tree(recorder: Recorder) -> None:
    survivors: list[str] = []

    async def main() -> None:
        runner = flow2.Runner(display="none", listeners=[recorder])
        started = asyncio.Event()
        waiting = asyncio.create_task(
            asyncio.wait_for(runner.run(tree_of_sleepers(started, survivors)), 60)
        )
        await started.wait()
        waiting.cancel()  # wait_for passes the cancellation into the run
        with pytest.raises(asyncio.CancelledError):
            await waiting

    run(main())
    for name in ("A", "B", "C", "Root"):
        assert recorder.statuses(name)[0] is S.RUNNING, name
        assert recorder.final(name) is S.CANCELLED, name
    assert survivors == []


def test_cancelled_sync_callback_is_reported_and_the_run_ends(recorder: Recorder) -> None:
    release = threading.Event()
    entered = threading.Event()

    def blocking(context: dict[str, Any]) -> None:
        entered.set()
        release.wait(30)

    async def main() -> None:
        runner = flow2.Runner(display="none", listeners=[recorder])
        job = asyncio.create_task(runner.run(flow2.CallbackTask("Block", blocking)))
        await asyncio.to_thread(entered.wait, 30)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    try:
        run(main())
    finally:
        release.set()
    assert recorder.final("Block") is S.CANCELLED


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import flow2

    async def sleeper(context):
        print("ready", flush=True)
        await asyncio.sleep(60)

    tree = flow2.ParallelTaskGroup(
        "Root", flow2.CallbackTask("A", sleeper), flow2.CallbackTask("B", sleeper)
    )
    try:
        asyncio.run(flow2.Runner(display="plain").run(tree))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_cancels_everything_cleanly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"},
    )
    assert process.stdout is not None
    seen = []
    while len([line for line in seen if line.endswith("] ready")]) < 2:
        line = process.stdout.readline()
        assert line, f"the script ended early: {seen} {process.stderr.read()}"  # type: ignore[union-attr]
        seen.append(line.strip())
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    lines = seen + out.splitlines()
    assert process.returncode == 130, err
    assert "CANCELLED A" in " ".join(" ".join(line.split()) for line in lines)
    assert "CANCELLED B" in " ".join(" ".join(line.split()) for line in lines)
    assert "CANCELLED Root" in " ".join(" ".join(line.split()) for line in lines)
    assert "interrupted" in lines
    assert "Traceback" not in err


SIGNAL_IN_ANOTHER_THREAD_SCRIPT = textwrap.dedent(
    """
    import asyncio, signal, sys, threading, time
    import flow2

    NUMBER = signal.SIGTERM if "--handle-signals" in sys.argv else signal.SIGINT

    async def sleeper(context):
        # The kernel may hand a process's signal to any of its threads; here
        # it goes, for certain, to a thread that is not the main one (after
        # a while: by then the main thread waits in select()).
        def interrupt():
            time.sleep(0.5)
            signal.pthread_kill(threading.get_ident(), NUMBER)
        threading.Thread(target=interrupt).start()
        await asyncio.sleep(60)

    # Without a display, nothing but the runner's own signal handling is installed.
    handle = "--handle-signals" in sys.argv
    runner = flow2.Runner(display="none" if handle else "plain", handle_signals=handle)
    try:
        asyncio.run(runner.run(flow2.CallbackTask("A", sleeper)))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(("arguments", "code"), [([], 130), (["--handle-signals"], 143)])
def test_signal_wakes_a_waiting_loop(arguments: list[str], code: int) -> None:
    # The main thread waits in select() for a timer a minute away: a signal
    # received by another thread must still stop the run now (SIGINT as
    # under asyncio.run, SIGTERM as under flow2 run).
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", SIGNAL_IN_ANOTHER_THREAD_SCRIPT, *arguments],
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == code, result.stderr
    assert time.monotonic() - started < 15
    if not arguments:
        assert "CANCELLED A" in " ".join(result.stdout.split())


def test_a_group_cancelled_twice_still_waits_for_its_tasks(recorder: Recorder) -> None:
    started, cleaning = asyncio.Event(), asyncio.Event()

    async def slow_to_stop(context: dict[str, Any]) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cleaning.set()
            for _ in range(20):  # its clean-up takes a few turns of the loop
                await asyncio.sleep(0)
            raise

    async def main() -> None:
        tree = flow2.ParallelTaskGroup(
            "Group",
            flow2.CallbackTask("Slow", slow_to_stop),
            flow2.CallbackTask("Quick", lambda context: 1),
        )
        runner = flow2.Runner(display="none", listeners=[recorder])
        running = asyncio.create_task(runner.execute(tree))
        await started.wait()
        running.cancel()
        await cleaning.wait()
        running.cancel()  # again, while the group waits for Slow to stop
        with pytest.raises(asyncio.CancelledError):
            await running

    run(main())
    names = [
        event.task.name if isinstance(event, flow2.TaskEvent) else "run end"
        for event in recorder.events[1:]
        if event.status.is_finished
    ]
    # Slow reported before its group, and the group before the run's end.
    assert names.index("Slow") < names.index("Group") < names.index("run end")
    assert names[-1] == "run end"
