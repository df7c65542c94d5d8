"""The live view: the running tree, redrawn a few times a second on a terminal.

::

    ⠹ Release 1/3 2.1s
    ├─ ✓ Prepare 2/2 0.3s
    ├─ ⠹ Build 12/40 1.8s
    │  ├─ ✗ Wheel 0.2s ValueError: no such file
    │  ├─ ⠹ Docs 1.1s  rendering page 31
    │  └─ … 11 done, 27 waiting
    └─ · Publish

A tree that fits on the screen is drawn whole. A larger one collapses: a
finished group is one line with its counts, and only running and failed
tasks stay expanded, so the view never outgrows the screen whatever the
size of the run. What tasks print, log or return appears above the tree.

The listener only records each event in a few dicts (O(1) per event); the
screen is redrawn on a timer of the event loop, at most
``1 / REFRESH_INTERVAL`` times a second, never once per event. Drawing on
the loop's own thread means the drawing never sees the engine's state half
changed, with no lock taken per event.

Needs rich (the ``live`` extra); this module is imported only when the live
view is used.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from .._engine._events import RunEvent, Status, TaskEvent
from ._console import describe_error, format_result, record_text
from ._settings import Verbosity

if TYPE_CHECKING:
    from .._engine._events import Event
    from .._engine._run import Run
    from .._engine._task import Task

#: Seconds between two redraws.
REFRESH_INTERVAL = 0.125
#: The spinner's frames; one per redraw.
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

#: Each finished or waiting status's mark and style.
MARKS = {
    Status.PENDING: ("·", "dim"),
    Status.RETRYING: ("↻", "bold yellow"),
    Status.SUCCEEDED: ("✓", "green"),
    Status.PARTIAL: ("!", "bold yellow"),
    Status.FAILED: ("✗", "bold red"),
    Status.SKIPPED: ("-", "dim"),
    Status.CANCELLED: ("⊘", "magenta"),
    Status.REUSED: ("↺", "cyan"),
}
_ACTIVE = (Status.RUNNING, Status.RETRYING)
# Module constants: _record runs for every event, and a class attribute
# lookup on an enum costs more than the rest of an identity test.
_RUNNING, _RETRYING = Status.RUNNING, Status.RETRYING
_FAILED, _SUCCEEDED = Status.FAILED, Status.SUCCEEDED
_EXPANDED = (Status.FAILED, Status.PARTIAL)
_NEVER_STARTED = (Status.SKIPPED, Status.CANCELLED)


def format_seconds(seconds: float) -> str:
    """``0.4s``, ``12.3s``, ``2m05s``, ``1h02m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class LiveView:
    """An event listener drawing the run as a live tree on a terminal.

    :param stream: the terminal; ``sys.stdout`` (as it is when the run starts) when None
    :param color: force color on or off; rich decides (terminal, ``NO_COLOR``,
        ``FORCE_COLOR``) when None
    :param verbosity: quiet erases the tree when the run ends and shows no results
    :param force_terminal: draw even when ``stream`` is not a terminal
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        color: bool | None = None,
        verbosity: Verbosity = Verbosity.NORMAL,
        force_terminal: bool = False,
    ) -> None:
        self.stream = stream
        self.color = color
        self.verbosity = verbosity
        self.force_terminal = force_terminal
        self.console: Console | None = None
        self._live: Live | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._root: Task | None = None
        self._run: Run | None = None
        self._whole = False  # the tree fits: draw every node
        self._frame: Group = Group()
        self._frame_count = 0
        # Per group: its running children, its failed children (dicts as
        # ordered sets), how many children finished, how many it has.
        self._active: dict[Task, dict[Task, None]] = {}
        self._failed: dict[Task, dict[Task, None]] = {}
        self._done: dict[Task, int] = {}
        self._totals: dict[Task, int] = {}
        self._durations: dict[Task, float] = {}
        self._errors: dict[Task, str] = {}
        self._messages: dict[Task, str] = {}
        self._above: list[Text] = []  # printed above the tree at the next redraw

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
        above = event.record.parent
        parent = above.task if above is not None else None
        if status is _RUNNING:
            if parent is not None:
                active = self._active.get(parent)
                if active is None:
                    active = self._active[parent] = {}
                active[task] = None
            return
        if status is _RETRYING:
            if event.error is not None:
                self._errors[task] = describe_error(event.error)
            return
        # Finished: SUCCEEDED, PARTIAL, FAILED, SKIPPED or CANCELLED.
        if event.duration is not None:
            self._durations[task] = event.duration
        self._messages.pop(task, None)
        if parent is not None:
            self._done[parent] = self._done.get(parent, 0) + 1
            active = self._active.get(parent)
            if active is not None:
                active.pop(task, None)
            if status in _EXPANDED:
                failed = self._failed.get(parent)
                if failed is None:
                    failed = self._failed[parent] = {}
                failed[task] = None
        if status is _FAILED and event.error is not None:
            if task.stores_result or not event.failed_count:
                self._errors[task] = describe_error(event.error)
        elif (
            status is _SUCCEEDED
            and event.result is not None
            and task.output
            and task.stores_result
            and self.verbosity is not Verbosity.QUIET
        ):
            self._above.append(
                Text.assemble((task.name, "bold"), "\n", format_result(event.result), no_wrap=True)
            )

    def show_record(self, record: logging.LogRecord) -> None:
        """Show a task's log record above the tree, and its last line next to the task."""
        name = getattr(record, "task", None) or "?"
        style = "cyan"
        if record.levelno >= logging.ERROR:
            style = "bold red"
        elif record.levelno >= logging.WARNING:
            style = "yellow"
        prefix = f"[{name}] "
        if record.levelno >= logging.WARNING:
            prefix += f"{record.levelname}: "
        text = record_text(record)
        self._above.append(
            Text("\n").join(Text.assemble((prefix, style), line) for line in text.splitlines())
        )
        task_record = getattr(record, "task_record", None)
        if task_record is not None and task_record.status in _ACTIVE:
            self._messages[task_record.task] = text.partition("\n")[0]

    # -- drawing -----------------------------------------------------------

    def _start(self, root: Task) -> None:
        self._root = root
        stream = self.stream if self.stream is not None else sys.stdout
        self.console = Console(
            file=stream,
            force_terminal=True if self.force_terminal else None,
            # None lets rich read NO_COLOR and FORCE_COLOR itself.
            no_color=None if self.color is None else not self.color,
            highlight=False,
        )
        self._whole = _fits(root, self._budget())
        self._frame = self._render()
        self._live = Live(
            console=self.console,
            auto_refresh=False,
            transient=self.verbosity is Verbosity.QUIET,
            get_renderable=lambda: self._frame,
        )
        self._live.start(refresh=True)
        self._timer = asyncio.get_running_loop().call_later(REFRESH_INTERVAL, self._tick)

    def _tick(self) -> None:
        self._redraw()
        self._timer = asyncio.get_running_loop().call_later(REFRESH_INTERVAL, self._tick)

    def _redraw(self) -> None:
        live = self._live
        if live is None:
            return
        self._frame_count += 1
        self._frame = self._render()
        if self._above:
            above, self._above = self._above, []
            # One print for everything gathered since the last redraw; the
            # live area is redrawn below it as part of the same write.
            live.console.print(Text("\n").join(above), soft_wrap=True)
        else:
            live.refresh()

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._live is None:
            return
        self._redraw()
        self._live.stop()
        self._live = None

    def _budget(self) -> int:
        assert self.console is not None
        return max(self.console.size.height - 2, 4)

    def _render(self) -> Group:
        assert self.console is not None and self._root is not None
        width = self.console.size.width
        budget = self._budget()
        lines: list[Text] = []
        # Iterative: trees may be thousands of levels deep.
        stack: list[tuple[Task | str, str, str]] = [(self._root, "", "")]
        while stack:
            if len(lines) >= budget:
                lines[-1] = Text("…", style="dim")
                break
            item, lead, child_lead = stack.pop()
            if isinstance(item, str):
                lines.append(Text.assemble((lead, "dim"), (item, "dim"), no_wrap=True))
                continue
            lines.append(self._line(item, lead, width))
            children = self._visible_children(item)
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
        return Group(*lines)

    def _visible_children(self, task: Task) -> list[Task | str]:
        if self._whole:
            return list(task.children)
        status = self._status_of(task)
        failed = self._failed.get(task)
        if status not in _ACTIVE and not failed:
            return []  # collapsed: the line carries the counts
        shown: list[Task | str] = [*(failed or ()), *self._active.get(task, ())]
        done = self._done.get(task, 0)
        hidden_done = done - len(failed or ())
        waiting = self._total(task) - done - len(self._active.get(task, ()))
        parts = []
        if hidden_done > 0:
            parts.append(f"{hidden_done} done")
        if waiting > 0 and status in _ACTIVE:
            parts.append(f"{waiting} waiting")
        if parts:
            shown.append("… " + ", ".join(parts))
        return shown

    def _total(self, task: Task) -> int:
        total = self._totals.get(task)
        if total is None:
            total = self._totals[task] = len(task.children)
        return total

    def _status_of(self, task: Task) -> Status:
        record = self._run.find_record(task) if self._run is not None else None
        return record.status if record is not None else Status.PENDING

    def _line(self, task: Task, lead: str, width: int) -> Text:
        record = self._run.find_record(task) if self._run is not None else None
        status = record.status if record is not None else Status.PENDING
        attempt = record.attempt if record is not None else 1
        if status is Status.RUNNING:
            mark, style = SPINNER[self._frame_count % len(SPINNER)], "yellow"
        else:
            mark, style = MARKS[status]
        details = []
        total = self._total(task)
        # A group that never started shows no progress: its children were
        # counted off, not done.
        if total and (status not in _NEVER_STARTED or task in self._durations):
            details.append(f"{self._done.get(task, 0)}/{total}")
            failures = (record.failed_count if record is not None else 0) or len(
                self._failed.get(task, ())
            )
            if failures:
                details.append(f"{failures} failed")
        if status is Status.RETRYING:
            details.append(f"retry {attempt + 1}/{task.retries + 1}")
        elif attempt > 1:
            details.append(f"attempt {attempt}/{task.retries + 1}")
        if status in _ACTIVE:
            details.append(format_seconds(record.elapsed if record is not None else 0.0))
        elif task in self._durations:
            details.append(format_seconds(self._durations[task]))
        detail = " " + " ".join(details) if details else ""
        note = ""
        if status is Status.FAILED or status is Status.RETRYING:
            note = self._errors.get(task, "")
        elif status is Status.RUNNING:
            note = self._messages.get(task, "")
        # Long names are cut, not wrapped: every node stays one line.
        room = width - len(lead) - 2 - len(detail)
        name = task.name
        if len(name) > room:
            name = name[: max(room - 1, 1)] + "…"
        line = Text.assemble(
            (lead, "dim"),
            (mark, style),
            " ",
            (name, "bold" if status in _ACTIVE else ""),
            (detail, "dim"),
            no_wrap=True,
            overflow="ellipsis",
        )
        if note:
            line.append("  " + note, style="red" if status is Status.FAILED else "dim")
        line.truncate(width, overflow="ellipsis")
        return line


def _fits(root: Task, budget: int) -> bool:
    """True when the whole tree has at most ``budget`` tasks (stops counting past it)."""
    count = 0
    stack = [root]
    while stack:
        count += 1
        if count > budget:
            return False
        stack.extend(stack.pop().children)
    return True
