"""What tasks write: written to log files, handed to the display, as it comes.

One :class:`TaskOutput` listener per run takes the run's output events
(:class:`flow2.OutputEvent`), each attributed to the task it comes from:

- a shell task's stdout and stderr, read as they come;
- ``print()`` and writes to ``sys.stdout``/``sys.stderr`` from a task's code,
  in async code and in worker threads alike: while a run shows itself, both
  streams are replaced by proxies that find the writing task through the
  context variable flow2 sets for it and hand the text to its run, on the
  loop's thread;
- the records a task logs (:meth:`TaskOutput.add_record`), while a display
  shows them.

It writes the whole output to the task's own log file when the run has a log
directory, and passes complete lines to the display. A partial line is held
until its newline comes (it is never torn into another task's lines); the
display may show it meanwhile. Of a ``\\r`` progress line only the text after
the last ``\\r`` is shown. Every secret is masked before the text goes anywhere.

It changes no event: the last lines of a task are kept by the run itself
and carried by the task's events (``event.output``), for the summary, the
event file, the run store and the reports.

Reading and drawing are apart: this listener only appends to a few lists and
files; the live view draws on its own timer and thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from .._engine._context import current_record
from .._engine._events import FINISHED_STATUSES, OutputEvent, RunEvent, Status, TaskEvent
from .._engine._output import MAX_PARTIAL, last_segment
from ._files import make_private_directory, open_private
from ._text import describe_error, strip_escapes, user_traceback, visible, visible_path

if TYPE_CHECKING:
    import logging

    from .._engine._events import Event
    from .._engine._run import Run
    from .._engine._state import TaskRun
    from ._secrets import SecretMasker

#: Longest file name made from a task's path (before ``.log``).
MAX_FILE_NAME = 120

_RUNNING, _RETRYING, _FAILED = Status.RUNNING, Status.RETRYING, Status.FAILED
_PENDING = Status.PENDING


class OutputDisplay(Protocol):
    """What a display offers to show tasks' output."""

    def show_output(self, label: str | None, lines: list[str], record: TaskRun | None) -> None:
        """Show complete ``lines`` of the task labelled ``label`` (None: no task)."""

    def show_partial(self, record: TaskRun | None, text: str) -> None:
        """The task's current unfinished line (empty: none any more)."""


class _TaskState:
    """The output of one task in one run: its unfinished lines and its log file."""

    __slots__ = ("file", "partials")

    def __init__(self) -> None:
        self.partials: dict[str, str] = {}
        self.file: TextIO | None = None


class TaskOutput:
    """An event listener that captures, keeps and passes on what each task prints.

    :param masker: replaces secrets in everything before it is kept or shown
    :param log_dir: a directory for one log file per task that prints (created
        when the first file is); ``{run_id}`` in it is replaced by the run's id
    :param display: shows the lines (plain lines, the live view); None: shown nowhere
    :param capture_prints: replace ``sys.stdout`` and ``sys.stderr`` while the run lasts
    :param log_lines: log each line to the task's logger (``flow2.tasks``), as
        records with a ``stream`` attribute: for runs without a display
    """

    #: What tasks write, and the events that end them (to close their files).
    listens_to = FINISHED_STATUSES | {OutputEvent}

    def __init__(
        self,
        masker: SecretMasker,
        *,
        log_dir: str | os.PathLike[str] | None = None,
        display: OutputDisplay | None = None,
        capture_prints: bool = False,
        log_lines: bool = False,
    ) -> None:
        self.masker = masker
        self.log_dir = log_dir
        self.display = display
        self.capture_prints = capture_prints
        self.log_lines = log_lines
        #: The run's log directory once the run started (None: no log files).
        self.log_directory: Path | None = None
        #: The log file of each task that has one.
        self.log_files: dict[TaskRun, Path] = {}
        #: Why the log file of a task stops short (a full disk), for each task whose does.
        self.incomplete_logs: dict[TaskRun, str] = {}
        self._states: dict[TaskRun | None, _TaskState] = {}
        self._labels: dict[TaskRun, str] = {}
        self._name_counts: collections.Counter[str] | None = None
        self._used_files: set[str] = set()
        self._run: Run | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    # -- events --------------------------------------------------------------

    def __call__(self, event: Event | OutputEvent) -> None:
        if type(event) is TaskEvent:
            status = event.status
            if status is _RUNNING or status is _RETRYING or status is _PENDING:
                return
            record = event.record
            state = self._states.pop(record, None)
            if state is None and not (status is _FAILED and self.log_dir is not None):
                return
            self._finish(event, state)
        elif type(event) is OutputEvent:
            if event.stream == "log":
                self._write_log(event.record, event.text)
            else:
                self.write(event.record, event.stream, event.text, final=event.final)
        elif isinstance(event, RunEvent):
            if event.status is _RUNNING:
                self._begin(event.run)
            else:
                self._end()

    def _begin(self, run: Run) -> None:
        self._run = run
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        # Secrets in the context (a variable named like one) are secrets too.
        self.masker.add_from_mapping(run.context)
        if self.log_dir is not None:
            self.log_directory = Path(os.fspath(self.log_dir).replace("{run_id}", run.id))
        if self.capture_prints:
            _install_proxies(self)

    def _end(self) -> None:
        for record in list(self._states):
            state = self._states.pop(record)
            self._flush_partials(record, state)
            if record is not None:
                self._close_file(record, state)
        if self.capture_prints:
            _uninstall_proxies(self)

    def _finish(self, event: TaskEvent, state: _TaskState | None) -> None:
        record = event.record
        if state is None:
            state = _TaskState()
        self._flush_partials(record, state)
        error = event.error
        if event.status is _FAILED and error is not None and self.log_dir is not None:
            # A failed task's log file ends with its error, so every failure
            # has a file to point at.
            if event.task.stores_result or not event.failed_count:
                text = "\n".join([f"FAILED: {describe_error(error)}", *user_traceback(error)])
                self._write_file(record, state, self.masker.mask(text) + "\n")
        self._close_file(record, state)

    # -- output ----------------------------------------------------------------

    def write(self, record: TaskRun | None, stream: str, text: str, *, final: bool = False) -> None:
        """Take ``text`` written by the task of ``record`` to ``stream`` ("stdout", "stderr").

        :param final: the stream ended: a partial line left is passed on as a line
        """
        state = self._states.get(record)
        if state is None:
            state = self._states[record] = _TaskState()
        self._take(record, state, stream, text, final)

    def _take(
        self, record: TaskRun | None, state: _TaskState, stream: str, text: str, final: bool
    ) -> None:
        partial = state.partials.get(stream)
        if partial:
            text = partial + text
        end = text.rfind("\n")
        if end < 0 and not final and len(text) <= MAX_PARTIAL:
            state.partials[stream] = text
            if self.display is not None:
                self.display.show_partial(record, self.masker.mask_partial(last_segment(text)))
            return
        if final or end < 0:
            block, rest = text + "\n" if text else "", ""
        else:
            block, rest = text[: end + 1], text[end + 1 :]
        state.partials[stream] = rest
        if block:
            self._complete(record, state, block, stream)
        if self.display is not None:
            self.display.show_partial(record, self.masker.mask_partial(last_segment(rest)))

    def add_record(self, record: logging.LogRecord, text: str) -> None:
        """Hand a task's log record (already formatted as ``text``) to its run, as log lines.

        They come back as an output event (stream ``"log"``): the run keeps
        them in the task's last lines, and this listener writes them to the
        task's log file.
        """
        task_record = getattr(record, "task_record", None)
        run = self._run
        if task_record is None or task_record.run is not run or run is None:
            return
        prefix = f"{record.levelname}: " if record.levelno >= 30 else ""
        lines = [prefix + line for line in text.splitlines()] or [prefix]
        run.emit_output(task_record, "log", "".join(line + "\n" for line in lines))

    def _write_log(self, record: TaskRun, text: str) -> None:
        """Write log lines of the task of ``record`` to its log file, when there is one."""
        if self.log_directory is None:
            return
        state = self._states.get(record)
        if state is None:
            state = self._states[record] = _TaskState()
        self._write_file(record, state, self.masker.mask(text))

    def _complete(self, record: TaskRun | None, state: _TaskState, block: str, stream: str) -> None:
        block = self.masker.mask(block)
        if self.log_directory is not None and record is not None:
            self._write_file(record, state, block)
        lines = block.split("\n")
        lines.pop()  # the text after the last newline: empty
        if "\r" in block:
            lines = [last_segment(line) for line in lines]
        if self.display is not None:
            label = self.label_of(record) if record is not None else None
            self.display.show_output(label, lines, record)
        if self.log_lines and record is not None:
            logger = record.task.logger
            for line in lines:
                logger.info("%s", line, extra={"stream": stream})

    def _flush_partials(self, record: TaskRun | None, state: _TaskState) -> None:
        """A task that ended, or a run that ended, leaves no line unfinished: each is a line.

        ``state`` is already out of ``_states`` here: the partials are taken
        from it, not looked up again (see
        test_a_partial_line_is_printed_whole_when_its_task_ends).
        """
        for stream, partial in list(state.partials.items()):
            if partial:
                self._take(record, state, stream, "", True)

    def _write_file(self, record: TaskRun, state: _TaskState, text: str) -> None:
        if record in self.incomplete_logs:
            return
        file = state.file
        if file is None:
            path = self.log_files.get(record)
            if path is None:
                path = self._new_log_path(record)
            try:
                make_private_directory(path.parent)
                file = state.file = open_private(path, append=True)
            except OSError as error:
                # Logs that cannot be written must not fail the work: say so once.
                print(
                    f"flow2: cannot write the log file {path}: {error.strerror}; "
                    f"no more task log files for this run",
                    file=sys.__stderr__,
                )
                self.log_directory = None
                return
        try:
            # A log file holds the text a task printed, not its colors.
            file.write(strip_escapes(text))
        except OSError as error:
            self._give_up_file(record, state, error)

    def _close_file(self, record: TaskRun, state: _TaskState) -> None:
        file, state.file = state.file, None
        if file is not None:
            try:
                file.close()
            except OSError as error:
                self._give_up_file(record, state, error)

    def _give_up_file(self, record: TaskRun, state: _TaskState, error: OSError) -> None:
        """A log file that cannot be written (a full disk) is marked incomplete; the task
        goes on, and its result does not depend on its log (see
        test_a_full_log_disk_marks_the_log_incomplete_and_the_task_succeeds)."""
        file, state.file = state.file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()
        path = self.log_files.get(record)
        self.incomplete_logs[record] = error.strerror or str(error)
        print(
            f"flow2: the log file {path} is incomplete: {error.strerror or error}; "
            f"the task goes on without it",
            file=sys.__stderr__,
        )

    def _new_log_path(self, record: TaskRun) -> Path:
        assert self.log_directory is not None
        # Named by the task's result key, unique among a tree's tasks, so the
        # run store finds a task's file (``flow2 runs logs``).
        stem = re.sub(r"[^\w.-]+", "-", record.task.key).strip("-.")[:MAX_FILE_NAME] or "task"
        name, number = stem, 1
        while name in self._used_files:
            number += 1
            name = f"{stem}-{number}"
        self._used_files.add(name)
        path = self.log_directory / f"{name}.log"
        self.log_files[record] = path
        return path

    def log_file_of(self, record: TaskRun) -> Path | None:
        """The log file of the task of ``record``, when it has one."""
        return self.log_files.get(record)

    def label_of(self, record: TaskRun) -> str:
        """How lines of the task are prefixed: its name, or its path when the name is not unique."""
        label = self._labels.get(record)
        if label is None:
            counts = self._name_counts
            if counts is None:
                counts = self._name_counts = _name_counts(record.run.root)
            name = record.task.name
            label = visible_path(record.path) if counts[name] != 1 else visible(name)
            self._labels[record] = label
        return label


def _name_counts(root: Any) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    stack = [root]
    while stack:
        task = stack.pop()
        counts[task.name] += 1
        stack.extend(task.children)
    return counts


# -- where output goes from a task's code ---------------------------------------

#: The listeners that replaced sys.stdout and sys.stderr, the latest last:
#: what no task writes goes to the display of the latest.
_capturing: list[TaskOutput] = []


class _StreamProxy:
    """Stands in for sys.stdout or sys.stderr while runs show themselves."""

    def __init__(self, original: TextIO, name: str) -> None:
        self._original = original
        self._name = name

    def write(self, text: str) -> int:
        record = current_record.get()
        if record is not None:
            run = record.run
            loop = run.loop
            if run.takes_output:
                # From a task: an output event of its own run, on the run's loop.
                if asyncio._get_running_loop() is loop:
                    run.emit_output(record, self._name, text)
                else:
                    try:
                        loop.call_soon_threadsafe(run.emit_output, record, self._name, text)
                    except RuntimeError:  # the loop closed: a thread outlived its run
                        return self._original.write(text)
                return len(text)
        # Not from a task: the newest run that shows itself shows it; a run
        # with no display (embedded in a service) never swallows what the
        # service itself prints. See test_an_embedded_run_writes_nothing_to_stdout.
        output = next((found for found in reversed(_capturing) if found.display), None)
        if output is None:
            return self._original.write(text)
        if threading.get_ident() == output._loop_thread:
            output.write(None, self._name, text)
        else:
            try:
                assert output._loop is not None
                output._loop.call_soon_threadsafe(output.write, None, self._name, text)
            except RuntimeError:  # the loop closed: a thread outlived its run
                return self._original.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def _install_proxies(output: TaskOutput) -> None:
    if not _capturing:
        sys.stdout = _StreamProxy(sys.stdout, "stdout")
        sys.stderr = _StreamProxy(sys.stderr, "stderr")
    _capturing.append(output)


def _uninstall_proxies(output: TaskOutput) -> None:
    if output in _capturing:
        _capturing.remove(output)
    if _capturing:
        return
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if isinstance(current, _StreamProxy):
            setattr(sys, name, current._original)
