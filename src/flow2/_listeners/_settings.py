"""What a run shows and how much: the settings the console, live view and summary share.

Kept apart from the listeners themselves so that the runner and the command
line can name a setting without importing a display.
"""

from __future__ import annotations

import enum
import logging


class Display(enum.Enum):
    """How a run shows itself on stdout."""

    #: The live view on a terminal, plain lines otherwise.
    AUTO = "auto"
    #: The live tree (needs a terminal and the ``live`` extra).
    LIVE = "live"
    #: One line per event.
    PLAIN = "plain"
    #: Nothing on stdout (events still reach logging and other listeners).
    NONE = "none"


class Verbosity(enum.Enum):
    """How much a run prints (the live view, the plain lines and the summary)."""

    #: Problems only: failures and retries, task records of level WARNING and
    #: up, a one-line summary plus the failures; the live tree is erased at the end.
    QUIET = "quiet"
    #: Every task's start and end, task records from INFO, the full summary.
    NORMAL = "normal"
    #: Also task records from DEBUG; plain lines show each task's whole path,
    #: the summary lists more of the slowest tasks.
    VERBOSE = "verbose"

    @property
    def log_level(self) -> int:
        """The lowest level of task log records shown."""
        return _LOG_LEVELS[self]


_LOG_LEVELS = {
    Verbosity.QUIET: logging.WARNING,
    Verbosity.NORMAL: logging.INFO,
    Verbosity.VERBOSE: logging.DEBUG,
}
