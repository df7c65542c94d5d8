"""The stream of events a run emits, and the shape of the things that listen to it.

The engine never prints or logs by itself: every change of a task's state
becomes one :class:`TaskEvent`, and the run's begin and end become
:class:`RunEvent` s. Consumers (the console lines, the logging records, the
live view, the JSON event file, anything a user adds) are plain callables
taking one event; they are called synchronously, in order, on the event
loop's thread, so they must be quick and must not block.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._run import Run
    from ._state import TaskRun
    from ._task import Task


class Status(enum.Enum):
    """The state a task (or a whole run) is in, or has ended in."""

    #: Not started yet.
    PENDING = "pending"
    #: Started and not finished.
    RUNNING = "running"
    #: An attempt failed and the task will run again after a delay.
    RETRYING = "retrying"
    #: Finished without error.
    SUCCEEDED = "succeeded"
    #: A group that did not fail itself although tasks inside it failed.
    PARTIAL = "partial"
    #: Finished with an error (its own, or a child's for a group that fails).
    FAILED = "failed"
    #: Never started because an earlier task of its serial group failed.
    SKIPPED = "skipped"
    #: Stopped from outside: Ctrl-C, a caller's timeout, a sibling's failure.
    CANCELLED = "cancelled"
    #: Not run: its result was taken from an earlier run (a resumed run).
    REUSED = "reused"
    #: Not run: its result was taken from the cache (an earlier run of the same
    #: flow with an equal reuse key; ``cache: true``).
    CACHED = "cached"

    # Members are singletons: hash by identity, in C, instead of Enum's
    # Python-level hash of the name (statuses key dicts on the hot path).
    __hash__ = object.__hash__

    @property
    def is_finished(self) -> bool:
        """True for the states a task ends in."""
        return self not in (Status.PENDING, Status.RUNNING, Status.RETRYING)


class TaskEvent:
    """One change of one task's state in one run.

    Built by the run (from the task's per-run record) when the state changes;
    listeners read it and must not change it.

    :param status: the state the task entered
    :param record: the task's record in this run (:class:`flow2.TaskRun`)
    :param time: wall-clock time of the change, seconds since the epoch
    :param duration: seconds since the task started, once it finished
    :param result: the task's return value, with ``SUCCEEDED``, ``CACHED`` and ``REUSED``
    :param error: the exception, with ``FAILED``, ``RETRYING`` and
        ``CANCELLED`` (a group failing because of a child carries the child's)
    :param retry_delay: with ``RETRYING``, seconds until the next attempt
    :param reason: with ``SKIPPED``, ``REUSED`` and ``CACHED``, why (e.g. "needs 'wheel',
        which failed")

    ``queued``, copied from the record, is the seconds the task's work
    waited for a process or Dask worker before it began there (0 for work
    run here); ``duration`` leaves it out: it is the time the task worked.

    ``output``, on the events that end a task, is the last lines the task
    wrote (stdout, stderr and the log lines a display shows, in the order
    they came; None when it wrote nothing): the run keeps them from the
    task's :class:`OutputEvent` s and puts them on the event when it builds
    it. Secrets are not masked in it (nor in ``result`` or ``error``): a
    listener masks what it shows or writes.

    The attributes ``task``, ``run``, ``attempt`` and ``failed_count`` (for a
    group, how many tasks inside it failed) are copied from the record when
    the event is built, so they stay what they were at that moment.
    """

    # A plain class with slots: one is made per task and state, so it is
    # kept as cheap to build as a tuple.
    __slots__ = (
        "attempt",
        "duration",
        "error",
        "failed_count",
        "output",
        "queued",
        "reason",
        "record",
        "result",
        "retry_delay",
        "run",
        "status",
        "task",
        "time",
    )

    def __init__(
        self,
        status: Status,
        record: TaskRun,
        time: float,
        duration: float | None = None,
        result: Any = None,
        error: BaseException | None = None,
        retry_delay: float | None = None,
        reason: str | None = None,
    ) -> None:
        self.status = status
        self.record = record
        self.task: Task = record.task
        self.run: Run = record.run
        self.time = time
        self.attempt: int = record.attempt
        self.duration = duration
        self.result = result
        self.error = error
        self.failed_count: int = record.failed_count
        self.retry_delay = retry_delay
        self.reason = reason
        self.queued: float = record.queued
        tail = record.output
        self.output: str | None = (
            tail.text() if tail is not None and status not in _NOT_ENDED else None
        )

    def __repr__(self) -> str:
        return f"<TaskEvent {self.status.name} {self.task.name!r} attempt={self.attempt}>"

    @property
    def path(self) -> tuple[str, ...]:
        """Names from the root of the tree down to this task."""
        return self.record.path


class RunEvent:
    """The start (``RUNNING``) or the end of a whole run.

    At the end ``status`` is ``SUCCEEDED``, ``PARTIAL``, ``FAILED`` or
    ``CANCELLED`` and ``duration`` is the run's wall time in seconds.
    """

    __slots__ = ("duration", "error", "run", "status", "time")

    def __init__(
        self,
        status: Status,
        run: Run,
        time: float,
        duration: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.status = status
        self.run = run
        self.time = time
        self.duration = duration
        self.error = error

    def __repr__(self) -> str:
        return f"<RunEvent {self.status.name} run={self.run.id}>"


class OutputEvent:
    """Text one task wrote, as it came: to its ``stream``, ``"stdout"``, ``"stderr"`` or ``"log"``.

    A shell task emits one per chunk its command writes; what a task's code
    prints (while a display captures it) and the lines it logs (while a
    display shows them) come as output events too. Lines may be split
    across events; ``final`` says the stream ended. Only listeners that ask
    for them receive output events: those with ``OutputEvent`` in their
    ``listens_to``. Secrets are not masked in ``text``.

    :param record: the task's record in this run (:class:`flow2.TaskRun`)
    :param stream: ``"stdout"``, ``"stderr"`` or ``"log"`` (formatted log records)
    :param text: what was written
    :param final: the stream ended: an unfinished line left is a line
    """

    __slots__ = ("final", "record", "run", "stream", "task", "text")

    def __init__(self, record: TaskRun, stream: str, text: str, final: bool = False) -> None:
        self.record = record
        self.task: Task = record.task
        self.run: Run = record.run
        self.stream = stream
        self.text = text
        self.final = final

    def __repr__(self) -> str:
        return f"<OutputEvent {self.stream} {self.task.name!r} {len(self.text)} characters>"


Event = TaskEvent | RunEvent


class EventListener(Protocol):
    """Anything that consumes a run's events: a callable taking one event.

    Pass listeners to :class:`flow2.Runner`. A listener that holds a
    resource (a file, a live display) releases it when it receives the
    :class:`RunEvent` that ends the run.

    A listener may say which task events it wants with an attribute
    ``listens_to``: a set of the :class:`Status` es of the :class:`TaskEvent`
    s it is called for (read once, when the run starts). Without it, it receives
    every task event. With :class:`OutputEvent` in ``listens_to`` it also
    receives what tasks write; without, never. Every listener receives both
    :class:`RunEvent` s. A
    run builds no event for a status nobody listens to, so a listener that
    ignores most events costs nothing for them.
    """

    def __call__(self, event: Event, /) -> None: ...


#: The statuses a task ends in: what listeners of outcomes only ask for.
FINISHED_STATUSES = frozenset(status for status in Status if status.is_finished)
_NOT_ENDED = frozenset(Status) - FINISHED_STATUSES
