"""One tree, many runs: each run keeps its own task records and reports only its own outcomes."""

from __future__ import annotations

import asyncio
import io
import threading
from typing import Any

import pytest

import flow2
from tests.conftest import Recorder, run

S = flow2.Status


def _outcomes(recorder: Recorder) -> list[tuple[tuple[str, ...], str, int]]:
    """Every task event of a run as (path, status, failed_count), in order."""
    return [
        (event.path, event.status.value, event.failed_count)
        for event in recorder.events
        if isinstance(event, flow2.TaskEvent)
    ]


def _run_end(recorder: Recorder) -> flow2.Status:
    ends = [e for e in recorder.events if isinstance(e, flow2.RunEvent) and e.status.is_finished]
    assert len(ends) == 1
    return ends[0].status


def _tree(gate: dict[str, asyncio.Event], should_fail: dict[str, bool]) -> flow2.Task:
    """A tree whose leaf 'Flaky' fails in the runs whose context says so."""

    async def flaky(context: dict[str, Any]) -> str:
        await gate[context["run"]].wait()
        if should_fail[context["run"]]:
            raise RuntimeError(f"failed in {context['run']}")
        return "ok"

    async def steady(context: dict[str, Any]) -> str:
        return context["run"]

    return flow2.SerialTaskGroup(
        "Root",
        flow2.ParallelTaskGroup(
            "Lanes", flow2.CallbackTask("Flaky", flaky), flow2.CallbackTask("Steady", steady)
        ),
        flow2.CallbackTask("After", steady),
    )


def test_the_same_tree_runs_twice_at_once_and_each_run_reports_its_own_outcome() -> None:
    async def main() -> tuple[Recorder, Recorder, dict[str, Any], dict[str, Any]]:
        gate = {"a": asyncio.Event(), "b": asyncio.Event()}
        tree = _tree(gate, {"a": True, "b": False})
        failing, passing = Recorder(), Recorder()
        first = asyncio.create_task(
            flow2.Runner(display="none", listeners=[failing]).run(tree, {"run": "a"})
        )
        second = asyncio.create_task(
            flow2.Runner(display="none", listeners=[passing]).run(tree, {"run": "b"})
        )
        await asyncio.sleep(0)
        gate["a"].set()  # run A fails first, while run B is still running
        context_a = await first
        gate["b"].set()
        context_b = await second
        return failing, passing, context_a, context_b

    failing, passing, context_a, context_b = run(main())
    assert isinstance(context_a["flaky"], RuntimeError)
    assert context_b == {"run": "b", "flaky": "ok", "steady": "b", "after": "b"}
    assert _run_end(failing) is S.PARTIAL
    assert _run_end(passing) is S.SUCCEEDED
    assert passing.final("Lanes") is S.SUCCEEDED
    assert passing.final("Root") is S.SUCCEEDED
    assert failing.final("Lanes") is S.PARTIAL
    # Run B's events are exactly those of the same tree run alone.
    alone = Recorder()
    gate = {"b": asyncio.Event()}
    gate["b"].set()
    run(
        flow2.Runner(display="none", listeners=[alone]).run(_tree(gate, {"b": False}), {"run": "b"})
    )
    assert sorted(_outcomes(passing)) == sorted(_outcomes(alone))


def test_task_run_twice_with_gather_keeps_each_context() -> None:
    attempts = 0

    async def count(context: dict[str, Any]) -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)
        if context["fail"]:
            raise ValueError("boom")
        return attempts

    tree = flow2.ParallelTaskGroup("P", flow2.CallbackTask("Count", count))

    async def main() -> list[Any]:
        return await asyncio.gather(
            flow2.Runner(display="none").run(tree, {"fail": True}),
            flow2.Runner(display="none").run(tree, {"fail": False}),
        )

    bad, good = run(main())
    assert isinstance(bad["count"], ValueError)
    assert isinstance(good["count"], int)


def test_runs_from_two_threads_with_two_loops() -> None:
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, flow2.Status] = {}

    def work(context: dict[str, Any]) -> str:
        barrier.wait()  # both runs are inside the same task object at once
        if context["name"] == "bad":
            raise RuntimeError("bad run")
        return "fine"

    tree = flow2.ParallelTaskGroup("P", flow2.CallbackTask("Work", work))

    def in_thread(name: str) -> None:
        recorder = Recorder()
        asyncio.run(flow2.Runner(display="none", listeners=[recorder]).run(tree, {"name": name}))
        results[name] = _run_end(recorder)

    threads = [threading.Thread(target=in_thread, args=(name,)) for name in ("bad", "good")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {"bad": S.PARTIAL, "good": S.SUCCEEDED}


def test_a_run_after_a_cancelled_run_starts_clean(recorder: Recorder) -> None:
    started = asyncio.Event

    async def main() -> None:
        entered = started()

        async def hang(context: dict[str, Any]) -> None:
            if context.get("hang"):
                entered.set()
                await asyncio.Event().wait()

        tree = flow2.SerialTaskGroup("S", flow2.CallbackTask("Hang", hang), flow2.Task("Never"))
        first = asyncio.create_task(flow2.Runner(display="none").run(tree, {"hang": True}))
        await entered.wait()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        tree.tasks[1] = flow2.CallbackTask("After", lambda context: "done")
        await flow2.Runner(display="none", listeners=[recorder]).run(tree)

    run(main())
    assert recorder.final("Hang") is S.SUCCEEDED
    assert recorder.final("After") is S.SUCCEEDED
    assert _run_end(recorder) is S.SUCCEEDED


def test_event_records_belong_to_their_run(recorder: Recorder) -> None:
    tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Leaf", lambda context: 1))
    run(flow2.Runner(display="none", listeners=[recorder]).run(tree))
    leaf_events = [
        e for e in recorder.events if isinstance(e, flow2.TaskEvent) and e.task.name == "Leaf"
    ]
    record = leaf_events[-1].record
    assert isinstance(record, flow2.TaskRun)
    assert record.run.record_of(tree.tasks[0]) is record
    assert record.parent is record.run.root_record
    assert record.path == ("Root", "Leaf")
    assert record.status is S.SUCCEEDED
    assert not hasattr(tree.tasks[0], "_status")  # the definition holds no run state


def test_failures_inside_work_made_on_the_fly_count_for_the_parents(recorder: Recorder) -> None:
    async def spawn(context: dict[str, Any]) -> str:
        inner = flow2.ParallelTaskGroup("Inner", flow2.CallbackTask("Boom", lambda c: 1 / 0))
        await inner.process(context)
        return "spawned"

    tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Spawner", spawn))
    context = run(flow2.Runner(display="none", listeners=[recorder]).run(tree))
    assert isinstance(context["boom"], ZeroDivisionError)
    boom = [e for e in recorder.events if isinstance(e, flow2.TaskEvent) and e.task.name == "Boom"]
    assert boom[-1].path == ("Root", "Spawner", "Inner", "Boom")
    assert recorder.final("Spawner") is S.PARTIAL
    assert recorder.final("Root") is S.PARTIAL
    assert _run_end(recorder) is S.PARTIAL


def test_tasks_made_on_the_fly_belong_to_their_run_only() -> None:
    made: list[flow2.Task] = []

    async def spawn(context: dict[str, Any]) -> None:
        task = flow2.CallbackTask(f"Child {context['n']}", lambda c: c["n"])
        made.append(task)
        await task.process(context)

    tree = flow2.ParallelTaskGroup("P", flow2.CallbackTask("Spawn", spawn))
    recorders = [Recorder(), Recorder()]

    async def main() -> None:
        await asyncio.gather(
            *(
                flow2.Runner(display="none", listeners=[recorder]).run(tree, {"n": n})
                for n, recorder in enumerate(recorders)
            )
        )

    run(main())
    for n, recorder in enumerate(recorders):
        names = {e.task.name for e in recorder.events if isinstance(e, flow2.TaskEvent)}
        assert names == {"P", "Spawn", f"Child {n}"}


class _Hooks(flow2.Task):
    """Overrides every hook, some calling super() and some not."""

    def __init__(self, name: str, calls: list[str], *, fail: bool = False) -> None:
        super().__init__(name)
        self.calls = calls
        self.fail = fail

    async def start(self, context: dict[str, Any]) -> None:
        self.calls.append("start")
        await super().start(context)

    async def run(self, context: dict[str, Any]) -> str:
        self.calls.append("run")
        if self.fail:
            raise RuntimeError("hook failure")
        return "ran"

    async def success(self, result: Any, context: dict[str, Any]) -> None:
        self.calls.append(f"success {result}")  # no super(): no SUCCEEDED event

    async def exception(
        self, exception: BaseException, context: dict[str, Any], raises: bool = True
    ) -> None:
        self.calls.append("exception")
        await super().exception(exception, context, raises=False)


def test_subclasses_overriding_hooks_keep_working(recorder: Recorder) -> None:
    calls: list[str] = []
    tree = flow2.ParallelTaskGroup("P", _Hooks("Good", calls), _Hooks("Bad", calls, fail=True))
    context = run(flow2.Runner(display="none", listeners=[recorder]).run(tree))
    assert context["good"] == "ran"
    assert isinstance(context["bad"], RuntimeError)
    assert sorted(calls) == sorted(["start", "run", "success ran", "start", "run", "exception"])
    assert recorder.statuses("Good") == [S.RUNNING]
    assert recorder.statuses("Bad") == [S.RUNNING, S.FAILED]
    assert recorder.final("P") is S.PARTIAL


class _Bare(flow2.Task):
    """A subclass that never calls super().__init__."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, context: dict[str, Any]) -> str:
        return "bare"


def test_subclass_without_super_init_runs(recorder: Recorder) -> None:
    tree = flow2.SerialTaskGroup("S", _Bare("Bare Task"))
    context = run(flow2.Runner(display="none", listeners=[recorder]).run(tree))
    assert context["bare_task"] == "bare"
    assert recorder.final("Bare Task") is S.SUCCEEDED


def test_subclass_without_a_name_gets_an_error_naming_the_fix() -> None:
    class Nameless(flow2.Task):
        def __init__(self) -> None:
            pass

    with pytest.raises(flow2.DefinitionError, match=r"super\(\)\.__init__"):
        run(flow2.Runner(display="none").run(Nameless()))


def test_process_on_the_root_and_run_give_the_same_outcome() -> None:
    recorders = []
    for start in ("run", "process", "runner"):
        recorder = Recorder()  # the default runs print instead; contexts are compared
        tree = flow2.ParallelTaskGroup(
            "P", flow2.CallbackTask("A", lambda c: 1), flow2.CallbackTask("B", lambda c: 1 / 0)
        )
        runner = flow2.Runner(display="none", listeners=[recorder])
        if start == "runner":
            context = run(runner.run(tree))
        elif start == "run":
            context = run(tree.run())
        else:
            context = run(tree.process())
        recorders.append(context)
    assert all(context["a"] == 1 for context in recorders)
    assert all(isinstance(context["b"], ZeroDivisionError) for context in recorders)


def test_runner_rejects_a_non_task_and_a_non_dict_context() -> None:
    with pytest.raises(flow2.TaskTypeError, match="needs a flow2.Task"):
        run(flow2.Runner(display="none").run("not a task"))  # type: ignore[arg-type]
    with pytest.raises(flow2.TaskTypeError, match="must be a dict") as caught:
        run(flow2.Runner(display="none").run(flow2.Task("T"), ["x"]))  # type: ignore[arg-type]
    assert caught.value.task == "T"


def test_console_output_of_two_runs_is_separate() -> None:
    streams = [io.StringIO(), io.StringIO()]
    tree = flow2.ParallelTaskGroup("P", flow2.CallbackTask("Only", lambda c: c["n"]))

    async def main() -> None:
        await asyncio.gather(
            *(
                flow2.Runner(display="plain", stream=stream, color=False).run(tree, {"n": n})
                for n, stream in enumerate(streams)
            )
        )

    run(main())
    for stream in streams:
        assert stream.getvalue().count("SUCCESS   Only") == 1
