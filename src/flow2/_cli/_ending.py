"""How the command ends: its exit code once the outputs are flushed, and signals
before and after the run (which has handlers of its own while it runs)."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click


def exit_with(code: int) -> NoReturn:
    """Exit with ``code`` once stdout and stderr are flushed (:func:`release_closed_outputs`)."""
    release_closed_outputs()
    sys.exit(code)


def end_on_signals() -> None:
    """Until the run takes them: SIGTERM and SIGHUP end the command with 128 + the signal.

    As ``SystemExit``, quietly, while the flow loads: the exit status is the
    documented one (143, 129), not a death by the signal. The run's own
    handlers replace these while it runs (see flow2/_running/_signals.py).
    """
    import signal

    def end(number: int, frame: object) -> None:
        raise SystemExit(128 + number)

    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is signal.SIG_DFL:
            signal.signal(number, end)


def end_quietly() -> None:
    """From here the process only ends: a signal changes no outcome and prints no traceback.

    It only ends the wait for worker threads left behind, if any.
    See test_a_signal_during_the_wait_for_a_stopped_thread_ends_it_quietly.
    """
    import signal

    from .._executors._threads import stop_waiting_for_threads

    def ending(number: int, frame: object) -> None:
        stop_waiting_for_threads()

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, ending)


def tell(message: str) -> None:
    """A line on stderr; nothing when stderr is closed."""
    try:
        click.echo(message, err=True)
    except (OSError, ValueError):
        pass


def release_closed_outputs() -> None:
    """Flush stdout and stderr now; point a closed one at /dev/null.

    A reader that went away (``| head``, a dead ``tee``) must not turn into
    "Exception ignored … BrokenPipeError" and exit code 120 when Python
    flushes the streams at exit.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, stream.fileno())
                os.close(null)
            except (OSError, ValueError):
                pass
