"""What happens to one task in one run: its per-run record, and the plan's decisions.

A :class:`~flow2.Task` is a definition. Everything that happens to it in a
run (its status, its attempt, when it started, the failures inside it, its
parent in this run) lives in a :class:`TaskRun` that the run owns, so one
tree object can run twice at once, or again after a failure, and each run
reports only its own outcomes. Every event carries its record
(``event.record``), and :meth:`flow2.Run.record_of` finds one by task.

A run may also follow a *plan*: an object consulted before each task starts
that can decide to reuse a stored result (:class:`Reuse`) or to leave the
task out (:class:`Skip`). Resuming a run and partial runs are plans.
"""

from __future__ import annotations

import enum
from time import perf_counter, time
from typing import TYPE_CHECKING, Any, Protocol

from ._events import Status, TaskEvent

if TYPE_CHECKING:
    from ._output import OutputTail
    from ._run import Run
    from ._task import Context, Task


_PENDING = Status.PENDING


class Cleanup(enum.Enum):
    """Which cleanup of its group a task is (see :attr:`TaskRun.cleanup`)."""

    #: Runs after the group's tasks only when one of them failed (``on_failure=``).
    ON_FAILURE = "on_failure"
    #: Runs after the group's tasks whatever happened to them (``finally_tasks=``).
    FINALLY = "finally"


#: Shared by every record without children until its first child arrives (see add_child).
_NO_CHILDREN: list[TaskRun] = []


class TaskRun:
    """One task in one run: the state a run keeps for each task it reaches.

    :ivar task: the task definition
    :ivar run: the run this record belongs to
    :ivar parent: the record of the enclosing task in this run (None for the root)
    :ivar children: records of the tasks inside this one in this run, in the
        order they were reached (a task's static children, then any created on
        the fly while it ran)
    :ivar status: the task's :class:`~flow2.Status` in this run
    :ivar attempt: 1 for the first attempt, 2 for the first retry, ...
    :ivar started_at: ``time.perf_counter()`` when the task started (0 before)
    :ivar start_time: wall-clock start, seconds since the epoch (0 before)
    :ivar queued: seconds the task's work waited for a remote worker (a
        process or Dask worker) before it began there; 0 for work that runs
        here. :attr:`started_at` and :attr:`start_time` are moved past it, so
        the task's duration is the time it worked
    :ivar failed_count: the tasks that failed inside this one (1 for a failed leaf)
    :ivar reason: why the task was skipped or reused, when it was
    :ivar error: what the task failed with, when it failed (None otherwise)
    :ivar output: the last lines the task wrote in this run (None: nothing),
        what its events carry as ``event.output``
    :ivar number: the record's place among its run's records, in the order
        they were made: a parent's is smaller than its tasks' (the root's is 0)
    """

    # One record per task per run: slots keep a million of them small.
    __slots__ = (
        "_path",
        "attempt",
        "children",
        "error",
        "failed_count",
        "number",
        "output",
        "parent",
        "queued",
        "reason",
        "run",
        "start_time",
        "started_at",
        "status",
        "task",
    )

    def __init__(self, task: Task, run: Run, parent: TaskRun | None, number: int = 0) -> None:
        self.task = task
        self.run = run
        self.parent = parent
        self.number = number
        self.children: list[TaskRun] = _NO_CHILDREN
        self.status: Status = _PENDING
        self.attempt = 1
        self.started_at = 0.0
        self.start_time = 0.0
        self.queued = 0.0
        self.failed_count = 0
        self.reason: str | None = None
        self.error: BaseException | None = None
        self.output: OutputTail | None = None
        self._path: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        return f"<TaskRun {' › '.join(self.path)!r} {self.status.name} attempt={self.attempt}>"

    @property
    def cleanup(self) -> Cleanup | None:
        """Which cleanup of its group this task is; None for one of the group's own tasks."""
        parent = self.parent
        return parent.task.cleanup_role_of(self.task) if parent is not None else None

    @property
    def in_cleanup(self) -> bool:
        """True for a cleanup task and for every task inside one."""
        record: TaskRun | None = self
        while record is not None:
            if record.cleanup is not None:
                return True
            record = record.parent
        return False

    @property
    def path(self) -> tuple[str, ...]:
        """Names from the root of the run down to this task."""
        path = self._path
        if path is None:
            # Up to the nearest ancestor that knows its path, then down again:
            # not recursive, so trees thousands of levels deep are fine.
            unknown: list[TaskRun] = []
            record: TaskRun | None = self
            while record is not None and record._path is None:
                unknown.append(record)
                record = record.parent
            path = record._path if record is not None else ()
            for below in reversed(unknown):
                path = below._path = (*path, below.task.name)  # type: ignore[misc]
            assert path is not None
        return path

    @property
    def elapsed(self) -> float:
        """Seconds since the task started (0 before it started)."""
        return perf_counter() - self.started_at if self.started_at else 0.0

    def began_on_worker(self, submitted: float, began: float) -> None:
        """Count the time before a remote worker began the work as queue time, not work.

        Called by an executor whose work runs elsewhere, once the worker's
        answer is back: ``submitted`` is when the work was handed over,
        ``began`` when the worker started it (both ``time.time()``; the
        worker's clock for ``began``). The wait, never negative (clocks of
        two machines may differ), is added to :attr:`queued`, and the task's
        start moves past it so its duration is the time it worked.
        See tests/test_process_executor.py::test_queue_time_is_not_work_time.
        """
        waited = min(max(0.0, began - submitted), max(0.0, time() - submitted))
        if waited:
            self.queued += waited
            self.started_at += waited
            self.start_time += waited

    def add_child(self, child: TaskRun) -> None:
        """Append ``child``: a task inside this one, reached in this run."""
        if self.children is _NO_CHILDREN:
            self.children = [child]
        else:
            self.children.append(child)

    def begin(self) -> None:
        """Enter RUNNING for a first attempt."""
        self.status = Status.RUNNING
        self.attempt = 1
        self.started_at = perf_counter()
        self.start_time = time()
        self.run.started.append(self)

    def count_failures(self, failed_itself: bool) -> int:
        """Set and return :attr:`failed_count`: a failed leaf's own 1 plus the failures inside."""
        count = sum(child.failed_count for child in self.children) if self.children else 0
        if failed_itself and self.task.stores_result:
            count += 1
        self.failed_count = count
        return count

    def emit(
        self,
        status: Status,
        *,
        duration: float | None = None,
        result: Any = None,
        error: BaseException | None = None,
        retry_delay: float | None = None,
        reason: str | None = None,
    ) -> None:
        """Build the event for ``status`` from this record and hand it to the run's listeners.

        Every task event of a run is built here (the two of a task's hot path,
        RUNNING and SUCCEEDED, in :meth:`flow2.Task.process`), and only when
        a listener wants its status.
        """
        run = self.run
        if run.listening[status]:
            run.emit(TaskEvent(status, self, time(), duration, result, error, retry_delay, reason))


class Reuse:
    """A plan's decision: do not run the task, put ``result`` in the context instead.

    :param result: the stored result
    :param reason: shown with the event (e.g. "succeeded in run 3f2a…")
    :param cached: taken from the cache, not from the run resumed: the task
        is reported CACHED instead of REUSED
    """

    __slots__ = ("cached", "reason", "result")

    def __init__(self, result: Any, reason: str | None = None, *, cached: bool = False) -> None:
        self.result = result
        self.reason = reason
        self.cached = cached


class Skip:
    """A plan's decision: do not run the task (nor anything inside it); report it SKIPPED.

    :param reason: why, shown with the SKIPPED event ("left out by --skip")
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


Decision = Reuse | Skip


class Plan(Protocol):
    """Decides, before each task starts, whether it runs, is reused, or is left out."""

    def decide(self, record: TaskRun, context: Context) -> Decision | None:
        """Return None to run the task as usual, or a :class:`Reuse` or :class:`Skip`."""
        ...


class Reuser(Protocol):
    """Decides, once a task is about to start (its needs met, its condition true),
    whether a stored result with an equal reuse key stands in for it (the run store)."""

    async def decide(self, record: TaskRun, context: Context) -> Reuse | None:
        """Return None to run the task, or a :class:`Reuse`."""
        ...
