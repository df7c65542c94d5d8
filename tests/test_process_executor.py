"""The process executor: work runs in other processes, and really stops when cancelled."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flow2
from tests.conftest import Recorder, run

S = flow2.Status
#: Bound on anything a worker waits for; a test failing waits this long at most.
PATIENCE = 60.0


# Callbacks live at module level: the workers import them by name.


def report_pid(context: dict[str, Any]) -> int:
    return os.getpid()


def wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + PATIENCE
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def meet(folder: str, name: str, other: str) -> int:
    """Announce ourselves, then wait for the other task: both must run at once."""
    (Path(folder) / name).touch()
    wait_for_file(Path(folder) / other)
    return os.getpid()


def left(context: dict[str, Any], *, folder: str) -> int:
    return meet(folder, "left", "right")


def right(context: dict[str, Any], *, folder: str) -> int:
    return meet(folder, "right", "left")


def hang(context: dict[str, Any], *, folder: str) -> None:
    """Say which process runs the work, then never finish."""
    (Path(folder) / "hanging.tmp").write_text(str(os.getpid()))
    os.replace(Path(folder) / "hanging.tmp", Path(folder) / "hanging")
    time.sleep(PATIENCE)


def hang_once(context: dict[str, Any], *, folder: str) -> str:
    """Hang on the first attempt (until killed); return at once on the next."""
    if (Path(folder) / "hanging").exists():
        return f"second attempt in {os.getpid()}"
    hang(context, folder=folder)
    return "the first attempt was not stopped"


def outlive(context: dict[str, Any], *, folder: str) -> int:
    """Wait until the hanging task's process is gone, and finish normally."""
    wait_for_file(Path(folder) / "hanging")
    doomed = int((Path(folder) / "hanging").read_text())
    deadline = time.monotonic() + PATIENCE
    while is_alive(doomed) and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


def total(context: dict[str, Any], *, numbers: list[int], scale: int = 2) -> tuple[Any, ...]:
    return sorted(context), sum(numbers) * scale


def scribble(context: dict[str, Any]) -> str:
    context["scribbled"] = True
    return "returned"


def fail(context: dict[str, Any]) -> None:
    raise ValueError("bad input 42")


class Unusual(BaseException):
    """A BaseException subclass flow2 does not document."""


def raise_unusual(context: dict[str, Any]) -> None:
    raise Unusual("odd")


def stop_iterating(context: dict[str, Any]) -> None:
    raise StopIteration("no more")


def return_lock(context: dict[str, Any]) -> Any:
    return threading.Lock()


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()


def raise_unpicklable(context: dict[str, Any]) -> None:
    raise Unpicklable()


def explode_outside_workers() -> None:
    if multiprocessing.parent_process() is None:
        raise RuntimeError("this object only unpickles in a worker")


class UnpicklesOnlyInWorkers:
    def __reduce__(self) -> tuple[Any, ...]:
        return explode_outside_workers, ()


def return_unpicklable_here(context: dict[str, Any]) -> Any:
    return UnpicklesOnlyInWorkers()


def exit_worker(context: dict[str, Any]) -> None:
    sys.exit(3)


def chatter(context: dict[str, Any]) -> str:
    print("to stdout")
    print("to stderr", file=sys.stderr)
    sys.stdout.write("no newline")
    return "done"


def chatter_then_exit(context: dict[str, Any]) -> None:
    print("last words")
    sys.exit(3)


class OutputCollector:
    """A listener keeping each output event's task, stream and text."""

    listens_to = frozenset({flow2.OutputEvent})

    def __init__(self) -> None:
        self.pieces: list[tuple[str, str, str]] = []

    def __call__(self, event: Any) -> None:
        if isinstance(event, flow2.OutputEvent):
            self.pieces.append((event.task.name, event.stream, event.text))


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_for_path(path: Path) -> None:
    deadline = time.monotonic() + PATIENCE
    while not path.exists():  # noqa: ASYNC240 - a stat is quick; this polls a test's marker
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.01)


@pytest.fixture(scope="module")
def pool() -> Iterator[flow2.ProcessExecutor]:
    """Two workers shared by the module: spawning interpreters is the slow part.

    The fixture holds the executor open, so the runs using it leave it warm.
    """
    executor = flow2.ProcessExecutor(max_workers=2)
    asyncio.run(executor.start())
    yield executor
    asyncio.run(executor.aclose())


def meeting(pool: flow2.ProcessExecutor) -> flow2.ParallelTaskGroup:
    return flow2.ParallelTaskGroup(
        "Meet",
        flow2.CallbackTask("Left", left),
        flow2.CallbackTask("Right", right),
        executor=pool,
    )


async def warm_up(pool: flow2.ProcessExecutor, folder: Path) -> None:
    """Make sure both workers are up, so a short timeout measures the work alone."""
    folder.mkdir()  # noqa: ASYNC240 - once, before the loop has anything else to do
    await flow2.Runner(display="none").run(meeting(pool), {"folder": str(folder)})


def test_tasks_run_at_once_in_other_processes(pool: flow2.ProcessExecutor, tmp_path: Path) -> None:
    # Each task waits for the other: they can only finish by running at once.
    context = run(flow2.Runner(display="none").run(meeting(pool), {"folder": str(tmp_path)}))
    assert context["left"] != context["right"]
    assert os.getpid() not in (context["left"], context["right"])


def test_only_declared_keys_travel_and_changes_stay_in_the_worker(
    pool: flow2.ProcessExecutor,
) -> None:
    tree = flow2.SerialTaskGroup(
        "Copy",
        flow2.CallbackTask("Total", total),
        flow2.CallbackTask("Scribble", scribble),
        executor=pool,
    )
    context = run(flow2.Runner(display="none").run(tree, {"numbers": [1, 2, 3]}))
    assert context["total"] == (["numbers"], 12)
    assert context["scribble"] == "returned"
    assert "scribbled" not in context


def test_an_unpicklable_key_is_left_behind_when_the_callback_does_not_declare_it(
    pool: flow2.ProcessExecutor,
) -> None:
    # The lock cannot be pickled: Total runs only because it is not sent.
    task = flow2.CallbackTask("Total", total, executor=pool)
    context = run(
        flow2.Runner(display="none").run(task, {"numbers": [4], "lock": threading.Lock()})
    )
    assert context["total"] == (["numbers"], 8)


def test_a_timeout_kills_the_worker_and_spares_the_others(
    pool: flow2.ProcessExecutor, tmp_path: Path, recorder: Recorder
) -> None:
    async def scenario() -> dict[str, Any]:
        await warm_up(pool, tmp_path / "warm")
        tree = flow2.ParallelTaskGroup(
            "Race",
            flow2.CallbackTask("Hang", hang, timeout=2),
            flow2.CallbackTask("Outlive", outlive),
            executor=pool,
        )
        runner = flow2.Runner(display="none", listeners=[recorder])
        return await runner.run(tree, {"folder": str(tmp_path)}, raises=False)

    context = run(scenario())
    hung_pid = int((tmp_path / "hanging").read_text())
    assert isinstance(context["hang"], flow2.TaskTimeoutError)
    assert not is_alive(hung_pid)  # killed and reaped, not a zombie
    assert recorder.final("Outlive") is S.SUCCEEDED
    assert context["outlive"] != hung_pid
    # The pool replaced the killed worker.
    pid = flow2.CallbackTask("Pid", report_pid, executor=pool)
    after = run(flow2.Runner(display="none").run(pid))
    assert after["pid"] not in (hung_pid, os.getpid())


def test_cancelling_the_run_kills_the_worker(pool: flow2.ProcessExecutor, tmp_path: Path) -> None:
    async def scenario() -> None:
        task = flow2.CallbackTask("Hang", hang, executor=pool)
        running = asyncio.create_task(
            flow2.Runner(display="none").run(task, {"folder": str(tmp_path)})
        )
        await wait_for_path(tmp_path / "hanging")
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    run(scenario())
    assert not is_alive(int((tmp_path / "hanging").read_text()))


async def kill_when_hanging(folder: Path) -> int:
    await wait_for_path(folder / "hanging")
    pid = int((folder / "hanging").read_text())
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_worker_killed_mid_task_fails_the_task(
    pool: flow2.ProcessExecutor, tmp_path: Path
) -> None:
    async def scenario() -> tuple[dict[str, Any], int]:
        task = flow2.CallbackTask("Hang", hang, executor=pool)
        runner = flow2.Runner(display="none")
        context, pid = await asyncio.gather(
            runner.run(task, {"folder": str(tmp_path)}, raises=False), kill_when_hanging(tmp_path)
        )
        return context, pid

    context, pid = run(scenario())
    error = context["hang"]
    assert isinstance(error, flow2.ExecutorError)
    assert "task 'Hang'" in str(error)
    assert f"(pid {pid}) was killed by SIGKILL" in str(error)
    assert "retries=" in str(error)


def test_a_worker_killed_mid_task_is_retried(
    pool: flow2.ProcessExecutor, tmp_path: Path, recorder: Recorder
) -> None:
    async def scenario() -> tuple[dict[str, Any], int]:
        task = flow2.CallbackTask("Hang", hang_once, retries=1, retry_delay=0, executor=pool)
        runner = flow2.Runner(display="none", listeners=[recorder])
        context, pid = await asyncio.gather(
            runner.run(task, {"folder": str(tmp_path)}), kill_when_hanging(tmp_path)
        )
        return context, pid

    context, _ = run(scenario())
    assert context["hang"].startswith("second attempt in ")
    assert recorder.statuses("Hang") == [S.RUNNING, S.RETRYING, S.SUCCEEDED]
    retrying = [event for event in recorder.events if event.status is S.RETRYING]
    assert isinstance(retrying[0].error, flow2.ExecutorError)


def test_a_worker_exiting_fails_the_task_with_its_exit_code(pool: flow2.ProcessExecutor) -> None:
    task = flow2.CallbackTask("Exit", exit_worker, executor=pool)
    with pytest.raises(flow2.ExecutorError, match=r"task 'Exit': .* exited with code 3"):
        run(flow2.Runner(display="none").run(task))


def test_a_worker_dead_while_idle_is_replaced_without_failing_a_task(
    pool: flow2.ProcessExecutor,
) -> None:
    async def scenario() -> None:
        async with pool:
            for worker in list(pool._idle):
                worker.process.kill()
                worker.process.join()
            context = await flow2.Runner(display="none").run(
                flow2.CallbackTask("Pid", report_pid, executor=pool)
            )
        assert context["pid"] != os.getpid()

    run(scenario())


def test_the_callbacks_exception_comes_back_unchanged(pool: flow2.ProcessExecutor) -> None:
    task = flow2.CallbackTask("Fail", fail, executor=pool)
    with pytest.raises(ValueError, match="bad input 42") as caught:
        run(flow2.Runner(display="none").run(task))
    # The worker's traceback is kept, as concurrent.futures does.
    assert "in fail" in str(caught.value.__cause__)


def test_a_worker_failure_shows_the_users_frames_only(pool: flow2.ProcessExecutor) -> None:
    task = flow2.CallbackTask("Fail", fail, executor=pool)
    result = run(flow2.Runner(display="none").execute(task))
    (failure,) = result.failures
    assert isinstance(failure.error, ValueError)
    remote = str(failure.error.__cause__)
    assert remote.startswith("in worker process ")
    assert "test_process_executor.py" in remote and 'raise ValueError("bad input 42")' in remote
    # Neither flow2's worker loop nor a raw "Traceback (most recent call last)".
    assert "_processes.py" not in remote and "_callback.py" not in remote
    assert "Traceback" not in remote


def test_a_base_exception_in_a_worker_fails_its_task_like_on_a_thread(
    pool: flow2.ProcessExecutor,
) -> None:
    task = flow2.CallbackTask("Odd", raise_unusual, executor=pool)
    result = run(flow2.Runner(display="none").execute(task))
    (failure,) = result.failures
    assert isinstance(failure.error, flow2.TaskExitError)
    assert isinstance(failure.error.__cause__, Unusual)
    assert "task 'Odd' raised" in str(failure.error)


def test_stop_iteration_in_a_worker_process_fails_its_task(pool: flow2.ProcessExecutor) -> None:
    task = flow2.CallbackTask("Stop", stop_iterating, executor=pool)
    result = run(flow2.Runner(display="none").execute(task))
    (failure,) = result.failures
    assert isinstance(failure.error, RuntimeError)
    assert "task 'Stop': its callback raised StopIteration" in str(failure.error)


@pytest.mark.parametrize(
    ("callback", "message"),
    [
        (lambda context: 1, r"task 'Lambda': its callback lambda cannot be pickled"),
        (return_lock, r"task 'Lambda': its result \(lock\) cannot be pickled to come back"),
        (raise_unpicklable, r"raised Unpicklable: holds a lock .* cannot be pickled back"),
    ],
    ids=["callback", "result", "exception"],
)
def test_what_cannot_be_pickled_is_named(
    pool: flow2.ProcessExecutor, callback: Any, message: str
) -> None:
    task = flow2.CallbackTask("Lambda", callback, executor=pool)
    with pytest.raises(flow2.ExecutorError, match=message):
        run(flow2.Runner(display="none").run(task))


def test_a_result_that_does_not_unpickle_here_is_an_error(pool: flow2.ProcessExecutor) -> None:
    task = flow2.CallbackTask("Odd", return_unpicklable_here, executor=pool)
    with pytest.raises(flow2.ExecutorError) as caught:
        run(flow2.Runner(display="none").run(task))
    assert "task 'Odd': what its worker process (pid " in str(caught.value)
    assert "cannot be unpickled (RuntimeError: this object only unpickles" in str(caught.value)


def test_closing_the_executor_kills_a_busy_worker(tmp_path: Path) -> None:
    async def scenario() -> BaseException:
        pool = flow2.ProcessExecutor(max_workers=1)
        task = flow2.CallbackTask("Hang", hang, executor=pool)
        running = asyncio.create_task(
            flow2.Runner(display="none").run(task, {"folder": str(tmp_path)}, raises=False)
        )
        await wait_for_path(tmp_path / "hanging")
        await pool.aclose()
        context = await running
        error: BaseException = context["hang"]
        return error

    error = run(scenario())
    assert isinstance(error, flow2.ExecutorError)
    assert "was killed by SIGKILL" in str(error)
    assert not is_alive(int((tmp_path / "hanging").read_text()))


def test_an_unpicklable_context_key_is_named(pool: flow2.ProcessExecutor) -> None:
    task = flow2.CallbackTask("Pid", report_pid, executor=pool)
    with pytest.raises(flow2.ExecutorError) as caught:
        run(flow2.Runner(display="none").run(task, {"lock": threading.Lock(), "fine": 1}))
    assert "task 'Pid': context key 'lock' (lock) cannot be pickled" in str(caught.value)
    assert "def report_pid(context, *, needed_key)" in str(caught.value)


def test_a_callback_the_worker_cannot_import_is_an_error(
    pool: flow2.ProcessExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module that exists only in this process: it pickles here, not there.
    module = types.ModuleType("only_here")
    exec("def work(context):\n    return 1\n", module.__dict__)
    monkeypatch.setitem(sys.modules, "only_here", module)
    task = flow2.CallbackTask("Work", module.work, executor=pool)
    with pytest.raises(flow2.ExecutorError, match=r"task 'Work': its worker process cannot"):
        run(flow2.Runner(display="none").run(task))


def test_max_workers_must_be_a_whole_number() -> None:
    with pytest.raises(flow2.ConfigurationError, match=r"max_workers=0 is not a whole number"):
        flow2.ProcessExecutor(max_workers=0)
    assert flow2.ProcessExecutor().max_workers == (os.cpu_count() or 1)


def test_an_executor_object_stays_warm_across_runs_in_its_owners_hands() -> None:
    async def scenario() -> tuple[int, int, list[int]]:
        async with flow2.ProcessExecutor(max_workers=1) as pool:
            first = await flow2.Runner(display="none").run(
                flow2.CallbackTask("Pid", report_pid, executor=pool)
            )
            second = await flow2.Runner(display="none").run(
                flow2.CallbackTask("Pid", report_pid, executor=pool)
            )
            return first["pid"], second["pid"], [worker.pid or 0 for worker in pool._idle]

    first, second, pids = run(scenario())
    assert first == second  # the same worker served both runs
    assert pids == [first]
    assert not is_alive(first)  # closed when its owner closed it


def test_an_executor_object_used_inline_is_closed_by_the_run() -> None:
    pool = flow2.ProcessExecutor(max_workers=1)
    context = run(
        flow2.Runner(display="none").run(flow2.CallbackTask("Pid", report_pid, executor=pool))
    )
    assert not is_alive(context["pid"])
    assert pool._idle == [] and pool._busy == set()
    # and it opens again for the next run
    again = run(
        flow2.Runner(display="none").run(flow2.CallbackTask("Pid", report_pid, executor=pool))
    )
    assert again["pid"] != context["pid"]


def test_the_process_executor_made_by_name_runs_and_is_closed(recorder: Recorder) -> None:
    task = flow2.CallbackTask("Pid", report_pid, executor="process")
    context = run(flow2.Runner(display="none").run(task))
    assert context["pid"] != os.getpid()
    assert not is_alive(context["pid"])


def test_a_worker_that_cannot_start_leaves_no_socket_open(monkeypatch: pytest.MonkeyPatch) -> None:
    from flow2._executors import _processes

    made: list[Any] = []
    real_socketpair = _processes.socket.socketpair

    def socketpair() -> Any:
        pair = real_socketpair()
        made.extend(pair)
        return pair

    class Refusing:
        def Process(self, **options: Any) -> Any:  # multiprocessing's name
            process = types.SimpleNamespace()

            def start() -> None:
                raise OSError(11, "Resource temporarily unavailable")

            process.start = start
            return process

    monkeypatch.setattr(_processes.socket, "socketpair", socketpair)
    with pytest.raises(OSError, match="temporarily unavailable"):
        _processes._Worker(Refusing())
    assert len(made) == 2 and all(end.fileno() == -1 for end in made)


def hold(context: dict[str, Any], *, folder: str) -> int:
    """Say that this call began (holding-1, then holding-2), then wait to be released."""
    marker = Path(folder) / "holding-1"
    try:
        with open(marker, "x"):
            pass
    except FileExistsError:
        (Path(folder) / "holding-2").touch()
    wait_for_file(Path(folder) / "release")
    return os.getpid()


@pytest.mark.parametrize("callback", [report_pid, fail])
def test_queue_time_is_not_work_time(
    pool: flow2.ProcessExecutor, tmp_path: Path, recorder: Recorder, callback: Any
) -> None:
    # Both workers hold a task until released; "Queued" waits for a worker
    # for at least a second, and that second is queue time, not its work.
    tree = flow2.ParallelTaskGroup(
        "Busy",
        flow2.CallbackTask("Hold 1", hold),
        flow2.CallbackTask("Hold 2", hold),
        flow2.CallbackTask("Queued", callback),
        executor=pool,
    )
    events = tmp_path / "events.jsonl"

    async def scenario() -> None:
        running = asyncio.create_task(
            flow2.Runner(
                display="none",
                listeners=[recorder],
                events=str(events),
                store=tmp_path / "store",
            ).run(tree, {"folder": str(tmp_path)}, raises=False)
        )
        await wait_for_path(tmp_path / "holding-2")
        await asyncio.sleep(1.0)  # the queue time to measure, not a race
        (tmp_path / "release").touch()
        await running

    try:
        run(scenario())
    finally:
        (tmp_path / "release").touch()
    end = next(
        event
        for event in recorder.events
        if isinstance(event, flow2.TaskEvent)
        and event.task.name == "Queued"
        and event.status in (S.SUCCEEDED, S.FAILED)
    )
    assert end.queued >= 1.0
    assert end.duration is not None and end.duration < end.queued
    holds = [
        event
        for event in recorder.events
        if isinstance(event, flow2.TaskEvent)
        and event.task.name.startswith("Hold")
        and event.status is S.SUCCEEDED
    ]
    assert [event.queued < 1.0 for event in holds] == [True, True]
    # The event file and the reports read from it have the wait too.
    lines = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    written = next(line for line in lines if line.get("task") == "Queued" and line["duration"])
    assert written["queued"] == pytest.approx(end.queued)
    record = flow2.read_events(events)
    (queued,) = (task for task in record.tasks if task.name == "Queued")
    assert queued.queued == pytest.approx(end.queued)
    assert queued.duration is not None and queued.duration < 1.0
    # So does the run store, and a report built from it.
    stored = flow2.read_store(store=tmp_path / "store")
    (kept,) = (task for task in stored.tasks if task.name == "Queued")
    assert kept.queued == pytest.approx(end.queued)
    assert kept.start == pytest.approx(queued.start, abs=1e-3)
    assert kept.duration == pytest.approx(queued.duration, abs=1e-3)


def test_what_a_worker_prints_comes_back_as_its_task_s_output_in_order(
    pool: flow2.ProcessExecutor,
) -> None:
    collector = OutputCollector()
    task = flow2.CallbackTask("Chatter", chatter, executor=pool)
    context = run(flow2.Runner(display="none", listeners=[collector]).run(task))
    assert context["chatter"] == "done"
    assert collector.pieces == [
        ("Chatter", "stdout", "to stdout\n"),
        ("Chatter", "stderr", "to stderr\n"),
        ("Chatter", "stdout", "no newline"),
    ]


def test_a_worker_that_exits_still_sends_what_was_printed_first(
    pool: flow2.ProcessExecutor,
) -> None:
    collector = OutputCollector()
    task = flow2.CallbackTask("Exit", chatter_then_exit, executor=pool)
    with pytest.raises(flow2.ExecutorError, match="exited with code 3"):
        run(flow2.Runner(display="none", listeners=[collector]).run(task))
    assert collector.pieces == [("Exit", "stdout", "last words\n")]


def test_a_run_without_a_display_logs_a_worker_s_prints_as_its_task_s_lines(
    pool: flow2.ProcessExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    task = flow2.CallbackTask("Chatter", chatter, executor=pool)
    with caplog.at_level(logging.INFO, logger="flow2.tasks"):
        run(flow2.Runner(display="none").run(task))
    lines = [
        (record.task, record.stream, record.getMessage())  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "flow2.tasks"
    ]
    assert lines == [
        ("Chatter", "stdout", "to stdout"),
        ("Chatter", "stderr", "to stderr"),
        ("Chatter", "stdout", "no newline"),
    ]
