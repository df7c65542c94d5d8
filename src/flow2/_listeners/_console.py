"""Plain console output: one line per event, colored on a terminal.

This is what a run prints in CI logs, pipes and files, and on a terminal
when the live view is not used::

    STARTING  Your workflow
    STARTING  Task 1
    SUCCESS   Task 1 (0.01s)
      something
    FAILED    Task 2 (0.00s): ValueError: no such file

What a task's own code logs (``task.logger``, ``flow2.logger``) comes out
between them, each line prefixed with the task's name, so the output of
parallel tasks is never an unattributable interleaving::

    [Build wheel] compiling 12 modules
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from .._engine._events import RunEvent, Status, TaskEvent
from ._settings import Verbosity

if TYPE_CHECKING:
    from .._engine._events import Event


#: The word each status prints as, padded so names line up.
WORDS = {
    Status.RUNNING: "STARTING",
    Status.RETRYING: "RETRYING",
    Status.SUCCEEDED: "SUCCESS",
    Status.PARTIAL: "PARTIAL",
    Status.FAILED: "FAILED",
    Status.SKIPPED: "SKIPPED",
    Status.CANCELLED: "CANCELLED",
    Status.REUSED: "REUSED",
}
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
}

#: Longest result shown under SUCCESS, in lines.
MAX_RESULT_LINES = 40
#: Seconds a line may wait in the stream's buffer before it is flushed.
FLUSH_DELAY = 0.05


def wants_color(stream: TextIO) -> bool:
    """Color when ``stream`` is a terminal, unless NO_COLOR is set; FORCE_COLOR forces it."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


#: Statuses a quiet console still prints.
_QUIET_STATUSES = frozenset({Status.FAILED, Status.RETRYING})


class PlainConsole:
    """An event listener printing one line per event.

    :param stream: where to write; ``sys.stdout`` (as it is when the run starts) when None
    :param color: force color on or off; decided by :func:`wants_color` when None
    :param verbosity: quiet prints only failures and retries; verbose prints
        each task's whole path instead of its name
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        color: bool | None = None,
        verbosity: Verbosity = Verbosity.NORMAL,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.color = wants_color(self.stream) if color is None else color
        self.verbosity = verbosity
        self._labels = {
            status: self._paint(status, word.ljust(_WIDTH)) for status, word in WORDS.items()
        }
        self._flush_pending = False
        self._quiet = verbosity is Verbosity.QUIET
        self._verbose = verbosity is Verbosity.VERBOSE

    def _paint(self, status: Status, text: str) -> str:
        return f"\033[{COLORS[status]}m{text}\033[0m" if self.color else text

    def __call__(self, event: Event) -> None:
        if type(event) is TaskEvent:
            if self._quiet and event.status not in _QUIET_STATUSES:
                return
            self.write(self.format(event))
        elif isinstance(event, RunEvent) and event.status.is_finished:
            self.stream.flush()

    def show_record(self, record: logging.LogRecord) -> None:
        """Print a task's log record, each of its lines prefixed with the task's name."""
        prefix = f"[{getattr(record, 'task', None) or '?'}] "
        if record.levelno >= logging.WARNING:
            prefix += f"{record.levelname}: "
        if self.color:
            color = "31;1" if record.levelno >= logging.ERROR else "33"
            if record.levelno < logging.WARNING:
                color = "36"  # cyan: a task's name, not a status
            prefix = f"\033[{color}m{prefix}\033[0m"
        lines = record_text(record).splitlines() or [""]
        self.write("".join(f"{prefix}{line}\n" for line in lines))

    def format(self, event: TaskEvent) -> str:
        """The line (or lines) ``event`` prints as, newline-terminated."""
        status = event.status
        if self._verbose:
            line = self._labels[status] + " › ".join(event.path)
        else:
            line = self._labels[status] + event.task.name
        if event.duration is not None and status is not Status.RETRYING:
            line += f" ({event.duration:.2f}s)"
        if status is Status.SUCCEEDED:
            if event.result is not None and event.task.output:
                return f"{line}\n{format_result(event.result)}\n"
        elif status is Status.FAILED:
            if event.failed_count and not event.task.stores_result:
                line += f": {_count(event.failed_count)} failed inside"
            elif event.error is not None:
                line += f": {describe_error(event.error)}"
        elif status is Status.PARTIAL:
            line += f": {_count(event.failed_count)} failed inside"
        elif status in (Status.SKIPPED, Status.REUSED) and event.reason:
            line += f": {event.reason}"
        elif status is Status.RETRYING and event.error is not None:
            retries = event.task.retries
            line += (
                f": {describe_error(event.error)} "
                f"(attempt {event.attempt} of {retries + 1}, next in {event.retry_delay:g}s)"
            )
        return line + "\n"

    def write(self, text: str) -> None:
        """Write ``text``; flush soon, not once per line (a pipe is block-buffered)."""
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


def record_text(record: logging.LogRecord) -> str:
    """A record's message, with its exception's traceback when it has one."""
    text = record.getMessage()
    if record.exc_info:
        if not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        text = f"{text}\n{record.exc_text}"
    elif record.stack_info:
        text = f"{text}\n{record.stack_info}"
    return text


def _count(failed: int) -> str:
    return f"{failed} task" if failed == 1 else f"{failed} tasks"


def describe_error(error: BaseException) -> str:
    """``'ValueError: message'``, or the type alone when the message is empty.

    An exception whose ``__str__`` raises (even an exception of its own
    type) is described as such: a listener never fails on it.
    """
    name = type(error).__name__
    try:
        message = str(error)
    except Exception as problem:
        return f"{name} (its message cannot be shown: its __str__ raised {_type_of(problem)})"
    return f"{name}: {message}" if message else name


def _type_of(problem: BaseException) -> str:
    # __name__ of a class is a plain attribute: reading it cannot run user code.
    return type(problem).__name__


def format_result(value: Any, *, max_lines: int = MAX_RESULT_LINES) -> str:
    """Render a result readably, YAML-like, indented by two spaces, at most ``max_lines``.

    A result whose ``repr``, ``str`` or iteration raises is shown as a line
    saying so: a listener never fails on it.
    """
    try:
        return _format_lines(value, max_lines)
    except Exception as problem:
        return (
            f"  (a {type(value).__name__} that cannot be shown: showing it raised "
            f"{_type_of(problem)})"
        )


def _format_lines(value: Any, max_lines: int) -> str:
    # Only the lines shown are formatted: a result of a million items must
    # not hold the event loop while lines nobody sees are built.
    lines = list(itertools.islice(_lines(value, 1), max_lines + 1))
    if len(lines) > max_lines:
        lines[max_lines] = "  … more lines not shown"
    return "\n".join(lines)


def _lines(value: Any, depth: int) -> Any:
    indent = "  " * depth
    if isinstance(value, dict) and value:
        for key, item in value.items():
            if _is_nested(item):
                yield f"{indent}{key}:"
                yield from _lines(item, depth + 1)
            else:
                yield f"{indent}{key}: {_scalar(item)}"
    elif isinstance(value, list | tuple | set | frozenset) and value:
        for item in value:
            if _is_nested(item):
                yield f"{indent}-"
                yield from _lines(item, depth + 1)
            else:
                yield f"{indent}- {_scalar(item)}"
    elif isinstance(value, str) and "\n" in value:
        for line in value.splitlines():
            yield f"{indent}{line}"
    else:
        yield f"{indent}{_scalar(value)}"


def _is_nested(value: Any) -> bool:
    if isinstance(value, str):
        return "\n" in value
    return isinstance(value, dict | list | tuple | set | frozenset) and bool(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value.strip() == value and value else repr(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict | list | tuple | set | frozenset):
        return "{}" if isinstance(value, dict) else "[]"
    return repr(value)
