"""The documented task API: signatures, attributes, hooks, results."""

from __future__ import annotations

import inspect
import io
from typing import Any

import pytest

import flow2
import flow2.task
from tests.conftest import Recorder, run


def test_classes_are_importable_from_flow2_and_flow2_task() -> None:
    for name in ("Task", "TaskGroup", "CallbackTask", "ParallelTaskGroup", "SerialTaskGroup"):
        assert getattr(flow2, name) is getattr(flow2.task, name)


def test_documented_signatures() -> None:
    task_parameters = list(inspect.signature(flow2.Task).parameters)
    assert task_parameters[:4] == ["name", "description", "register", "output"]
    assert list(inspect.signature(flow2.CallbackTask).parameters) == ["name", "callback", "kwargs"]
    assert list(inspect.signature(flow2.TaskGroup).parameters) == [
        "name",
        "tasks",
        "on_failure",
        "finally_tasks",
        "kwargs",
    ]
    for hook in ("start", "success", "exception", "process", "run"):
        assert inspect.iscoroutinefunction(getattr(flow2.Task, hook)), hook
    assert inspect.signature(flow2.Task.process).parameters["raises"].default is True
    assert inspect.signature(flow2.Task.exception).parameters["raises"].default is True


def test_documented_attributes() -> None:
    async def callback(context: dict[str, Any]) -> None:
        return None

    leaf = flow2.CallbackTask("Task 4", callback, description="d", output=False)
    assert (leaf.name, leaf.description, leaf.register, leaf.output) == ("Task 4", "d", None, False)
    assert leaf.key == "task_4"
    assert leaf.callback is callback
    registered = flow2.CallbackTask("Task 5", callback, register="five")
    assert registered.key == "five" and registered.register == "five"
    group = flow2.SerialTaskGroup("G", leaf, registered)
    assert group.tasks == [leaf, registered]


def test_bare_task_run_raises_not_implemented_naming_the_task() -> None:
    with pytest.raises(NotImplementedError, match="'Plain'"):
        run(flow2.Task("Plain").run({}))


def test_a_tree_of_bare_tasks_fails_with_not_implemented() -> None:
    context = run(flow2.Task("Plain").process(raises=False))
    assert isinstance(context["plain"], NotImplementedError)


class Greeting(flow2.Task):
    """A subclass with its own constructor, as the documentation shows."""

    def __init__(self, name: str, who: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.who = who

    async def run(self, context: dict[str, Any]) -> str:
        return f"hello {self.who}"


class Hooked(Greeting):
    """Overrides every hook and calls super(): the base behaviour must remain."""

    def __init__(self, name: str, who: str, calls: list[str], **kwargs: Any) -> None:
        super().__init__(name, who, **kwargs)
        self.calls = calls

    async def start(self, context: dict[str, Any]) -> None:
        self.calls.append("start")
        await super().start(context)

    async def success(self, result: Any, context: dict[str, Any]) -> None:
        self.calls.append(f"success:{result}")
        await super().success(result, context)

    async def exception(
        self, exception: BaseException, context: dict[str, Any], raises: bool = True
    ) -> None:
        self.calls.append(f"exception:{exception}")
        await super().exception(exception, context, raises)

    async def process(
        self, context: dict[str, Any] | None = None, raises: bool = True
    ) -> dict[str, Any]:
        self.calls.append("process")
        return await super().process(context, raises)


def test_overridden_hooks_calling_super_keep_working(recorder: Recorder) -> None:
    calls: list[str] = []
    tree = flow2.SerialTaskGroup("G", Hooked("Hi", "you", calls))
    runner = flow2.Runner(display="plain", stream=io.StringIO(), listeners=[recorder])
    context = run(runner.run(tree))
    assert context == {"hi": "hello you"}
    assert calls == ["process", "start", "success:hello you"]
    assert recorder.statuses("Hi") == [flow2.Status.RUNNING, flow2.Status.SUCCEEDED]


def test_overridden_exception_hook_sees_the_failure(recorder: Recorder) -> None:
    calls: list[str] = []

    class Broken(Hooked):
        async def run(self, context: dict[str, Any]) -> str:
            raise RuntimeError("boom")

    runner = flow2.Runner(display="none", listeners=[recorder])
    context = run(runner.run(Broken("Hi", "you", calls), raises=False))
    assert calls == ["process", "start", "exception:boom"]
    assert isinstance(context["hi"], RuntimeError)
    assert recorder.final("Hi") is flow2.Status.FAILED


@pytest.mark.parametrize("value", [None, 0, "", False, [], {"a": 1}])
def test_every_return_value_is_stored(value: object) -> None:
    async def give(context: dict[str, Any]) -> object:
        return value

    context = run(flow2.Runner(display="none").run(flow2.CallbackTask("Give", give)))
    assert "give" in context and context["give"] == value


def test_run_without_argument_returns_the_results_dict() -> None:
    tree = flow2.ParallelTaskGroup("P", Greeting("A", "a"), Greeting("B", "b"))
    result = run(tree.run())
    assert result == {"a": "hello a", "b": "hello b"}


def test_run_and_process_start_from_the_given_context() -> None:
    seen: list[str] = []

    async def read(context: dict[str, Any]) -> str:
        seen.append(context["env"])
        return context["env"].upper()

    for method in ("run", "process"):
        start = {"env": "prod"}
        tree = flow2.SerialTaskGroup("S", flow2.CallbackTask("Read", read))
        returned = run(getattr(tree, method)(start))
        assert returned is start
        assert start == {"env": "prod", "read": "PROD"}
    assert seen == ["prod", "prod"]


def test_a_leaf_processed_alone_returns_the_context() -> None:
    assert run(Greeting("Hi", "me").process()) == {"hi": "hello me"}


def test_groups_store_nothing_and_may_share_a_name() -> None:
    tree = flow2.SerialTaskGroup(
        "Your workflow",
        flow2.ParallelTaskGroup("Parallel task", Greeting("Task 1", "1")),
        flow2.ParallelTaskGroup("Parallel task", Greeting("Task 2", "2")),
    )
    assert run(tree.run()) == {"task_1": "hello 1", "task_2": "hello 2"}


def test_later_tasks_read_earlier_results() -> None:
    async def first(context: dict[str, Any]) -> int:
        return 20

    async def second(context: dict[str, Any]) -> int:
        return context["first"] + 1

    tree = flow2.SerialTaskGroup(
        "S", flow2.CallbackTask("First", first), flow2.CallbackTask("Second", second)
    )
    assert run(tree.run())["second"] == 21


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "timeout=0"),
        ({"timeout": "5"}, "timeout='5'"),
        ({"timeout": float("inf")}, "timeout=inf"),
        ({"retries": -1}, "retries=-1"),
        ({"retries": 1.5}, "retries=1.5"),
        ({"retry_delay": -2}, "retry_delay=-2"),
        ({"executor": 3}, "executor=3"),
        ({"output": "no"}, "output='no' is not true or false"),
        ({"description": ["x"]}, "description=\\['x'\\] is not text"),
    ],
)
def test_bad_options_name_the_task_and_the_value(options: dict[str, Any], message: str) -> None:
    with pytest.raises(flow2.DefinitionError, match=f"task 'Deploy'.*{message}"):
        flow2.Task("Deploy", **options)


@pytest.mark.parametrize("name", ["", "   ", None, 42])
def test_a_task_needs_a_name(name: Any) -> None:
    with pytest.raises(flow2.DefinitionError, match="non-empty name"):
        flow2.Task(name)


def test_a_name_without_letters_needs_register() -> None:
    with pytest.raises(flow2.DefinitionError, match="register="):
        flow2.Task("!!!")
    assert flow2.Task("!!!", register="bang").key == "bang"


def test_bad_parallel_options() -> None:
    with pytest.raises(flow2.DefinitionError, match="max_parallel=0"):
        flow2.ParallelTaskGroup("P", max_parallel=0)
    with pytest.raises(flow2.DefinitionError, match="on_error='explode'.*'continue'"):
        flow2.ParallelTaskGroup("P", on_error="explode")
    assert flow2.ParallelTaskGroup("P", on_error="cancel").on_error is flow2.OnError.CANCEL


def test_task_repr_names_class_and_task() -> None:
    assert repr(Greeting("Hi", "x")) == "<Greeting 'Hi'>"
