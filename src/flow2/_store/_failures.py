"""What a store's failures are called, and a rollback that keeps the failure.

A read-only file, a full disk and a damaged page each reach flow2 as some
``sqlite3`` or ``OSError``; the user is told which of the three it was,
in one line, whatever command met it.
"""

from __future__ import annotations

import contextlib
import errno
import re
import sqlite3

#: A run id, as flow2 writes them: twelve lowercase hex digits. Anything else
#: read from a store is refused before it is used (a path is built from it).
RUN_ID = re.compile(r"[0-9a-f]{12}")


class UntrustedValue(ValueError):
    """A value read from a store that flow2 never writes there (a run id that is a path)."""


def cause_of(error: BaseException) -> str | None:
    """What kind of disk failure ``error`` is: ``"read-only"``, ``"disk full"``,
    ``"corrupt"``, or None when it is none of them."""
    if hasattr(error, "cause"):  # a StoreError, which says already
        known = error.cause
        return known if isinstance(known, str) else None
    if isinstance(error, sqlite3.Error):
        name = str(getattr(error, "sqlite_errorname", ""))
        message = str(error)
        if name.startswith("SQLITE_FULL") or "disk is full" in message:
            return "disk full"
        if name.startswith(("SQLITE_READONLY", "SQLITE_PERM")) or "readonly" in message:
            return "read-only"
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in message:
            return "corrupt"
        if isinstance(error, sqlite3.DatabaseError) and not isinstance(
            error, sqlite3.OperationalError
        ):
            return "corrupt"
        return None
    if isinstance(error, OSError):
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return "disk full"
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return "read-only"
        return None
    if isinstance(error, UntrustedValue):
        return "corrupt"
    return None


def rollback(connection: sqlite3.Connection) -> None:
    """Roll back the transaction left open by a failure, keeping that failure.

    SQLite ends the transaction itself on some errors (a full disk): a
    ROLLBACK then fails with "cannot rollback", which would hide the cause
    (see test_a_run_that_cannot_be_recorded_says_why_and_fails).
    """
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")


def cause_words(error: BaseException) -> str:
    """``"disk full: "`` and the like before an error's own words, when its cause is known."""
    cause = cause_of(error)
    return f"{cause}: " if cause is not None and cause != "corrupt" else ""
