"""What the run store writes of each task, when many tasks are recorded in bulk."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any, ClassVar

import pytest

import flow2
from flow2._store._database import Store, StoredRun
from flow2._store._values import definition_of

from .conftest import Ran, Recorder, run, stored_run, to_schema_5


async def nothing(context: dict[str, Any]) -> None:
    return None


async def value(context: dict[str, Any]) -> dict[str, Any]:
    return {"rows": [1, 2.5, "three"]}


async def broken(context: dict[str, Any]) -> None:
    raise RuntimeError("broken on purpose")


def rows(store: Path, query: str, *parameters: Any) -> list[sqlite3.Row]:
    with sqlite3.connect(store / "runs.sqlite3") as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(query, parameters).fetchall()


def test_every_task_of_a_large_run_is_recorded_as_its_events_said(tmp_path: Path) -> None:
    # Quick tasks (written in bulk) between tasks that return a value, fail,
    # or are skipped (written one by one): each row must be its own task's.
    many = [flow2.CallbackTask(f"Quick {index}", nothing) for index in range(300)]
    tree = flow2.ParallelTaskGroup(
        "Root",
        flow2.ParallelTaskGroup("Many", *many[:150], flow2.CallbackTask("Value", value)),
        flow2.SerialTaskGroup("Chain", flow2.CallbackTask("Broken", broken), *many[150:152]),
        flow2.ParallelTaskGroup("More", *many[152:]),
    )
    events = Recorder()
    runner = flow2.Runner(display="none", store=tmp_path, listeners=[events])
    run(runner.run(tree, raises=False))

    record = flow2.read_store(store=tmp_path)
    assert len(record.tasks) == 306
    by_path = {task.path: task for task in record.tasks}
    for task in record.tasks:
        if task.parent is not None:
            assert record.tasks[task.parent].path == task.path[:-1]
    started: dict[tuple[str, ...], float] = {}
    for event in events.events:
        if not isinstance(event, flow2.TaskEvent):
            continue
        path = event.path
        if event.status is flow2.Status.RUNNING:
            started[path] = event.time
        elif event.status.is_finished:
            stored = by_path[path]
            assert stored.status is event.status, path
            assert stored.end == event.time, path
            assert stored.start == started.get(path, event.time), path
    stored = {task.key: task for task in stored_run(tmp_path).tasks}
    durations = {
        event.task.key: event.duration
        for event in events.events
        if isinstance(event, flow2.TaskEvent) and event.status.is_finished
    }
    for task in many[:150] + many[152:]:
        row = stored[task.key]
        assert (row.status, row.attempts, row.result_format, row.result) == (
            "succeeded",
            1,
            "json",
            "null",
        )
        assert row.duration == durations[task.key]
        assert row.path[:-1] in {("Root", "Many"), ("Root", "More")}
    assert json.loads(stored["value"].result or "") == {"rows": [1, 2.5, "three"]}
    assert [stored[task.key].status for task in many[150:152]] == ["skipped"] * 2
    assert stored["broken"].status == "failed"
    counts = rows(tmp_path, "SELECT counts FROM runs")[0]["counts"]
    assert json.loads(counts) == {
        "succeeded": 299,
        "failed": 1,
        "skipped": 2,
        "cancelled": 0,
        "reused": 0,
        "cached": 0,
    }


@pytest.mark.parametrize(
    ("odd_one", "part"),
    [
        (flow2.CallbackTask("Odd", nothing, timeout=5), "timeout"),  # another option value
        (flow2.CallbackTask("Odd", nothing, needs=["step_0"]), "needs"),  # an attribute more
    ],
)
def test_a_task_unlike_the_many_around_it_keeps_its_own_definition(
    tmp_path: Path, odd_one: flow2.Task, part: str
) -> None:
    plain = [flow2.CallbackTask(f"Step {index}", nothing) for index in range(200)]
    tree = flow2.ParallelTaskGroup("Steps", *plain[:100], odd_one, *plain[100:])
    run(flow2.Runner(display="none", store=tmp_path).run(tree))

    parts = {task.key: task.definition for task in stored_run(tmp_path).tasks if not task.is_group}
    assert len(parts) == 201
    assert all(parts[task.key] == parts["step_0"] for task in plain)
    assert parts["odd"].get(part) != parts["step_0"].get(part)
    assert parts["odd"] == definition_of(odd_one)


def test_a_retried_error_is_masked_in_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cr3t-value")
    attempts: list[int] = []

    async def flaky(context: dict[str, Any]) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("refused s3cr3t-value")
        return "done"

    task = flow2.CallbackTask("Flaky", flaky, retries=1, retry_delay=0.01)
    run(flow2.Runner(display="none", store=tmp_path).run(task))

    (stored,) = rows(tmp_path, "SELECT retries FROM task_notes")
    retries = json.loads(stored["retries"])
    assert [entry[2:4] for entry in retries] == [["ValueError", "refused ***"]]
    assert "s3cr3t-value" not in stored["retries"]


def test_retention_deletes_a_definition_once_no_run_uses_it(tmp_path: Path) -> None:
    async def first(context: dict[str, Any]) -> None:
        return None

    async def second(context: dict[str, Any]) -> None:
        return None

    # Three runs: the step's definition is the first, the second, the first again.
    for callback in (first, second, first):
        tree = flow2.SerialTaskGroup(
            "Pipeline", flow2.CallbackTask("Step", callback), flow2.CallbackTask("Same", nothing)
        )
        run(flow2.Runner(display="none", store=tmp_path).run(tree))
    # Each run's definition id of each task, found by its parts.
    known = {row["parts"]: row["id"] for row in rows(tmp_path, "SELECT id, parts FROM definitions")}
    uses = [
        {
            task.key: known[json.dumps(task.definition, sort_keys=True)]
            for task in stored_run(tmp_path, run_id).tasks
            if not task.is_group
        }
        for (run_id,) in rows(tmp_path, "SELECT id FROM runs ORDER BY started_at")
    ]
    first_step, second_step, same = uses[0]["step"], uses[1]["step"], uses[0]["same"]
    assert uses[2] == uses[0] and second_step != first_step

    def stored() -> set[str]:
        return {row["id"] for row in rows(tmp_path, "SELECT id FROM definitions")}

    assert stored() == {first_step, second_step, same}
    store = Store(tmp_path)
    connection = store.connect()
    try:
        # The oldest run goes: the newest one, not the oldest one left, still
        # uses its step's definition, which stays.
        assert len(store.prune(connection, keep=2)) == 1
        assert stored() == {first_step, second_step, same}
        # The run with the second definition goes: no run uses it any more.
        assert len(store.prune(connection, keep=1)) == 1
        assert stored() == {first_step, same}
    finally:
        connection.close()


def stored_run_so_far(store: Path) -> StoredRun | None:
    """The run recorded in ``store``, or None before its writer wrote it."""
    try:
        return stored_run(store)
    except flow2.StoreError:
        return None


def test_a_task_running_when_the_writer_commits_shows_running_then_has_one_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flow2._store import _recorder

    monkeypatch.setattr(_recorder, "FLUSH_INTERVAL", 0.05)
    seen: list[str] = []

    async def wait_until_recorded_running(context: dict[str, Any]) -> None:
        # Polls the store (off the loop) until a commit wrote this task as running.
        for _ in range(400):
            recorded = await asyncio.to_thread(stored_run_so_far, tmp_path)
            tasks = recorded.tasks if recorded is not None else []
            seen[:] = [task.status for task in tasks if task.key == "slow"]
            if seen == ["running"]:
                return None
            await asyncio.sleep(0.01)
        raise AssertionError(f"never recorded as running: {seen}")

    tree = flow2.ParallelTaskGroup(
        "Root",
        flow2.CallbackTask("Slow", wait_until_recorded_running),
        *(flow2.CallbackTask(f"Quick {index}", nothing) for index in range(50)),
    )
    run(flow2.Runner(display="none", store=tmp_path).run(tree))

    assert seen == ["running"]
    slow = [task for task in stored_run(tmp_path).tasks if task.key == "slow"]
    assert [(task.status, task.path) for task in slow] == [("succeeded", ("Root", "Slow"))]
    # Its success replaced the row written while it ran: no running row is left.
    assert rows(tmp_path, "SELECT status FROM tasks WHERE key = 'slow'") == []


def test_names_and_keys_holding_any_character_are_stored_exactly(tmp_path: Path) -> None:
    names = ["Plain", "With\x00nul", "Ünïcode ✓", "[looks like json]", ""]
    tasks = [
        flow2.CallbackTask(name or "Empty", nothing, register=f"key_{index}\x00x")
        for index, name in enumerate(names)
    ]
    tasks[-1].name = ""  # a name no constructor accepts, set afterwards
    run(flow2.Runner(display="none", store=tmp_path).run(flow2.ParallelTaskGroup("Root", *tasks)))

    stored = {task.key: task.path[-1] for task in stored_run(tmp_path).tasks if task.parent == 0}
    assert stored == {f"key_{index}\x00x": name for index, name in enumerate(names)}


def test_a_run_of_one_task_is_recorded(tmp_path: Path) -> None:
    run(flow2.Runner(display="none", store=tmp_path).run(flow2.CallbackTask("Alone", nothing)))

    (task,) = stored_run(tmp_path).tasks
    assert (task.path, task.parent, task.status, task.result) == (
        ("Alone",),
        None,
        "succeeded",
        "null",
    )


class Deploy(flow2.Task):
    """Reads an option its class gives a default for, set on some tasks only."""

    definition_options = (*flow2.Task.definition_options, "target")
    target = "staging"

    async def run(self, context: dict[str, Any]) -> None:
        return None


def test_a_task_setting_what_its_class_defaults_keeps_its_own_definition(tmp_path: Path) -> None:
    tasks = [Deploy(f"Deploy {index}") for index in range(100)]
    tasks[40].target = "production"
    run(flow2.Runner(display="none", store=tmp_path).run(flow2.ParallelTaskGroup("All", *tasks)))

    parts = {task.key: task.definition for task in stored_run(tmp_path).tasks if task.parent == 0}
    assert parts["deploy_40"] == definition_of(tasks[40])
    assert parts["deploy_40"] != parts["deploy_0"]
    assert all(parts[task.key] == parts["deploy_0"] for task in tasks if task is not tasks[40])


def test_a_store_written_before_packed_rows_is_migrated_and_resumed(tmp_path: Path) -> None:
    # A store of schema 2 held every task as a row of `tasks`: made here from
    # a run recorded now, its packed rows written back as rows.
    ran = Ran(tmp_path / "log")
    (tmp_path / "log").mkdir()
    ran.fail("last")

    def step(name: str) -> Any:
        async def work(context: dict[str, Any]) -> None:
            ran.append(name)
            if ran.fails(name):
                ran.fail(None)
                raise RuntimeError("fails the first time")

        work.__qualname__ = "step.work"
        return work

    def tree() -> flow2.Task:
        return flow2.SerialTaskGroup(
            "Pipeline",
            *(flow2.CallbackTask(name.title(), step(name)) for name in ("a", "b", "last")),
        )

    run(flow2.Runner(display="none", store=tmp_path).run(tree(), raises=False))
    recorded = stored_run(tmp_path)
    with sqlite3.connect(tmp_path / "runs.sqlite3") as connection:
        to_schema_5(connection)
        connection.execute("ALTER TABLE tasks DROP COLUMN queued")  # schema 5's
        known = {row[1]: row[0] for row in connection.execute("SELECT id, parts FROM definitions")}
        for task in recorded.tasks:
            if task.is_group or task.status != "succeeded":
                continue
            connection.execute(
                "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, 0, 'succeeded', ?, ?, ?, ?, 'json', "
                "'null', ?)",
                (
                    recorded.id,
                    task.number,
                    task.parent,
                    task.path[-1],
                    task.key,
                    task.attempts,
                    task.started_at,
                    task.ended_at,
                    task.duration,
                    known[json.dumps(task.definition, sort_keys=True)],
                ),
            )
        connection.execute("DROP TABLE task_batches")
        connection.execute("DROP TABLE task_keys")  # schema 5's
        connection.execute("DROP TABLE cache_entries")
        connection.execute("ALTER TABLE runs DROP COLUMN process")  # schema 4's
        connection.execute("UPDATE flow2_store SET value = '2' WHERE key = 'schema_version'")

    ran.clear()
    run(flow2.Runner(display="none", store=tmp_path, resume="last").run(tree()))

    # A run of schema 2 has no reuse keys: resumed, every task runs (once), and says why.
    assert ran == ["a", "b", "last"]
    with sqlite3.connect(tmp_path / "runs.sqlite3") as connection:
        assert connection.execute(
            "SELECT value FROM flow2_store WHERE key = 'schema_version'"
        ).fetchone() == ("6",)
    reasons = [task.reason for task in stored_run(tmp_path).tasks if not task.is_group]
    assert reasons[0] == f"no result kept in run {recorded.id}: no reuse key was recorded"
    assert reasons[2] == f"failed in run {recorded.id}"
    # The migrated store keeps keys from now on: resumed again, nothing runs.
    ran.clear()
    run(flow2.Runner(display="none", store=tmp_path, resume="last").run(tree()))
    assert ran == []
    assert [task.status for task in stored_run(tmp_path).tasks] == [
        "succeeded",
        "reused",
        "reused",
        "reused",
    ]


def test_a_long_task_keeps_the_run_seen_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a run killed during a long task shows as its duration.
    from flow2._store import _recorder

    monkeypatch.setattr(_recorder, "FLUSH_INTERVAL", 0.02)
    monkeypatch.setattr(_recorder, "HEARTBEAT_INTERVAL", 0.05)
    lived: list[float] = []

    async def long_task(context: dict[str, Any]) -> None:
        for _ in range(500):
            recorded = await asyncio.to_thread(stored_run_so_far, tmp_path)
            lived[:] = [recorded.duration or 0.0] if recorded is not None else [0.0]
            if lived[0] >= 0.3:
                return None
            await asyncio.sleep(0.01)
        raise AssertionError(f"the run's last_seen stayed {lived} seconds after its start")

    run(flow2.Runner(display="none", store=tmp_path).run(flow2.CallbackTask("Long", long_task)))
    assert lived[0] >= 0.3


class SucceedsWithoutDuration(flow2.Task):
    """A task whose own success hook builds its event with no duration."""

    runs: ClassVar[list[flow2.Run]] = []

    async def run(self, context: dict[str, Any]) -> None:
        return None

    async def success(self, result: Any, context: dict[str, Any]) -> None:
        self.runs[-1].record_of(self).emit(flow2.Status.SUCCEEDED)


class KeepRun:
    listens_to: frozenset[flow2.Status] = frozenset()

    def __call__(self, event: flow2.Event) -> None:
        if isinstance(event, flow2.RunEvent) and event.status is flow2.Status.RUNNING:
            SucceedsWithoutDuration.runs.append(event.run)


def test_a_success_without_a_duration_is_recorded_with_the_others(tmp_path: Path) -> None:
    tasks = [flow2.CallbackTask(f"Plain {index}", nothing) for index in range(20)]
    tree = flow2.ParallelTaskGroup("Root", *tasks[:10], SucceedsWithoutDuration("Odd"), *tasks[10:])
    run(flow2.Runner(display="none", store=tmp_path, listeners=[KeepRun()]).run(tree))

    recorded = stored_run(tmp_path)
    stored = {task.key: task for task in recorded.tasks}
    assert len(stored) == 22
    assert (stored["odd"].status, stored["odd"].duration, stored["odd"].result) == (
        "succeeded",
        None,
        "null",
    )
    assert stored["odd"].definition == definition_of(tree.tasks[10])
    assert recorded.counts["succeeded"] == 21


class Upload(flow2.Task):
    """Declares only an option of its own: its description is no part of its definition."""

    definition_options = ("bucket",)
    bucket = "releases"

    async def run(self, context: dict[str, Any]) -> None:
        return None


def test_each_task_keeps_its_own_description_among_many_alike(tmp_path: Path) -> None:
    described = [
        flow2.CallbackTask(f"Check {index}", nothing, description="Checks a part")
        for index in range(40)
    ]
    described[17].description = "Checks the odd part"
    uploads = [Upload(f"Upload {index}", description=f"Upload {index % 2}") for index in range(40)]
    tree = flow2.SerialTaskGroup(
        "All",
        flow2.ParallelTaskGroup("Checks", *described),
        flow2.ParallelTaskGroup("Uploads", *uploads),
    )
    run(flow2.Runner(display="none", store=tmp_path).run(tree))

    shown = {task.key: task.description for task in stored_run(tmp_path).tasks}
    assert shown["check_17"] == "Checks the odd part"
    assert all(shown[f"check_{index}"] == "Checks a part" for index in range(40) if index != 17)
    assert all(shown[f"upload_{index}"] == f"Upload {index % 2}" for index in range(40))
    assert shown["all"] is None and shown["checks"] is None


def test_a_cleanup_task_written_while_it_runs_has_its_role_and_description(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flow2._store import _recorder

    monkeypatch.setattr(_recorder, "FLUSH_INTERVAL", 0.05)
    seen: list[tuple[str, str | None, str | None]] = []

    async def wait_until_recorded_running(context: dict[str, Any]) -> None:
        for _ in range(400):
            recorded = await asyncio.to_thread(stored_run_so_far, tmp_path)
            tasks = recorded.tasks if recorded is not None else []
            seen[:] = [
                (task.status, task.role, task.description) for task in tasks if task.key == "stop"
            ]
            if seen and seen[0][0] == "running":
                return None
            await asyncio.sleep(0.01)
        raise AssertionError(f"never recorded as running: {seen}")

    tree = flow2.SerialTaskGroup(
        "Root",
        *(flow2.CallbackTask(f"Quick {index}", nothing) for index in range(20)),
        finally_tasks=[
            flow2.CallbackTask("Stop", wait_until_recorded_running, description="Stops it all")
        ],
    )
    run(flow2.Runner(display="none", store=tmp_path).run(tree))

    assert seen == [("running", "finally", "Stops it all")]
    stop = [task for task in stored_run(tmp_path).tasks if task.key == "stop"]
    assert [(task.status, task.role, task.description) for task in stop] == [
        ("succeeded", "finally", "Stops it all")
    ]
    assert {task.role for task in stored_run(tmp_path).tasks if task.key != "stop"} == {None}


def test_a_store_of_schema_5_is_migrated_and_its_runs_stay_readable(tmp_path: Path) -> None:
    def tree() -> flow2.Task:
        return flow2.SerialTaskGroup(
            "Pipeline",
            flow2.CallbackTask("Build", nothing, description="Builds it"),
            finally_tasks=[flow2.CallbackTask("Tidy", nothing, description="Tidies up")],
        )

    run(flow2.Runner(display="none", store=tmp_path).run(tree()))
    with sqlite3.connect(tmp_path / "runs.sqlite3") as connection:
        to_schema_5(connection)
        # Its definition ids did not include a description: ids of their own.
        connection.execute("UPDATE definitions SET id = replace(id, 'sha256:', 'old:')")
        connection.execute("UPDATE tasks SET definition = replace(definition, 'sha256:', 'old:')")
        connection.execute(
            "UPDATE task_batches SET definitions = replace(definitions, 'sha256:', 'old:')"
        )
        connection.execute("UPDATE flow2_store SET value = '5' WHERE key = 'schema_version'")
    old = stored_run(tmp_path)
    assert [task.definition is not None for task in old.tasks] == [False, True, True]

    record = flow2.read_store("last", store=tmp_path)
    assert [(task.label, task.description, task.status) for task in record.tasks] == [
        ("Pipeline", "", flow2.Status.SUCCEEDED),
        ("Build", "", flow2.Status.SUCCEEDED),
        ("Tidy", "", flow2.Status.SUCCEEDED),
    ]
    assert "Tidy" in flow2.html_report(record)
    run(flow2.Runner(display="none", store=tmp_path).run(tree()))
    with sqlite3.connect(tmp_path / "runs.sqlite3") as connection:
        assert connection.execute(
            "SELECT value FROM flow2_store WHERE key = 'schema_version'"
        ).fetchone() == ("6",)
    record = flow2.read_store("last", store=tmp_path)
    assert [(task.label, task.description) for task in record.tasks] == [
        ("Pipeline", ""),
        ("Build", "Builds it"),
        ("Tidy (finally)", "Tidies up"),
    ]
    with sqlite3.connect(tmp_path / "runs.sqlite3") as connection:
        assert connection.execute("SELECT count(*) FROM key_parts").fetchone()[0] >= 1
    assert [task.path for task in stored_run(tmp_path, old.id).tasks] == [
        task.path for task in old.tasks
    ]
