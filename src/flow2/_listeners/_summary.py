"""The summary a run prints when it ends, in the live view and in plain mode.

::

    Release failed in 3.21s: 41 succeeded, 1 failed, 3 skipped, 0 cancelled
    Slowest:
       1.20s  Release › Build › Wheel
       0.80s  Release › Test › Unit
    Failed: Release › Build › Wheel
      ValueError: no such file: dist/demo.whl
      Traceback (your code, most recent call last):
        File "flow.py", line 12, in build_wheel
          open(path)

The counts are of leaf tasks (groups are not counted). A traceback keeps
only the user's frames: flow2's own, asyncio's and the thread pool's are
left out. Local variables are never printed — they leak tokens and
passwords into CI logs.

The listener keeps only counters, the failures and a small heap of the
slowest tasks, so it costs O(1) per event on runs of 100,000 tasks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import os
import sys
import threading
import traceback
from typing import TYPE_CHECKING, TextIO

from .._engine._events import RunEvent, Status, TaskEvent
from ._console import describe_error, wants_color
from ._settings import Verbosity

if TYPE_CHECKING:
    from types import TracebackType

    from .._engine._events import Event
    from .._engine._task import Task

#: How many of the slowest tasks the summary lists, by verbosity.
SLOWEST_COUNT = {Verbosity.QUIET: 0, Verbosity.NORMAL: 5, Verbosity.VERBOSE: 10}
#: Failures shown in full; the rest are only counted.
MAX_FAILURES_SHOWN = 20
#: Skipped tasks listed with their reason (the first ones).
MAX_SKIPPED_SHOWN = 10
#: User frames shown per traceback (the innermost ones).
MAX_FRAMES = 12
#: How many causes (``raise ... from``) are followed.
MAX_CAUSES = 3

_RUNNING, _RETRYING, _FAILED, _SKIPPED = (
    Status.RUNNING,
    Status.RETRYING,
    Status.FAILED,
    Status.SKIPPED,
)
_COUNTED = (Status.SUCCEEDED, Status.FAILED, Status.SKIPPED, Status.CANCELLED, Status.REUSED)
_HEADLINE_WORDS = {
    Status.SUCCEEDED: "succeeded",
    Status.PARTIAL: "finished with failures",
    Status.FAILED: "failed",
    Status.CANCELLED: "was cancelled",
}
_HEADLINE_COLORS = {
    Status.SUCCEEDED: "32;1",
    Status.PARTIAL: "33;1",
    Status.FAILED: "31;1",
    Status.CANCELLED: "35;1",
}


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
        lines.append(f'  File "{_short(frame.filename)}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    return lines


def _short(filename: str) -> str:
    """``filename`` relative to the working directory when it is inside it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive, on Windows
        return filename
    return filename if relative.startswith(os.pardir) else relative


class SummaryListener:
    """An event listener that prints the run's summary when the run ends.

    :param stream: where to write; ``sys.stdout`` (as it is when the run starts) when None
    :param color: force color on or off; decided by :func:`flow2._console.wants_color`
        when None
    :param verbosity: quiet prints the headline and the failures only
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
        self.counts = dict.fromkeys(_COUNTED, 0)
        #: (path, error) of every failure: leaf tasks, and groups failing on their own.
        self.failures: list[tuple[tuple[str, ...], BaseException]] = []
        self._slowest_count = SLOWEST_COUNT[verbosity]
        # A min-heap of (duration, order, task): the root is the fastest kept.
        self._slowest: list[tuple[float, int, Task]] = []
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
            if task.stores_result:
                if status in self.counts:
                    self.counts[status] += 1
                duration = event.duration
                if duration is not None and self._slowest_count:
                    entry = (duration, next(self._order), task)
                    if len(self._slowest) < self._slowest_count:
                        heapq.heappush(self._slowest, entry)
                    elif duration > self._slowest[0][0]:
                        heapq.heapreplace(self._slowest, entry)
            if status is _SKIPPED and event.reason:
                self.skipped[event.path] = event.reason
            error = event.error
            if status is _FAILED and error is not None:
                # A group failing on its own (a timeout) is listed; a group
                # passing on a failure already listed is not.
                if id(error) not in self._listed and (task.stores_result or not event.failed_count):
                    self._listed.add(id(error))
                    self.failures.append((event.path, error))
        elif isinstance(event, RunEvent) and event.status.is_finished:
            self.stream.write(self.format(event))
            self.stream.flush()

    def _paint(self, color: str, text: str) -> str:
        return f"\033[{color}m{text}\033[0m" if self.color else text

    def format(self, event: RunEvent) -> str:
        """The summary's text for the run's end ``event``, newline-terminated."""
        root = event.run.root.name
        status = event.status
        # "reused" only in a resumed run (one that reused something).
        counts = ", ".join(
            f"{self.counts[counted]} {counted.value}"
            for counted in _COUNTED
            if counted is not Status.REUSED or self.counts[counted]
        )
        headline = (
            f"{root} {_HEADLINE_WORDS.get(status, status.value)} in {event.duration or 0:.2f}s"
        )
        lines = [f"{self._paint(_HEADLINE_COLORS.get(status, '1'), headline)}: {counts}"]
        if self._slowest:
            lines.append("Slowest:")
            for duration, _, task in sorted(self._slowest, key=lambda entry: -entry[0]):
                lines.append(f"  {duration:7.2f}s  {' › '.join(event.run.path_of(task))}")
        if self.verbosity is not Verbosity.QUIET:
            lines.extend(self._skipped_lines())
        for path, error in self.failures[:MAX_FAILURES_SHOWN]:
            lines.append(self._paint("31;1", f"Failed: {' › '.join(path)}"))
            lines.append(f"  {self._paint('31', describe_error(error))}")
            lines.extend(f"  {line}" for line in user_traceback(error))
        hidden = len(self.failures) - MAX_FAILURES_SHOWN
        if hidden > 0:
            lines.append(f"… and {hidden} more failures (all are in the flow2 log and events)")
        return "\n" + "\n".join(lines) + "\n"

    def _skipped_lines(self) -> list[str]:
        """Why tasks were skipped; a task skipped with its group's reason is not repeated."""
        shown = [
            (path, reason)
            for path, reason in self.skipped.items()
            if self.skipped.get(path[:-1]) != reason
        ]
        lines = [
            f"Skipped: {' › '.join(path)}: {reason}" for path, reason in shown[:MAX_SKIPPED_SHOWN]
        ]
        if len(shown) > MAX_SKIPPED_SHOWN:
            lines.append(f"… and {len(shown) - MAX_SKIPPED_SHOWN} more skipped")
        return lines
