"""The ``executor`` option: names, inheritance, what a callback receives, a light import."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import pytest

import flow2
from tests.conftest import environment_without_coverage, run


def report_pid(context: dict[str, Any]) -> int:
    return os.getpid()


def scaled(context: dict[str, Any], *, numbers: list[int], scale: int = 2) -> int:
    return sum(numbers) * scale


def needs_missing(context: dict[str, Any], *, missing: int) -> int:
    return missing


def test_every_executor_name_is_known_and_an_unknown_one_lists_them() -> None:
    assert {"thread", "process", "dask"} <= set(flow2.EXECUTOR_FACTORIES)
    task = flow2.CallbackTask("Work", report_pid, executor="gpu")
    with pytest.raises(flow2.DefinitionError) as caught:
        run(flow2.Runner(display="none").run(task))
    assert "executor='gpu' is not a known executor; use one of 'dask', 'process'" in str(
        caught.value
    )


def test_the_executors_follow_the_protocol() -> None:
    assert isinstance(flow2.ProcessExecutor(max_workers=1), flow2.Executor)
    assert isinstance(flow2.DaskExecutor("tcp://127.0.0.1:8786"), flow2.Executor)


def test_children_inherit_the_groups_executor_unless_they_set_their_own() -> None:
    async def on_the_loop(context: dict[str, Any]) -> int:
        return os.getpid()

    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.CallbackTask("Inherits", report_pid),
        flow2.CallbackTask("Own", report_pid, executor="thread"),
        # Async callbacks stay on the event loop, whatever the executor.
        flow2.CallbackTask("Async", on_the_loop),
        executor="process",
    )
    context = run(flow2.Runner(display="none").run(tree))
    assert context["inherits"] != os.getpid()
    assert context["own"] == context["async"] == os.getpid()


def test_a_sync_callback_on_threads_gets_its_keyword_only_keys() -> None:
    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.CallbackTask("Default", scaled),
        flow2.CallbackTask("Given", scaled, register="given"),
    )
    context = run(flow2.Runner(display="none").run(tree, {"numbers": [1, 2]}))
    assert context["default"] == 6  # scale keeps its default when the context has none
    context = run(flow2.Runner(display="none").run(tree, {"numbers": [1, 2], "scale": 10}))
    assert context["given"] == 30


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_missing_required_keyword_only_key_is_named(executor: str) -> None:
    # The tree check passes (the starting context holds 'missing'); a task
    # before it removes the key, so only the call itself can find it missing.
    async def drop(context: dict[str, Any]) -> None:
        del context["missing"]

    task = flow2.SerialTaskGroup(
        "Root",
        flow2.CallbackTask("Drop", drop),
        flow2.CallbackTask("Needy", needs_missing, executor=executor),
    )
    with pytest.raises(flow2.ExecutorError) as caught:
        run(flow2.Runner(display="none").run(task, {"missing": 1}))
    assert str(caught.value) == (
        "task 'Needy': its callback needs_missing() needs the context key 'missing' "
        "(a keyword-only parameter) but the context has none; run the task that stores "
        "'missing' before it, or give the parameter a default"
    )


def test_an_unhashable_or_signatureless_callable_still_runs() -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self, context: dict[str, Any], *, value: int) -> int:
            return value

    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.CallbackTask("Unhashable", Unhashable()),
        flow2.CallbackTask("Builtin", max),  # a builtin without a signature
    )
    context = run(flow2.Runner(display="none").run(tree, {"value": 7}))
    assert context["unhashable"] == 7
    assert context["builtin"] == "value"  # the largest key


def test_executor_dask_without_an_address_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLOW2_DASK_ADDRESS", raising=False)
    ran = threading.Event()
    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.CallbackTask("First", lambda context: ran.set()),
        flow2.CallbackTask("Remote", report_pid, executor="dask"),
    )
    with pytest.raises(flow2.ConfigurationError, match="FLOW2_DASK_ADDRESS, which is not set"):
        run(flow2.Runner(display="none").run(tree))
    assert not ran.is_set()  # nothing ran


def test_importing_flow2_imports_neither_distributed_nor_multiprocessing() -> None:
    code = (
        "import sys, flow2; flow2.DaskExecutor, flow2.ProcessExecutor; "
        "print(sorted(name for name in sys.modules "
        "if name.split('.')[0] in ('distributed', 'dask', 'cloudpickle', 'multiprocessing')))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env=environment_without_coverage(),
    ).stdout
    assert output.strip() == "[]"


def test_the_dask_executor_without_distributed_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    task = flow2.CallbackTask(
        "Remote", report_pid, executor=flow2.DaskExecutor("tcp://127.0.0.1:8786")
    )
    with pytest.raises(flow2.ExecutorError, match=r"clone or wheel>\[dask\]"):
        run(flow2.Runner(display="none").run(task))


def test_a_yaml_flow_names_its_executor(tmp_path: Any) -> None:
    flow_file = tmp_path / "batch.yml"
    flow_file.write_text(
        "plugin: parallel\n"
        "name: Batch\n"
        "executor: process\n"
        "tasks:\n"
        "  - plugin: callback\n"
        "    name: Remote\n"
        "    callback: tests.test_executor_option:report_pid\n"
        "  - plugin: callback\n"
        "    name: Local\n"
        "    executor: thread\n"
        "    callback: tests.test_executor_option:report_pid\n"
    )
    context = run(flow2.Runner(display="none").run(flow2.load(flow_file)))
    assert context["remote"] != os.getpid()
    assert context["local"] == os.getpid()
