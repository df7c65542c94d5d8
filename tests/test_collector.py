"""Big runs freeze the garbage collector's view of what exists when they start."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

import flow2
from flow2._engine import _collector
from tests.conftest import run


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_collector, "FREEZE_FROM", 4)
    assert gc.get_freeze_count() == 0
    yield
    gc.unfreeze()


def group(name: str, size: int, seen: list[int], gate: asyncio.Event | None = None) -> flow2.Task:
    async def look(context: dict[str, Any]) -> None:
        if gate is not None:
            await gate.wait()
        seen.append(gc.get_freeze_count())

    return flow2.ParallelTaskGroup(
        name, *(flow2.CallbackTask(f"{name} {index}", look) for index in range(size))
    )


def test_a_big_run_freezes_while_it_runs_and_unfreezes_after() -> None:
    seen: list[int] = []
    run(flow2.Runner(display="none").run(group("Big", 4, seen)))
    assert len(seen) == 4 and all(count > 0 for count in seen)
    assert gc.get_freeze_count() == 0


def test_a_small_run_leaves_the_collector_alone() -> None:
    seen: list[int] = []
    run(flow2.Runner(display="none").run(group("Small", 2, seen)))
    assert seen == [0, 0]


def test_a_failed_big_run_unfreezes_too() -> None:
    async def fail(context: dict[str, Any]) -> None:
        raise ValueError("no")

    tree = flow2.SerialTaskGroup(
        "Big", *(flow2.CallbackTask(f"Fail {index}", fail) for index in range(4))
    )
    with pytest.raises(ValueError):
        run(flow2.Runner(display="none").run(tree))
    assert gc.get_freeze_count() == 0


def test_a_freeze_made_by_the_application_is_not_undone() -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    run(flow2.Runner(display="none").run(group("Big", 4, [])))
    assert gc.get_freeze_count() == frozen


def test_overlapping_big_runs_share_one_freeze() -> None:
    first_seen: list[int] = []
    second_seen: list[int] = []

    async def both() -> list[int]:
        gate = asyncio.Event()
        runner = flow2.Runner(display="none")
        first = asyncio.create_task(runner.run(group("First", 4, first_seen)))
        second = asyncio.create_task(runner.run(group("Second", 4, second_seen, gate)))
        await first
        after_first = gc.get_freeze_count()  # the second run still runs
        gate.set()
        await second
        return [after_first, gc.get_freeze_count()]

    after_first, after_both = run(both())
    assert after_first > 0 and after_both == 0
    assert all(count > 0 for count in first_seen + second_seen)
