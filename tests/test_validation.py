"""The tree is checked before anything runs; deep trees work."""

from __future__ import annotations

from typing import Any

import pytest

import flow2
from tests.conftest import run


def recording(name: str, ran: list[str], **options: Any) -> flow2.CallbackTask:
    async def callback(context: dict[str, Any]) -> str:
        ran.append(name)
        return name

    return flow2.CallbackTask(name, callback, **options)


def test_duplicate_keys_name_both_tasks_and_nothing_runs() -> None:
    ran: list[str] = []
    tree = flow2.SerialTaskGroup(
        "Release",
        recording("First", ran),
        flow2.ParallelTaskGroup("P", recording("Build wheel", ran), recording("build-wheel", ran)),
    )
    with pytest.raises(ValueError, match="'Build wheel' and task 'build-wheel'.*'build_wheel'"):
        run(tree.run())
    assert ran == []


def test_duplicate_key_error_is_a_flow_error_and_suggests_register() -> None:
    tree = flow2.SerialTaskGroup("S", flow2.Task("A"), flow2.Task("B", register="a"))
    with pytest.raises(flow2.DuplicateKeyError, match="register="):
        run(tree.run())


def test_register_resolves_a_duplicate() -> None:
    ran: list[str] = []
    tree = flow2.SerialTaskGroup(
        "S", recording("Build", ran), recording("build", ran, register="build_again")
    )
    assert run(tree.run()) == {"build": "Build", "build_again": "build"}


def test_the_same_task_twice_is_an_error_naming_it() -> None:
    ran: list[str] = []
    task = recording("Once", ran)
    tree = flow2.ParallelTaskGroup("P", task, task)
    with pytest.raises(flow2.DuplicateTaskError, match="'Once'.*appears twice in group 'P'"):
        run(tree.run())
    assert ran == []


def test_the_same_group_twice_is_an_error() -> None:
    inner = flow2.SerialTaskGroup("Inner")
    tree = flow2.SerialTaskGroup("Outer", inner, flow2.SerialTaskGroup("Other", inner))
    with pytest.raises(flow2.DuplicateTaskError, match="'Inner'"):
        run(tree.run())


def test_a_child_that_is_not_a_task_names_the_group_and_position() -> None:
    def function(context: dict[str, Any]) -> None:
        return None

    with pytest.raises(TypeError, match=r"group 'Release': child 2 is <function.*CallbackTask"):
        flow2.SerialTaskGroup("Release", flow2.Task("A"), function)  # type: ignore[arg-type]


def test_a_child_added_later_that_is_not_a_task_is_caught_before_running() -> None:
    ran: list[str] = []
    group = flow2.ParallelTaskGroup("P", recording("A", ran))
    group.tasks.append("oops")  # type: ignore[arg-type]
    with pytest.raises(flow2.TaskTypeError, match="group 'P': child 2 is 'oops'"):
        run(group.run())
    assert ran == []


def test_a_root_that_is_not_a_task() -> None:
    with pytest.raises(flow2.TaskTypeError, match="needs a flow2.Task"):
        run(flow2.Runner().run("nope"))  # type: ignore[arg-type]


def test_a_context_that_is_not_a_dict() -> None:
    with pytest.raises(flow2.TaskTypeError, match="context must be a dict"):
        run(flow2.Runner().run(flow2.Task("A"), ["x"]))  # type: ignore[arg-type]


def test_an_unknown_executor_name_fails_before_running() -> None:
    ran: list[str] = []
    tree = flow2.SerialTaskGroup("S", recording("A", ran), recording("B", ran, executor="gpu"))
    with pytest.raises(flow2.DefinitionError, match="task 'B': executor='gpu'.*'thread'"):
        run(tree.run())
    assert ran == []


@pytest.mark.parametrize("group_type", [flow2.SerialTaskGroup, flow2.ParallelTaskGroup])
def test_nesting_two_thousand_groups_deep_runs(group_type: type[flow2.TaskGroup]) -> None:
    depth = 2000

    async def leaf(context: dict[str, Any]) -> int:
        return depth

    tree: flow2.Task = flow2.CallbackTask("Leaf", leaf)
    for level in range(depth):
        tree = group_type(f"Level {level}", tree, flow2.CallbackTask(f"Side {level}", leaf))
    context = run(flow2.Runner(display="none").run(tree))
    assert context["leaf"] == depth
    assert len(context) == depth + 1


def test_a_deep_failure_reaches_the_caller_and_every_level_fails() -> None:
    error = RuntimeError("deep")

    async def fail(context: dict[str, Any]) -> None:
        raise error

    tree: flow2.Task = flow2.CallbackTask("Leaf", fail)
    for level in range(1500):
        tree = flow2.SerialTaskGroup(f"Level {level}", tree)
    with pytest.raises(RuntimeError) as caught:
        run(flow2.Runner(display="none").run(tree))
    assert caught.value is error


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Task 4", "task_4"),
        ("Fetch HTTPResponse", "fetch_http_response"),
        ("build-wheel", "build_wheel"),
        ("  Deploy  to   prod!", "deploy_to_prod"),
        ("fetchDataNow", "fetch_data_now"),
        ("XMLHttpRequest", "xml_http_request"),
        ("already_snake", "already_snake"),
        ("__private__", "private"),
        ("v2Release 3", "v2_release_3"),
        ("Crème brûlée", "crème_brûlée"),
    ],
)
def test_snake_case_keys(name: str, key: str) -> None:
    assert flow2.snake_case(name) == key
    assert flow2.Task(name).key == key


@pytest.mark.parametrize("register", [3, "", "  ", ["a"]])
def test_register_must_be_a_non_empty_string(register: Any) -> None:
    with pytest.raises(flow2.DefinitionError, match=r"task 'A': register=.* is not a result key"):
        flow2.Task("A", register=register)
