"""Errors carry their facts as attributes, and every raise site gives them."""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import pathlib
from pathlib import Path
from typing import Any

import pytest

import flow2
from flow2._engine._exceptions import FlowError

from .conftest import run, write_flow

PACKAGE = pathlib.Path(flow2.__file__).parent


flow2.StoreError  # noqa: B018  (loads the store's error class, found as a subclass below)


def _error_classes() -> dict[str, type[FlowError]]:
    found: dict[str, type[FlowError]] = {}
    pending: list[type[FlowError]] = [FlowError]
    while pending:
        kind = pending.pop()
        found[kind.__name__] = kind
        pending.extend(kind.__subclasses__())
    return found


#: Every keyword that states a fact, on FlowError or on one of its classes.
FACTS = {
    name
    for kind in _error_classes().values()
    for name, parameter in inspect.signature(kind.__init__).parameters.items()
    if name not in ("self", "message", "reason")
    and parameter.kind is not inspect.Parameter.VAR_KEYWORD
}


def _constructions(path: pathlib.Path, classes: set[str]) -> list[tuple[int, str, ast.Call]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            function = node.func
            name = (
                function.id
                if isinstance(function, ast.Name)
                else function.attr
                if isinstance(function, ast.Attribute)
                else None
            )
            if name in classes:
                found.append((node.lineno, name, node))
    return found


def test_every_flow2_error_is_created_with_its_facts() -> None:
    classes = set(_error_classes())
    assert {"StoreError", "NeedsError", "ExpressionError", "ConfigurationError"} <= classes
    bare = []
    checked = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for line, name, call in _constructions(path, classes):
            checked += 1
            # ``**facts`` passes them on (a mapping of facts built elsewhere).
            if not any(keyword.arg in FACTS or keyword.arg is None for keyword in call.keywords):
                bare.append(f"{relative}:{line}: {name}(…) gives no fact")
    assert checked > 100
    assert not bare, "\n".join(bare)


def test_the_walk_sees_a_bare_error(tmp_path: Path) -> None:
    # The check above can fail: a raise without facts is seen.
    path = tmp_path / "module.py"
    path.write_text(
        "raise ConfigurationError('bad')\nraise ConfigurationError('bad', option='x')\n"
    )
    calls = _constructions(path, set(_error_classes()))
    assert [(line, any(k.arg in FACTS for k in call.keywords)) for line, _, call in calls] == [
        (1, False),
        (2, True),
    ]


def test_facts_default_to_none_and_old_calls_still_work() -> None:
    error = flow2.ConfigurationError("bad")
    assert str(error) == "bad"
    for name in ("task", "task_definition", "key", "option", "value", "file", "line", "variable"):
        assert getattr(error, name) is None
    store = flow2.StoreError("gone", path="/x/runs.sqlite3")
    assert (store.path, store.file) == ("/x/runs.sqlite3", "/x/runs.sqlite3")
    task = flow2.CallbackTask("Build", print)
    about = flow2.DefinitionError("wrong", task_definition=task, option="timeout", value=-1)
    assert (about.task, about.task_definition, about.value) == ("Build", task, -1)


def test_expression_error_builds_its_message_from_its_facts() -> None:
    task = flow2.CallbackTask("Use", print)
    error = flow2.ExpressionError(
        "boom", expression="${{ x }}", file="f.yml", line=3, task_definition=task, option="cmd"
    )
    assert str(error) == "f.yml:3: task 'Use', cmd: boom"
    assert (error.reason, error.expression, error.task) == ("boom", "${{ x }}", "Use")
    assert str(flow2.ExpressionError("plain")) == "plain"


def test_flow_file_error_and_plugin_error_facts() -> None:
    error = flow2.FlowFileError("bad", file="f.yml", line=2, key="cmd")
    assert (str(error), error.reason, error.file, error.line, error.key) == (
        "f.yml:2: bad",
        "bad",
        "f.yml",
        2,
        "cmd",
    )
    plugin = flow2.PluginError("missing", "shel")
    assert (plugin.plugin, plugin.option, plugin.value) == ("shel", "plugin", "shel")


def test_an_environment_variable_error_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOW2_STORE_KEEP", "many")
    with pytest.raises(flow2.StoreError) as caught:
        flow2.Runner(store=True)
    assert (caught.value.variable, caught.value.value) == ("FLOW2_STORE_KEEP", "many")
    assert caught.value.option == "store_keep"


def quiet() -> flow2.Runner:
    return flow2.Runner(display="none", stream=io.StringIO())


def test_run_time_errors_carry_the_task_object() -> None:
    async def hang(context: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    first = flow2.CallbackTask("Hang", hang, timeout=0.05)
    second = flow2.CallbackTask("Hang", hang, register="other", timeout=0.05)
    context = run(quiet().run(flow2.ParallelTaskGroup("Both", first, second)))
    for task in (first, second):
        error = context[task.key]
        assert isinstance(error, flow2.TaskTimeoutError)
        assert error.task_definition is task
        assert (error.task, error.option, error.value) == ("Hang", "timeout", 0.05)


def test_engine_tree_errors_carry_the_task_object() -> None:
    first = flow2.CallbackTask("Deploy", print)
    second = flow2.CallbackTask("Deploy", print, executor="warp", register="again")
    with pytest.raises(flow2.DefinitionError) as caught:
        run(quiet().run(flow2.SerialTaskGroup("Both", first, second)))
    error = caught.value
    assert (error.task_definition, error.option, error.value) == (second, "executor", "warp")
    with pytest.raises(flow2.DuplicateKeyError) as duplicate:
        run(quiet().run(flow2.SerialTaskGroup("Both", flow2.CallbackTask("Deploy", print), first)))
    assert (duplicate.value.task_definition, duplicate.value.key) == (first, "deploy")


def test_needs_error_is_about_the_first_problem_task() -> None:
    task = flow2.CallbackTask("Deploy", print, needs="wheel")
    with pytest.raises(flow2.NeedsError) as caught:
        run(quiet().run(flow2.SerialTaskGroup("Release", task)))
    assert (caught.value.task_definition, caught.value.key) == (task, "wheel")


def test_command_error_names_the_command(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "plugin: shell\nname: Fail\ncmd: exit 3\n")
    tree = flow2.load(path)
    with pytest.raises(flow2.CommandError) as caught:
        run(quiet().run(tree))
    error = caught.value
    assert (error.command, error.returncode, error.task_definition) == ("exit 3", 3, tree)


# No methods replaced on task objects ---------------------------------------


def _tasks(root: flow2.Task) -> list[flow2.Task]:
    found, stack = [], [root]
    while stack:
        task = stack.pop()
        found.append(task)
        stack.extend(task.children)
    return found


def test_a_loaded_flow_replaces_no_method_of_its_tasks(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - {plugin: callback, name: Data, callback: "builtins:dict"}
          - plugin: shell
            name: Use
            cmd: echo ${{ version }} ${{ data }}
            if: ${{ version != 'none' }}
        """,
    )
    tree = flow2.load(path, version="1.2")
    for task in _tasks(tree):
        replaced = [name for name in vars(task) if callable(getattr(type(task), name, None))]
        assert not replaced, f"{task.name}: {replaced}"
    # The variables are the run's starting context; the caller's entries win.
    context = run(quiet().run(tree))
    assert context["version"] == "1.2"
    assert context["use"]["stdout"].startswith("1.2 {")
    context = run(quiet().run(tree, {"version": "2.0"}))
    assert context["use"]["stdout"].startswith("2.0 {")


def test_an_error_pickles_with_its_facts() -> None:
    import pickle

    task = flow2.CallbackTask("Hang", lambda context: None)
    for error in (
        flow2.TaskTimeoutError("Hang", 2.0, task_definition=task),
        flow2.ExpressionError("boom", expression="${{ x }}", file="f.yml", line=3, option="cmd"),
        flow2.StoreError("gone", path="/x/runs.sqlite3"),
        flow2.DefinitionError("bad", task_definition=task, option="timeout", value=-1),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        facts = {**vars(error), "task_definition": None}
        assert vars(copy) == facts
