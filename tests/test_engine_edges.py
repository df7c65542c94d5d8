"""Less travelled paths of the engine: tasks made on the fly, bare hooks, bounded cancels."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import flow2
from tests.conftest import Recorder, run

S = flow2.Status


def test_a_task_created_while_running_joins_the_run_under_its_creator(recorder: Recorder) -> None:
    async def child(context: dict[str, Any]) -> str:
        return "made on the fly"

    class Spawner(flow2.Task):
        async def run(self, context: dict[str, Any]) -> str:
            await flow2.CallbackTask("Child", child).process(context)
            return "spawned"

    tree = flow2.SerialTaskGroup("Root", Spawner("Spawner"))
    context = run(flow2.Runner(display="none", listeners=[recorder]).run(tree))
    assert context == {"child": "made on the fly", "spawner": "spawned"}
    child_events = [
        event
        for event in recorder.events
        if isinstance(event, flow2.TaskEvent) and event.task.name == "Child"
    ]
    assert [event.status for event in child_events] == [S.RUNNING, S.SUCCEEDED]
    assert child_events[0].path == ("Root", "Spawner", "Child")


class InlineExecutor:
    """An executor of our own: runs sync work inline and remembers for whom."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.started = self.closed = 0

    async def start(self) -> None:
        self.started += 1

    async def call(self, task: flow2.Task, function: Any, context: dict[str, Any]) -> Any:
        self.calls.append(task.name)
        return function(context)

    async def aclose(self) -> None:
        self.closed += 1


def test_an_executor_object_is_started_inherited_and_closed_by_the_run() -> None:
    executor = InlineExecutor()
    assert isinstance(executor, flow2.Executor)

    def work(context: dict[str, Any]) -> str:
        return "inline"

    class Spawner(flow2.Task):
        async def run(self, context: dict[str, Any]) -> Any:
            return (await flow2.CallbackTask("Inner", work).process(context))["inner"]

    tree = flow2.SerialTaskGroup(
        "Root",
        Spawner("Spawner"),
        flow2.CallbackTask("Own", work, executor="thread"),
        executor=executor,
    )
    context = run(flow2.Runner(display="none").run(tree))
    assert context == {"inner": "inline", "spawner": "inline", "own": "inline"}
    assert executor.calls == ["Inner"]  # "Own" chose the thread pool
    assert (executor.started, executor.closed) == (1, 1)  # each start paired with a close


def test_hooks_called_outside_a_run_do_nothing_but_their_job() -> None:
    task = flow2.Task("Alone")
    error = ValueError("x")

    async def main() -> None:
        await task.start({})
        await task.success("result", {})
        await task.exception(error, {}, raises=False)
        with pytest.raises(ValueError) as caught:
            await task.exception(error, {})
        assert caught.value is error

    run(main())


def test_cancelling_a_bounded_parallel_group_cancels_running_and_waiting(
    recorder: Recorder,
) -> None:
    started = asyncio.Event()

    async def hang(context: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(60)

    async def main() -> None:
        tree = flow2.ParallelTaskGroup(
            "P", *(flow2.CallbackTask(f"T{index}", hang) for index in range(5)), max_parallel=2
        )
        job = asyncio.create_task(flow2.Runner(display="none", listeners=[recorder]).run(tree))
        await started.wait()
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    run(main())
    assert [recorder.final(f"T{index}") for index in range(5)] == [S.CANCELLED] * 5
    assert recorder.statuses("T4") == [S.CANCELLED]  # never started
    assert recorder.final("P") is S.CANCELLED


def test_a_task_object_can_run_again_in_a_new_run(recorder: Recorder) -> None:
    calls = 0

    async def count(context: dict[str, Any]) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("first run fails")
        return calls

    tree = flow2.ParallelTaskGroup("P", flow2.CallbackTask("Count", count))
    runner = flow2.Runner(display="none", listeners=[recorder])
    first = run(runner.run(tree))
    assert isinstance(first["count"], RuntimeError)
    assert recorder.final("P") is S.PARTIAL
    assert run(runner.run(tree)) == {"count": 2}
    assert recorder.final("P") is S.SUCCEEDED  # the earlier failure does not linger


def test_work_raising_cancelled_error_unasked_is_a_failure_not_a_cancellation(
    recorder: Recorder,
) -> None:
    async def awaits_a_cancelled_future(context: dict[str, Any]) -> None:
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    async def fine(context: dict[str, Any]) -> str:
        return "fine"

    tree = flow2.ParallelTaskGroup(
        "P",
        flow2.CallbackTask("Stray", awaits_a_cancelled_future),
        flow2.CallbackTask("Fine", fine),
    )
    context = run(flow2.Runner(display="none", listeners=[recorder]).run(tree))
    assert isinstance(context["stray"], flow2.StrayCancellationError)
    assert "task 'Stray'" in str(context["stray"])
    assert isinstance(context["stray"].__cause__, asyncio.CancelledError)
    assert recorder.final("Stray") is S.FAILED
    assert recorder.final("P") is S.PARTIAL
    end = recorder.events[-1]
    assert isinstance(end, flow2.RunEvent) and end.status is S.PARTIAL


class _FailsToClose:
    """An executor whose aclose() raises: the run still ends and reports it."""

    def __init__(self) -> None:
        self.closed = 0

    async def start(self) -> None:
        pass

    async def call(self, task: flow2.Task, function: Any, context: dict[str, Any]) -> Any:
        return function(context)

    async def aclose(self) -> None:
        self.closed += 1
        raise OSError("cannot close")


def test_an_executor_that_fails_to_close_is_logged_and_the_run_ends(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    executor = _FailsToClose()
    tree = flow2.SerialTaskGroup(
        "S", flow2.CallbackTask("Work", lambda context: 7, executor=executor)
    )
    context = run(flow2.Runner(display="none", listeners=[recorder]).run(tree))
    assert context == {"work": 7}
    assert executor.closed == 1
    assert "closing executor" in caplog.text and "cannot close" in caplog.text
    end = recorder.events[-1]
    assert isinstance(end, flow2.RunEvent) and end.status is S.SUCCEEDED


def test_an_unknown_executor_named_by_a_task_made_on_the_fly_fails_that_task(
    recorder: Recorder,
) -> None:
    async def spawn(context: dict[str, Any]) -> None:
        await flow2.CallbackTask("Remote", lambda c: 1, executor="warp").process(context)

    tree = flow2.SerialTaskGroup("S", flow2.CallbackTask("Spawn", spawn))
    context = run(flow2.Runner(display="none", listeners=[recorder]).run(tree, raises=False))
    error = context["remote"]
    assert isinstance(error, flow2.DefinitionError)
    assert (error.task, error.option) == ("Remote", "executor")
    assert "executor='warp' is not a known executor" in str(error)
    assert recorder.final("Remote") is S.FAILED
