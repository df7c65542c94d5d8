"""The Chrome Trace Event Format: a run for Perfetto (ui.perfetto.dev) and chrome://tracing.

One process for the run; one thread per lane of :mod:`._layout`, so slices
on a thread nest properly (a task inside its group, never two partially
overlapping). Every task that started is one complete (``"ph": "X"``)
event named after it, with microsecond timestamps from the run's start; a
task that was retried is one slice per attempt instead. Tasks that never
started (skipped, cancelled before starting, reused) have no slice.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .._engine._events import Status
from ._layout import lay_out
from ._source import format_path, masked, record_of

if TYPE_CHECKING:
    from ._layout import Slot
    from ._model import RunRecord
    from ._source import ReportSource

#: The trace's process id (one process: the run).
PROCESS_ID = 1


def trace_report(source: ReportSource, *, run: str = "last") -> str:
    """A run as Chrome Trace Event Format JSON, for Perfetto and chrome://tracing.

    :param source: a :class:`flow2.RunRecord`, or the path of a JSON event file
    :param run: with an event file, which of its runs: an id, a unique prefix, or "last"
    :raises flow2.ReportError: the event file cannot be read
    """
    record = masked(record_of(source, run))
    return json.dumps(trace_events(record), ensure_ascii=False, separators=(",", ":"))


def trace_events(record: RunRecord) -> dict[str, Any]:
    """The trace as a JSON-ready object: ``{"traceEvents": [...], ...}``."""
    slots, rows = lay_out(record)
    events: list[dict[str, Any]] = [
        _metadata("process_name", 0, {"name": f"flow2 run {record.name} ({record.id})"}),
    ]
    for lane in range(len(rows)):
        events.append(_metadata("thread_name", lane, {"name": f"lane {lane + 1}"}))
        events.append(_metadata("thread_sort_index", lane, {"sort_index": lane}))
    for slot in slots:
        task = slot.task
        if not task.attempts:
            continue  # never started: nothing ran, no time to show
        args: dict[str, Any] = {
            "status": task.status.value,
            "key": task.key,
            "path": format_path(task.path),
            "attempts": len(task.attempts),
        }
        if task.error is not None:
            args["error"] = task.error.describe()
        work_start = slot.start
        if task.queued:
            # The wait for a process or Dask worker, apart from the work.
            work_start = min(slot.end, slot.start + round(task.queued * 1e6))
            queue_args = {"key": task.key, "path": format_path(task.path), "queued": task.queued}
            events.append(
                dict(_slice(task.name, slot, slot.start, work_start, queue_args), cat="queued")
            )
        if task.is_group or len(task.attempts) == 1:
            events.append(_slice(task.name, slot, work_start, slot.end, args))
            continue
        previous_end = work_start
        origin = record.start
        for attempt in task.attempts:
            start = round((attempt.start - origin) * 1e6)
            end = slot.end if attempt.end is None else round((attempt.end - origin) * 1e6)
            start = min(max(start, previous_end), slot.end)
            end = min(max(end, start), slot.end)
            previous_end = end
            attempt_args = dict(args, attempt=attempt.number)
            attempt_args["status"] = (
                "retried" if attempt.status is Status.RETRYING else attempt.status.value
            )
            if attempt.error is not None:
                attempt_args["error"] = attempt.error.describe()
            events.append(_slice(task.name, slot, start, end, attempt_args))
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "run_id": record.id,
            "name": record.name,
            "status": record.status,
            "start": record.start,
            "complete": record.complete,
        },
    }


def _slice(name: str, slot: Slot, start: int, end: int, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "cat": "group" if slot.task.is_group else "task",
        "ph": "X",
        "ts": start,
        "dur": end - start,
        "pid": PROCESS_ID,
        "tid": slot.lane + 1,
        "args": args,
    }


def _metadata(kind: str, lane: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"name": kind, "ph": "M", "pid": PROCESS_ID, "tid": lane + 1, "args": args}
