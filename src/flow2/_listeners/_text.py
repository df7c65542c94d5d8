"""How a run's facts read as text, wherever they are shown or kept.

The console, the live view, the summary, logging, the event file, the
GitHub step summary, the run store and ``flow2 runs`` all say the same thing
the same way: a status's word (``SUCCESS``), an error (``ValueError:
message``), a traceback through the user's own frames, a log record, a
result, a duration. They import it from here, not from one another: this
module imports nothing of the listeners, so no listener depends on another
one for its text.

Everything here is safe on hostile values: an exception whose ``__str__``
raises, or a result whose ``repr`` does, is described as such, never raised.
Tracebacks never show local variables (they leak tokens into CI logs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import os
import re
import threading
import traceback
from typing import TYPE_CHECKING, Any, TextIO

from .._engine._events import Status
from .._engine._state import Cleanup

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import TracebackType

#: The word each status prints as (the console pads them so names line up).
WORDS = {
    Status.RUNNING: "STARTING",
    Status.RETRYING: "RETRYING",
    Status.SUCCEEDED: "SUCCESS",
    Status.PARTIAL: "PARTIAL",
    Status.FAILED: "FAILED",
    Status.SKIPPED: "SKIPPED",
    Status.CANCELLED: "CANCELLED",
    Status.REUSED: "REUSED",
    Status.CACHED: "CACHED",
}

#: The mark each status shows as in the live tree and the reports.
MARKS = {
    Status.PENDING: "·",
    Status.RUNNING: "…",
    Status.RETRYING: "↻",
    Status.SUCCEEDED: "✓",
    Status.REUSED: "↺",
    Status.CACHED: "↺",
    Status.PARTIAL: "!",
    Status.FAILED: "✗",
    Status.SKIPPED: "-",
    Status.CANCELLED: "⊘",
}

#: How a run's end reads in its verdict ("Release failed in 3.21s").
VERDICTS = {
    Status.SUCCEEDED: "succeeded",
    Status.PARTIAL: "finished with failures",
    Status.FAILED: "failed",
    Status.CANCELLED: "was cancelled",
}

#: Longest result shown under SUCCESS, in lines.
MAX_RESULT_LINES = 40
#: User frames shown per traceback (the innermost ones).
MAX_FRAMES = 12
#: How many causes (``raise ... from``) are followed.
MAX_CAUSES = 3


def wants_color(stream: TextIO) -> bool:
    """Color when ``stream`` is a terminal.

    ``NO_COLOR``, ``FORCE_COLOR`` and ``TERM=dumb`` are read with the run's
    settings, which pass ``color=`` when they decide.
    """
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


# Flow text -------------------------------------------------------------------------

#: Characters that would act instead of show: C0 and C1 controls, DEL, and the
#: bidirectional overrides that reorder what follows them on screen.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

#: An escape sequence (CSI, OSC, and the two-character ones) a program writes.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]"  # CSI: colors, cursor moves
    r"|\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, links
    r"|[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|[ -/]*[0-~])"  # the two-character ones
    r"|\x9b[0-?]*[ -/]*[@-~]"
)


def _escape_control(match: re.Match[str]) -> str:
    character = match.group()
    named = _NAMED_CONTROLS.get(character)
    if named is not None:
        return named
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with its control characters made visible: one line that draws as it reads.

    A task's name, a group's path, a skip reason and every other text of a
    flow go through here wherever flow2 draws it (console, live view,
    summary, GitHub lines, reports): ``"\\x1b[2J"`` shows as ``\\x1b[2J``, a
    newline as ``\\n``, so no name clears the screen, colors the lines after
    it or forges a line of its own (a verdict, a workflow command).
    """
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_escape_control, text)


#: How a display marks a group's cleanup task, after its name.
CLEANUP_NOTES = {Cleanup.ON_FAILURE: " (on failure)", Cleanup.FINALLY: " (finally)"}


def cleanup_note(role: Cleanup | None) -> str:
    """`` (finally)`` or `` (on failure)`` after a cleanup task's name; else nothing."""
    return CLEANUP_NOTES[role] if role is not None else ""


def visible_path(path: Iterable[str]) -> str:
    """A task's path (``release › build``), each part :func:`visible`."""
    return " › ".join(visible(part) for part in path)


def strip_escapes(text: str) -> str:
    """``text`` without terminal escape sequences (colors, cursor moves, titles).

    What a task prints keeps its colors on a terminal; log files, plain
    output that is not a terminal, and the reports get its text alone.
    """
    if "\x1b" not in text and "\x9b" not in text:
        return text
    return _ESCAPE_SEQUENCE.sub("", text).replace("\x1b", "")


def github_data(text: str) -> str:
    """``text`` escaped as the data of a GitHub Actions workflow command (``%0A`` for a newline)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_property(text: str) -> str:
    """``text`` escaped as a property of a GitHub Actions workflow command (``title=``)."""
    return github_data(text).replace(":", "%3A").replace(",", "%2C")


# Errors ---------------------------------------------------------------------------


def describe_error(error: BaseException) -> str:
    """``'ValueError: message'``, or the type alone when the message is empty.

    An exception whose ``__str__`` raises (even an exception of its own
    type) is described as such: a listener never fails on it.
    """
    name = type(error).__name__
    message = error_message(error)
    return f"{name}: {message}" if message else name


def error_lines(error: BaseException) -> list[str]:
    """:func:`describe_error`'s lines, each :func:`visible`, for drawing on a screen.

    A task's error text is the task's own: a newline in it must not start a
    line of flow2's (a forged verdict), nor an escape sequence clear the
    screen. One-line places show the first line (see :func:`error_headline`);
    the summary's indented detail block shows the rest.
    """
    lines = describe_error(error).strip("\n").split("\n")
    return [visible(line) for line in lines]


def error_headline(error: BaseException) -> str:
    """The first of :func:`error_lines`, with `` …`` when more follow: one line, safe to draw."""
    lines = error_lines(error)
    return lines[0] + " …" if len(lines) > 1 else lines[0]


def error_message(error: BaseException) -> str:
    """``str(error)``, or a note saying it cannot be shown when its ``__str__`` raises."""
    try:
        return str(error)
    except Exception as problem:
        return f"(its message cannot be shown: its __str__ raised {_type_of(problem)})"


def _type_of(problem: BaseException) -> str:
    # __name__ of a class is a plain attribute: reading it cannot run user code.
    return type(problem).__name__


def _internal_directories() -> tuple[str, ...]:
    """Directories whose frames are machinery, not the user's code."""
    paths = [
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # the flow2 package
        os.path.dirname(os.path.abspath(asyncio.__file__)),
        os.path.dirname(os.path.abspath(concurrent.futures.__file__)),
    ]
    return tuple(path + os.sep for path in paths)


_INTERNAL_DIRECTORIES = _internal_directories()
_INTERNAL_FILES = frozenset({os.path.abspath(threading.__file__)})


def is_user_frame(filename: str) -> bool:
    """False for frames of flow2, asyncio and the thread pool; True otherwise."""
    path = os.path.abspath(filename)
    return not path.startswith(_INTERNAL_DIRECTORIES) and path not in _INTERNAL_FILES


def user_traceback(error: BaseException) -> list[str]:
    """The lines of ``error``'s traceback through the user's own frames, without locals.

    Causes (``raise ... from``, or an exception raised while handling
    another) follow, each with its own user frames.
    """
    lines: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    for depth in range(MAX_CAUSES + 1):
        if current is None or id(current) in seen:
            break
        seen.add(id(current))
        cancelled = isinstance(current, asyncio.CancelledError)
        frames = _frames(current.__traceback__, "where it was cancelled" if cancelled else "")
        # A cause with neither a message nor a frame of the user's (the
        # TimeoutError inside a timeout) says nothing: leave it out.
        if (
            depth
            and not cancelled
            and (frames or describe_error(current) != type(current).__name__)
        ):
            lines.append(f"Caused by {describe_error(current)}")
        lines.extend(frames)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return lines


def _frames(tb: TracebackType | None, where: str = "") -> list[str]:
    # capture_locals stays False: a frame's variables never reach the output.
    frames = [frame for frame in traceback.extract_tb(tb) if is_user_frame(frame.filename)]
    if not frames:
        return []
    lines = [f"Traceback (your code, {where or 'most recent call last'}):"]
    if len(frames) > MAX_FRAMES:
        lines.append(f"  … {len(frames) - MAX_FRAMES} earlier frames")
        frames = frames[-MAX_FRAMES:]
    for frame in frames:
        lines.append(f'  File "{short_path(frame.filename)}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    return lines


def short_path(filename: str) -> str:
    """``filename`` relative to the working directory when it is inside it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive, on Windows
        return filename
    return filename if relative.startswith(os.pardir) else relative


# Log records and results ----------------------------------------------------------


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


# Durations ------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """``0.42s``, ``12.3s``, ``2m05s``, ``1h02m``: short, yet exact enough for the size."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return format_minutes(seconds)


def format_elapsed(seconds: float) -> str:
    """``45s``, ``2m05s``, ``1h02m``: how long a run has gone on, to the second."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    return format_minutes(seconds)


def format_minutes(seconds: float) -> str:
    """``2m05s``, ``1h02m``: a minute or more, as every duration flow2 shows reads it."""
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
