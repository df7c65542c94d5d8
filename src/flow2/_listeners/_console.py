"""Plain console output: one line per event, colored on a terminal.

This is what a run prints in CI logs, pipes and files, and on a terminal
when the live view is not used::

    STARTING  Your workflow
    STARTING  Task 1
    SUCCESS   Task 1 (0.01s)
      something
    FAILED    Task 2 (0.00s): ValueError: no such file

What a task's own code logs (``task.logger``, ``flow2.logger``), prints, or
a shell command writes comes out between them, each line prefixed with the
task's name (its path when two tasks share the name), so the output of
parallel tasks is never an unattributable interleaving::

    [Build wheel] compiling 12 modules

Under GitHub Actions the lines come out as they are printed, prefixed with
the task, as everywhere else: the live log shows a long test suite as it
runs. While a task is the only one running, its lines are folded in a
``::group::``/``::endgroup::`` block named after it, which the next status
line closes; lines of parallel tasks are not folded, since a group would
have to hold them back. Each failure is also an ``::error`` annotation. In
quiet mode a progress line comes at least every :data:`HEARTBEAT_INTERVAL`
seconds, so CI services that stop a job printing nothing for minutes do not
stop a long run.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from .._engine._events import RunEvent, Status, TaskEvent
from ._settings import Verbosity
from ._text import (
    WORDS,
    cleanup_note,
    describe_error,
    error_headline,
    format_elapsed,
    format_result,
    github_data,
    github_property,
    record_text,
    strip_escapes,
    visible,
    visible_path,
    wants_color,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._engine._events import Event
    from .._engine._run import Run
    from .._engine._state import TaskRun
    from ._output import TaskOutput
    from ._secrets import SecretMasker


#: Status words are padded to this width, so that task names line up.
_WIDTH = max(map(len, WORDS.values())) + 1

#: ANSI SGR codes of each status's color.
COLORS = {
    Status.RUNNING: "33",  # yellow
    Status.RETRYING: "33;1",  # bold yellow
    Status.SUCCEEDED: "32",  # green
    Status.PARTIAL: "31",  # red: something inside failed
    Status.FAILED: "31;1",  # bold red
    Status.SKIPPED: "2",  # dim
    Status.CANCELLED: "35",  # magenta
    Status.REUSED: "36",  # cyan: taken from an earlier run
    Status.CACHED: "36",
}

#: Seconds a line may wait in the stream's buffer before it is flushed.
FLUSH_DELAY = 0.05
#: In quiet mode, the longest time (seconds) between two lines of a run.
HEARTBEAT_INTERVAL = 60.0

_STARTING, _RETRYING, _SUCCEEDED, _PARTIAL = (
    Status.RUNNING,
    Status.RETRYING,
    Status.SUCCEEDED,
    Status.PARTIAL,
)
_FAILED, _SKIPPED, _REUSED, _CACHED = (
    Status.FAILED,
    Status.SKIPPED,
    Status.REUSED,
    Status.CACHED,
)
_FINISHED = frozenset(status for status in Status if status.is_finished)

#: A task that has started and not finished is in one of these.
_UNDERWAY = frozenset({Status.RUNNING, Status.RETRYING})

#: Statuses a quiet console still prints.
_QUIET_STATUSES = frozenset({Status.FAILED, Status.RETRYING})


class PlainConsole:
    """An event listener printing one line per event.

    :param stream: where to write; ``sys.stdout`` (as it is when the run starts) when None
    :param color: force color on or off; decided by :func:`wants_color` when None
    :param verbosity: quiet prints only failures and retries; verbose prints
        each task's whole path instead of its name
    :param masker: masks secrets in every line
    :param output: the run's output listener, which names tasks in prefixes
    :param github: fold a task's output in a GitHub Actions group while it is the
        only task running (never holding lines back), annotate failures
    :param heartbeat: in quiet mode, seconds between progress lines (0: none);
        :data:`HEARTBEAT_INTERVAL` when None
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        color: bool | None = None,
        verbosity: Verbosity = Verbosity.NORMAL,
        masker: SecretMasker | None = None,
        output: TaskOutput | None = None,
        github: bool = False,
        heartbeat: float | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.color = wants_color(self.stream) if color is None else color
        self.verbosity = verbosity
        self.masker = masker
        self.output = output
        self.github = github
        self.heartbeat = HEARTBEAT_INTERVAL if heartbeat is None else heartbeat
        self._labels = {
            status: self._paint(status, word.ljust(_WIDTH)) for status, word in WORDS.items()
        }
        self._flush_pending = False
        self._quiet = verbosity is Verbosity.QUIET
        self._verbose = verbosity is Verbosity.VERBOSE
        #: GitHub Actions: the leaf tasks running, and the task whose group is open.
        self._underway: set[TaskRun] = set()
        self._open_group: TaskRun | None = None
        self._run: Run | None = None
        self._started_at = 0.0
        self._beat_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: StreamWriter | None = None

    def _paint(self, status: Status, text: str) -> str:
        return f"\033[{COLORS[status]}m{text}\033[0m" if self.color else text

    def _mask(self, text: str) -> str:
        masker = self.masker
        return masker.mask(text) if masker is not None else text

    @property
    def listens_to(self) -> frozenset[Status] | None:
        """A quiet console (outside GitHub Actions) prints failures and retries only."""
        return _QUIET_STATUSES if self._quiet and not self.github else None

    def __call__(self, event: Event) -> None:
        if type(event) is TaskEvent:
            # This runs for every event of large runs: nothing is kept per
            # task (what runs is read from the run's records when needed).
            if self.github:
                status = event.status
                self._follow(event)
                if status is Status.FAILED:
                    self._annotate(event)
                if self._quiet and status not in _QUIET_STATUSES:
                    return
            text = self.format(event)
            masker = self.masker
            if masker is not None:
                text = masker.mask(text)
            writer = self._writer
            if writer is not None:
                writer.write(text)
            else:
                self.write(text)
        elif isinstance(event, RunEvent):
            if event.status is Status.RUNNING:
                self._begin(event)
            else:
                self._end()

    def _begin(self, event: RunEvent) -> None:
        self._started_at = time.time()
        self._run = event.run
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - runs always have a loop
            return
        self._writer = StreamWriter(self.stream)
        if self._quiet and self.heartbeat:
            self._beat_timer = self._loop.call_later(self.heartbeat, self._beat)

    def _end(self) -> None:
        if self._beat_timer is not None:
            self._beat_timer.cancel()
            self._beat_timer = None
        self._close_group()
        writer, self._writer = self._writer, None
        if writer is not None:
            # The run is over: wait until every line is out, so that what
            # is printed next (the summary) comes after them.
            writer.close()
        self.stream.flush()

    def _beat(self) -> None:
        """A quiet run's sign of life: how far it got, what runs."""
        elapsed = time.time() - self._started_at
        leaves = self._leaves()
        finished = sum(1 for record in leaves if record.status in _FINISHED)
        running = self._running(leaves)
        names = [self._label_of(record) for record in running[:3]]
        more = len(running) - len(names)
        line = (
            f"… {format_elapsed(elapsed)}: {finished}/{len(leaves)} tasks "
            f"finished, {len(running)} running"
        )
        if names:
            line += ": " + ", ".join(names) + (f" and {more} more" if more > 0 else "")
        self.write(self._mask(line) + "\n")
        assert self._loop is not None and self.heartbeat
        self._beat_timer = self._loop.call_later(self.heartbeat, self._beat)

    def show_stopping(self) -> None:
        """Say that the run is stopping (the first Ctrl-C); callable from a signal handler."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._write_stopping)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _write_stopping(self) -> None:
        running = self._running(self._leaves())
        names = [self._label_of(record) for record in running[:5]]
        more = len(running) - len(names)
        line = f"flow2: stopping (Ctrl-C): waiting for {len(running)} task"
        line += "" if len(running) == 1 else "s"
        line += " to stop"
        if names:
            line += ": " + ", ".join(names) + (f" and {more} more" if more > 0 else "")
        line += ". Press Ctrl-C again to kill them now.\n"
        self.write(self._mask(line))
        self.stream.flush()

    def _leaves(self) -> list[TaskRun]:
        """The records of the run's tasks that store a result (not groups), in tree order."""
        if self._run is None:
            return []
        return [record for record in self._run.records() if record.task.stores_result]

    @staticmethod
    def _running(leaves: list[TaskRun]) -> list[TaskRun]:
        """Those of ``leaves`` that have started and not finished."""
        return [record for record in leaves if record.status in _UNDERWAY]

    def _label_of(self, record: TaskRun) -> str:
        if self.output is not None:
            return self.output.label_of(record)
        return visible(record.task.name)

    def show_output(self, label: str | None, lines: list[str], record: TaskRun | None) -> None:
        """Print lines a task wrote, each prefixed with the task (see ``_output``).

        Quiet runs do not print them: a failed task's last lines are in the summary.
        """
        if self._quiet:
            return
        if label is None:
            self._close_group()
            self.write("".join([f"{line}\n" for line in lines]))
            return
        if self.github:
            self._open_group_of(record, label)
        if not self.color:
            # Not a terminal (or no colors wanted): a task's escape
            # sequences would be noise in a file and a forgery on a screen.
            lines = [strip_escapes(line) for line in lines]
        prefix = f"[{self._mask(label)}] "
        if self.color:
            prefix = f"\033[36m{prefix}\033[0m"
        self.write("".join([f"{prefix}{line}\n" for line in lines]))

    def show_partial(self, record: TaskRun | None, text: str) -> None:
        """Plain lines print a line once it is complete."""

    def show_record(self, record: logging.LogRecord) -> None:
        """Print a task's log record, each of its lines prefixed with the task's name."""
        task_record = getattr(record, "task_record", None)
        if task_record is not None and self.output is not None:
            label = self.output.label_of(task_record)
        else:
            label = visible(str(getattr(record, "task", None) or "?"))
        prefix = ""
        if record.levelno >= logging.WARNING:
            prefix = f"{record.levelname}: "
        lines = self._mask(record_text(record)).splitlines() or [""]
        if self.github:
            self._open_group_of(task_record, label)
        prefix = f"[{self._mask(label)}] " + prefix
        if self.color:
            color = "31;1" if record.levelno >= logging.ERROR else "33"
            if record.levelno < logging.WARNING:
                color = "36"  # cyan: a task's name, not a status
            prefix = f"\033[{color}m{prefix}\033[0m"
        self.write("".join(f"{prefix}{line}\n" for line in lines))

    def _follow(self, event: TaskEvent) -> None:
        """GitHub Actions: track the running leaf tasks; a status line closes the open group."""
        record = event.record
        if event.status in _FINISHED:
            self._underway.discard(record)
        elif event.task.stores_result:
            self._underway.add(record)
        self._close_group()

    def _open_group_of(self, record: TaskRun | None, label: str) -> None:
        """Before ``record``'s lines: fold them in its group if it is the only task running.

        Written at once, never held: a group of parallel tasks' lines would
        have to wait for the task to end, and the live log would show nothing.
        """
        if record is self._open_group:
            return
        self._close_group()
        if record is not None and len(self._underway) == 1 and record in self._underway:
            self._open_group = record
            self.write(f"::group::{github_data(self._mask(label))}\n")

    def _close_group(self) -> None:
        if self._open_group is not None:
            self._open_group = None
            self.write("::endgroup::\n")

    def _annotate(self, event: TaskEvent) -> None:
        """A failure as a GitHub Actions ``::error`` annotation (a group failing on its own)."""
        if event.error is not None and (event.task.stores_result or not event.failed_count):
            title = github_property(visible_path(event.path))
            message = github_data(describe_error(event.error))
            self.write(self._mask(f"::error title={title}::{message}\n"))

    def format(self, event: TaskEvent) -> str:
        """The line (or lines) ``event`` prints as, newline-terminated."""
        status = event.status
        if self._verbose:
            line = self._labels[status] + visible_path(event.path)
        else:
            line = self._labels[status] + visible(event.task.name)
        line += cleanup_note(event.record.cleanup)
        if status is _STARTING:  # half of all lines: the shortest path
            return line + "\n"
        duration = event.duration
        if duration is not None and status is not _RETRYING:
            line = f"{line} ({duration:.2f}s)"
        # Module constants, not Status.X: this runs for every line.
        if status is _SUCCEEDED:
            if event.result is not None and event.task.output:
                return f"{line}\n{format_result(event.result)}\n"
        elif status is _FAILED:
            if event.failed_count and not event.task.stores_result:
                line += f": {_count(event.failed_count)} failed inside"
            elif event.error is not None:
                line += f": {error_headline(event.error)}"
        elif status is _PARTIAL:
            line += f": {_count(event.failed_count)} failed inside"
        elif (status is _SKIPPED or status is _REUSED or status is _CACHED) and event.reason:
            line += f": {visible(event.reason)}"
        elif status is _RETRYING and event.error is not None:
            retries = event.task.retries
            line += (
                f": {error_headline(event.error)} "
                f"(attempt {event.attempt} of {retries + 1}, next in {event.retry_delay:g}s)"
            )
        return line + "\n"

    def write(self, text: str) -> None:
        """Write ``text``; flush soon, not once per line (a pipe is block-buffered).

        During a run the lines go to a writer thread: a slow terminal or a
        full pipe then never blocks the event loop, nor skews a task's time.
        """
        writer = self._writer
        if writer is not None:
            writer.write(text)
            return
        self.stream.write(text)
        if not self._flush_pending:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.stream.flush()
                return
            self._flush_pending = True
            loop.call_later(FLUSH_DELAY, self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        try:
            self.stream.flush()
        except ValueError:  # the stream was closed by its owner meanwhile
            pass


class StreamWriter:
    """Writes text to a stream from a thread of its own, in the order it was given.

    :attr:`write` only queues the text, so the caller (the event loop) never
    waits for the reader of the stream. The thread writes what is queued
    every :data:`FLUSH_DELAY` seconds: it is never woken once per line,
    which would make it take Python's GIL from a busy loop hundreds of
    times a second. :meth:`close` writes what is left, flushes, and waits.

    :param stream: where the text goes
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._pending: list[str] = []
        #: Queue a text; the thread writes it within :data:`FLUSH_DELAY`
        #: seconds. ``list.append`` itself: atomic, no lock, no Python frame.
        self.write: Callable[[str], None] = self._pending.append
        self._closed = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="flow2-console", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, flush, and stop the thread."""
        self._closing = True  # before the wake-up: the thread reads it first
        self._closed.set()
        self._thread.join()

    def _work(self) -> None:
        pending = self._pending
        while True:
            # Read before taking the lines: once closing is set, every line
            # is queued already, so none is left behind.
            closing = self._closing
            # Take what is queued so far; lines appended meanwhile stay.
            count = len(pending)
            if count:
                text = "".join(pending[:count])
                del pending[:count]
                try:
                    self.stream.write(text)
                    self.stream.flush()
                except Exception:  # the stream is closed, its reader gone, or it refused
                    pass  # the text; the thread must stay to write what follows
            if closing:
                return
            self._closed.wait(FLUSH_DELAY)


def _count(failed: int) -> str:
    return f"{failed} task" if failed == 1 else f"{failed} tasks"
