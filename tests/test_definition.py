"""What defines a task: the options it declares, which the run store fingerprints."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import flow2

from .conftest import Ran, run


class Upload(flow2.Task):
    """A task with one option of its own, a private cache and an undeclared attribute."""

    definition_options = (*flow2.Task.definition_options, "bucket")

    def __init__(self, name: str, bucket: str, ran: Ran, **options: Any) -> None:
        super().__init__(name, **options)
        self.bucket = bucket
        self.ran = ran  # how the test sees it run: not part of what it does
        self._client: object | None = None

    async def run(self, context: dict[str, Any]) -> str:
        self.ran.append(self.name)
        return f"uploaded to {self.bucket}"


class Signed(Upload):
    """A definition computed by the class: it extends ``super().definition()``."""

    def __init__(self, name: str, bucket: str, ran: Ran, key_file: Path) -> None:
        super().__init__(name, bucket, ran)
        self._key_file = key_file

    def definition(self) -> dict[str, Any]:
        return {**super().definition(), "key_file": str(self._key_file)}


def runner(store: Path, **options: Any) -> flow2.Runner:
    return flow2.Runner(display="none", store=store, **options)


def test_definition_has_the_declared_options_and_nothing_else() -> None:
    task = Upload("Upload", "releases", Ran(Path(".")), timeout=30)
    definition = task.definition()
    assert definition["bucket"] == "releases" and definition["timeout"] == 30.0
    assert not {"name", "key", "ran", "_client"} & set(definition)
    # when, needs and runtime_options only when the task has them
    assert not {"when", "needs", "runtime_options"} & set(definition)
    assert flow2.Task("Check", needs="wheel").definition()["needs"] == ("wheel",)


def test_the_definitions_of_the_built_in_tasks_name_their_own_options() -> None:
    async def work(context: dict[str, Any]) -> None:
        return None

    shell = flow2.ShellTask("Test", "pytest -q", env={"CI": "1"}, cwd="src")
    assert {"cmd", "shell", "cwd", "env", "output_limit", "kill_grace"} <= set(shell.definition())
    assert flow2.CallbackTask("Work", work).definition()["callback"] is work
    group = flow2.ParallelTaskGroup("All", shell, max_parallel=2)
    assert group.definition()["max_parallel"] == 2 and "tasks" not in group.definition()


def test_a_declared_option_that_changed_runs_the_task_again(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    run(runner(tmp_path).run(flow2.SerialTaskGroup("Release", Upload("Upload", "releases", ran))))
    ran.clear()
    moved = flow2.SerialTaskGroup("Release", Upload("Upload", "archive", ran))
    context = run(runner(tmp_path, resume="last").run(moved))
    assert ran == ["Upload"] and context["upload"] == "uploaded to archive"


def test_a_computed_definition_counts_what_it_returns(tmp_path: Path) -> None:
    ran = Ran(tmp_path)

    def tree(key_file: str) -> flow2.Task:
        return flow2.SerialTaskGroup("Release", Signed("Sign", "releases", ran, Path(key_file)))

    run(runner(tmp_path).run(tree("a.pem")))
    ran.clear()
    run(runner(tmp_path, resume="last").run(tree("a.pem")))
    assert ran == []
    run(runner(tmp_path, resume="last").run(tree("b.pem")))
    assert ran == ["Sign"]


def test_many_tasks_of_one_class_differing_only_in_a_declared_option(tmp_path: Path) -> None:
    # The store compares a batch of tasks of one class at once: a declared
    # option set on one task only still gives that task a definition of its own.
    ran = Ran(tmp_path)
    tasks = [Upload(f"Upload {index}", "releases", ran) for index in range(50)]
    tasks[20].bucket = "archive"
    run(runner(tmp_path).run(flow2.ParallelTaskGroup("All", *tasks)))
    ran.clear()
    again = [Upload(f"Upload {index}", "releases", ran) for index in range(50)]
    run(runner(tmp_path, resume="last").run(flow2.ParallelTaskGroup("All", *again)))
    assert "Upload 20" in ran
    with closing(sqlite3.connect(tmp_path / "runs.sqlite3")) as store:
        reasons = dict(
            store.execute(
                "SELECT key, reason FROM tasks JOIN task_notes USING (run_id, number) "
                "WHERE run_id = (SELECT id FROM runs ORDER BY started_at DESC LIMIT 1)"
            )
        )
    assert reasons["upload_20"].startswith("option bucket changed")
    assert [key for key, reason in reasons.items() if "changed" in (reason or "")] == ["upload_20"]


def test_an_attribute_of_a_task_subclass_is_part_of_its_key(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    run(runner(tmp_path).run(flow2.SerialTaskGroup("Release", Upload("Upload", "releases", ran))))
    ran.clear()
    again = Upload("Upload", "releases", ran)
    again.notes = "added after construction"  # type: ignore[attr-defined]
    run(runner(tmp_path, resume="last").run(flow2.SerialTaskGroup("Release", again)))
    assert ran == ["Upload"]
