"""Failures: serial stops, parallel policies, raises=False, timeouts, retries."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import pytest

import flow2
from tests.conftest import Recorder, run

S = flow2.Status


def ok(name: str, value: object = None) -> flow2.CallbackTask:
    async def callback(context: dict[str, Any]) -> object:
        return value if value is not None else name

    return flow2.CallbackTask(name, callback)


def failing(name: str, error: BaseException) -> flow2.CallbackTask:
    async def callback(context: dict[str, Any]) -> None:
        raise error

    return flow2.CallbackTask(name, callback)


def runner(recorder: Recorder, stream: io.StringIO | None = None) -> flow2.Runner:
    return flow2.Runner(display="plain", stream=stream or io.StringIO(), listeners=[recorder])


# Serial groups


def test_serial_group_stops_at_first_failure_and_raises_the_same_exception(
    recorder: Recorder,
) -> None:
    error = ValueError("no such file")
    tree = flow2.SerialTaskGroup(
        "Release",
        ok("Lint"),
        failing("Build", error),
        ok("Publish"),
        flow2.SerialTaskGroup("Announce", ok("Mail"), ok("Chat")),
    )
    with pytest.raises(ValueError) as caught:
        run(runner(recorder).run(tree))
    assert caught.value is error
    assert recorder.final("Lint") is S.SUCCEEDED
    assert recorder.final("Build") is S.FAILED
    for skipped in ("Publish", "Announce", "Mail", "Chat"):
        assert recorder.statuses(skipped) == [S.SKIPPED], skipped
    assert recorder.final("Release") is S.FAILED


def test_serial_failure_inside_a_group_is_never_reported_as_success() -> None:
    stream = io.StringIO()
    tree = flow2.SerialTaskGroup("Outer", flow2.SerialTaskGroup("Inner", failing("X", OSError())))
    context = run(flow2.Runner(display="plain", stream=stream).run(tree, raises=False))
    lines = stream.getvalue().splitlines()
    assert not any(line.startswith("SUCCESS") for line in lines), lines
    assert [line.split()[0] for line in lines[:6]] == [
        "STARTING",
        "STARTING",
        "STARTING",
        "FAILED",
        "FAILED",
        "FAILED",
    ]
    assert isinstance(context["x"], OSError)


def test_process_raises_false_returns_context_with_the_exception(recorder: Recorder) -> None:
    error = KeyError("k")
    tree = flow2.SerialTaskGroup("S", ok("A"), failing("B", error), ok("C"))
    context = run(flow2.Runner(display="none", listeners=[recorder]).run(tree, raises=False))
    assert context["a"] == "A"
    assert context["b"] is error
    assert "c" not in context
    assert recorder.final("C") is S.SKIPPED


def test_process_raises_false_on_the_root_never_raises() -> None:
    tree = flow2.SerialTaskGroup("S", failing("B", RuntimeError("x")))
    context = run(tree.process({}, raises=False))
    assert isinstance(context["b"], RuntimeError)


# Parallel groups


def test_parallel_default_runs_everything_and_reports_partial(recorder: Recorder) -> None:
    stream = io.StringIO()
    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.ParallelTaskGroup(
            "Checks", failing("A", ValueError("a")), ok("B"), failing("C", ValueError("c"))
        ),
        ok("After"),
    )
    context = run(runner(recorder, stream).run(tree))
    assert context["b"] == "B" and context["after"] == "After"
    assert isinstance(context["a"], ValueError) and isinstance(context["c"], ValueError)
    assert recorder.final("Checks") is S.PARTIAL
    assert recorder.final("Root") is S.PARTIAL
    output = stream.getvalue()
    assert "PARTIAL   Checks" in output and "2 tasks failed inside" in output
    assert "SUCCESS   Checks" not in output and "SUCCESS   Root" not in output


def test_parallel_on_error_raise_runs_all_then_raises_group(recorder: Recorder) -> None:
    first, second = ValueError("a"), TypeError("c")
    tree = flow2.ParallelTaskGroup(
        "P", failing("A", first), ok("B"), failing("C", second), on_error="raise"
    )
    with pytest.raises(ExceptionGroup) as caught:
        run(runner(recorder).run(tree))
    assert set(map(id, caught.value.exceptions)) == {id(first), id(second)}
    assert "2 of 3 tasks in group 'P' failed" in str(caught.value)
    assert recorder.final("B") is S.SUCCEEDED
    assert recorder.final("P") is S.FAILED


def test_parallel_on_error_cancel_cancels_running_siblings(recorder: Recorder) -> None:
    started = asyncio.Event()
    finished: list[str] = []

    async def slow(context: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(60)
        finished.append("slow")

    async def fail_once_slow_started(context: dict[str, Any]) -> None:
        await started.wait()
        raise RuntimeError("bad")

    tree = flow2.ParallelTaskGroup(
        "P",
        flow2.CallbackTask("Slow", slow),
        flow2.CallbackTask("Fail", fail_once_slow_started),
        on_error="cancel",
    )
    with pytest.raises(ExceptionGroup) as caught:
        run(runner(recorder).run(tree))
    assert [type(error) for error in caught.value.exceptions] == [RuntimeError]
    assert recorder.final("Slow") is S.CANCELLED
    assert recorder.final("Fail") is S.FAILED
    assert finished == []


def test_max_parallel_caps_concurrency() -> None:
    running = 0
    peak = 0

    async def work(context: dict[str, Any]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(3):
            await asyncio.sleep(0)
        running -= 1

    tasks = [flow2.CallbackTask(f"T{index}", work) for index in range(20)]
    context = run(flow2.ParallelTaskGroup("P", *tasks, max_parallel=3).run())
    assert peak == 3
    assert len(context) == 20


def test_max_parallel_with_cancel_skips_the_rest(recorder: Recorder) -> None:
    # Several workers: the first failure cancels the running sibling and no
    # waiting child starts; without the cancel policy "Slow" would finish and
    # T0…T4 would run.
    slow_started = asyncio.Event

    async def main() -> None:
        started = slow_started()

        async def slow(context: dict[str, Any]) -> None:
            started.set()
            await asyncio.sleep(5)

        async def bad(context: dict[str, Any]) -> None:
            await started.wait()
            raise RuntimeError("x")

        tasks = [
            flow2.CallbackTask("Slow", slow),
            flow2.CallbackTask("Bad", bad),
            *(ok(f"T{index}") for index in range(5)),
        ]
        tree = flow2.ParallelTaskGroup("P", *tasks, max_parallel=2, on_error="cancel")
        with pytest.raises(ExceptionGroup) as caught:
            await runner(recorder).run(tree)
        assert [type(error) for error in caught.value.exceptions] == [RuntimeError]

    run(main())
    assert recorder.final("Slow") is S.CANCELLED
    for index in range(5):
        assert recorder.statuses(f"T{index}") == [S.SKIPPED]
    skipped = [e for e in recorder.events if isinstance(e, flow2.TaskEvent) and e.task.name == "T0"]
    assert skipped[0].reason is not None and "'Bad' failed" in skipped[0].reason


def test_max_parallel_continue_runs_everything(recorder: Recorder) -> None:
    tasks = [failing("Bad", RuntimeError("x")), *(ok(f"T{index}") for index in range(5))]
    tree = flow2.ParallelTaskGroup("P", *tasks, max_parallel=2)
    context = run(runner(recorder).run(tree))
    assert [context[f"t{index}"] for index in range(5)] == [f"T{index}" for index in range(5)]
    assert recorder.final("P") is S.PARTIAL


@pytest.mark.parametrize("error", [SystemExit(0), KeyboardInterrupt(), GeneratorExit()])
@pytest.mark.parametrize("max_parallel", [None, 1])
def test_task_raising_system_exit_or_keyboard_interrupt_fails_it(
    recorder: Recorder, error: BaseException, max_parallel: int | None
) -> None:
    # Only a real signal interrupts a run; the task's own code raising one of
    # these fails that task, and its siblings still run.
    def leave(context: dict[str, Any]) -> None:
        raise error

    tree = flow2.ParallelTaskGroup(
        "G", flow2.CallbackTask("K", leave), ok("Other"), max_parallel=max_parallel
    )
    context = run(runner(recorder).run(tree))
    assert isinstance(context["k"], flow2.TaskExitError)
    assert context["k"].__cause__ is error
    assert type(error).__name__ in str(context["k"])
    assert context["other"] == "Other"
    assert recorder.final("K") is S.FAILED
    assert recorder.final("G") is S.PARTIAL


def test_serial_group_fails_with_task_exit_error_and_skips_the_rest(recorder: Recorder) -> None:
    def leave(context: dict[str, Any]) -> None:
        raise SystemExit(3)

    tree = flow2.SerialTaskGroup("S", flow2.CallbackTask("Exit", leave), ok("After"))
    with pytest.raises(flow2.TaskExitError) as caught:
        run(runner(recorder).run(tree))
    assert caught.value.task == "Exit"
    assert recorder.statuses("After") == [S.SKIPPED]


# Timeouts and retries


def test_timeout_fails_with_timeout_error_and_cancels_the_work(recorder: Recorder) -> None:
    cancelled = []

    async def hang(context: dict[str, Any]) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    tree = flow2.SerialTaskGroup("S", flow2.CallbackTask("Hang", hang, timeout=0.05))
    with pytest.raises(TimeoutError) as caught:
        run(runner(recorder).run(tree))
    assert isinstance(caught.value, flow2.TaskTimeoutError)
    assert "task 'Hang' timed out after 0.05s" in str(caught.value)
    assert cancelled == [True]
    assert recorder.final("Hang") is S.FAILED


@pytest.mark.parametrize("ending", ["returns", "raises"])
def test_a_timeout_the_work_swallows_still_fails_the_task(recorder: Recorder, ending: str) -> None:
    async def swallow(context: dict[str, Any]) -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            if ending == "raises":
                raise RuntimeError("cleaning up failed") from None
        return "finished anyway"

    task = flow2.CallbackTask("Swallow", swallow, timeout=0.05)
    result = run(runner(recorder).execute(task))
    assert result.exit_code == 1
    assert recorder.final("Swallow") is S.FAILED
    (failure,) = result.failures
    assert isinstance(failure.error, flow2.TaskTimeoutError)
    assert "task 'Swallow' timed out after 0.05s" in str(failure.error)


def test_work_that_swallows_every_cancellation_fails_in_time(recorder: Recorder) -> None:
    # Without a task of its own for the work, the run waits on this loop for ever.
    stopped = []

    async def stubborn(context: dict[str, Any]) -> str:
        try:
            while True:
                try:
                    await asyncio.sleep(0.01)
                except asyncio.CancelledError:
                    pass
        finally:
            stopped.append(True)

    async def after(context: dict[str, Any]) -> str:
        return "ran"

    tree = flow2.ParallelTaskGroup(
        "P",
        flow2.CallbackTask("Stubborn", stubborn, timeout=0.05),
        flow2.CallbackTask("After", after),
    )
    runner = flow2.Runner(display="none", listeners=[recorder], grace=0.2)
    result = run(runner.execute(tree))
    assert result.exit_code == 1
    assert recorder.final("Stubborn") is S.FAILED
    assert recorder.final("After") is S.SUCCEEDED
    assert S.SUCCEEDED not in recorder.statuses("Stubborn")
    (failure,) = result.failures
    assert isinstance(failure.error, flow2.TaskTimeoutError)
    assert failure.error.left_running
    assert "ignored the cancellation" in str(failure.error)
    # Failed once its grace period was over, long before any real wait.
    assert result.duration < 30
    # Stopped by the run's end: asyncio.run() above returned, and the loop ended.
    assert stopped == [True]


def test_a_swallowed_timeout_is_retried_like_any_timeout(recorder: Recorder) -> None:
    attempts = []

    async def swallow_once(context: dict[str, Any]) -> str:
        attempts.append(True)
        if len(attempts) == 1:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                return "too late"
        return "in time"

    task = flow2.CallbackTask("Swallow", swallow_once, timeout=0.5, retries=1, retry_delay=0)
    result = run(runner(recorder).execute(task))
    assert result.exit_code == 0
    assert result.context["swallow"] == "in time"
    assert S.RETRYING in recorder.statuses("Swallow")


def test_a_returned_exception_object_is_a_result(recorder: Recorder) -> None:
    async def give(context: dict[str, Any]) -> ValueError:
        return ValueError("kept as data")

    result = run(runner(recorder).execute(flow2.CallbackTask("Give", give)))
    assert result.exit_code == 0
    assert recorder.final("Give") is S.SUCCEEDED
    assert isinstance(result.context["give"], ValueError)


def test_timeout_on_a_group_cancels_its_children(recorder: Recorder) -> None:
    async def hang(context: dict[str, Any]) -> None:
        await asyncio.sleep(60)

    tree = flow2.ParallelTaskGroup(
        "P", flow2.CallbackTask("A", hang), flow2.CallbackTask("B", hang), timeout=0.05
    )
    with pytest.raises(flow2.TaskTimeoutError, match="'P'"):
        run(runner(recorder).run(tree))
    assert recorder.final("A") is S.CANCELLED and recorder.final("B") is S.CANCELLED
    assert recorder.final("P") is S.FAILED


def test_a_timeout_error_raised_by_the_work_itself_is_not_relabelled() -> None:
    error = TimeoutError("remote said so")

    async def raise_timeout(context: dict[str, Any]) -> None:
        raise error

    task = flow2.CallbackTask("T", raise_timeout, timeout=30)
    with pytest.raises(TimeoutError) as caught:
        run(flow2.Runner(display="none").run(task))
    assert caught.value is error


def test_retries_with_exponential_backoff_are_logged(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    attempts = 0

    async def flaky(context: dict[str, Any]) -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError(f"try {attempts}")
        return "ok"

    stream = io.StringIO()
    task = flow2.CallbackTask("Flaky", flaky, retries=3, retry_delay=0.01)
    with caplog.at_level(logging.WARNING, logger="flow2"):
        context = run(runner(recorder, stream).run(task))
    assert context["flaky"] == "ok" and attempts == 3
    retries = [event for event in recorder.events if event.status is S.RETRYING]
    assert [event.attempt for event in retries] == [1, 2]  # type: ignore[union-attr]
    assert [event.retry_delay for event in retries] == [0.01, 0.02]  # type: ignore[union-attr]
    assert "RETRYING  Flaky: ConnectionError: try 1 (attempt 1 of 4, next in 0.01s)" in (
        stream.getvalue()
    )
    # flow2's own records (asyncio's debug mode may warn about a slow step
    # on a loaded machine).
    warnings = [
        record
        for record in caplog.records
        if record.levelno == logging.WARNING and record.name == "flow2"
    ]
    assert len(warnings) == 2 and all(record.task == "Flaky" for record in warnings)  # type: ignore[attr-defined]


def test_retries_exhausted_fail_with_the_last_error(recorder: Recorder) -> None:
    errors = [ValueError("1"), ValueError("2")]

    async def always(context: dict[str, Any]) -> None:
        raise errors.pop(0)

    task = flow2.CallbackTask("Always", always, retries=1, retry_delay=0)
    with pytest.raises(ValueError, match="2"):
        run(runner(recorder).run(task))
    assert recorder.statuses("Always") == [S.RUNNING, S.RETRYING, S.FAILED]


def test_each_attempt_gets_its_own_timeout() -> None:
    attempts = 0

    async def slow_then_fast(context: dict[str, Any]) -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await asyncio.sleep(60)
        return "fast"

    task = flow2.CallbackTask("T", slow_then_fast, timeout=0.05, retries=1, retry_delay=0)
    assert run(flow2.Runner(display="none").run(task)) == {"t": "fast"}
