"""What the run store writes of each task, when many tasks are recorded in bulk."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import flow2
from flow2._store._database import Store
from flow2._store._values import definition_of

from .conftest import Recorder, run, stored_run


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
    known = {
        row["parts"]: row["id"] for row in rows(tmp_path, "SELECT id, parts FROM definitions")
    }
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
