"""What a run returns: :class:`RunResult`, and :class:`RunFailed` to raise from it.

``await Runner(...).execute(tree)`` and :func:`flow2.run` return a
:class:`RunResult` however the run ended: a task's failure is part of the
outcome, never raised. ``result.check()`` turns an outcome that is not a
success into :class:`RunFailed`; ``result.exit_code`` is what ``flow2 run``
exits with.
"""

from __future__ import annotations

import collections
import dataclasses
import signal as signals
from typing import TYPE_CHECKING, Any, NamedTuple

from .._engine._events import Status
from .._engine._exceptions import FlowError

if TYPE_CHECKING:
    from .._engine._run import Run
    from .._engine._task import Context

#: Exit codes (``flow2 run``'s): all succeeded; a task failed or the run could not be recorded.
EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
#: A run cancelled by its caller, not by a signal: as Ctrl-C.
EXIT_CANCELLED = 128 + signals.SIGINT

#: The statuses a run that succeeded ends in (a resume that reused everything too).
_SUCCESSES = frozenset({Status.SUCCEEDED, Status.REUSED, Status.CACHED})


class TaskFailure(NamedTuple):
    """One task that failed in a run: where it is in the tree, and what it raised."""

    #: The names from the root down to the task.
    path: tuple[str, ...]
    #: The exception it failed with (a user's exception is the one the task raised, unchanged).
    error: BaseException

    def __str__(self) -> str:
        return f"{' › '.join(self.path)}: {type(self.error).__name__}: {self.error}"


@dataclasses.dataclass(frozen=True, slots=True)
class Counts:
    """How many leaf tasks of a run ended each way."""

    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    reused: int = 0
    #: Taken from the cache (``cache: true``), not from a run resumed.
    cached: int = 0

    @property
    def total(self) -> int:
        """Every leaf task the run reached."""
        return (
            self.succeeded + self.failed + self.skipped + self.cancelled + self.reused + self.cached
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of one run.

    :ivar id: the run's id (the one in every event, the store and the event file)
    :ivar status: how the root ended (:class:`flow2.Status`): SUCCEEDED; PARTIAL
        when tasks inside failed without failing the run's root group; FAILED;
        CANCELLED when a signal or the caller stopped it
    :ivar context: the context dict, filled with the results
    :ivar start: wall-clock start, seconds since the epoch
    :ivar duration: seconds the run took
    :ivar counts: leaf tasks by how they ended (:class:`Counts`:
        ``succeeded``, ``failed``, ``skipped``, ``cancelled``, ``reused``, ``cached``)
    :ivar failures: each task that failed, as ``(path, error)``, in tree order
    :ivar signal: the signal that stopped the run (``handle_signals=True``), or None
    :ivar recording_errors: why the run's record (the run store, the event
        file) is incomplete, one line each; empty when everything was written
    """

    id: str
    status: Status
    context: Context
    start: float
    duration: float
    counts: Counts
    failures: tuple[TaskFailure, ...] = ()
    signal: signals.Signals | None = None
    recording_errors: tuple[str, ...] = ()

    @property
    def succeeded(self) -> bool:
        """True when every task succeeded (or was reused) and the run was recorded whole."""
        return self.status in _SUCCESSES and not self.recording_errors

    @property
    def exit_code(self) -> int:
        """What ``flow2 run`` exits with for this outcome.

        0 when the run succeeded; 128 + the signal's number when a signal
        stopped it (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP); 130
        when its caller cancelled it; 1 when a task failed, or when the run
        could not be recorded completely.
        """
        if self.signal is not None:
            return 128 + int(self.signal)
        if self.status is Status.CANCELLED:
            return EXIT_CANCELLED
        return EXIT_SUCCEEDED if self.succeeded else EXIT_FAILED

    def check(self) -> RunResult:
        """Return the result when the run succeeded; raise :class:`flow2.RunFailed` otherwise.

        :raises flow2.RunFailed: carrying this result (``error.result``)
        """
        if not self.succeeded:
            raise RunFailed(result=self)
        return self

    def __str__(self) -> str:
        counts = self.counts
        parts = [
            f"{count} {word}"
            for count, word in (
                (counts.succeeded, "succeeded"),
                (counts.failed, "failed"),
                (counts.skipped, "skipped"),
                (counts.cancelled, "cancelled"),
                (counts.reused, "reused"),
                (counts.cached, "cached"),
            )
            if count
        ]
        text = f"run {self.id} {self.status.value} in {self.duration:.2f}s"
        return f"{text}: {', '.join(parts)}" if parts else text

    @classmethod
    def of(cls, run: Run, *, signal: int | None = None, recording_errors: Any = ()) -> RunResult:
        """The result of a run that ended: counted from its records, in tree order."""
        # Counted in C: a status per leaf, then a tally of them.
        tally = collections.Counter(
            record.status for record in run.record_list() if record.task.stores_result
        )
        failures: list[TaskFailure] = []
        if run.status not in _SUCCESSES or run.root_record.failed_count:
            seen: set[int] = set()
            # Walked backwards, every task comes after the tasks inside it: a
            # group that failed with a child's error is not listed again.
            for record in reversed(run.records()):
                error = record.error
                if record.status is Status.FAILED and error is not None:
                    # A group failing with what its tasks raised (the same
                    # error, or an exception group of theirs) is not listed again.
                    ids = {id(error), *(id(inner) for inner in _inner_errors(error))}
                    if not ids & seen:
                        failures.append(TaskFailure(record.path, error))
                    seen |= ids
            failures.reverse()
        return cls(
            id=run.id,
            status=run.status,
            context=run.context,
            start=run.started_at,
            duration=run.duration,
            counts=Counts(
                succeeded=tally[Status.SUCCEEDED],
                failed=tally[Status.FAILED],
                skipped=tally[Status.SKIPPED],
                cancelled=tally[Status.CANCELLED],
                reused=tally[Status.REUSED],
                cached=tally[Status.CACHED],
            ),
            failures=tuple(failures),
            signal=signals.Signals(signal) if signal is not None else None,
            recording_errors=tuple(recording_errors),
        )


def _inner_errors(error: BaseException) -> list[BaseException]:
    """The errors an exception group gathers, at any depth."""
    inner = []
    stack = list(getattr(error, "exceptions", ()))
    while stack:
        found = stack.pop()
        inner.append(found)
        stack.extend(getattr(found, "exceptions", ()))
    return inner


class RunFailed(FlowError):
    """Raised by :meth:`RunResult.check` when a run did not succeed.

    :ivar result: the :class:`RunResult` of the run
    """

    def __init__(self, result: RunResult) -> None:
        self.result = result
        if result.failures:
            first = result.failures[0]
            more = len(result.failures) - 1
            cause = f": {first}" + (f" (and {more} more)" if more else "")
        elif result.recording_errors:
            cause = f": {result.recording_errors[0]}"
        else:
            cause = ""
        super().__init__(f"run {result.id} {result.status.value}{cause}")
