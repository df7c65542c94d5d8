"""How the run store keeps reuse keys: the parts tasks have alike once, each task's own
beside its result, and every part back in full for ``flow2 explain`` and the next run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import run
from .test_cli import flow2 as flow2_command

pytestmark = pytest.mark.usefixtures("python_first_on_path")


async def noop(context: dict[str, Any]) -> None:
    return None


def alike(count: int) -> flow2.ParallelTaskGroup:
    return flow2.ParallelTaskGroup(
        "Alike", *(flow2.CallbackTask(f"Task {index}", noop) for index in range(count))
    )


def explained(store: Path, task: str) -> dict[str, Any]:
    result = flow2_command("explain", task, "--json", "--store", store)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def rows(store: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store / "runs.sqlite3") as connection:
        return connection.execute(query).fetchall()


def test_tasks_alike_share_one_stored_copy_of_their_common_parts(tmp_path: Path) -> None:
    run(flow2.Runner(display="none", store=tmp_path, cache=True).run(alike(50)))

    # The definition, the code, the order and the salt: once for the fifty.
    assert len(rows(tmp_path, "SELECT digest FROM key_parts")) == 1
    stored = [parts for (parts,) in rows(tmp_path, "SELECT parts FROM cache_entries")]
    assert len(stored) == 50 and all(len(parts) < 80 for parts in stored)
    # Read back, each task has every part, its own path among them.
    seventh, eighth = explained(tmp_path, "Task 7"), explained(tmp_path, "Task 8")
    assert {"path", "kind", "order", "code", "salt"} <= set(seventh["parts"])
    assert seventh["parts"]["path"] != eighth["parts"]["path"]
    assert seventh["parts"]["code"] == eighth["parts"]["code"]
    assert seventh["key"] != eighth["key"]

    result = run(flow2.Runner(display="none", store=tmp_path, cache=True).execute(alike(50)))
    assert result.counts.cached == 50


def test_a_task_that_ran_with_nothing_looked_up_is_explained_from_its_entry(
    tmp_path: Path,
) -> None:
    run(flow2.Runner(display="none", store=tmp_path).run(alike(3)))

    found = explained(tmp_path, "Task 1")
    assert found["decision"] == "ran" and found["reason"] is None
    assert found["key"] and {"path", "code", "salt"} <= set(found["parts"])
    lines = flow2_command("explain", "Task 1", "--store", tmp_path).stdout
    assert "ran (nothing was looked up (no --resume, no cache))" in lines
    assert found["key"] in lines


def test_an_entry_keyed_the_earlier_way_is_reused_when_its_parts_are_equal(
    tmp_path: Path,
) -> None:
    run(flow2.Runner(display="none", store=tmp_path, cache=True).run(alike(2)))
    # Entries as an earlier flow2 wrote them: every part in the row, and a key
    # digested another way.
    full = {task: explained(tmp_path, task)["parts"] for task in ("Task 0", "Task 1")}
    with sqlite3.connect(tmp_path / "runs.sqlite3") as connection:
        for task, parts in full.items():
            if task == "Task 1":
                parts = {**parts, "code": "0" * 32}  # as if its code had been other
            connection.execute(
                "UPDATE cache_entries SET parts = ?, key = ? WHERE path = ?",
                (json.dumps(parts), f"earlier {task}", json.dumps(["Alike", task])),
            )
        connection.execute("DELETE FROM key_parts")

    events: list[flow2.Event] = []
    runner = flow2.Runner(display="none", store=tmp_path, cache=True, listeners=[events.append])
    run(runner.run(alike(2)))
    ended = {
        event.task.name: (event.status, event.reason)
        for event in events
        if isinstance(event, flow2.TaskEvent) and event.status.is_finished
    }
    assert ended["Task 0"][0] is flow2.Status.CACHED
    assert ended["Task 1"][0] is flow2.Status.SUCCEEDED
    assert explained(tmp_path, "Task 1")["reason"] == "code changed"


def test_cache_clear_deletes_the_shared_parts_nothing_names(tmp_path: Path) -> None:
    run(flow2.Runner(display="none", store=tmp_path, cache=True).run(alike(4)))
    assert len(rows(tmp_path, "SELECT digest FROM key_parts")) == 1

    result = flow2_command("cache", "clear", "--store", tmp_path)
    assert result.returncode == 0, result.stderr
    assert rows(tmp_path, "SELECT digest FROM key_parts") == []
