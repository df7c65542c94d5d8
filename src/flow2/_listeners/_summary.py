"""The summary a run prints when it ends, in the live view and in plain mode.

::

    Slowest:
       1.20s  Release › Build › Wheel
       0.80s  Release › Test
    ── Release › Build › Wheel ──
      Traceback (your code, most recent call last):
        File "flow.py", line 12, in build_wheel
          open(path)
      Output (last 2 lines):
      │ reading setup.cfg
      │ error: no [metadata] section
      Log: .flow2/runs/3f2a9c1b0d4e/logs/wheel.log
    Logs: .flow2/runs/3f2a9c1b0d4e/logs/ (one file per task that printed)
    Failed: Release › Build › Wheel
      ValueError: no such file: dist/demo.whl
    Release failed in 3.21s: 41 succeeded, 1 failed, 3 skipped, 0 cancelled

The verdict is the last line, where a person's eye and a CI log's tail land.
Right above it, as pytest's short summary does, each failure is named with
its path and its error in one or two lines, so that at 80x24 the last screen
shows the cause. Above those, the details of each failure: the user's
traceback and the last lines its task printed (stdout and stderr in the
order they came), each line once, at every verbosity. Failures are in tree
order; identical errors are listed once with every task that raised them.
The counts are of leaf tasks (groups are not counted). "Slowest" lists
finished tasks that took time (0.01 s or more, not reused), groups as well
as leaves, leaving out a group that one of its listed tasks explains; it is
left out when the run had a single task, whose time the verdict gives.

A traceback keeps only the user's frames (:func:`._text.user_traceback`):
flow2's own, asyncio's and the thread pool's are left out. Local variables
are never printed — they leak tokens and passwords into CI logs — and every
secret is masked.

The listener keeps only counters, the failures and a small heap of the
slowest tasks, so it costs O(1) per event on runs of 100,000 tasks.
"""

from __future__ import annotations

import heapq
import itertools
import os
import sys
from typing import TYPE_CHECKING, TextIO

from .._engine._events import FINISHED_STATUSES, RunEvent, Status, TaskEvent
from ._settings import Verbosity
from ._text import (
    VERDICTS,
    cleanup_note,
    describe_error,
    error_lines,
    format_duration,
    short_path,
    strip_escapes,
    user_traceback,
    visible,
    visible_path,
    wants_color,
)

if TYPE_CHECKING:
    from .._engine._events import Event
    from .._engine._run import Run
    from .._engine._state import TaskRun
    from ._output import TaskOutput
    from ._secrets import SecretMasker

#: How many of the slowest tasks the summary lists, by verbosity.
SLOWEST_COUNT = {Verbosity.QUIET: 0, Verbosity.NORMAL: 5, Verbosity.VERBOSE: 10}
#: Failures shown in full; the rest are only counted.
MAX_FAILURES_SHOWN = 20
#: Skipped tasks listed with their reason (the first ones).
MAX_SKIPPED_SHOWN = 10

#: How much of a failed task's output the summary quotes, in lines (the last ones).
OUTPUT_LINES = 20
#: The longest error line above the verdict: two rows of an 80-column
#: terminal, less the indent. A longer one is cut there, and is whole above.
HEADLINE_WIDTH = 156
#: Tasks quicker than this (they print as 0.00s) are not among the slowest.
SLOWEST_MINIMUM = 0.005

_RUNNING, _RETRYING, _FAILED, _SKIPPED = (
    Status.RUNNING,
    Status.RETRYING,
    Status.FAILED,
    Status.SKIPPED,
)
# Not ranked among the slowest: they did no work in this run.
_NOT_TIMED = (Status.SKIPPED, Status.CANCELLED, Status.REUSED, Status.CACHED)
_COUNTED = (
    Status.SUCCEEDED,
    Status.FAILED,
    Status.SKIPPED,
    Status.CANCELLED,
    Status.REUSED,
    Status.CACHED,
)
_HEADLINE_COLORS = {
    Status.SUCCEEDED: "32;1",
    Status.PARTIAL: "33;1",
    Status.FAILED: "31;1",
    Status.CANCELLED: "35;1",
}


class Failure:
    """One failure the summary lists: a leaf task, or a group failing on its own.

    :ivar record: the task's record in the run
    :ivar error: the exception
    :ivar output: the last lines the task printed (None: nothing)
    """

    __slots__ = ("error", "output", "record")

    def __init__(self, record: TaskRun, error: BaseException, output: str | None) -> None:
        self.record = record
        self.error = error
        self.output = output


class SummaryListener:
    """An event listener that prints the run's summary when the run ends.

    :param stream: where to write; ``sys.stdout`` (as it is when the run starts) when None
    :param color: force color on or off; decided by :func:`flow2._listeners._text.wants_color`
        when None
    :param verbosity: quiet prints the failures and the verdict only
    :param masker: masks secrets in everything printed
    :param output: the run's output listener, to say where the log files are
    :param events: where the event file is, to say so ("events.jsonl")
    """

    #: It sums up how tasks ended.
    listens_to = FINISHED_STATUSES

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        color: bool | None = None,
        verbosity: Verbosity = Verbosity.NORMAL,
        masker: SecretMasker | None = None,
        output: TaskOutput | None = None,
        events: str | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.color = wants_color(self.stream) if color is None else color
        self.verbosity = verbosity
        self.masker = masker
        self.output = output
        self.events = events
        self.counts = dict.fromkeys(_COUNTED, 0)
        #: Every failure: leaf tasks, and groups failing on their own.
        self.failures: list[Failure] = []
        self._slowest_count = SLOWEST_COUNT[verbosity]
        # A min-heap of (duration, order, record): the root is the fastest
        # kept. Three times as many as shown: groups that a task inside them
        # explains are left out at the end.
        self._slowest: list[tuple[float, int, TaskRun]] = []
        self._slowest_kept = 3 * self._slowest_count
        self._order = itertools.count()
        self._listed: set[int] = set()
        #: path → reason of every task skipped with a reason, groups before their tasks.
        self.skipped: dict[tuple[str, ...], str] = {}

    def __call__(self, event: Event) -> None:
        if type(event) is TaskEvent:
            status = event.status
            # Identity tests: this runs for every event of 100,000-task runs,
            # and Status.is_finished costs several times more.
            if status is _RUNNING or status is _RETRYING:
                return
            task = event.task
            if task.stores_result and status in self.counts:
                self.counts[status] += 1
            duration = event.duration
            if (
                duration is not None
                and duration >= SLOWEST_MINIMUM
                and self._slowest_count
                and status not in _NOT_TIMED
            ):
                slowest = self._slowest
                full = len(slowest) >= self._slowest_kept
                # Only a task slower than the fastest kept makes an entry.
                if (not full or duration > slowest[0][0]) and event.record.parent is not None:
                    # (The root's time is the run's: never listed.)
                    entry = (duration, next(self._order), event.record)
                    if full:
                        heapq.heapreplace(slowest, entry)
                    else:
                        heapq.heappush(slowest, entry)
            if status is _SKIPPED and event.reason:
                self.skipped[event.path] = event.reason
            error = event.error
            if status is _FAILED and error is not None:
                # A group failing on its own (a timeout) is listed; a group
                # passing on a failure already listed is not.
                if id(error) not in self._listed and (task.stores_result or not event.failed_count):
                    self._listed.add(id(error))
                    self.failures.append(Failure(event.record, error, event.output))
        elif isinstance(event, RunEvent) and event.status.is_finished:
            self.stream.write(self.format(event))
            self.stream.flush()

    def _paint(self, color: str, text: str) -> str:
        return f"\033[{color}m{text}\033[0m" if self.color else text

    def _mask(self, text: str) -> str:
        return self.masker.mask(text) if self.masker is not None else text

    def verdict(self, event: RunEvent) -> str:
        """The last line: ``Release failed in 3.21s: 41 succeeded, 1 failed, …``."""
        status = event.status
        # "reused" only in a resumed run (one that reused something).
        counts = ", ".join(
            f"{self.counts[counted]} {counted.value}"
            for counted in _COUNTED
            if (counted is not Status.REUSED and counted is not Status.CACHED)
            or self.counts[counted]
        )
        word = VERDICTS.get(status, status.value)
        took = format_duration(event.duration or 0)
        return f"{visible(event.run.root.name)} {word} in {took}: {counts}"

    def format(self, event: RunEvent) -> str:
        """The summary's text for the run's end ``event``, newline-terminated."""
        lines: list[str] = []
        slowest = self.slowest()
        # One task: the verdict gives its time, a list would say nothing more.
        if slowest and sum(self.counts.values()) > 1:
            lines.append("Slowest:")
            for duration, record in slowest:
                lines.append(f"  {duration:7.2f}s  {visible_path(record.path)}")
        if self.verbosity is not Verbosity.QUIET:
            lines.extend(self._skipped_lines())
        groups = self.grouped_failures(event.run)
        shown = groups[:MAX_FAILURES_SHOWN]
        for group in shown:
            lines.extend(self._details(group))
        slots = event.run.slots
        if slots is not None:
            # Tokens a stopped command kept, put back: which task they were.
            # See tests/test_jobs.py::test_tokens_a_killed_command_kept_are_taken_back.
            for leak in slots.leaks:
                names = ", ".join(visible_path(path) for path in leak.paths)
                lines.append(
                    f"Jobserver: {leak.count} token(s) kept by the stopped command of "
                    f"{names} were put back"
                )
        directory = self._log_directory()
        if directory is not None:
            lines.append(
                f"Logs: {short_path(str(directory))}{os.sep} (one file per task that printed)"
            )
        # The cause right above the verdict, where the last screen shows it:
        # see test_the_last_screen_names_each_failure_right_above_the_verdict.
        for group in shown:
            lines.extend(self._headline(group))
        hidden = sum(len(group) for group in groups[MAX_FAILURES_SHOWN:])
        if hidden:
            where = self._where_all_failures_are()
            lines.append(
                f"… and {hidden} more failure{'' if hidden == 1 else 's'}"
                + (f" ({where})" if where else "")
            )
        status = event.status
        verdict = self.verdict(event)
        name, _, counts = verdict.rpartition(": ")
        lines.append(f"{self._paint(_HEADLINE_COLORS.get(status, '1'), name)}: {counts}")
        text = self._mask("\n".join(lines))
        # Without colors, a task's own escape sequences in its last lines go too.
        return "\n" + (text if self.color else strip_escapes(text)) + "\n"

    def slowest(self) -> list[tuple[float, TaskRun]]:
        """The slowest finished tasks, slowest first, without groups a task inside explains."""
        ranked = sorted(self._slowest, key=lambda entry: (-entry[0], entry[1]))
        chosen: list[tuple[float, TaskRun]] = []
        for duration, _, record in ranked:
            if len(chosen) >= self._slowest_count:
                break
            if record.task.children or not record.task.stores_result:
                # A group most of whose time one task inside it took says nothing more.
                path = record.path
                if any(
                    other.path[: len(path)] == path and other_duration >= 0.9 * duration
                    for other_duration, _, other in ranked
                    if other is not record
                ):
                    continue
            chosen.append((duration, record))
        return chosen

    def grouped_failures(self, run: Run) -> list[list[Failure]]:
        """The failures in tree order, those with the same error together."""
        failures = self.failures
        if len(failures) > 1:
            order = {id(record): index for index, record in enumerate(run.records())}
            failures = sorted(failures, key=lambda failure: order.get(id(failure.record), -1))
        groups: dict[str, list[Failure]] = {}
        for failure in failures:
            key = f"{type(failure.error).__qualname__}: {describe_error(failure.error)}"
            groups.setdefault(key, []).append(failure)
        return list(groups.values())

    def _skipped_lines(self) -> list[str]:
        """Why tasks were skipped; a task skipped with its group's reason is not repeated."""
        shown = [
            (path, reason)
            for path, reason in self.skipped.items()
            if self.skipped.get(path[:-1]) != reason
        ]
        lines = [
            f"Skipped: {visible_path(path)}: {visible(reason)}"
            for path, reason in shown[:MAX_SKIPPED_SHOWN]
        ]
        if len(shown) > MAX_SKIPPED_SHOWN:
            lines.append(f"… and {len(shown) - MAX_SKIPPED_SHOWN} more skipped")
        return lines

    def _headline(self, group: list[Failure]) -> list[str]:
        """A failure in short, above the verdict: its path, then its error's first line."""
        first = group[0]
        headline = error_lines(first.error)[0]
        if len(headline) > HEADLINE_WIDTH:
            headline = headline[: HEADLINE_WIDTH - 1] + "…"
        if len(group) == 1:
            return [
                self._paint("31;1", f"Failed: {_labelled_path(first.record)}"),
                f"  {self._paint('31', headline)}",
            ]
        lines = [
            self._paint("31;1", f"Failed: the same error in {len(group)} tasks:")
            + " "
            + self._paint("31", headline)
        ]
        lines.extend(f"  - {_labelled_path(failure.record)}" for failure in group)
        return lines

    def _details(self, group: list[Failure]) -> list[str]:
        """What explains a failure, above the short list: traceback, output tail, log.

        The error's first line is in the short list; the rest of a message of
        several lines is here, and the whole message when the short list cuts
        its first line. Nothing when there is nothing more to say.
        """
        first = group[0]
        # Each line made visible and indented: an error's text cannot forge
        # a line of flow2's. See test_an_error_text_forges_no_line.
        description = error_lines(first.error)
        if description and len(description[0]) <= HEADLINE_WIDTH:
            description = description[1:]
        lines = [f"  {line}" for line in description]
        lines.extend(f"  {line}" for line in user_traceback(first.error))
        if first.output:
            tail = first.output.splitlines()[-OUTPUT_LINES:]
            lines.append(f"  Output (last {len(tail)} line{'' if len(tail) == 1 else 's'}):")
            # Without colors, a task's escape sequences are noise (or a forgery).
            lines.extend(f"  │ {line if self.color else strip_escapes(line)}" for line in tail)
        for failure in group:
            log = self._log_file(failure)
            if log:
                whose = "" if len(group) == 1 else f" of {visible_path(failure.record.path)}"
                lines.append(f"  Log{whose}: {log}")
        if not lines:
            return []
        where = visible_path(first.record.path)
        if len(group) > 1:
            more = len(group) - 1
            where += f" (and {more} more task{'' if more == 1 else 's'} with the same error)"
        return [self._paint("31", f"── {where} ──"), *lines]

    def _log_file(self, failure: Failure) -> str | None:
        if self.output is None:
            return None
        path = self.output.log_file_of(failure.record)
        return short_path(str(path)) if path is not None and path.exists() else None

    def _log_directory(self) -> str | None:
        if self.output is None or self.output.log_directory is None:
            return None
        directory = self.output.log_directory
        return str(directory) if directory.is_dir() and any(directory.iterdir()) else None

    def _where_all_failures_are(self) -> str:
        places = []
        directory = self._log_directory()
        if directory is not None:
            places.append(f"each in its log file under {short_path(directory)}")
        if self.events:
            places.append(f"all in the event file {self.events}")
        return "; ".join(places)


def _labelled_path(record: TaskRun) -> str:
    """A task's path, and `` (finally)`` or `` (on failure)`` for a group's cleanup task."""
    return visible_path(record.path) + cleanup_note(record.cleanup)
