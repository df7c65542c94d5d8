"""Where each task goes on a timeline: its lane, and its depth inside that lane.

Both the HTML timeline and the Chrome trace draw a run as lanes (threads, in
a trace) on which slices nest: a child inside its group, never two slices
partially overlapping on one lane. Work that runs in parallel goes to
separate lanes. Times are whole microseconds from the run's start, each
task's clamped inside its parent's, so the nesting holds exactly after
rounding (the start and end of a task come from two clocks).

A task goes on its parent's lane when the parent is the innermost slice open
there (a serial group's children stay on the group's lane); otherwise on the
lowest lane with nothing open, or a new one. O(n log n) for n tasks.
"""

from __future__ import annotations

import dataclasses
import heapq
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._model import RunRecord, TaskRecord


@dataclasses.dataclass(slots=True)
class Slot:
    """A task's place on the timeline.

    :param task: the task
    :param start: microseconds from the run's start
    :param end: microseconds from the run's start (>= start)
    :param lane: the lane (0 is the root's)
    :param depth: how many slices it is nested in on its lane
    """

    task: TaskRecord
    start: int
    end: int
    lane: int = 0
    depth: int = 0


def microseconds(run: RunRecord) -> list[Slot]:
    """Each task's start and end in microseconds from the run's start, inside its parent's."""
    origin = run.start
    run_end = max(0, round((run.end - origin) * 1e6))
    slots: list[Slot] = []
    for task in run.tasks:
        start = round((task.start - origin) * 1e6)
        end = run_end if task.end is None else round((task.end - origin) * 1e6)
        low, high = (0, max(run_end, start)) if task.parent is None else _bounds(slots, task)
        start = min(max(start, low), high)
        end = min(max(end, start), high)
        slots.append(Slot(task, start, end))
    return slots


def _bounds(slots: list[Slot], task: TaskRecord) -> tuple[int, int]:
    assert task.parent is not None
    parent = slots[task.parent]
    return parent.start, parent.end


def lay_out(run: RunRecord) -> tuple[list[Slot], list[int]]:
    """Every task's :class:`Slot`, in task order, and each lane's number of rows (its depth + 1)."""
    slots = microseconds(run)
    order = sorted(
        range(len(slots)), key=lambda index: (slots[index].start, -slots[index].end, index)
    )
    lanes: list[list[Slot]] = []  # per lane, the slices open there, outermost first
    busy: list[tuple[int, int]] = []  # (end of a lane's outermost open slice, lane)
    free: list[int] = []  # lanes with nothing open
    rows: list[int] = []
    for index in order:
        slot = slots[index]
        start = slot.start
        # Lanes whose outermost slice ended before this one starts are free.
        while busy and busy[0][0] <= start:
            _, lane = heapq.heappop(busy)
            lanes[lane].clear()
            heapq.heappush(free, lane)
        lane = -1
        parent = slot.task.parent
        if parent is not None:
            parent_lane = slots[parent].lane
            stack = lanes[parent_lane]
            while stack and stack[-1].end <= start:
                stack.pop()
            if stack and stack[-1].task.index == parent:
                lane = parent_lane
        if lane < 0:
            if free:
                lane = heapq.heappop(free)
            else:
                lane = len(lanes)
                lanes.append([])
                rows.append(1)
        stack = lanes[lane]
        if not stack:
            heapq.heappush(busy, (slot.end, lane))
        slot.lane = lane
        slot.depth = len(stack)
        stack.append(slot)
        rows[lane] = max(rows[lane], slot.depth + 1)
    return slots, rows
