"""Output that may go away: a reader that closed its end is not a failed run.

``flow2 run … | head -2``, a ``tee`` that died, a terminal that closed: the
next write raises BrokenPipeError (or ValueError on a closed file). The
console, the live view and the summary write through a
:class:`ClosableOutput`, which stops writing there at the first such error
and lets the run go on: no task fails because of its own output, and the
exit code reflects the tasks only.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any, TextIO

#: Errors meaning "nobody reads this any more".
_GONE = (BrokenPipeError, ConnectionResetError, ValueError)


def _is_gone(error: BaseException) -> bool:
    if isinstance(error, _GONE):
        return True
    return isinstance(error, OSError) and error.errno in (errno.EPIPE, errno.EIO, errno.ENXIO)


class ClosableOutput:
    """A text stream that turns quiet once its reader has gone.

    Everything but ``write`` and ``flush`` is the wrapped stream's (``isatty``,
    ``encoding``, ``fileno`` …), so rich and the console see the real stream.

    :param stream: the stream to write to
    :ivar is_gone: the reader went away; nothing is written any more
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.is_gone = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def write(self, text: str) -> int:
        if self.is_gone:
            return len(text)
        try:
            return self.stream.write(text)
        except Exception as error:
            if not _is_gone(error):
                raise
            self._give_up()
            return len(text)

    def flush(self) -> None:
        if self.is_gone:
            return
        try:
            self.stream.flush()
        except Exception as error:
            if not _is_gone(error):
                raise
            self._give_up()

    def _give_up(self) -> None:
        self.is_gone = True
        if self.stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            # What the stream still buffers would fail again when Python
            # flushes it at exit ("Exception ignored … BrokenPipeError", exit
            # code 120): from now on the descriptor leads to /dev/null.
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(null, self.stream.fileno())
                finally:
                    os.close(null)
            except (OSError, ValueError, AttributeError):
                pass


def closable(stream: TextIO | None) -> TextIO:
    """``stream`` (``sys.stdout`` when None) behind a :class:`ClosableOutput`."""
    if isinstance(stream, ClosableOutput):
        return stream
    return ClosableOutput(stream if stream is not None else sys.stdout)  # type: ignore[return-value]
