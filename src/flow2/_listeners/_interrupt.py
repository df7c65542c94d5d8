"""Ctrl-C: the displays say the run is stopping, and the interrupted script ends in one line.

While a run lasts in the main thread, :class:`InterruptNotice` wraps the
SIGINT handler that is there (``asyncio.run``'s, which cancels the run on
the first Ctrl-C and raises KeyboardInterrupt on the second). On the first
Ctrl-C it tells the displays, which say that the run is stopping, which
tasks it waits for, and that a second Ctrl-C kills them at once; then it
hands the signal on unchanged.

``asyncio.run`` raises KeyboardInterrupt once the cancelled run has ended
(after the summary). Uncaught, Python would print a long traceback through
asyncio's internals; after a Ctrl-C during a run, an uncaught
KeyboardInterrupt prints one line instead (``sys.excepthook``; every other
exception keeps the hook that was there).

A Python signal handler runs in the main thread, but the kernel may deliver
the signal to any thread (a worker, the console or store writer). The main
thread, waiting in ``select()`` for a timer far away, would then not notice
it until that timer: :class:`SignalWakeup` makes every signal wake it.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any, Protocol

from .._engine._events import RunEvent, Status

if TYPE_CHECKING:
    import asyncio
    from types import FrameType, TracebackType

    from .._engine._events import Event


class SignalWakeup:
    """Wakes the event loop of the main thread on every signal, whichever thread receives it.

    It points Python's signal wakeup file descriptor (``signal.set_wakeup_fd``)
    at a socket the loop reads, unless one is set already (asyncio's own
    ``add_signal_handler`` sets one, which wakes the loop as well). Every
    ``install`` is paired with one ``uninstall``.
    See test_ctrl_c_cancels_everything_cleanly and test_signal_wakes_a_waiting_loop.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sockets: tuple[Any, Any] | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start waking ``loop`` (from the main thread; unless something does already)."""
        if threading.current_thread() is not threading.main_thread():
            return
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        try:
            previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
            if previous == -1:
                loop.add_reader(reader.fileno(), _drain, reader)
        except NotImplementedError:  # a loop without add_reader (Windows' proactor)
            signal.set_wakeup_fd(-1)
            previous = None
        except ValueError:  # not the main interpreter
            previous = None
        if previous != -1:
            if previous is not None:  # something wakes the main thread already: it stays
                signal.set_wakeup_fd(previous)
            reader.close()
            writer.close()
            return
        self._loop = loop
        self._sockets = (reader, writer)

    def uninstall(self) -> None:
        """Stop waking the loop; the descriptor that was there before (none) is back."""
        if self._sockets is None:
            return
        reader, writer = self._sockets
        self._sockets = None
        current = signal.set_wakeup_fd(-1)
        if current != writer.fileno():  # set by somebody since: theirs stays
            signal.set_wakeup_fd(current)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(reader.fileno())
        self._loop = None
        reader.close()
        writer.close()


def _drain(reader: Any) -> None:
    """Read the bytes the signals wrote: waking the loop was their whole purpose."""
    try:
        while reader.recv(4096):
            pass
    except (BlockingIOError, InterruptedError, OSError):
        pass


class StoppingDisplay(Protocol):
    """A display that can say the run is stopping."""

    def show_stopping(self) -> None:
        """Called from the signal handler: must only schedule its work."""


class InterruptNotice:
    """An event listener that makes a run's first Ctrl-C visible.

    :param displays: told on the first Ctrl-C
    """

    #: It acts on the run's begin and end only.
    listens_to: frozenset[Status] = frozenset()

    def __init__(self, displays: list[StoppingDisplay]) -> None:
        self.displays = displays
        self._previous: Any = None
        self._installed = False
        self._interrupted = False
        self._root = ""
        self._wakeup = SignalWakeup()

    def __call__(self, event: Event) -> None:
        if type(event) is not RunEvent:
            return
        if event.status is Status.RUNNING:
            self._root = event.run.root.name
            self._install()
        else:
            self._uninstall()

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            previous = signal.getsignal(signal.SIGINT)
            if previous is signal.SIG_IGN:
                # Ignored (``nohup``, a background job of a script): Ctrl-C
                # stays ignored and silent, as for any program started so.
                # See test_an_ignored_sigint_stays_ignored_and_silent.
                return
            self._previous = previous
            signal.signal(signal.SIGINT, self._on_sigint)
        except (ValueError, OSError):  # pragma: no cover - no signals here
            return
        self._installed = True
        import asyncio

        self._wakeup.install(asyncio.get_running_loop())

    def _uninstall(self) -> None:
        if not self._installed:
            return
        self._installed = False
        self._wakeup.uninstall()
        if signal.getsignal(signal.SIGINT) == self._on_sigint:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> Any:
        if not self._interrupted:
            self._interrupted = True
            for display in self.displays:
                display.show_stopping()
            _one_line_for_keyboard_interrupt(self._root)
        previous = self._previous
        if callable(previous):
            return previous(signum, frame)
        raise KeyboardInterrupt


def _one_line_for_keyboard_interrupt(root: str) -> None:
    """Make an uncaught KeyboardInterrupt print one line, not a traceback."""
    previous = sys.excepthook
    if getattr(previous, "_flow2_interrupt", False):
        return

    def hook(
        kind: type[BaseException], error: BaseException, traceback: TracebackType | None
    ) -> None:
        if issubclass(kind, KeyboardInterrupt):
            print(f"flow2: interrupted (Ctrl-C); the run of {root!r} was stopped", file=sys.stderr)
            return
        previous(kind, error, traceback)

    hook._flow2_interrupt = True  # type: ignore[attr-defined]
    sys.excepthook = hook
