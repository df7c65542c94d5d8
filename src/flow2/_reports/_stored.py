"""Reading a run from the run store into a :class:`RunRecord`.

The store keeps what the event file holds, so a report drawn from either
source is the same: each task's path, key, status, start and end, its
attempts (the retried ones with their errors), its error with the user's
traceback, its output tail and why it was skipped, reused or ran again,
its description and, for a group's cleanup task, its role (``finally``,
``on_failure``); the run's flow file, its variables (secrets masked) and
its error. A run whose end was never written (a killed ``flow2 run``)
gives a record marked incomplete, ending with the last thing the store
recorded.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .._engine._events import Status
from .._engine._state import Cleanup
from ._model import AttemptRecord, ErrorRecord, RunRecord, TaskRecord

if TYPE_CHECKING:
    from .._store._database import StoredRun, StoredTask

_STATUSES = {status.value: status for status in Status}
_ROLES = frozenset(role.value for role in Cleanup)


def read_store(run: str = "last", *, store: str | os.PathLike[str] | None = None) -> RunRecord:
    """The record of a run recorded in the run store, for the reports.

    :param run: the run's id, a unique prefix of it, or ``"last"`` (the newest run)
    :param store: the store directory; ``FLOW2_STORE`` when None, else ``.flow2``
    :raises flow2.StoreError: there is no store there, it is not a flow2
        store, or ``run`` matches no run or several

    Example::

        record = flow2.read_store("last")
        pathlib.Path("report.html").write_text(flow2.html_report(record))
    """
    from .._store._database import Store, store_directory

    directory = store_directory(True if store is None else store, os.environ)
    assert directory is not None
    found = Store(directory)
    connection = found.connect()
    try:
        stored = found.find_run(connection, run)
    finally:
        connection.close()
    return from_store(stored)


def from_store(run: StoredRun) -> RunRecord:
    """The :class:`RunRecord` of a run read from the store (with its tasks)."""
    from .._store._values import shown_variables

    end = run.ended_at if run.ended_at is not None else run.last_seen
    record = RunRecord(
        run.id,
        run.name,
        run.started_at,
        end if end is not None else run.started_at,
        run.status,
        flow=run.flow,
        variables=shown_variables(run.variables),
        error=_error(run.error),
        complete=run.ended_at is not None,
    )
    positions: dict[int, int] = {}
    for task in sorted(run.tasks, key=_first_event):
        if task.parent is not None and task.parent not in positions:
            continue  # its group was never recorded (a killed run): nowhere to draw it
        positions[task.number] = len(record.tasks)
        parent = None if task.parent is None else positions[task.parent]
        record.tasks.append(_task(task, len(record.tasks), parent))
    return record


def _first_event(task: StoredTask) -> tuple[float, int]:
    """Tasks in the order of their first event, as the event file lists them.

    A task's first event is its start, or, for a task never started, its
    only event; a group starts before its tasks, so parents stay first.
    """
    started = task.started_at if task.started_at is not None else task.ended_at
    return (started if started is not None else float("inf"), task.number)


def _task(task: StoredTask, index: int, parent: int | None) -> TaskRecord:
    status = _STATUSES.get(task.status, Status.RUNNING)
    start = task.started_at if task.started_at is not None else (task.ended_at or 0.0)
    # The store keeps when the work began; a record starts when the task did.
    start -= task.queued
    error = None
    if task.error_type is not None and status is not Status.SUCCEEDED:
        error = ErrorRecord(task.error_type, task.error_message or "", task.error_traceback or "")
    record = TaskRecord(
        index,
        parent,
        task.path,
        task.key,
        task.path[-1],
        task.is_group,
        status,
        start,
        task.ended_at,
        error=error,
        output=task.output or "",
        reason=task.reason if status in (Status.SKIPPED, Status.REUSED, Status.CACHED) else None,
        queued=task.queued,
        description=str(task.description or ""),
        # A role flow2 never writes (a planted store) is no role.
        cleanup=task.role if task.role in _ROLES else None,
    )
    if _was_started(task, status):
        attempt_start = start
        for number, (ended, delay, *failure) in enumerate(task.retries, 1):
            record.attempts.append(
                AttemptRecord(number, attempt_start, ended, Status.RETRYING, _failure(failure))
            )
            attempt_start = ended + delay
        last = AttemptRecord(max(task.attempts, len(task.retries) + 1), attempt_start)
        if status.is_finished:
            last.end, last.status, last.error = task.ended_at, status, error
        else:
            last.status = status
        record.attempts.append(last)
    return record


def _was_started(task: StoredTask, status: Status) -> bool:
    """True for a task that ran: a task skipped, reused or cancelled before it started never did."""
    if status is Status.REUSED or status is Status.CACHED or status is Status.SKIPPED:
        return False
    if status is Status.CANCELLED:
        return task.duration is not None and task.started_at != task.ended_at
    return True


def _failure(parts: list[Any]) -> ErrorRecord:
    kind, message, traceback = [*parts, "", "", ""][:3]
    return ErrorRecord(str(kind), str(message or ""), str(traceback or ""))


def _error(error: dict[str, Any] | None) -> ErrorRecord | None:
    if not error:
        return None
    return ErrorRecord(
        str(error.get("type", "Error")),
        str(error.get("message") or ""),
        str(error.get("traceback") or ""),
    )
