"""The signals a run takes while it runs: SIGINT, SIGTERM and SIGHUP.

With ``handle_signals=True`` (what ``flow2 run`` and :func:`flow2.run` use)
the first signal cancels the tree, so every task is reported, the summary
printed and the event file closed; shell commands and worker processes get
SIGTERM, and whatever still runs after the grace period gets SIGKILL, at
once on a second signal. Without it flow2 installs no handler: a library
must not take an application's signals.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

from .._engine._children import kill_children, terminate_children
from .._engine._exceptions import ConfigurationError

if TYPE_CHECKING:
    from types import FrameType

#: The signals ``handle_signals=True`` takes during a run (SIGHUP: the terminal closed).
HANDLED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(SystemExit):
    """A signal interrupted a run of ``Runner(handle_signals=True).run()``; raised once it ended.

    A :class:`SystemExit`: a script that does not catch it exits, without a
    traceback, with the code a shell reports for that signal.
    (:meth:`flow2.Runner.execute` returns the outcome instead: its
    ``signal`` and ``exit_code``.)

    :ivar signal: the signal (:class:`signal.Signals`)
    :ivar code: 128 + the signal's number: 130 for SIGINT (Ctrl-C), 143 for
        SIGTERM, 129 for SIGHUP
    """

    def __init__(self, signal_number: int) -> None:
        super().__init__(128 + signal_number)
        self.signal = signal.Signals(signal_number)

    def __str__(self) -> str:
        return f"interrupted by {self.signal.name}"


class SignalHandling:
    """The signal handlers of one run: cancel it, then kill what outlives the grace period."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.signal: int | None = None
        self.killed: list[str] = []  # what still ran when the grace period ended
        self._count = 0  # signals the loop handled
        self._received = 0  # signals received, handled or not
        self._first: int | None = None
        self._previous: dict[int, Any] = {}
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._installed = False
        self._cancelling = 0
        from .._listeners._interrupt import SignalWakeup  # with the first run, not at import

        self._wakeup = SignalWakeup()

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise ConfigurationError(
                "handle_signals=True needs the main thread (Python delivers signals there); "
                "run the runner in the main thread, or leave handle_signals off",
                option="handle_signals",
                value=True,
            )
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._cancelling = self._task.cancelling() if self._task is not None else 0
        self._installed = True
        for number in HANDLED_SIGNALS:
            # An ignored signal stays ignored: ``nohup flow2 run …`` must
            # survive the terminal closing, as any program started so would.
            if signal.getsignal(number) is signal.SIG_IGN:
                continue
            self._previous[number] = signal.signal(number, self._on_signal)
        self._wakeup.install(self._loop)

    def uninstall(self) -> None:
        self._installed = False
        self._wakeup.uninstall()
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous.clear()
        if self._deadline is not None:
            self._deadline.cancel()
        if self.killed:
            tell(
                f"flow2: killed what still ran {self.grace:g}s after the signal: "
                + ", ".join(self.killed)
            )
        if self.signal is not None:
            # The cancellations were ours: the caller's task goes on.
            current = self._task
            while current is not None and current.cancelling() > self._cancelling:
                current.uncancel()

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        # A Python-level handler runs in the main thread between bytecodes:
        # hand the work to the loop, which may be waiting in select().
        assert self._loop is not None
        self._received += 1
        if self._first is None:
            self._first = number
        if self._received >= 3:
            # Third time: the loop never got to the first two (a task blocks
            # it, or swallows cancellation). Stop everything now, without the
            # summary. See test_a_third_signal_exits_even_when_the_loop_is_blocked.
            kill_children()
            tell(
                f"flow2: {signal.Signals(number).name}, the third signal: exiting at once",
                sys.__stderr__,  # not a task's captured stderr
            )
            os._exit(128 + self._first)
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


def tell(message: str, stream: TextIO | None = None) -> None:
    """A line for the person on stderr; nothing when stderr is closed."""
    try:
        print(message, file=stream or sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
