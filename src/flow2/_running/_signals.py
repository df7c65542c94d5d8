"""The signals a run takes while it runs: SIGINT, SIGTERM and SIGHUP.

With ``handle_signals=True`` (what ``flow2 run`` and :func:`flow2.run` use)
the first signal cancels the tree, so every task is reported, the summary
printed and the event file closed; shell commands and worker processes get
SIGTERM, and whatever still runs after the grace period gets SIGKILL, at
once on a second signal. A third gives the run a few seconds more to end,
then the process exits without it. A signal after every task has reported
changes nothing. Without it flow2 installs no handler for SIGTERM and
SIGHUP: a library must not take an application's signals.

Ctrl-C is the exception where Python's own handler would raise
KeyboardInterrupt at any bytecode (IPython, a notebook, a loop run with
``run_until_complete``): the run takes SIGINT while it runs, ends whole
(every task reported, the summary printed, nothing left scheduled), and
then raises KeyboardInterrupt to its caller, as :func:`subprocess.run` does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from .._engine._children import kill_children, terminate_children
from .._engine._exceptions import ConfigurationError

if TYPE_CHECKING:
    from types import FrameType

    from .._engine._run import Run

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


#: Seconds a run gets to end after a third signal before the process exits without it.
ESCAPE_AFTER = 5.0


def takes_keyboard_interrupt() -> bool:
    """Whether a Ctrl-C now would raise KeyboardInterrupt wherever the main thread is.

    True in the main thread under Python's own SIGINT handler, as in IPython,
    a notebook's kernel, or a loop an application runs with
    ``run_until_complete``. (``asyncio.run`` puts a handler of its own in
    place, which cancels its main task instead.)
    """
    return (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )


class SignalHandling:
    """The signal handlers of one run: cancel it, then kill what outlives the grace period.

    :param grace: seconds between the first signal and SIGKILL to what still runs
    :param numbers: the signals to take; with only SIGINT (a run that does
        not handle signals, in a thread where Ctrl-C would raise
        KeyboardInterrupt anywhere), the runner raises KeyboardInterrupt once
        the run has ended
    """

    def __init__(self, grace: float, numbers: tuple[int, ...] = HANDLED_SIGNALS) -> None:
        self.grace = grace
        self.numbers = numbers
        self.signal: int | None = None  # the signal that stopped the run
        self.killed: list[str] = []  # what still ran when it was killed
        self._killed_after = 0.0  # seconds from the first signal to the kill
        self._kill_cause = ""
        self._count = 0  # signals the loop handled
        self._received = 0  # signals received, handled or not
        self._first: int | None = None
        self._first_at = 0.0
        self._previous: dict[int, Any] = {}
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._run: Run | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._installed = False
        self._cancelling = 0
        self._ended = threading.Event()
        from .._listeners._interrupt import SignalWakeup  # with the first run, not at import

        self._wakeup = SignalWakeup()

    @property
    def keyboard_interrupt(self) -> bool:
        """True when the caller gets KeyboardInterrupt once the interrupted run has ended."""
        return self.signal is not None and self.numbers == (signal.SIGINT,)

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
        for number in self.numbers:
            # An ignored signal stays ignored: ``nohup flow2 run …`` must
            # survive the terminal closing, as any program started so would.
            if signal.getsignal(number) is signal.SIG_IGN:
                continue
            self._previous[number] = signal.signal(number, self._on_signal)
        self._wakeup.install(self._loop)

    def watch(self, run: Run) -> None:
        """Start cancelling ``run`` on a signal; one that came before cancels it now.

        A signal that arrives before the run exists (while the store opens)
        is kept until here, so the run still starts, reports every task
        CANCELLED and ends whole. See test_a_signal_before_the_first_task_cancels_every_task.
        """
        self._run = run
        if self.signal is not None and self._task is not None:
            self._task.cancel()

    def uninstall(self) -> None:
        self._installed = False
        self._ended.set()
        self._wakeup.uninstall()
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous.clear()
        if self._deadline is not None:
            self._deadline.cancel()
        if self.killed:
            tell(
                f"flow2: killed what still ran {self._killed_after:.1f}s after the signal "
                f"({self._kill_cause}): " + ", ".join(self.killed)
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
        if self._received == 3:
            # Third time: the person wants out. The run, whose commands the
            # second signal killed, normally ends within moments and leaves
            # its whole record; if it does not (the loop is blocked, a task
            # swallows cancellation), the process exits without it.
            # See test_a_third_signal_exits_even_when_the_loop_is_blocked
            # and test_three_signals_leave_a_true_record.
            threading.Thread(
                target=self._escape, args=(number,), name="flow2-escape", daemon=True
            ).start()
        try:
            self._loop.call_soon_threadsafe(self._interrupt, number)
        except RuntimeError:  # the loop closed: the run is over
            pass

    def _escape(self, number: int) -> None:
        if self._ended.wait(ESCAPE_AFTER):
            return
        kill_children()
        tell(
            f"flow2: {signal.Signals(number).name}, the third signal: exiting at once "
            f"(the run did not end within {ESCAPE_AFTER:g}s of it)",
            sys.__stderr__,  # not a task's captured stderr
        )
        assert self._first is not None
        os._exit(128 + self._first)

    def _interrupt(self, number: int) -> None:
        if not self._installed:
            return  # arrived as the run ended: the caller's code is not ours to cancel
        run = self._run
        if run is not None and run.root_record.status.is_finished:
            # Every task has reported and the summary is being printed, or
            # the store closed: nothing is left to stop, and the outcome
            # stays the run's. Cancelling now would cut the record short.
            # See test_a_signal_while_the_summary_prints_changes_nothing.
            return
        self._count += 1
        assert self._task is not None and self._loop is not None
        if self._count == 1:
            self.signal = number
            self._first_at = time.monotonic()
            # Cancelling the run reports every task and stops every command
            # (SIGTERM to its group); processes get SIGTERM here too, so one
            # a task does not own (an executor's worker) stops as well. See
            # test_a_signal_stops_the_run_and_every_process_it_started.
            if run is not None:
                self._task.cancel()
            terminate_children()
            self._deadline = self._loop.call_later(self.grace, self._kill, "the grace period ended")
        else:
            # Again: no more waiting, but no second cancellation either: it
            # would cut short the groups waiting for their cancelled tasks,
            # and the run would end before them (a spinner left on the final
            # tree, task events after the run's end). Killing what runs ends
            # those waits at once. See test_a_second_signal_kills_at_once.
            if self._deadline is not None:
                self._deadline.cancel()
            self._kill(f"{signal.Signals(number).name}, a second signal")
            from .._executors._threads import stop_waiting_for_threads  # not at import

            stop_waiting_for_threads()

    def _kill(self, cause: str) -> None:
        if self._run is not None:
            # The cleanups that still run are cancelled first, as the other
            # tasks were by the first signal: their commands, killed next,
            # are then reported CANCELLED, not FAILED. See
            # test_a_cleanup_killed_by_a_second_signal_is_cancelled.
            self._run.stop_cleanups()
        killed = [child.description for child in kill_children()]
        if killed and not self.killed:
            # What the message says is what happened: measured, not the grace period.
            self._killed_after = time.monotonic() - self._first_at
            self._kill_cause = cause
        self.killed += killed


def tell(message: str, stream: TextIO | None = None) -> None:
    """A line for the person on stderr; nothing when stderr is closed."""
    try:
        print(message, file=stream or sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
