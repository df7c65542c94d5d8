"""needs= and when=: tasks waiting for the results they name, checks before the run, conditions."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

import flow2

from .conftest import Recorder, run


def runner(recorder: Recorder, **options: Any) -> flow2.Runner:
    return flow2.Runner(display="plain", stream=io.StringIO(), listeners=[recorder], **options)


def times(recorder: Recorder, name: str, status: flow2.Status) -> float:
    return next(
        event.time
        for event in recorder.events
        if isinstance(event, flow2.TaskEvent) and event.task.name == name and event.status is status
    )


def reason(recorder: Recorder, name: str) -> str | None:
    return next(
        event.reason
        for event in recorder.events
        if isinstance(event, flow2.TaskEvent)
        and event.task.name == name
        and event.status is flow2.Status.SKIPPED
    )


async def something(context: dict[str, Any]) -> str:
    return "something"


class YourTask(flow2.Task):
    """The documentation's Task 3, made to await before it returns."""

    async def run(self, context: dict[str, Any]) -> str:
        await asyncio.sleep(0.05)
        return f"hello after {context['task_1']}"


async def upper_keyword(context: dict[str, Any], *, task_3: str) -> str:
    return task_3.upper()


async def upper_context(context: dict[str, Any]) -> str:
    return str(context["task_3"]).upper()


@pytest.mark.parametrize(
    "task_4",
    [
        lambda: flow2.CallbackTask("Task 4", upper_keyword),
        lambda: flow2.CallbackTask("Task 4", upper_context, needs="task_3"),
    ],
    ids=["keyword-only parameter", "needs="],
)
def test_the_documented_example_keeps_its_promise(task_4: Any, recorder: Recorder) -> None:
    task = flow2.SerialTaskGroup(
        "Your workflow",
        flow2.ParallelTaskGroup(
            "Parallel task",
            flow2.CallbackTask("Task 1", something),
            flow2.CallbackTask("Task 2", something),
        ),
        flow2.ParallelTaskGroup("Parallel task", YourTask("Task 3"), task_4()),
    )
    context = run(runner(recorder).run(task))
    assert context["task_4"] == "HELLO AFTER SOMETHING"
    done = times(recorder, "Task 3", flow2.Status.SUCCEEDED)
    assert times(recorder, "Task 4", flow2.Status.RUNNING) >= done


def test_without_the_need_the_example_is_a_race(recorder: Recorder) -> None:
    # What the need fixes: Task 4 starts before Task 3 finished.
    task = flow2.ParallelTaskGroup(
        "Parallel task",
        flow2.CallbackTask("Task 1", something),
        YourTask("Task 3"),
        flow2.CallbackTask("Task 4", upper_context),
    )
    context = run(runner(recorder).run(task, {"task_1": "x"}, raises=False))
    assert isinstance(context["task_4"], KeyError)


def _build_and_deploy(deploy: Any) -> tuple[flow2.Task, flow2.Task, asyncio.Event]:
    """Build, which cannot finish before Deploy has read the context, and Deploy."""
    read = asyncio.Event()

    async def build(context: dict[str, Any]) -> str:
        await read.wait()
        return "wheel"

    async def deploy_then_let_build_end(context: dict[str, Any], **keywords: Any) -> Any:
        try:
            return await deploy(context, **keywords)
        finally:
            read.set()

    return (
        flow2.CallbackTask("Build", build),
        flow2.CallbackTask("Deploy", deploy_then_let_build_end),
        read,
    )


async def _read_build(context: dict[str, Any]) -> Any:
    return context["build"]


def test_a_parallel_siblings_result_read_without_needs_names_the_fix() -> None:
    build, deploy, _ = _build_and_deploy(_read_build)
    tree = flow2.ParallelTaskGroup("Release", build, deploy, on_error="raise")
    with pytest.raises(ExceptionGroup) as caught:
        run(flow2.Runner(display="none").run(tree))
    (error,) = caught.value.exceptions
    assert isinstance(error, KeyError)  # a KeyError still: except KeyError catches it
    assert isinstance(error, flow2.MissingResultError)
    assert str(error) == (
        "task 'Deploy' read context['build'] before task 'Build' stored it: they run in "
        "parallel; add needs: [build] (flow files) or needs=['build'] (Python) to wait for it"
    )
    assert (error.task, error.key, error.producer) == ("Deploy", "build", "Build")
    assert type(error.__cause__) is KeyError  # the one the callback raised


def test_a_later_tasks_result_read_names_the_order() -> None:
    build, deploy, read = _build_and_deploy(_read_build)
    read.set()
    tree = flow2.SerialTaskGroup("Release", deploy, build)
    result = run(flow2.Runner(display="none").execute(tree))
    (failure,) = result.failures
    assert isinstance(failure.error, flow2.MissingResultError)
    assert "it runs after task 'Deploy'; move it before task 'Deploy'" in str(failure.error)


def test_a_skipped_tasks_result_read_says_it_was_skipped() -> None:
    async def build(context: dict[str, Any]) -> str:
        return "wheel"

    tree = flow2.SerialTaskGroup(
        "Release",
        flow2.CallbackTask("Build", build, when=False),
        flow2.CallbackTask("Deploy", _read_build),
    )
    result = run(flow2.Runner(display="none").execute(tree))
    (failure,) = result.failures
    assert isinstance(failure.error, flow2.MissingResultError)
    assert (
        "before task 'Build' stored it: task 'Build' was skipped (condition is false); "
        "add needs: [build]"
    ) in str(failure.error)


def test_a_key_no_task_stores_stays_the_callbacks_own_key_error() -> None:
    error = KeyError("build")

    async def read(context: dict[str, Any]) -> None:
        raise error

    with pytest.raises(KeyError) as caught:
        run(flow2.Runner(display="none").run(flow2.CallbackTask("Deploy", read)))
    assert caught.value is error


def test_a_keyword_parameter_of_a_task_made_on_the_fly_names_the_fix() -> None:
    # A task made while the run goes on is not in the needs analysis: it does not wait.
    async def deploy(context: dict[str, Any], *, build: str) -> str:
        return build

    async def outer(context: dict[str, Any]) -> None:
        await flow2.CallbackTask("Deploy", deploy).process(context)

    build, outer_task, _ = _build_and_deploy(outer)
    result = run(
        flow2.Runner(display="none").execute(flow2.ParallelTaskGroup("R", build, outer_task))
    )
    (failure,) = result.failures
    assert isinstance(failure.error, flow2.MissingResultError)
    assert failure.path == ("R", "Deploy", "Deploy")
    assert "they run in parallel; add needs: [build]" in str(failure.error)


def test_a_task_starts_as_soon_as_its_needs_finished_and_others_do_not_wait(
    recorder: Recorder,
) -> None:
    async def slow(context: dict[str, Any]) -> int:
        await asyncio.sleep(0.05)
        return 1

    async def independent(context: dict[str, Any]) -> int:
        return 2

    async def dependent(context: dict[str, Any], *, slow: int) -> int:
        return slow + 10

    tree = flow2.ParallelTaskGroup(
        "G",
        flow2.CallbackTask("dependent", dependent),
        flow2.CallbackTask("slow", slow),
        flow2.CallbackTask("independent", independent),
    )
    context = run(runner(recorder).run(tree))
    assert context["dependent"] == 11
    assert times(recorder, "dependent", flow2.Status.RUNNING) >= times(
        recorder, "slow", flow2.Status.SUCCEEDED
    )
    assert times(recorder, "independent", flow2.Status.SUCCEEDED) < times(
        recorder, "slow", flow2.Status.SUCCEEDED
    )


def test_needs_across_groups_and_a_chain(recorder: Recorder) -> None:
    order: list[str] = []

    def step(name: str) -> Any:
        async def work(context: dict[str, Any]) -> str:
            await asyncio.sleep(0)
            order.append(name)
            return name

        return work

    tree = flow2.ParallelTaskGroup(
        "Top",
        flow2.SerialTaskGroup("Left", flow2.CallbackTask("c", step("c"), needs=["b"])),
        flow2.ParallelTaskGroup(
            "Right",
            flow2.CallbackTask("b", step("b"), needs="a"),
            flow2.CallbackTask("a", step("a")),
        ),
    )
    run(runner(recorder).run(tree))
    assert order == ["a", "b", "c"]


def test_bounded_group_starts_needed_children_first(recorder: Recorder) -> None:
    tree = flow2.ParallelTaskGroup(
        "G",
        flow2.CallbackTask("Task 4", upper_context, needs="task_3"),
        YourTask("Task 3"),
        max_parallel=1,
    )
    context = run(asyncio.wait_for(runner(recorder).run(tree, {"task_1": "x"}), 10))
    assert context["task_4"] == "HELLO AFTER X"


def test_bounded_group_whose_children_wait_on_each_other_is_an_error() -> None:
    tree = flow2.ParallelTaskGroup(
        "G",
        flow2.SerialTaskGroup(
            "A",
            flow2.CallbackTask("a1", something, needs="b1"),
            flow2.CallbackTask("a2", something),
        ),
        flow2.SerialTaskGroup(
            "B",
            flow2.CallbackTask("b1", something),
            flow2.CallbackTask("b2", something, needs="a2"),
        ),
        max_parallel=1,
    )
    with pytest.raises(flow2.NeedsError, match="group 'G' runs at most 1 children at once"):
        run(flow2.Runner(display="none").run(tree))


# --- checked before anything runs -------------------------------------------------------


def test_unknown_need_names_the_task_the_key_and_the_closest() -> None:
    ran: list[str] = []

    async def record(context: dict[str, Any]) -> None:
        ran.append("x")

    tree = flow2.ParallelTaskGroup(
        "G",
        flow2.CallbackTask("wheel", record),
        flow2.CallbackTask("deploy", record, needs="whel"),
    )
    with pytest.raises(flow2.NeedsError) as caught:
        run(flow2.Runner(display="none").run(tree))
    assert "task 'deploy' needs 'whel'" in str(caught.value)
    assert "did you mean 'wheel'?" in str(caught.value)
    assert caught.value.task == "deploy" and caught.value.key == "whel"
    assert ran == []


def test_a_need_in_the_starting_context_is_met() -> None:
    tree = flow2.CallbackTask("deploy", upper_keyword)
    assert run(flow2.Runner(display="none").run(tree, {"task_3": "v"}))["deploy"] == "V"


def test_a_cycle_is_named_as_a_path() -> None:
    tree = flow2.ParallelTaskGroup(
        "G",
        flow2.CallbackTask("deploy", something, needs="wheel"),
        flow2.CallbackTask("wheel", something, needs="deploy"),
    )
    with pytest.raises(flow2.NeedsError, match="deploy → wheel → deploy"):
        run(flow2.Runner(display="none").run(tree))


def test_a_need_later_in_a_serial_group_is_impossible() -> None:
    tree = flow2.SerialTaskGroup(
        "S",
        flow2.CallbackTask("deploy", something, needs="wheel"),
        flow2.CallbackTask("wheel", something),
    )
    with pytest.raises(flow2.NeedsError, match="comes after it in serial group 'S'"):
        run(flow2.Runner(display="none").run(tree))


def test_a_need_inside_a_group_waiting_for_the_task_is_impossible() -> None:
    tree = flow2.ParallelTaskGroup(
        "P",
        flow2.CallbackTask("deploy", something, needs="wheel"),
        flow2.SerialTaskGroup("H", flow2.CallbackTask("wheel", something), needs="deploy"),
    )
    with pytest.raises(flow2.NeedsError, match="'wheel' is inside group 'H'.*'H' needs 'deploy'"):
        run(flow2.Runner(display="none").run(tree))


def test_a_group_needing_a_task_inside_it_is_impossible() -> None:
    tree = flow2.SerialTaskGroup("H", flow2.CallbackTask("wheel", something), needs="wheel")
    with pytest.raises(flow2.NeedsError, match="group 'H' needs 'wheel'.*inside it"):
        run(flow2.Runner(display="none").run(tree))


def test_all_problems_are_reported_at_once() -> None:
    tree = flow2.ParallelTaskGroup(
        "G",
        flow2.CallbackTask("a", something, needs="nothing"),
        flow2.CallbackTask("b", something, needs="b"),
    )
    with pytest.raises(flow2.NeedsError) as caught:
        run(flow2.Runner(display="none").run(tree))
    assert [problem.kind for problem in caught.value.problems] == ["unknown", "cycle"]


@pytest.mark.parametrize("needs", [3, [""], {"a": 1}])
def test_bad_needs_option(needs: Any) -> None:
    with pytest.raises(flow2.DefinitionError, match="needs="):
        flow2.CallbackTask("deploy", something, needs=needs)


def test_bad_when_option() -> None:
    with pytest.raises(flow2.DefinitionError, match="when="):
        flow2.CallbackTask("deploy", something, when="yes")


# --- when a need fails ----------------------------------------------------------------------


async def fail(context: dict[str, Any]) -> None:
    raise RuntimeError("broken")


def test_a_task_whose_need_failed_is_skipped_with_the_reason(recorder: Recorder) -> None:
    ran: list[str] = []

    async def deploy(context: dict[str, Any], *, wheel: Any) -> None:
        ran.append("deploy")

    tree = flow2.ParallelTaskGroup(
        "G",
        flow2.CallbackTask("deploy", deploy),
        flow2.CallbackTask("wheel", fail),
        flow2.CallbackTask("notify", something, needs="deploy"),
    )
    stream = io.StringIO()
    runner = flow2.Runner(display="plain", stream=stream, listeners=[recorder])
    run(runner.run(tree, raises=False))
    assert ran == []
    assert reason(recorder, "deploy") == "needs 'wheel', which failed"
    assert reason(recorder, "notify") == "needs 'deploy', which was skipped"
    skipped = next(
        event
        for event in recorder.events
        if isinstance(event, flow2.TaskEvent) and event.status is flow2.Status.SKIPPED
    )
    assert skipped.record.reason == "needs 'wheel', which failed"
    text = stream.getvalue()
    assert "SKIPPED   deploy: needs 'wheel', which failed" in text
    assert "Skipped: G › deploy: needs 'wheel', which failed" in text


def test_on_error_policies_are_unchanged(recorder: Recorder) -> None:
    tree = flow2.ParallelTaskGroup(
        "G",
        flow2.CallbackTask("wheel", fail),
        flow2.CallbackTask("deploy", something, needs="wheel"),
        on_error="raise",
    )
    with pytest.raises(ExceptionGroup) as caught:
        run(runner(recorder).run(tree))
    assert len(caught.value.exceptions) == 1
    assert recorder.final("deploy") is flow2.Status.SKIPPED


def test_a_need_cancelled_by_a_sibling_failure_skips_the_task(recorder: Recorder) -> None:
    started = asyncio.Event()

    async def hang(context: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(60)

    async def fail_after_start(context: dict[str, Any]) -> None:
        await started.wait()
        raise RuntimeError("broken")

    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.ParallelTaskGroup(
            "Cancelling",
            flow2.CallbackTask("wheel", hang),
            flow2.CallbackTask("breaker", fail_after_start),
            on_error="cancel",
        ),
    )
    outer = flow2.ParallelTaskGroup(
        "Outer", tree, flow2.CallbackTask("deploy", something, needs="wheel")
    )
    run(runner(recorder).run(outer, raises=False))
    assert recorder.final("wheel") is flow2.Status.CANCELLED
    assert reason(recorder, "deploy") == "needs 'wheel', which was cancelled"


def test_cancelled_waiter_is_reported_cancelled(recorder: Recorder) -> None:
    started = asyncio.Event()

    async def hang(context: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(60)

    tree = flow2.ParallelTaskGroup(
        "G",
        flow2.CallbackTask("wheel", hang),
        flow2.CallbackTask("deploy", something, needs="wheel"),
        flow2.CallbackTask("docs", something, needs="wheel"),
    )

    async def main() -> None:
        task = asyncio.ensure_future(runner(recorder).run(tree))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert recorder.statuses("deploy") == [flow2.Status.CANCELLED]
    assert recorder.statuses("docs") == [flow2.Status.CANCELLED]


# --- conditions -----------------------------------------------------------------------------


async def is_prod(context: dict[str, Any]) -> bool:
    await asyncio.sleep(0)
    return bool(context["env"] == "prod")


@pytest.mark.parametrize(
    ("when", "runs"),
    [
        (True, True),
        (False, False),
        (lambda context: context["env"] == "prod", True),
        (lambda context: context["env"] == "dev", False),
        (is_prod, True),
    ],
)
def test_conditions(when: Any, runs: bool, recorder: Recorder) -> None:
    tree = flow2.CallbackTask("deploy", something, when=when)
    context = run(runner(recorder).run(tree, {"env": "prod"}))
    assert ("deploy" in context) is runs
    if not runs:
        assert reason(recorder, "deploy") == "condition is false"


def test_the_names_a_condition_reads_are_needs(recorder: Recorder) -> None:
    async def slow(context: dict[str, Any]) -> str:
        await asyncio.sleep(0.02)
        return "ok"

    tree = flow2.ParallelTaskGroup(
        "G",
        flow2.CallbackTask("deploy", something, when=lambda context, *, tests: tests == "ok"),
        flow2.CallbackTask("tests", slow),
    )
    assert run(runner(recorder).run(tree))["deploy"] == "something"


def test_a_condition_that_raises_fails_the_task(recorder: Recorder) -> None:
    def broken(context: dict[str, Any]) -> bool:
        raise ValueError("bad condition")

    tree = flow2.CallbackTask("deploy", something, when=broken)
    with pytest.raises(ValueError, match="bad condition"):
        run(runner(recorder).run(tree))
    assert recorder.statuses("deploy") == [flow2.Status.RUNNING, flow2.Status.FAILED]


# --- partial runs and the plan, from Python -------------------------------------------------


def release(log: list[str]) -> flow2.Task:
    def step(name: str) -> Any:
        async def work(context: dict[str, Any]) -> str:
            log.append(name)
            return name

        return work

    return flow2.SerialTaskGroup(
        "Release",
        flow2.CallbackTask("wheel", step("wheel")),
        flow2.ParallelTaskGroup(
            "Checks",
            flow2.CallbackTask("lint", step("lint")),
            flow2.CallbackTask("tests", step("tests"), needs="wheel"),
        ),
        flow2.CallbackTask("deploy", step("deploy"), needs="tests"),
    )


def test_only_runs_the_tasks_and_what_they_need(recorder: Recorder) -> None:
    log: list[str] = []
    run(runner(recorder, only=["tests"]).run(release(log)))
    assert log == ["wheel", "tests"]
    assert reason(recorder, "deploy") == "left out by --only"
    assert reason(recorder, "lint") == "left out by --only"


def test_only_takes_a_group_path(recorder: Recorder) -> None:
    log: list[str] = []
    run(runner(recorder, only=["release/checks"]).run(release(log)))
    assert sorted(log) == ["lint", "tests", "wheel"]


def test_skip_leaves_out_and_skips_what_needs_it(recorder: Recorder) -> None:
    log: list[str] = []
    run(runner(recorder, skip=["tests"]).run(release(log)))
    assert log == ["wheel", "lint"]
    assert reason(recorder, "tests") == "left out by --skip"
    assert reason(recorder, "deploy") == "needs 'tests', which was skipped"


def test_until_stops_after_the_task(recorder: Recorder) -> None:
    log: list[str] = []
    run(runner(recorder, until="lint").run(release(log)))
    assert log == ["wheel", "lint"]
    assert reason(recorder, "deploy") == "after 'lint' (--until)"


def test_select_runs_a_tree_pruned_to_the_tasks_and_what_they_need(recorder: Recorder) -> None:
    log: list[str] = []
    tree = release(log)
    result = run(runner(recorder, select=["tests"]).execute(tree))
    assert log == ["wheel", "tests"]
    reported = {event.task.name for event in recorder.events if isinstance(event, flow2.TaskEvent)}
    assert reported == {"Release", "wheel", "Checks", "tests"}  # no lint, no deploy
    assert (result.counts.succeeded, result.counts.skipped) == (2, 0)
    # The tree itself is left whole: it runs every task again.
    log.clear()
    run(runner(Recorder()).run(tree))
    assert sorted(log) == ["deploy", "lint", "tests", "wheel"]


def test_select_keeps_a_kept_groups_cleanup_and_what_it_needs(recorder: Recorder) -> None:
    log: list[str] = []

    def step(name: str) -> Any:
        def work(context: dict[str, Any]) -> str:
            log.append(name)
            return name

        return work

    tree = flow2.SerialTaskGroup(
        "Tree",
        flow2.SerialTaskGroup(
            "Suite",
            flow2.CallbackTask("start", step("start")),
            flow2.CallbackTask("unit", step("unit")),
            flow2.CallbackTask("e2e", step("e2e")),
            finally_tasks=[flow2.CallbackTask("stop", step("stop"), needs="start")],
        ),
        flow2.CallbackTask("docs", step("docs")),
    )
    run(runner(recorder, select=["unit"]).run(tree))
    assert log == ["start", "unit", "stop"]
    assert "e2e" not in {
        event.task.name for event in recorder.events if isinstance(event, flow2.TaskEvent)
    }


def test_select_naming_no_task_names_the_closest() -> None:
    with pytest.raises(flow2.DefinitionError, match="select 'testz' names no task.*'tests'"):
        run(flow2.Runner(display="none", select=["testz"]).run(release([])))


def test_an_unknown_task_reference_names_the_closest() -> None:
    with pytest.raises(flow2.DefinitionError, match="did you mean 'tests'"):
        run(flow2.Runner(display="none", only=["testz"]).run(release([])))


def test_dry_run_from_python_runs_nothing() -> None:
    log: list[str] = []
    plan = flow2.Runner(skip=["lint"]).dry_run(release(log))
    assert log == []
    assert plan["wheel"].action == "run"
    assert plan["lint"].action == "skip" and plan["lint"].reason == "left out by --skip"
    assert plan["deploy"].needs == ("tests",)
    assert "lint → lint  SKIP (left out by --skip)" in str(plan)


def test_dry_run_decides_conditions_on_the_starting_context_only() -> None:
    tree = flow2.SerialTaskGroup(
        "S",
        flow2.CallbackTask("a", something, when=False),
        flow2.CallbackTask("b", something, needs="a"),
        flow2.CallbackTask("c", something, when=lambda context: True),
    )
    plan = flow2.Runner().dry_run(tree)
    assert (plan["a"].action, plan["a"].reason) == ("skip", "condition is false")
    assert (plan["b"].action, plan["b"].reason) == ("skip", "needs 'a', which is skipped")
    assert (plan["c"].action, plan["c"].reason) == ("run", "if its condition holds")
