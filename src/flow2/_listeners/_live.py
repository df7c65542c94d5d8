"""The live view: the running tree, redrawn a few times a second on a terminal.

::

    ⠹ Release 1/3 2.1s  12/40 tasks, ETA 6s
    ├─ ✓ Prepare 2/2 0.3s
    ├─ ⠹ Build 12/40 1 failed 1.8s
    │  ├─ ✗ Wheel 0.2s  ValueError: no such file
    │  ├─ ⠹ Docs 1.1s  rendering page 31
    │  └─ … 11 done, 27 waiting
    └─ · Publish

A tree that fits on the screen is drawn whole. A larger one collapses: a
finished group is one line with its counts, and only running and failed
tasks stay expanded; what still does not fit is counted ("… 13 more
running"). The layout is chosen again at every redraw from the terminal's
current size. What tasks print, log or return appears above the tree, each
line prefixed with its task.

Three things are kept apart so that output never slows the work:

- the listener only records each event and each line in a few dicts and
  lists (O(1) per event, a list append per chunk of output);
- a timer of the event loop, every :data:`REFRESH_INTERVAL`, renders the
  frame from that state (on the loop's thread: it never sees the state half
  changed) — always, however much is being printed;
- a thread of its own writes the lines and the frame to the terminal, all
  the lines waiting in one write. A terminal slower than the output only
  makes frames be skipped; every line is written, however many come at
  once. Only a terminal that takes nothing for a long time (stopped with
  Ctrl-S, say) while :data:`MAX_PENDING_CHARACTERS` pile up makes lines be
  left out, and then the screen says how many and in which log files they
  are. The tasks, their durations and the log files never wait for it.

Lines are printed whole: a line longer than the screen is wrapped by the
terminal, never cut.

Needs rich (the ``live`` extra) for the widths of characters in terminal
cells; this module is imported only when the live view is used.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from rich.cells import cell_len, set_cell_size

from .._engine._events import RunEvent, Status, TaskEvent
from ._settings import Verbosity
from ._text import (
    MARKS,
    cleanup_note,
    error_headline,
    format_minutes,
    format_result,
    record_text,
    visible,
    wants_color,
)

if TYPE_CHECKING:
    from .._engine._events import Event
    from .._engine._run import Run
    from .._engine._state import TaskRun
    from .._engine._task import Task
    from ._output import TaskOutput
    from ._secrets import SecretMasker

#: Seconds between two redraws.
REFRESH_INTERVAL = 0.125
#: The spinner's frames; one per redraw.
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
#: Characters of lines waiting for a terminal that takes nothing, beyond which
#: the oldest are left out (said so on the screen). A terminal that reads at
#: all keeps up with any burst: each write hands it every line waiting.
MAX_PENDING_CHARACTERS = 64 * 1024 * 1024

#: The color (an SGR code) of each finished or waiting status's mark.
MARK_COLORS = {
    Status.PENDING: "2",
    Status.RETRYING: "1;33",
    Status.SUCCEEDED: "32",
    Status.REUSED: "36",
    Status.CACHED: "36",
    Status.PARTIAL: "1;33",
    Status.FAILED: "1;31",
    Status.SKIPPED: "2",
    Status.CANCELLED: "35",
}
_ACTIVE = (Status.RUNNING, Status.RETRYING)
# Module constants: _record runs for every event, and a class attribute
# lookup on an enum costs more than the rest of an identity test.
_RUNNING, _RETRYING, _PENDING = Status.RUNNING, Status.RETRYING, Status.PENDING
_FAILED, _SUCCEEDED, _PARTIAL = Status.FAILED, Status.SUCCEEDED, Status.PARTIAL
_SKIPPED, _CANCELLED = Status.SKIPPED, Status.CANCELLED
_RAN = frozenset({Status.SUCCEEDED, Status.PARTIAL, Status.FAILED, Status.REUSED, Status.CACHED})
# Escape sequences other than colors would move the cursor inside the frame.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-ln-z]|\x1b(?!\[)|[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]")
_COLORS = re.compile(r"\x1b\[[0-9;]*m")


def format_seconds(seconds: float) -> str:
    """``0.4s``, ``12.3s``, ``2m05s``, ``1h02m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    return format_minutes(seconds)


def cut(text: str, cells: int) -> str:
    """``text`` cut to ``cells`` terminal cells, ending with ``…`` when cut."""
    if cells <= 0:
        return ""
    if text.isascii():
        return text if len(text) <= cells else text[: cells - 1] + "…"
    if cell_len(text) <= cells:
        return text
    return set_cell_size(text, cells - 1).rstrip() + "…"


def one_line(text: str) -> str:
    """The first line of ``text`` (``…`` when there are more), without control characters."""
    first, newline, rest = text.strip("\n").partition("\n")
    first = first.rstrip("\r").rpartition("\r")[2]
    if _CONTROL.search(first):
        first = _CONTROL.sub("", first.replace("\t", " "))
    return first + " …" if newline and rest.strip() else first


class _Counts:
    """What happened to a group's direct children."""

    __slots__ = ("cancelled", "ran", "skipped")

    def __init__(self) -> None:
        self.ran = 0
        self.skipped = 0
        self.cancelled = 0


class LiveView:
    """An event listener drawing the run as a live tree on a terminal.

    :param stream: the terminal; ``sys.stdout`` (as it is when the view is made) when None
    :param color: force color on or off; decided from the stream, ``NO_COLOR``,
        ``FORCE_COLOR`` and ``TERM=dumb`` when None
    :param verbosity: quiet erases the tree when the run ends and shows no results
    :param force_terminal: draw even when ``stream`` is not a terminal (80×25 then)
    :param masker: masks secrets in everything drawn
    :param output: the run's output listener, which names tasks in prefixes
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        color: bool | None = None,
        verbosity: Verbosity = Verbosity.NORMAL,
        force_terminal: bool = False,
        masker: SecretMasker | None = None,
        output: TaskOutput | None = None,
    ) -> None:
        self.stream: TextIO = stream if stream is not None else sys.stdout
        self.color = wants_color(self.stream) if color is None else color
        self.verbosity = verbosity
        self.force_terminal = force_terminal
        self.masker = masker
        self.output = output
        self._writer: _ScreenWriter | None = None
        self._previous_ctrl_z: Any = None  # the SIGTSTP handler before the view took it
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._root: Task | None = None
        self._run: Run | None = None
        self._started_at = 0.0
        self._frame_count = 0
        self._stopping = False
        # What the view knows, all from events.
        self._status: dict[Task, Status] = {}
        self._started: dict[Task, float] = {}
        self._attempts: dict[Task, int] = {}
        self._durations: dict[Task, float] = {}
        self._errors: dict[Task, str] = {}
        self._messages: dict[Task, str] = {}
        self._partials: dict[Task, str] = {}  # an unfinished line (a progress bar)
        self._failed_inside: dict[Task, int] = {}
        self._counts: dict[Task, _Counts] = {}
        # Per group: its running children and its failed ones (dicts as ordered sets).
        self._active: dict[Task, dict[Task, None]] = {}
        self._failed: dict[Task, dict[Task, None]] = {}
        self._parents: dict[Task, Task] = {}
        self._extra_children: dict[Task, list[Task]] = {}
        #: " (finally)" or " (on failure)" for each cleanup task of the tree.
        self._cleanup_notes: dict[Task, str] = {}
        self._leaves_total = 0
        self._leaves_done = 0
        self._leaf_counts = _Counts()
        self._leaves_failed = 0
        self._running_leaves: dict[Task, None] = {}
        self._above: list[_Lines] = []  # printed above the tree at the next redraw

    # -- events ----------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if type(event) is TaskEvent:
            try:
                self._record(event)
            except Exception:
                # The run drops a listener that fails: it would never see
                # the run's end, and its timer would redraw on and on.
                self._stop()
                raise
        elif isinstance(event, RunEvent):
            if event.status is Status.RUNNING:
                self._run = event.run
                self._start(event.run.root)
            else:
                self._stop()

    def _record(self, event: TaskEvent) -> None:
        task = event.task
        status = event.status
        self._status[task] = status
        parent = self._parents.get(task)
        if parent is None and task is not self._root:
            parent = self._adopt(event)
        if status is _RUNNING:
            self._started[task] = event.time
            if event.attempt > 1:
                self._attempts[task] = event.attempt
            if parent is not None:
                active = self._active.get(parent)
                if active is None:
                    active = self._active[parent] = {}
                active[task] = None
            if task.stores_result:
                self._running_leaves[task] = None
            return
        if status is _RETRYING:
            self._attempts[task] = event.attempt
            if event.error is not None:
                self._errors[task] = self._mask(error_headline(event.error))
            return
        # Finished: SUCCEEDED, PARTIAL, FAILED, SKIPPED, CANCELLED, REUSED or CACHED.
        if event.attempt > 1:
            self._attempts[task] = event.attempt
        if event.duration is not None:
            self._durations[task] = event.duration
        self._messages.pop(task, None)
        self._partials.pop(task, None)
        if task.stores_result:
            self._leaves_done += 1
            self._running_leaves.pop(task, None)
            if status is _SKIPPED:
                self._leaf_counts.skipped += 1
            elif status is _CANCELLED:
                self._leaf_counts.cancelled += 1
            elif status is _FAILED:
                self._leaves_failed += 1
        if event.failed_count:
            self._failed_inside[task] = event.failed_count
        if parent is not None:
            counts = self._counts.get(parent)
            if counts is None:
                counts = self._counts[parent] = _Counts()
            if status is _SKIPPED:
                counts.skipped += 1
            elif status is _CANCELLED:
                counts.cancelled += 1
            else:
                counts.ran += 1
            active = self._active.get(parent)
            if active is not None:
                active.pop(task, None)
            if status is _FAILED or status is _PARTIAL:
                failed = self._failed.get(parent)
                if failed is None:
                    failed = self._failed[parent] = {}
                failed[task] = None
        if status is _FAILED and event.error is not None:
            if task.stores_result or not event.failed_count:
                self._errors[task] = self._mask(error_headline(event.error))
        elif (
            status is _SUCCEEDED
            and event.result is not None
            and task.output
            and task.stores_result
            and self.verbosity is not Verbosity.QUIET
        ):
            name = self._paint("1", self._mask(visible(task.name)))
            result = self._mask(format_result(event.result))
            self._add_above(f"{name}\n{result}\n", 2 + result.count("\n"), None)

    def _adopt(self, event: TaskEvent) -> Task | None:
        """The parent of a task made on the fly, from its record; the task joins the tree."""
        above: TaskRun | None = getattr(event.record, "parent", None)
        parent = above.task if above is not None else None
        if parent is None:
            return None
        task = event.task
        self._parents[task] = parent
        self._extra_children.setdefault(parent, []).append(task)
        if task.stores_result:
            self._leaves_total += 1
        return parent

    def _mask(self, text: str) -> str:
        return self.masker.mask(text) if self.masker is not None else text

    def _paint(self, color: str, text: str) -> str:
        return f"\033[{color}m{text}\033[0m" if self.color and color else text

    # -- what tasks print and log -----------------------------------------------

    def show_output(self, label: str | None, lines: list[str], record: TaskRun | None) -> None:
        """Show complete lines a task printed, above the tree (see ``_output``).

        Quiet runs do not show them: a failed task's last lines are in the summary.
        """
        if self.verbosity is Verbosity.QUIET:
            return
        prefix = self._paint("36", f"[{self._mask(label)}] ") if label else ""
        text = "".join([f"{prefix}{line}\n" for line in lines])
        # A tool's colors pass (when colors are on); cursor movements and the
        # like would break the tree, so they go. (The prefix has colors only.)
        if _CONTROL.search(text):
            text = _CONTROL.sub("", text)
        if not self.color and "\x1b" in text:
            text = _COLORS.sub("", text)
        self._add_above(text, len(lines), record)
        if record is not None and lines and self._status.get(record.task) is _RUNNING:
            self._messages[record.task] = one_line(_COLORS.sub("", lines[-1]))

    def show_partial(self, record: TaskRun | None, text: str) -> None:
        """Show a task's unfinished line (a progress bar) next to it in the tree."""
        if record is None:
            return
        if text:
            self._partials[record.task] = one_line(text)
        else:
            self._partials.pop(record.task, None)

    def show_record(self, record: logging.LogRecord) -> None:
        """Show a task's log record above the tree, and its last line next to the task."""
        task_record = getattr(record, "task_record", None)
        if task_record is not None and self.output is not None:
            name = self.output.label_of(task_record)
        else:
            name = getattr(record, "task", None) or "?"
        color = "36"
        if record.levelno >= logging.ERROR:
            color = "1;31"
        elif record.levelno >= logging.WARNING:
            color = "33"
        prefix = f"[{name}] "
        if record.levelno >= logging.WARNING:
            prefix += f"{record.levelname}: "
        prefix = self._paint(color, self._mask(prefix))
        text = self._mask(record_text(record))
        lines = text.splitlines() or [""]
        self._add_above("".join(f"{prefix}{line}\n" for line in lines), len(lines), task_record)
        if task_record is not None and self._status.get(task_record.task) in _ACTIVE:
            self._messages[task_record.task] = one_line(text)

    def _add_above(self, text: str, count: int, record: TaskRun | None) -> None:
        """Queue ``count`` lines (``text``) for above the tree; ``record``: whose they are."""
        log = None
        if record is not None and self.output is not None:
            path = self.output.log_file_of(record)
            log = str(path) if path is not None else None
        self._above.append(_Lines(text, count, log))

    def show_stopping(self) -> None:
        """Say that the run is stopping (the first Ctrl-C); callable from a signal handler."""
        self._stopping = True
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._redraw)
            except RuntimeError:  # the loop closed meanwhile
                pass

    # -- drawing ---------------------------------------------------------------

    def _start(self, root: Task) -> None:
        self._root = root
        self._started_at = time.time()
        # The structure, once: parents and the number of leaves.
        parents = self._parents
        leaves = 0
        stack = [root]
        while stack:
            task = stack.pop()
            children = task.children
            if children:
                for child in children:
                    parents[child] = task
                    role = task.cleanup_role_of(child)
                    if role is not None:
                        self._cleanup_notes[child] = cleanup_note(role)
                stack.extend(children)
            elif task.stores_result:
                leaves += 1
        self._leaves_total = leaves
        self._loop = asyncio.get_running_loop()
        self._writer = _ScreenWriter(self.stream)
        self._take_ctrl_z()
        self._redraw()
        self._timer = self._loop.call_later(REFRESH_INTERVAL, self._tick)

    def _tick(self) -> None:
        self._redraw()
        self._timer = asyncio.get_running_loop().call_later(REFRESH_INTERVAL, self._tick)

    def _redraw(self) -> None:
        writer = self._writer
        if writer is None:
            return
        self._frame_count += 1
        width, height = self._size()
        above, self._above = self._above, []
        writer.submit(above, self._render(width, height))

    def _take_ctrl_z(self) -> None:
        """Take SIGTSTP (Ctrl-Z) while drawing: in the main thread, unless somebody has."""
        number = getattr(signal, "SIGTSTP", None)
        if number is None or threading.current_thread() is not threading.main_thread():
            return
        try:
            if signal.getsignal(number) is not signal.SIG_DFL:
                return  # ignored, or the application's: left alone
            self._previous_ctrl_z = signal.signal(number, self._on_ctrl_z)
        except (ValueError, OSError):  # pragma: no cover - no signals here
            pass

    def _give_back_ctrl_z(self) -> None:
        if self._previous_ctrl_z is None:
            return
        number = signal.SIGTSTP
        if signal.getsignal(number) == self._on_ctrl_z:
            signal.signal(number, self._previous_ctrl_z)
        self._previous_ctrl_z = None

    def _on_ctrl_z(self, number: int, frame: Any) -> None:
        # In the main thread, between two bytecodes: the terminal is given
        # back here, not on the loop, so Ctrl-Z works even while a task
        # blocks the loop. The writer thread erases the tree and shows the
        # cursor; then the default action stops the process, right here,
        # and ``fg`` (SIGCONT) resumes it on the next line, where the view
        # takes Ctrl-Z again and draws the tree anew.
        # See test_ctrl_z_restores_the_terminal_and_fg_redraws_the_tree.
        writer = self._writer
        if writer is not None:
            writer.suspend()
        signal.signal(number, signal.SIG_DFL)
        signal.raise_signal(number)
        if self._writer is not None and self._previous_ctrl_z is not None:
            signal.signal(number, self._on_ctrl_z)
            loop = self._loop
            if loop is not None:
                try:
                    loop.call_soon_threadsafe(self._redraw)
                except RuntimeError:  # the loop closed meanwhile
                    pass

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        writer = self._writer
        if writer is None:
            return
        self._give_back_ctrl_z()
        self._stopping = False
        self._redraw()
        self._writer = None
        writer.close(keep_frame=self.verbosity is not Verbosity.QUIET)

    def _size(self) -> tuple[int, int]:
        try:
            size = os.get_terminal_size(self.stream.fileno())
            return max(size.columns, 20), max(size.lines, 5)
        except (AttributeError, ValueError, OSError):  # not a terminal (io.UnsupportedOperation)
            return 80, 25

    def _budget(self, height: int) -> int:
        return max(height - 2, 4)

    def plain_lines(self, width: int = 80, height: int = 25) -> list[str]:
        """The tree as it would be drawn now on a terminal of that size, without colors."""
        color, self.color = self.color, False
        try:
            return self._render(width, height)
        finally:
            self.color = color

    def _render(self, width: int, height: int) -> list[str]:
        root = self._root
        assert root is not None
        budget = self._budget(height) - (2 if self._stopping else 0)
        whole = self._fits(root, budget)
        lines: list[str] = []
        running_shown: set[Task] = set()
        hidden = False
        # Iterative: trees may be thousands of levels deep.
        stack: list[tuple[Task | str, str, str]] = [(root, "", "")]
        while stack:
            # A whole tree fits by construction; a collapsed one keeps its last
            # line for what did not fit.
            if not whole and len(lines) >= budget - 1:
                hidden = True
                break
            item, lead, child_lead = stack.pop()
            if isinstance(item, str):
                lines.append(self._paint("2", cut(lead + item, width - 1)))
                continue
            if item in self._running_leaves:
                running_shown.add(item)
            lines.append(self._line(item, lead, width))
            children = self._children_of(item) if whole else self._visible_children(item)
            last = len(children) - 1
            for index in range(last, -1, -1):
                is_last = index == last
                stack.append(
                    (
                        children[index],
                        child_lead + ("└─ " if is_last else "├─ "),
                        child_lead + ("   " if is_last else "│  "),
                    )
                )
        if hidden:
            more = len(self._running_leaves) - len(running_shown)
            lines.append(self._paint("2", f"… {more} more running" if more > 0 else "…"))
        if self._stopping:
            lines += self._stopping_lines(width)
        return lines

    def _stopping_lines(self, width: int) -> list[str]:
        waiting = list(self._running_leaves)
        names = ", ".join(self._mask(visible(task.name)) for task in waiting[:5])
        if len(waiting) > 5:
            names += f" and {len(waiting) - 5} more"
        text = (
            f"Stopping (Ctrl-C): waiting for {len(waiting)} "
            f"task{'' if len(waiting) == 1 else 's'} to stop" + (f": {names}" if names else "")
        )
        again = "Press Ctrl-C again to kill them now."
        return [self._paint("1;35", cut(text, width - 1)), self._paint("35", cut(again, width - 1))]

    def _children_of(self, task: Task) -> list[Task | str]:
        extra = self._extra_children.get(task)
        return [*task.children, *extra] if extra else list(task.children)

    def _fits(self, root: Task, budget: int) -> bool:
        """True when the whole tree has at most ``budget`` tasks (stops counting past it)."""
        count = 0
        stack = [root]
        extra = self._extra_children
        while stack:
            count += 1
            if count > budget:
                return False
            task = stack.pop()
            stack.extend(task.children)
            if task in extra:
                stack.extend(extra[task])
        return True

    def _visible_children(self, task: Task) -> list[Task | str]:
        status = self._status.get(task, _PENDING)
        failed = self._failed.get(task)
        active = self._active.get(task)
        if status not in _ACTIVE and not failed:
            return []  # collapsed: the line carries the counts
        shown: list[Task | str] = [*(failed or ()), *(active or ())]
        counts = self._counts.get(task) or _Counts()
        succeeded = counts.ran - len(failed or ())
        waiting = self._total(task) - counts.ran - counts.skipped - counts.cancelled
        waiting -= len(active or ())
        parts = []
        if succeeded > 0:
            parts.append(f"{succeeded} done")
        if counts.skipped:
            parts.append(f"{counts.skipped} skipped")
        if counts.cancelled:
            parts.append(f"{counts.cancelled} cancelled")
        if waiting > 0 and status in _ACTIVE:
            parts.append(f"{waiting} waiting")
        if parts:
            shown.append("… " + ", ".join(parts))
        return shown

    def _total(self, task: Task) -> int:
        extra = self._extra_children.get(task)
        return len(task.children) + (len(extra) if extra else 0)

    def _line(self, task: Task, lead: str, width: int) -> str:
        status = self._status.get(task, _PENDING)
        attempt = self._attempts.get(task, 1)
        if status is _RUNNING:
            mark, color = SPINNER[self._frame_count % len(SPINNER)], "33"
        else:
            mark, color = MARKS[status], MARK_COLORS[status]
        details = []
        total = self._total(task)
        counts = self._counts.get(task)
        if task is self._root and total:
            details.append(self._progress())
        elif total and (status not in (_SKIPPED, _CANCELLED) or counts is not None):
            counts = counts or _Counts()
            details.append(f"{counts.ran}/{total}")
            failures = self._failed_inside.get(task) or len(self._failed.get(task, ()))
            if failures:
                details.append(f"{failures} failed")
            if counts.skipped:
                details.append(f"{counts.skipped} skipped")
            if counts.cancelled:
                details.append(f"{counts.cancelled} cancelled")
        if status is _RETRYING:
            details.append(f"retry {attempt + 1}/{task.retries + 1}")
        elif attempt > 1:
            details.append(f"attempt {attempt}/{task.retries + 1}")
        if status in _ACTIVE:
            details.append(format_seconds(max(time.time() - self._started.get(task, 0.0), 0.0)))
        elif task in self._durations:
            details.append(format_seconds(self._durations[task]))
        if task is self._root and status in _ACTIVE:
            eta = self._eta()
            if eta:
                details.append(eta)
        detail = " " + " ".join(details) if details else ""
        note = ""
        if status is _FAILED or status is _RETRYING:
            note = self._errors.get(task, "")
        elif status is _RUNNING:
            note = self._mask(self._partials.get(task) or self._messages.get(task, ""))
        # Long names are cut, not wrapped: every node stays one line, and its
        # times stay visible. Widths are in terminal cells (CJK, emoji).
        room = width - 1 - cell_len(lead) - 2 - cell_len(detail)
        name = cut(self._mask(visible(task.name)) + self._cleanup_notes.get(task, ""), max(room, 1))
        used = cell_len(lead) + 2 + cell_len(name) + cell_len(detail)
        line = (
            self._paint("2", lead)
            + self._paint(color, mark)
            + " "
            + (self._paint("1", name) if status in _ACTIVE else name)
            + self._paint("2", detail)
        )
        room = width - 1 - used - 2
        if note and room > 1:
            line += self._paint("31" if status is _FAILED else "2", "  " + cut(note, room))
        return line

    def _progress(self) -> str:
        """The root's counts, of leaf tasks: finished of all, failed, skipped, cancelled."""
        text = f"{self._leaves_done}/{self._leaves_total} tasks"
        counts = self._leaf_counts
        for count, word in (
            (self._leaves_failed, "failed"),
            (counts.skipped, "skipped"),
            (counts.cancelled, "cancelled"),
        ):
            if count:
                text += f" {count} {word}"
        return text

    def _eta(self) -> str:
        """``ETA 2m05s`` once the pace of finished tasks tells; empty before."""
        done, total = self._leaves_done, self._leaves_total
        elapsed = time.time() - self._started_at
        if not 0 < done < total or elapsed < 1.0:
            return ""
        return f"ETA {format_seconds(elapsed / done * (total - done))}"


class _Lines(NamedTuple):
    """Lines waiting to be printed above the tree: their text, how many, their log file."""

    text: str
    lines: int
    log: str | None


class _ScreenWriter:
    """Writes lines and frames to the terminal on a thread of its own.

    The loop's thread hands over what to draw (:meth:`submit`) and goes on;
    a newer frame replaces one not yet drawn, so a slow terminal gets fewer
    frames, never a queue of them. Every line waiting goes out in the next
    write, so a burst of any size reaches the terminal whole.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._condition = threading.Condition()
        self._above: list[_Lines] = []
        self._pending = 0  # characters in _above
        self._dropped: dict[str | None, int] = {}  # lines left out, by log file
        self._frame: list[str] | None = None
        self._closing = False
        self._keep = True
        self._drawn = 0  # rows of the frame on the screen; the cursor is on its last
        self._suspending = False  # Ctrl-Z: give the terminal back, then wait
        self._hidden = True  # the cursor is hidden
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="flow2-live-view", daemon=True)
        self._write("\x1b[?25l")  # hide the cursor while drawing
        self._thread.start()

    def submit(self, above: list[_Lines], frame: list[str]) -> None:
        with self._condition:
            if above:
                self._above.extend(above)
                self._pending += sum(len(lines.text) for lines in above)
                if self._pending > MAX_PENDING_CHARACTERS:
                    self._drop()
            self._frame = frame
            self._condition.notify()

    def _drop(self) -> None:
        """Leave out the oldest lines waiting: the terminal has taken nothing for long.

        Only reached when :data:`MAX_PENDING_CHARACTERS` wait, which no
        terminal that reads does (see
        test_a_burst_of_100000_lines_reaches_the_terminal_whole); counted
        by log file, for the line that says so.
        """
        keep = MAX_PENDING_CHARACTERS // 2
        above = self._above
        index = 0
        while self._pending > keep and index < len(above):
            waiting = above[index]
            self._pending -= len(waiting.text)
            self._dropped[waiting.log] = self._dropped.get(waiting.log, 0) + waiting.lines
            index += 1
        del above[:index]

    def suspend(self) -> None:
        """Erase the frame and show the cursor, and return once that is written.

        The next frame hides the cursor again and is drawn anew.
        """
        with self._condition:
            if self._closing or not self._thread.is_alive():
                return
            self._suspending = True
            self._condition.notify()
            # Bounded: a terminal that does not read must not stop Ctrl-Z.
            self._condition.wait_for(lambda: not self._suspending, timeout=1.0)

    def close(self, *, keep_frame: bool) -> None:
        with self._condition:
            self._closing = True
            self._keep = keep_frame
            self._condition.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._condition:
                while (
                    self._frame is None
                    and not self._above
                    and not self._closing
                    and not self._suspending
                ):
                    self._condition.wait()
                above, self._above, self._pending = self._above, [], 0
                frame, self._frame = self._frame, None
                dropped, self._dropped = self._dropped, {}
                closing, keep = self._closing, self._keep
                suspending = self._suspending and not closing
            if suspending:
                self._draw(above, None, dropped, False, False, suspending=True)
                with self._condition:
                    self._suspending = False
                    self._condition.notify_all()
                continue
            self._draw(above, frame, dropped, closing, keep)
            if closing:
                return

    def _draw(
        self,
        above: list[_Lines],
        frame: list[str] | None,
        dropped: dict[str | None, int],
        closing: bool,
        keep: bool,
        *,
        suspending: bool = False,
    ) -> None:
        parts = []
        if self._drawn and (above or frame is not None or closing or suspending):
            # Back to the first row of the frame on the screen, and clear from there.
            up = self._drawn - 1
            parts.append("\r" + (f"\x1b[{up}A" if up else "") + "\x1b[J")
            self._drawn = 0
        if dropped:
            parts.append(dropped_line(dropped))
        parts.extend(lines.text for lines in above)
        if closing or suspending:
            if closing and keep and frame:
                parts.append("\n".join(frame) + "\n")
            parts.append("\x1b[?25h")  # the cursor back
            self._hidden = False
        elif frame:
            if not self._hidden:  # back from Ctrl-Z
                parts.append("\x1b[?25l")
                self._hidden = True
            parts.append("\n".join(frame))
            self._drawn = len(frame)
        self._write("".join(parts))

    def _write(self, text: str) -> None:
        if self._failed or not text:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            # The terminal went away (closed, hung up): nothing more to draw.
            self._failed = True


def dropped_line(dropped: dict[str | None, int]) -> str:
    """The line saying how many lines were left out of the screen, and where they are."""
    total = sum(dropped.values())
    text = (
        f"… {total:,} line{'' if total == 1 else 's'} not shown: the terminal took nothing "
        f"while {MAX_PENDING_CHARACTERS // (1024 * 1024)} MiB of output waited"
    )
    places = [f"{log} ({count:,})" for log, count in dropped.items() if log is not None]
    if places:
        text += f"; they are in {', '.join(places)}"
    unlogged = dropped.get(None, 0)
    if unlogged:
        text += f"; {unlogged:,} of them are in no log file"
    return text + "\n"
