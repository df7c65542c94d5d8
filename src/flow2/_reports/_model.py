"""The record of a finished run that every report is drawn from.

One plain structure, whatever the source: a JSON event file
(:func:`read_events`), the events of a run in memory (:class:`RunCollector`)
or the run store. A :class:`RunRecord` holds the run's facts and a list of
:class:`TaskRecord` s, parents before their children; each task has its
:class:`AttemptRecord` s and, when it failed, an :class:`ErrorRecord`.
Times are seconds since the Unix epoch (UTC); texts are already masked of
secrets by whatever wrote the source.

What a source must provide (the store fills the same fields):

- run: ``id``, ``name`` (the root's), ``flow`` (file or None), ``variables``,
  ``start``, ``end``, ``status``, ``error``, ``complete``;
- each task: ``index`` (its position in ``tasks``), ``parent`` (the parent's
  index, None for the root), ``path``, ``key``, ``name``, ``is_group``,
  ``status``, ``start``, ``end``, ``attempts`` (number, start, end, status,
  error), ``error`` (type, message, traceback text), ``output`` (the tail of
  what it printed, "" when unknown), ``reason`` (why skipped or reused).

Counts and durations are derived, never stored, so they always add up.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from .._engine._events import RunEvent, Status, TaskEvent

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._engine._events import Event

#: The run statuses a record may have: the end states of :class:`flow2.Status`
#: for a run, and "interrupted" for a run whose end was never recorded (killed).
RUN_STATUSES = ("succeeded", "partial", "failed", "cancelled", "interrupted")

#: The leaf statuses counted, in the order reports list them.
COUNTED = (
    Status.SUCCEEDED,
    Status.FAILED,
    Status.SKIPPED,
    Status.CANCELLED,
    Status.REUSED,
    Status.CACHED,
)

_UNFINISHED = (Status.PENDING, Status.RUNNING, Status.RETRYING)
_STATUSES = {status.value: status for status in Status}


@dataclasses.dataclass
class ErrorRecord:
    """An exception as a report shows it: never the object, never local variables.

    :param type: the exception's class name
    :param message: its ``str()``
    :param traceback: the user's frames as text (as the summary prints them), "" when unknown
    """

    type: str
    message: str
    traceback: str = ""

    def describe(self) -> str:
        """``Type: message`` (just the type when the message is empty)."""
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclasses.dataclass
class AttemptRecord:
    """One attempt of a task: the first run, then one per retry.

    :param number: 1 for the first attempt, 2 for the first retry, ...
    :param start: when it started (seconds since the epoch)
    :param end: when it ended; None when the run stopped before it did
    :param status: ``RETRYING`` for an attempt that failed and was retried,
        else the task's final status
    :param error: why it failed, for a failed or retried attempt
    """

    number: int
    start: float
    end: float | None = None
    status: Status = Status.RUNNING
    error: ErrorRecord | None = None


@dataclasses.dataclass
class TaskRecord:
    """One task in one run.

    :param index: its position in :attr:`RunRecord.tasks`
    :param parent: the index of the group it ran in, None for the root
    :param path: names from the root down to the task
    :param key: the key its result is stored under
    :param name: its name
    :param is_group: True for a serial or parallel group
    :param status: its final status; ``RUNNING`` or ``RETRYING`` when the
        run stopped before it ended (an incomplete record)
    :param start: when it started, or, for a task never started (skipped,
        cancelled before starting, reused), when that was decided
    :param end: when it ended; None when the run stopped before it did
    :param attempts: its attempts, empty for a task never started
    :param error: why it failed (or was cancelled), when it did
    :param output: the last lines it printed, "" when not recorded
    :param reason: why it was skipped or reused, when known
    :param queued: seconds its work waited for a process or Dask worker
        before it began there; :attr:`duration` leaves them out
    :param description: the task's ``description``, "" without one (or when
        the source does not keep it: a run recorded in the store before schema 6)
    :param cleanup: ``"on_failure"`` or ``"finally"`` for a group's cleanup
        task (from a run, an event file, or the store from schema 6), else None
    """

    index: int
    parent: int | None
    path: tuple[str, ...]
    key: str
    name: str
    is_group: bool
    status: Status
    start: float
    end: float | None = None
    attempts: list[AttemptRecord] = dataclasses.field(default_factory=list)
    error: ErrorRecord | None = None
    output: str = ""
    reason: str | None = None
    queued: float = 0.0
    description: str = ""
    cleanup: str | None = None

    @property
    def label(self) -> str:
        """Its name, with `` (finally)`` or `` (on failure)`` for a cleanup task."""
        if self.cleanup is None:
            return self.name
        return f"{self.name} ({self.cleanup.replace('_', ' ')})"

    @property
    def parent_path(self) -> tuple[str, ...]:
        """The path of the group it ran in (empty for the root)."""
        return self.path[:-1]

    @property
    def duration(self) -> float | None:
        """Seconds it worked: start to end less :attr:`queued`; None if it never ran or ended."""
        if self.end is None or not self.attempts:
            return None
        return max(0.0, self.end - self.start - self.queued)

    @property
    def is_finished(self) -> bool:
        """False when the run stopped before this task ended."""
        return self.status not in _UNFINISHED


@dataclasses.dataclass
class RunRecord:
    """One run, as every report reads it.

    :param id: the run's id
    :param name: the root task's name
    :param start: when the run started (seconds since the epoch)
    :param end: when it ended, or the last thing recorded for an incomplete run
    :param status: one of :data:`RUN_STATUSES`
    :param tasks: every task reached, parents before children
    :param flow: the flow file it ran, when known
    :param variables: the flow's variables, secrets masked
    :param error: the exception the run raised to its caller, when any
    :param complete: False when the record stops before the run's end
        (a killed run, a truncated event file): reports say so
    """

    id: str
    name: str
    start: float
    end: float
    status: str
    tasks: list[TaskRecord] = dataclasses.field(default_factory=list)
    flow: str | None = None
    variables: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: ErrorRecord | None = None
    complete: bool = True

    @property
    def duration(self) -> float:
        """The run's wall time in seconds."""
        return max(0.0, self.end - self.start)

    def leaves(self) -> list[TaskRecord]:
        """The leaf tasks (not groups), in tree order."""
        return [task for task in self.tasks if not task.is_group]

    def counts(self) -> dict[str, int]:
        """Leaf tasks by final status: succeeded, failed, skipped, cancelled, reused, cached,
        unfinished.

        The values add up to the number of leaves.
        """
        counts = {status.value: 0 for status in COUNTED}
        counts["unfinished"] = 0
        for task in self.leaves():
            value = task.status.value
            if value in counts:
                counts[value] += 1
            else:
                counts["unfinished"] += 1
        return counts

    def failures(self) -> list[TaskRecord]:
        """Failed leaves, and groups that failed on their own (a group's timeout), in tree order."""
        failed_inside: set[int] = set()
        for task in self.tasks:
            if task.status is Status.FAILED and not task.is_group and task.parent is not None:
                parent: int | None = task.parent
                while parent is not None and parent not in failed_inside:
                    failed_inside.add(parent)
                    parent = self.tasks[parent].parent
        return [
            task
            for task in self.tasks
            if task.status is Status.FAILED
            and (not task.is_group or task.index not in failed_inside)
        ]


class RunBuilder:
    """Builds a :class:`RunRecord` from event objects as the event file writes them.

    Feed it each line's object with :meth:`add`, then call :meth:`record`.
    A task is known by its path, key and kind; a ``running`` event always
    starts a new record (a task in a loop, two same-named tasks), any other
    event goes to the latest unfinished record of that task, or makes one
    (a task skipped, cancelled or reused without starting).
    """

    def __init__(self, run_id: str, start: float, name: str) -> None:
        self.run = RunRecord(run_id, name, start, start, "interrupted", complete=False)
        self._open: dict[tuple[Any, ...], TaskRecord] = {}
        self._by_path: dict[tuple[str, ...], int] = {}
        self._last_time = start

    def add(self, fields: dict[str, Any]) -> None:
        """Take one event's fields (one line of the event file, decoded).

        :raises KeyError, TypeError, ValueError: when a field is missing or wrong
        """
        time = float(fields["time"])
        if time > self._last_time:
            self._last_time = time
        status = _STATUSES.get(fields["status"]) or Status(fields["status"])
        if fields["event"] == "run":
            if status.is_finished:
                self.run.status = status.value
                self.run.end = time
                self.run.error = _error_record(fields.get("error"), None)
                self.run.complete = True
            return
        path = tuple(str(name) for name in fields["path"])
        is_group = bool(fields["group"])
        identity = (path, fields["key"], is_group)
        attempt = int(fields.get("attempt") or 1)
        duration = fields.get("duration")
        error = _error_record(fields.get("error"), fields.get("traceback"))
        task = self._open.get(identity)
        if status is Status.RUNNING or task is None or task.is_finished:
            start = (
                time - float(duration) - float(fields.get("queued") or 0.0)
                if duration is not None
                else time
            )
            task = self._new_task(path, str(fields["key"]), is_group, start)
            self._open[identity] = task
            if status is Status.RUNNING:
                task.attempts.append(AttemptRecord(attempt, time))
        task.status = status
        cleanup = fields.get("cleanup")
        if cleanup is not None:
            task.cleanup = str(cleanup)
        if status is Status.RETRYING:
            current = self._attempt(task, attempt, time)
            current.end, current.status, current.error = time, Status.RETRYING, error
            delay = float(fields.get("retry_delay") or 0.0)
            task.attempts.append(AttemptRecord(attempt + 1, time + delay))
            return
        if status.is_finished:
            task.end = time
            task.queued = float(fields.get("queued") or 0.0)
            if task.attempts:
                current = self._attempt(task, attempt, time)
                current.end, current.status, current.error = time, status, error
            if error is not None and status is not Status.SUCCEEDED:
                task.error = error
            reason = fields.get("reason")
            if reason:
                task.reason = str(reason)
        description = fields.get("description")
        if description:
            task.description = str(description)
        output = fields.get("output")
        if output:
            task.output = "\n".join(output) if isinstance(output, list) else str(output)

    def _new_task(
        self, path: tuple[str, ...], key: str, is_group: bool, start: float
    ) -> TaskRecord:
        tasks = self.run.tasks
        parent = self._by_path.get(path[:-1]) if len(path) > 1 else None
        task = TaskRecord(len(tasks), parent, path, key, path[-1], is_group, Status.PENDING, start)
        tasks.append(task)
        self._by_path[path] = task.index
        return task

    @staticmethod
    def _attempt(task: TaskRecord, number: int, time: float) -> AttemptRecord:
        """The attempt ``number`` of ``task``, made when the events skipped it."""
        while len(task.attempts) < number:
            start = task.attempts[-1].end if task.attempts else task.start
            task.attempts.append(AttemptRecord(len(task.attempts) + 1, start or time))
        return task.attempts[number - 1]

    def record(self) -> RunRecord:
        """The run as recorded so far; marked incomplete when its end was not seen."""
        run = self.run
        if not run.complete:
            run.end = self._last_time
        return run


def _error_record(error: Any, traceback: Any) -> ErrorRecord | None:
    if not isinstance(error, dict):
        return None
    return ErrorRecord(
        str(error.get("type", "Error")), str(error.get("message", "")), str(traceback or "")
    )


class RunCollector:
    """An event listener that keeps a run's events as a :class:`RunRecord`, in memory.

    :param flow: the flow file, shown in reports
    :param variables: the flow's variables (masked when a report is drawn)
    :param on_end: called with the finished record when the run ends
    """

    def __init__(
        self,
        *,
        flow: str | None = None,
        variables: dict[str, Any] | None = None,
        on_end: Any = None,
    ) -> None:
        self.flow = flow
        self.variables = dict(variables or {})
        self.on_end = on_end
        self.builder: RunBuilder | None = None

    def __call__(self, event: Event) -> None:
        from .._listeners._event_file import run_fields, task_fields

        if type(event) is TaskEvent:
            if self.builder is not None:
                self.builder.add(task_fields(event))
        elif isinstance(event, RunEvent):
            if event.status is Status.RUNNING:
                self.builder = RunBuilder(event.run.id, event.time, event.run.root.name)
            elif self.builder is not None:
                self.builder.add(run_fields(event))
                if self.on_end is not None:
                    self.on_end(self.record())

    def record(self) -> RunRecord:
        """The run as collected so far (incomplete before its end)."""
        if self.builder is None:
            raise RuntimeError("no run started yet")
        run = self.builder.record()
        run.flow = self.flow
        run.variables = dict(self.variables)
        return run


def build_record(lines: Iterable[dict[str, Any]]) -> RunRecord:
    """A record from the event objects of one run, its start line first."""
    iterator = iter(lines)
    first = next(iterator)
    builder = RunBuilder(str(first["run_id"]), float(first["time"]), str(first["root"]))
    for fields in iterator:
        builder.add(fields)
    return builder.record()
