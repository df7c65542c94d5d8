"""The runner: run settings, the listeners they choose, and the way into the engine.

:class:`Runner` reads its options (falling back to ``FLOW2_*`` environment
variables), builds the listeners they ask for (console lines or the live
view, the summary, logging, the event file, the user's own) and hands the
tree to the engine, which checks it, runs it and closes everything.
``task.run()`` on a root uses a default :class:`Runner`.

With ``handle_signals=True`` (what ``flow2 run`` uses) a run also takes
SIGINT, SIGTERM and SIGHUP for as long as it runs: the first cancels the
tree, so every task is reported, the summary printed and the event file
closed; shell commands and worker processes get SIGTERM, and whatever still
runs after the grace period gets SIGKILL, at once on a second signal. The
run then raises :class:`Interrupted`, exit code 128 + the signal's number.
Without it flow2 installs no handler: a library must not take an
application's signals.
"""

from __future__ import annotations

import asyncio
import enum
import importlib.util
import math
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

from ._engine._children import kill_children, terminate_children
from ._engine._exceptions import ConfigurationError
from ._engine._run import execute, set_default_runner
from ._listeners._settings import Display, Verbosity

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

    from ._engine._events import EventListener
    from ._engine._task import Context, Task
    from ._listeners._event_file import EventTarget


def _from_environment(
    variable: str, enum_type: type[enum.Enum], value: Any, default: Any = None
) -> Any:
    """``value`` as ``enum_type``, else the environment variable's, else ``default``.

    ``default`` is the enum's first member when None.
    """
    source = "argument"
    if value is None:
        if default is None:
            default = next(iter(enum_type))
        value = os.environ.get(variable) or default.value
        source = f"environment variable {variable}"
    try:
        return enum_type(value.lower() if isinstance(value, str) else value)
    except ValueError:
        accepted = ", ".join(member.value for member in enum_type)
        raise ConfigurationError(
            f"{source} {variable.removeprefix('FLOW2_').lower()}={value!r} is not one of: "
            f"{accepted}"
        ) from None


def _max_threads_from_environment(value: int | None) -> int | None:
    if value is None:
        raw = os.environ.get("FLOW2_MAX_THREADS")
        if not raw:
            return None
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 1:
            raise ConfigurationError(
                f"environment variable FLOW2_MAX_THREADS={raw!r} is not a whole number >= 1"
            )
    elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"max_threads={value!r} is not a whole number >= 1")
    return value


#: Seconds between SIGTERM and SIGKILL when a run is interrupted, by default (as ``docker stop``).
DEFAULT_GRACE = 5.0

#: The signals ``handle_signals=True`` takes during a run (SIGHUP: the terminal closed).
HANDLED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(SystemExit):
    """A signal interrupted a run of ``Runner(handle_signals=True)``; raised once it ended.

    A :class:`SystemExit`: a script that does not catch it exits, without a
    traceback, with the code a shell reports for that signal.

    :ivar signal: the signal (:class:`signal.Signals`)
    :ivar code: 128 + the signal's number: 130 for SIGINT (Ctrl-C), 143 for
        SIGTERM, 129 for SIGHUP
    """

    def __init__(self, signal_number: int) -> None:
        super().__init__(128 + signal_number)
        self.signal = signal.Signals(signal_number)

    def __str__(self) -> str:
        return f"interrupted by {self.signal.name}"


def _grace_from_environment(value: float | None) -> float:
    source = f"grace={value!r}"
    if value is None:
        raw = os.environ.get("FLOW2_GRACE")
        if not raw:
            return DEFAULT_GRACE
        source = f"environment variable FLOW2_GRACE={raw!r}"
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigurationError(f"{source} is not a number of seconds >= 0, e.g. 5")
    return float(value)


class _SignalHandling:
    """The signal handlers of one run: cancel it, then kill what outlives the grace period."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.signal: int | None = None
        self.killed: list[str] = []  # what still ran when the grace period ended
        self._count = 0
        self._previous: dict[int, Any] = {}
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._installed = False

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise ConfigurationError(
                "handle_signals=True needs the main thread (Python delivers signals there); "
                "run the runner in the main thread, or leave handle_signals off"
            )
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._installed = True
        for number in HANDLED_SIGNALS:
            # An ignored signal stays ignored: ``nohup flow2 run …`` must
            # survive the terminal closing, as any program started so would.
            if signal.getsignal(number) is signal.SIG_IGN:
                continue
            self._previous[number] = signal.signal(number, self._on_signal)

    def uninstall(self) -> None:
        self._installed = False
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous.clear()
        if self._deadline is not None:
            self._deadline.cancel()

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        # A Python-level handler runs in the main thread between bytecodes:
        # hand the work to the loop, which may be waiting in select().
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._interrupt, number)

    def _interrupt(self, number: int) -> None:
        if not self._installed:
            return  # arrived as the run ended: the caller's code is not ours to cancel
        self._count += 1
        assert self._task is not None and self._loop is not None
        if self._count == 1:
            self.signal = number
            # Cancelling the run reports every task and stops every command
            # (SIGTERM to its group); processes get SIGTERM here too, so one
            # a task does not own (an executor's worker) stops as well. See
            # test_sigterm_stops_the_run_and_every_process_it_started.
            self._task.cancel()
            terminate_children()
            self._deadline = self._loop.call_later(self.grace, self._kill)
        else:
            # Again: no more waiting. See test_a_second_signal_kills_at_once.
            self._task.cancel()
            self._kill()

    def _kill(self) -> None:
        self.killed += [child.description for child in kill_children()]


class Runner:
    """Runs a task tree with chosen settings; ``task.run()`` uses the defaults.

    Every argument left None takes its environment variable, then the default.

    :param display: :class:`Display` or its value; ``FLOW2_DISPLAY``, else "auto"
        (the live view when ``stream`` is a terminal and rich is installed,
        plain lines otherwise)
    :param verbosity: :class:`Verbosity` or its value; ``FLOW2_VERBOSITY``, else "normal"
    :param events: a file path or text stream receiving every event as a JSON
        line (lines whole, written at every task's end and at least every 0.2 s;
        a new file is owner-only); ``FLOW2_EVENTS`` (a path), else none
    :param listeners: more event listeners, called after the built-in ones
    :param max_threads: size of the thread pool for sync callbacks;
        ``FLOW2_MAX_THREADS``, else Python's default
    :param stream: where the console writes; ``sys.stdout`` when None
    :param color: force color on or off; decided from the stream, ``NO_COLOR``
        and ``FORCE_COLOR`` when None
    :param handle_signals: take SIGINT, SIGTERM and SIGHUP while a run runs:
        cancel it cleanly, then raise :class:`Interrupted` (the exit code
        128 + the signal); off by default, so flow2 installs no handler
    :param grace: seconds stopped commands and worker processes get between
        SIGTERM and SIGKILL when a signal interrupts the run, and that worker
        threads get to finish before the process may exit without them;
        ``FLOW2_GRACE``, else 5
    :raises flow2.ConfigurationError: when an option or its environment variable is wrong

    Example::

        context = await flow2.Runner(display="none").run(workflow, {"env": "prod"})
    """

    def __init__(
        self,
        *,
        display: Display | str | None = None,
        listeners: Sequence[EventListener] = (),
        max_threads: int | None = None,
        stream: TextIO | None = None,
        color: bool | None = None,
        verbosity: Verbosity | str | None = None,
        events: EventTarget | None = None,
        handle_signals: bool = False,
        grace: float | None = None,
    ) -> None:
        self.display: Display = _from_environment("FLOW2_DISPLAY", Display, display)
        self.verbosity: Verbosity = _from_environment(
            "FLOW2_VERBOSITY", Verbosity, verbosity, Verbosity.NORMAL
        )
        from ._listeners._event_file import events_target_from_environment  # json: only when used

        self.events = events_target_from_environment(events)
        self.listeners = list(listeners)
        self.max_threads = _max_threads_from_environment(max_threads)
        self.stream = stream
        self.color = color
        self.handle_signals = bool(handle_signals)
        self.grace = _grace_from_environment(grace)

    async def run(
        self, task: Task, context: Context | None = None, *, raises: bool = True
    ) -> Context:
        """Validate the tree under ``task``, run it, and return the filled context.

        :param task: the root of the tree
        :param context: the dict to start from; a new one when None
        :param raises: raise the failed task's exception, unchanged (else store it and return)
        :raises flow2.DefinitionError: when the tree is wrong; nothing ran
        :raises flow2.TaskTypeError: when something in the tree is not a Task
        :raises Interrupted: with ``handle_signals=True``, when a signal
            interrupted the run (after it ended and reported everything)
        """
        if not self.handle_signals:
            return await execute(
                task, context, raises=raises, listeners=self.listeners_for_run, settings=self
            )
        handling = _SignalHandling(self.grace)
        current = asyncio.current_task()
        cancelling = current.cancelling() if current is not None else 0
        handling.install()
        try:
            filled = await execute(
                task, context, raises=raises, listeners=self.listeners_for_run, settings=self
            )
        except asyncio.CancelledError:
            if handling.signal is None:
                raise  # cancelled by its caller, not by a signal
        except Exception:
            if handling.signal is None:
                raise
            # The run's error is reported already; the signal decides the outcome.
        finally:
            handling.uninstall()
            if handling.killed:
                _tell(
                    f"flow2: killed what still ran {self.grace:g}s after the signal: "
                    + ", ".join(handling.killed)
                )
        if handling.signal is not None:
            # The cancellations were ours: the caller's task goes on.
            while current is not None and current.cancelling() > cancelling:
                current.uncancel()
            raise Interrupted(handling.signal)
        return filled

    def listeners_for_run(self) -> list[EventListener]:
        """The listeners of one run: a display, the summary, logging, the event file, the user's."""
        # The listeners load with the first run, not with ``import flow2``.
        from ._listeners._console import PlainConsole
        from ._listeners._logging import LoggingListener, TaskRecordRouter
        from ._listeners._output import closable

        listeners: list[EventListener] = []
        display = self._choose_display()
        # One output for the display and the summary, which turns quiet when
        # its reader goes away (``| head``): see test_a_closed_stdout_fails_no_task.
        output = closable(self.stream) if display is not Display.NONE else None
        verbosity = self.verbosity
        if display is Display.LIVE:
            from ._listeners._live import LiveView  # imports rich: only when used

            view = LiveView(
                output,
                color=self.color,
                verbosity=verbosity,
                force_terminal=self.display is Display.LIVE,
            )
            listeners += [TaskRecordRouter(view.show_record, verbosity.log_level), view]
        elif display is Display.PLAIN:
            console = PlainConsole(output, color=self.color, verbosity=verbosity)
            listeners += [TaskRecordRouter(console.show_record, verbosity.log_level), console]
        if display is not Display.NONE:
            from ._listeners._summary import SummaryListener

            listeners.append(SummaryListener(output, color=self.color, verbosity=verbosity))
        listeners.append(LoggingListener())
        if self.events is not None:
            from ._listeners._event_file import EventFile

            event_file = (
                self.events if isinstance(self.events, EventFile) else EventFile(self.events)
            )
            event_file.open()  # a path that cannot be written fails before the run
            listeners.append(event_file)
        listeners.extend(self.listeners)
        return listeners

    def _choose_display(self) -> Display:
        """The display to use: AUTO becomes LIVE on a terminal with rich, else PLAIN.

        :raises flow2.ConfigurationError: LIVE was asked for and rich is missing
        """
        has_rich = importlib.util.find_spec("rich") is not None
        if self.display is Display.LIVE:
            if not has_rich:
                raise ConfigurationError(
                    "display='live' needs rich, which is not installed; "
                    "install flow2[live] (pip install '<your flow2 clone or wheel>[live]'), "
                    "or use display='plain'"
                )
            return Display.LIVE
        if self.display is Display.AUTO:
            stream = self.stream if self.stream is not None else sys.stdout
            isatty = getattr(stream, "isatty", None)
            is_dumb = os.environ.get("TERM") == "dumb"  # cannot move the cursor
            if has_rich and isatty is not None and isatty() and not is_dumb:
                return Display.LIVE
            return Display.PLAIN
        return self.display


def _tell(message: str) -> None:
    """A line for the person on stderr; nothing when stderr is closed."""
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


set_default_runner(Runner)
