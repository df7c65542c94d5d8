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
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, Protocol

from .._engine._events import RunEvent, Status

if TYPE_CHECKING:
    from types import FrameType, TracebackType

    from .._engine._events import Event


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
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_sigint)
        except (ValueError, OSError):  # pragma: no cover - no signals here
            return
        self._installed = True

    def _uninstall(self) -> None:
        if not self._installed:
            return
        self._installed = False
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
        if previous == signal.SIG_IGN:
            return None
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
