"""Reuse by one key: a resume's lineage and the cache, one thing changed at a time.

Each test runs a tree or a flow, changes one thing, runs again, and checks
the decision and its reason in the run, in ``--dry-run`` and in
``flow2 explain``.
"""

from __future__ import annotations

import functools
import importlib
import json
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import Ran, run, stored_run, write_flow
from .test_cli import flow2 as flow2_command

pytestmark = pytest.mark.usefixtures("python_first_on_path")


@pytest.fixture(autouse=True)
def default_store_location(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flows run in their own folder and use the default store there (.flow2)."""
    monkeypatch.delenv("FLOW2_STORE", raising=False)


def runner(store: Path, **options: Any) -> flow2.Runner:
    return flow2.Runner(display="none", store=store, **options)


def statuses(events: list[flow2.Event]) -> dict[str, tuple[flow2.Status, str | None]]:
    """Each leaf task's final status and reason in a run, by key."""
    found = {}
    for event in events:
        if isinstance(event, flow2.TaskEvent) and event.status.is_finished:
            if event.task.stores_result:
                found[event.task.key] = (event.status, event.reason)
    return found


def rerun_reasons(store: Path) -> dict[str, str | None]:
    """Why each leaf task of the last run ran, or was reused, as the store keeps it."""
    return {task.key: task.reason for task in stored_run(store).tasks if not task.is_group}


def explained(store: Path, task: str, *more: str) -> dict[str, Any]:
    result = flow2_command("explain", task, *more, "--json", "--store", store)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def serial(name: str, *tasks: flow2.Task) -> flow2.SerialTaskGroup:
    return flow2.SerialTaskGroup(name, *tasks)


def step(ran: Ran, name: str, value: Any = None) -> flow2.CallbackTask:
    async def work(context: dict[str, Any]) -> Any:
        ran.append(name)
        return value

    work.__qualname__ = "step.work"
    return flow2.CallbackTask(name, work)


# Condition first ----------------------------------------------------------------


def test_a_condition_now_false_skips_never_reuses(tmp_path: Path) -> None:
    ran = Ran(tmp_path)

    def tree() -> flow2.Task:
        # Both declare what they read: the target is no input of either.
        async def build(context: dict[str, Any], *, version: str) -> str:
            ran.append("Build")
            return f"wheel-{version}"

        async def deploy(context: dict[str, Any], *, build: str) -> None:
            ran.append("Deploy")

        return serial(
            "Release",
            flow2.CallbackTask("Build", build),
            flow2.CallbackTask("Deploy", deploy, when=lambda context: context["target"] == "prod"),
        )

    variables = {"target": "prod", "version": "1.0"}
    run(runner(tmp_path).run(tree(), dict(variables)))
    assert ran == ["Build", "Deploy"]
    ran.clear()
    events: list[flow2.Event] = []
    run(
        runner(tmp_path, resume="last", listeners=[events.append]).run(
            tree(), {**variables, "target": "dev"}
        )
    )
    found = statuses(events)
    assert found["build"][0] is flow2.Status.REUSED
    assert found["deploy"] == (flow2.Status.SKIPPED, "condition is false")
    assert ran == []


def test_a_flow_condition_now_false_is_skipped_in_the_run_and_the_dry_run(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: serial
        name: Release
        tasks:
          - plugin: shell
            name: Build
            cmd: echo build
          - plugin: shell
            name: Deploy
            if: ${{ target == 'prod' }}
            cmd: echo deploy
        """,
    )
    assert flow2_command("run", flow, "target=prod", cwd=tmp_path).returncode == 0
    planned = flow2_command("run", flow, "target=dev", "--dry-run", "--resume", cwd=tmp_path)
    assert "Deploy → deploy  SKIP (condition is false)" in planned.stdout
    result = flow2_command(
        "run", flow, "target=dev", "--resume", "--display", "plain", cwd=tmp_path
    )
    assert "SKIPPED   Deploy: condition is false" in result.stdout
    assert "REUSED    Deploy" not in result.stdout
    assert explained(tmp_path / ".flow2", "deploy")["decision"] == "skipped"


# Order ----------------------------------------------------------------------------


def test_reordering_a_serial_group_reruns_the_moved_tasks_and_says_so(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    run(runner(tmp_path).run(serial("Checks", *(step(ran, n) for n in ("Lint", "Test", "Docs")))))
    ran.clear()
    reordered = serial("Checks", *(step(ran, n) for n in ("Lint", "Docs", "Test")))
    run(runner(tmp_path, resume="last").run(reordered))
    assert ran == ["Docs", "Test"]
    reasons = rerun_reasons(tmp_path)
    assert reasons["lint"] == f"succeeded in run {stored_run(tmp_path, 'last').id}" or reasons[
        "lint"
    ].startswith("succeeded in run ")
    assert reasons["docs"].startswith("order: moved before 'Test'")
    assert reasons["test"].startswith("order: moved after 'Docs'")
    told = explained(tmp_path, "docs")
    assert told["decision"] == "ran"
    assert told["differences"][0] == "order: moved before 'Test'"
    assert "input 'test' is no longer read" in told["differences"]


def test_a_parallel_group_turned_serial_reruns_its_tasks(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    run(runner(tmp_path).run(flow2.ParallelTaskGroup("All", step(ran, "A"), step(ran, "B"))))
    ran.clear()
    run(runner(tmp_path, resume="last").run(serial("All", step(ran, "A"), step(ran, "B"))))
    assert sorted(ran) == ["A", "B"]
    reasons = rerun_reasons(tmp_path)
    assert reasons["a"] == "order: its group is now serial (was parallel)"
    assert reasons["b"].startswith("order: its group is now serial (was parallel)")


# What a callback's behaviour depends on -------------------------------------------


def _one_step(callback: Any) -> flow2.Task:
    return serial("Tree", flow2.CallbackTask("Step", callback))


def _run_twice(tmp_path: Path, first: Any, second: Any) -> tuple[Ran, str]:
    """Run a one-task tree with callback ``first``, then resume it with ``second``:
    what ran the second time, and why."""
    run(runner(tmp_path).run(_one_step(first)))
    return _resumed(tmp_path, second)


def _resumed(tmp_path: Path, callback: Any) -> tuple[Ran, str]:
    run(runner(tmp_path, resume="last").run(_one_step(callback)))
    reason = rerun_reasons(tmp_path)["step"]
    assert reason is not None
    return Ran(tmp_path), reason


def _scale(factor: int, context: dict[str, Any]) -> int:
    return factor * 2


def test_a_changed_partial_argument_reruns(tmp_path: Path) -> None:
    _, reason = _run_twice(tmp_path, functools.partial(_scale, 1), functools.partial(_scale, 2))
    assert reason == "partial argument 1 changed"


class _Scaler:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    def scale(self, context: dict[str, Any]) -> int:
        return self.factor


def test_the_object_of_a_bound_method_is_part_of_the_key(tmp_path: Path) -> None:
    _, reason = _run_twice(tmp_path, _Scaler(1).scale, _Scaler(2).scale)
    assert reason == "object changed"


def _closure(value: int) -> Any:
    def read(context: dict[str, Any]) -> int:
        return value

    return read


def test_a_changed_closure_value_reruns(tmp_path: Path) -> None:
    _, reason = _run_twice(tmp_path, _closure(1), _closure(2))
    assert reason == "closure value value changed"


def test_a_changed_lambda_default_reruns(tmp_path: Path) -> None:
    _, reason = _run_twice(tmp_path, lambda context, mode=1: mode, lambda context, mode=2: mode)
    assert reason == "default value mode changed"


def _logged(function: Any) -> Any:
    @functools.wraps(function)
    def wrapper(context: dict[str, Any]) -> Any:
        return function(context)

    return wrapper


def test_the_body_of_a_decorated_callback_is_part_of_the_key(tmp_path: Path) -> None:
    def body(context: dict[str, Any]) -> int:
        return 1

    def changed(context: dict[str, Any]) -> int:
        return 2

    changed.__qualname__ = body.__qualname__
    _, reason = _run_twice(tmp_path, _logged(body), _logged(changed))
    assert reason.startswith("code")


def test_a_changed_helper_or_constant_reruns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "reuse_helpers.py").write_text(
        "LIMIT = 1\n\ndef normalize(value):\n    return value.lower()\n"
    )
    (modules / "reuse_steps.py").write_text(
        "import reuse_helpers\n\n"
        "def work(context):\n    return reuse_helpers.normalize('X') * reuse_helpers.LIMIT\n"
    )
    monkeypatch.syspath_prepend(str(modules))
    try:
        steps = importlib.import_module("reuse_steps")
        run(runner(tmp_path).run(_one_step(steps.work)))
        (modules / "reuse_helpers.py").write_text(
            "LIMIT = 1\n\ndef normalize(value):\n    return value.upper()\n"
        )
        importlib.reload(sys.modules["reuse_helpers"])
        _, reason = _resumed(tmp_path, importlib.reload(steps).work)
        assert reason == "code: helper reuse_helpers.normalize() changed"
        (modules / "reuse_helpers.py").write_text(
            "LIMIT = 2\n\ndef normalize(value):\n    return value.upper()\n"
        )
        importlib.reload(sys.modules["reuse_helpers"])
        _, reason = _resumed(tmp_path, importlib.reload(steps).work)
        assert reason == "constant reuse_helpers.LIMIT changed"
    finally:
        sys.modules.pop("reuse_steps", None)
        sys.modules.pop("reuse_helpers", None)


def test_a_changed_run_method_of_a_task_subclass_reruns(tmp_path: Path) -> None:
    ran = Ran(tmp_path)

    class Build(flow2.Task):
        async def run(self, context: dict[str, Any]) -> str:
            ran.append("build")
            return "one"

    first = Build

    class Build(flow2.Task):  # type: ignore[no-redef]
        async def run(self, context: dict[str, Any]) -> str:
            ran.append("build")
            return "two"

    run(runner(tmp_path).run(serial("Tree", first("Build"))))
    ran.clear()
    run(runner(tmp_path, resume="last").run(serial("Tree", Build("Build"))))
    assert ran == ["build"]
    assert rerun_reasons(tmp_path)["build"] == "code: method run changed"
    # Unchanged, it is reused.
    ran.clear()
    run(runner(tmp_path, resume="last").run(serial("Tree", Build("Build"))))
    assert ran == []


def test_an_unfingerprintable_callback_is_not_reusable_and_says_why(tmp_path: Path) -> None:
    lock = threading.Lock()
    ran = Ran(tmp_path)

    async def work(context: dict[str, Any], *, resource: Any = lock) -> None:
        ran.append("work")

    def tree() -> flow2.Task:
        return serial("Tree", flow2.CallbackTask("Work", work))

    run(runner(tmp_path).run(tree()))
    ran.clear()
    run(runner(tmp_path, resume="last").run(tree()))
    assert ran == ["work"]
    assert rerun_reasons(tmp_path)["work"].startswith("not reusable: ")


# Inputs ------------------------------------------------------------------------------

RELEASE = """
plugin: serial
name: Release
cache: true
tasks:
  - plugin: shell
    name: Wheel
    cmd: mkdir -p dist && cat src/a.py > dist/pkg.whl && echo wheel >> ran.txt
    sources: [src]
    outputs: [dist/pkg.whl]
    env_inputs: [MODE, API_TOKEN]
  - plugin: shell
    name: Upload
    needs: [wheel]
    cmd: echo upload ${{ version }} >> ran.txt
"""


def _release(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("print('a')\n")
    return write_flow(tmp_path, RELEASE)


def _ran(folder: Path) -> list[str]:
    path = folder / "ran.txt"
    if not path.exists():
        return []
    lines = path.read_text().split("\n")
    path.unlink()
    return [line.split()[0] for line in lines if line]


def _run_flow(folder: Path, flow: Path, *more: str, **env: str) -> str:
    result = flow2_command(
        "run", flow, "version=1.0", "--display", "plain", *more, cwd=folder, **env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_nothing_changed_everything_is_cached(tmp_path: Path) -> None:
    flow = _release(tmp_path)
    _run_flow(tmp_path, flow)
    assert _ran(tmp_path) == ["wheel", "upload"]
    first = stored_run(tmp_path / ".flow2").id
    output = _run_flow(tmp_path, flow)
    assert _ran(tmp_path) == []
    assert f"CACHED    Wheel (0.00s): cached from run {first}" in output
    assert f"CACHED    Upload (0.00s): cached from run {first}" in output
    assert "0 succeeded, 0 failed, 0 skipped, 0 cancelled, 2 cached" in output
    assert stored_run(tmp_path / ".flow2").counts["cached"] == 2
    assert explained(tmp_path / ".flow2", "Wheel")["decision"] == "cached"
    planned = flow2_command("run", flow, "version=1.0", "--dry-run", cwd=tmp_path).stdout
    assert "0 to run, 0 to skip, 2 to reuse" in planned


def test_an_edited_source_reruns_with_the_file_named_and_its_reader_too(tmp_path: Path) -> None:
    flow = _release(tmp_path)
    _run_flow(tmp_path, flow)
    _ran(tmp_path)
    (tmp_path / "src" / "a.py").write_text("print('b')\n")
    planned = flow2_command("run", flow, "version=1.0", "--dry-run", cwd=tmp_path).stdout
    assert "Wheel → wheel  RUN (sources: src/a.py changed)" in planned
    assert "Upload → upload  RUN (runs: input 'wheel' will be produced again)" in planned
    _run_flow(tmp_path, flow)
    # needs: [wheel] and ${{ version }}: the new wheel is uploaded.
    assert _ran(tmp_path) == ["wheel", "upload"]
    assert explained(tmp_path / ".flow2", "wheel")["reason"] == "sources: src/a.py changed"
    assert explained(tmp_path / ".flow2", "upload")["reason"] == "input 'wheel' changed"
    result = flow2_command("explain", "Wheel", "--store", tmp_path / ".flow2", cwd=tmp_path)
    assert "sources: src/a.py changed" in result.stdout


def test_a_deleted_or_modified_output_reruns_its_task(tmp_path: Path) -> None:
    flow = _release(tmp_path)
    _run_flow(tmp_path, flow)
    _ran(tmp_path)
    (tmp_path / "dist" / "pkg.whl").unlink()
    planned = flow2_command("run", flow, "version=1.0", "--dry-run", cwd=tmp_path).stdout
    assert "Wheel → wheel  RUN (outputs: dist/pkg.whl missing)" in planned
    _run_flow(tmp_path, flow)
    assert _ran(tmp_path)[0] == "wheel"
    assert (tmp_path / "dist" / "pkg.whl").exists()
    assert explained(tmp_path / ".flow2", "wheel")["reason"] == "outputs: dist/pkg.whl missing"
    (tmp_path / "dist" / "pkg.whl").write_text("tampered")
    _run_flow(tmp_path, flow)
    assert _ran(tmp_path)[0] == "wheel"
    assert explained(tmp_path / ".flow2", "wheel")["reason"] == "outputs: dist/pkg.whl changed"


def test_a_changed_secret_environment_variable_is_named_never_shown(tmp_path: Path) -> None:
    flow = _release(tmp_path)
    _run_flow(tmp_path, flow, API_TOKEN="first-secret-value")
    _ran(tmp_path)
    _run_flow(tmp_path, flow, API_TOKEN="second-secret-value", MODE="")
    assert _ran(tmp_path)[0] == "wheel"
    told = explained(tmp_path / ".flow2", "wheel")
    assert told["reason"].startswith("env API_TOKEN: changed (value hidden)")
    assert told["differences"] == [
        "env API_TOKEN: changed (value hidden)",
        "env MODE: changed (value hidden)",
    ]
    shown = flow2_command("explain", "wheel", "--store", tmp_path / ".flow2").stdout
    assert "env API_TOKEN: changed (value hidden)" in shown
    raw = (tmp_path / ".flow2" / "runs.sqlite3").read_bytes()
    wal = tmp_path / ".flow2" / "runs.sqlite3-wal"
    if wal.exists():
        raw += wal.read_bytes()
    assert b"second-secret-value" not in raw and b"first-secret-value" not in raw
    assert "secret-value" not in shown


def test_a_source_edited_while_its_task_runs_keeps_no_entry(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: shell
        name: Build
        cache: true
        cmd: echo build >> ran.txt && echo edited > src/a.py
        sources: [src/a.py]
        """,
    )
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("first\n")
    output = _run_flow(tmp_path, flow)
    assert "'Build': src/a.py changed while it ran; its result is not kept for reuse" in output
    assert explained(tmp_path / ".flow2", "build")["reason"] == (
        "not kept for reuse: sources: src/a.py changed while it ran"
    )
    _ran(tmp_path)
    _run_flow(tmp_path, flow)
    assert _ran(tmp_path) == ["build"]  # it ran again: nothing was kept


def test_a_reused_result_is_an_independent_copy(tmp_path: Path) -> None:
    async def rows(context: dict[str, Any]) -> dict[str, list[int]]:
        return {"rows": [1, 2]}

    def tree() -> flow2.Task:
        return serial("Tree", flow2.CallbackTask("Rows", rows))

    run(runner(tmp_path).run(tree()))
    context = run(runner(tmp_path, resume="last").run(tree()))
    context["rows"]["rows"].append(3)
    again = run(runner(tmp_path, resume="last").run(tree()))
    assert again["rows"] == {"rows": [1, 2]}
    assert again["rows"] is not context["rows"]


# Lineage -----------------------------------------------------------------------------


def test_a_partial_run_keeps_the_lineage(tmp_path: Path) -> None:
    ran = Ran(tmp_path)

    def tree(fail: bool) -> flow2.Task:
        async def last(context: dict[str, Any]) -> None:
            ran.append("Last")
            if fail:
                raise RuntimeError("not yet")

        return serial(
            "Tree", step(ran, "First", 1), step(ran, "Second", 2), flow2.CallbackTask("Last", last)
        )

    run(runner(tmp_path).run(tree(True), raises=False))
    ran.clear()
    run(runner(tmp_path, resume="last", only=["first"]).run(tree(False)))
    assert ran == []  # First reused, the others left out
    ran.clear()
    run(runner(tmp_path, resume="last").run(tree(False)))
    assert ran == ["Last"]  # Second's success two runs back is still known
    reasons = rerun_reasons(tmp_path)
    first_run = stored_run(tmp_path).id
    assert reasons["second"].startswith("succeeded in run ")
    assert reasons["last"].startswith("failed in run ")
    assert first_run


def test_a_resume_killed_before_its_first_commit_keeps_the_lineage(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    run(runner(tmp_path).run(serial("Tree", step(ran, "A", 1), step(ran, "B", 2))))
    first, started = stored_run(tmp_path).id, stored_run(tmp_path).started_at
    # A resume of it killed before it wrote any task: its run row only.
    with sqlite3.connect(tmp_path / "runs.sqlite3") as connection:
        connection.execute(
            "INSERT INTO runs (id, name, flow, variables, started_at, last_seen, status, pid, "
            "host, resumed_from) VALUES ('aaaaaaaaaaaa', 'Tree', NULL, '{}', ?, ?, "
            "'running', 0, 'gone', ?)",
            (started + 0.001, started + 0.001, first),
        )
    ran.clear()
    run(runner(tmp_path, resume="last").run(serial("Tree", step(ran, "A", 1), step(ran, "B", 2))))
    assert ran == []
    assert stored_run(tmp_path).resumed_from == "aaaaaaaaaaaa"
    assert rerun_reasons(tmp_path) == {
        "a": f"succeeded in run {first}",
        "b": f"succeeded in run {first}",
    }


def test_runner_cache_reuses_across_runs_without_resume(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    run(runner(tmp_path, cache=True).run(serial("Tree", step(ran, "A", 1))))
    ran.clear()
    events: list[flow2.Event] = []
    result = run(
        runner(tmp_path, cache=True, listeners=[events.append]).execute(
            serial("Tree", step(ran, "A", 1))
        )
    )
    assert ran == []
    assert result.counts.cached == 1 and result.counts.reused == 0 and result.succeeded
    status, reason = statuses(events)["a"]
    assert (
        status is flow2.Status.CACHED
        and reason is not None
        and reason.startswith("cached from run ")
    )
    # Without the cache, a plain run runs everything.
    run(runner(tmp_path).run(serial("Tree", step(ran, "A", 1))))
    assert ran == ["A"]
    with pytest.raises(flow2.ConfigurationError, match="cache=True needs a run store"):
        flow2.Runner(cache=True, store=False)


def test_a_dry_run_imports_no_callback_and_still_plans_the_cache(tmp_path: Path) -> None:
    (tmp_path / "reuse_dry_steps.py").write_text(
        "import pathlib\n\n"
        "def build(context):\n"
        "    pathlib.Path('imported').touch()\n"
        "    return 'wheel'\n"
    )
    text = """
        plugin: serial
        name: P
        cache: true
        tasks:
          - plugin: callback
            name: Build
            callback: reuse_dry_steps:build
            timeout: {timeout}
        """
    flow = write_flow(tmp_path, text.format(timeout=10))
    _run_flow(tmp_path, flow)
    (tmp_path / "imported").unlink()
    planned = flow2_command("run", flow, "version=1.0", "--dry-run", cwd=tmp_path).stdout
    (line,) = [line for line in planned.splitlines() if "Build → build" in line]
    assert "REUSE (cached from run " in line
    assert not (tmp_path / "imported").exists()  # the callback's module was not imported
    write_flow(tmp_path, text.format(timeout=20))
    planned = flow2_command("run", flow, "version=1.0", "--dry-run", cwd=tmp_path).stdout
    assert "Build → build  RUN (option timeout changed)" in planned


CHECKS = """
plugin: serial
name: Checks
tasks:
  - plugin: shell
    name: {first}
    cmd: echo {first} >> ran.txt
  - plugin: shell
    name: {second}
    cmd: echo {second} >> ran.txt
"""


def test_a_reordered_flow_says_so_in_the_run_the_dry_run_and_explain(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, CHECKS.format(first="Lint", second="Test"))
    _run_flow(tmp_path, flow)
    first = stored_run(tmp_path / ".flow2").id
    _ran(tmp_path)
    write_flow(tmp_path, CHECKS.format(first="Test", second="Lint"))
    planned = flow2_command(
        "run", flow, "version=1.0", "--dry-run", "--resume", cwd=tmp_path
    ).stdout
    assert "Test → test  RUN (order: moved before 'Lint' (and 1 more: flow2 explain))" in planned
    assert "Lint → lint  RUN (runs: input 'test' will be produced again)" in planned
    output = _run_flow(tmp_path, flow, "--resume")
    assert _ran(tmp_path) == ["Test", "Lint"]
    assert "resuming run " in output
    second = stored_run(tmp_path / ".flow2").id
    told = explained(tmp_path / ".flow2", "Test")
    assert told["decision"] == "ran"
    assert told["reason"] == "order: moved before 'Lint' (and 1 more: flow2 explain)"
    assert told["differences"] == ["order: moved before 'Lint'", "input 'lint' is no longer read"]
    assert told["compared_with"] == first and told["run"] == second
    assert "order" in told["parts"] and "command" in told["parts"]
    lint = explained(tmp_path / ".flow2", "Checks/Lint", second)
    assert lint["reason"].startswith("order: moved after 'Test'")
    assert "input 'test' is read now" in lint["differences"]
    shown = flow2_command("explain", "lint", "--store", tmp_path / ".flow2").stdout
    assert shown.startswith(f"Checks › Lint in run {second}: ran (order: moved after 'Test'")
    assert f"differences from the entry of run {first}:" in shown
    # Unchanged, the next resume reuses both, and explain says so.
    _run_flow(tmp_path, flow, "--resume")
    assert _ran(tmp_path) == []
    assert explained(tmp_path / ".flow2", "lint")["decision"] == "reused"
    # The first run is still there to explain.
    assert explained(tmp_path / ".flow2", "lint", first)["run"] == first


def test_tasks_from_python_declare_sources_outputs_and_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.ini").write_text("a = 1\n")
    ran = Ran(tmp_path)

    def build(context: dict[str, Any]) -> str:
        ran.append("build")
        Path("out.txt").write_text("built")
        return "built"

    def tree() -> flow2.Task:
        return flow2.SerialTaskGroup(
            "Tree",
            flow2.CallbackTask("Build", build, sources=["config.ini"], outputs=["out.txt"]),
            cache=True,
        )

    store = tmp_path / "store"
    run(runner(store).run(tree()))
    ran.clear()
    run(runner(store).run(tree()))
    assert ran == []
    (tmp_path / "config.ini").write_text("a = 2\n")
    run(runner(store).run(tree()))
    assert ran == ["build"]
    assert rerun_reasons(store)["build"] == "sources: config.ini changed"
    with pytest.raises(flow2.DefinitionError, match="sources=") as caught:
        flow2.CallbackTask("Build", build, sources=[3])
    assert caught.value.option == "sources" and caught.value.task == "Build"
    with pytest.raises(flow2.DefinitionError, match="cache="):
        flow2.CallbackTask("Build", build, cache="yes")


def test_a_changed_description_is_no_reason_to_run_again(tmp_path: Path) -> None:
    described = CHECKS.replace(
        "    name: {first}\n", "    name: {first}\n    description: {note}\n"
    )
    flow = write_flow(tmp_path, described.format(first="Lint", second="Test", note="old words"))
    _run_flow(tmp_path, flow)
    assert _ran(tmp_path) == ["Lint", "Test"]
    write_flow(tmp_path, described.format(first="Lint", second="Test", note="new words"))
    _run_flow(tmp_path, flow, "--resume")
    assert _ran(tmp_path) == []
    assert explained(tmp_path / ".flow2", "lint")["decision"] == "reused"


VARIABLES = """
name: Variables
cache: true
tasks:
  - name: Plain
    cmd: echo plain >> ran.txt
  - name: Versioned
    cmd: echo versioned ${{ version }} >> ran.txt
"""


def test_a_shell_task_reads_only_the_variables_its_expressions_use(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, VARIABLES)
    _run_flow(tmp_path, flow)
    assert _ran(tmp_path) == ["plain", "versioned"]
    # Another value of a variable the plain command never sees, a new one, and
    # the words after --: only the task using version runs again.
    result = flow2_command(
        "run",
        flow,
        "version=2.0",
        "extra=1",
        "--display",
        "plain",
        "--",
        "-k",
        "x",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _ran(tmp_path) == ["versioned"]
    assert explained(tmp_path / ".flow2", "Versioned")["reason"] == "variable 'version' changed"


def test_a_shell_task_subclass_with_its_own_run_reads_every_variable(tmp_path: Path) -> None:
    ran = Ran(tmp_path)

    class Announce(flow2.ShellTask):
        async def run(self, context: dict[str, Any]) -> Any:
            ran.append(str(context.get("greeting")))
            return await super().run(context)

    def tree() -> flow2.Task:
        return flow2.SerialTaskGroup("Tree", Announce("Announce", "true"), cache=True)

    run(runner(tmp_path).run(tree(), {"greeting": "hi"}))
    run(runner(tmp_path).run(tree(), {"greeting": "hello"}))
    assert ran.names() == ["hi", "hello"]
    run(runner(tmp_path).run(tree(), {"greeting": "hello"}))
    assert ran.names() == ["hi", "hello"]
