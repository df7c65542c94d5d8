"""The cache as the ``flow2 cache`` commands see it: its entries, their size and
age, clearing and pruning them; and whether a store's entries may be trusted.

An entry is a row of ``cache_entries``: the result of one task of one run,
kept with the reuse key it was computed under, and with ``restore_outputs``
the copies of its outputs (``output_blobs``, shared between the entries
that keep the same content). Entries go with their run when the store's
retention deletes it (``FLOW2_STORE_KEEP``); these functions delete them
sooner, and the copies no entry keeps any more with them.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._engine._exceptions import ConfigurationError
from .._engine._naming import snake_case
from ._kept import collect_garbage, kept_of, total_size
from ._keys import expand_parts
from ._reuse import names_task

if TYPE_CHECKING:
    import sqlite3

    from ._database import Store
    from ._kept import Kept

Path = tuple[str, ...]

#: Bytes of an entry: its key's parts, its outputs' digests and its result.
_SIZE = (
    "length(CAST(parts AS BLOB)) + length(CAST(details AS BLOB)) + "
    "length(CAST(outputs AS BLOB)) + coalesce(length(CAST(result AS BLOB)), 0) + "
    "coalesce(length(CAST(result_note AS BLOB)), 0)"
)


@dataclass
class CacheEntry:
    """One entry of the cache, as ``flow2 cache list`` and ``show`` print it."""

    flow: str
    path: Path
    key: str
    size: int
    result_size: int
    created: float
    run_id: str
    origin: str
    parts: dict[str, str]
    outputs: dict[str, str]
    #: The outputs whose bytes it keeps: path → (digest, mode, size).
    kept: dict[str, Kept] = field(default_factory=dict)

    @property
    def kept_size(self) -> int:
        """Bytes of the outputs it keeps (a copy shared with other entries counts in each)."""
        return total_size(self.kept)

    @property
    def shared(self) -> bool:
        """False for an entry kept for its run's resume only (written under
        ``--cache=read-only`` or ``--no-cache``): the cache never reads it."""
        return bool(self.flow)

    def summary(self, now: float) -> dict[str, Any]:
        """What ``flow2 cache list --json`` prints of it."""
        return {
            "task": "/".join(self.path),
            "path": list(self.path),
            "key": self.key,
            "size": self.size,
            "outputs_kept": self.kept_size,
            "age": round(max(0.0, now - self.created), 3),
            "created": self.created,
            "run": self.run_id,
            "origin": self.origin,
            "flow": self.flow or None,
            "shared": self.shared,
        }


def distrust(store: Store) -> str | None:
    """Why the store's cache entries are not to be trusted, or None.

    Another user's store (its directory or database file owned by another
    uid), or a directory every user may write into, may hold entries planted to
    stand in for a task's work: nothing is reused from them.
    """
    getuid = getattr(os, "getuid", None)
    if getuid is None:  # pragma: no cover - not POSIX: no owners to compare
        return None
    me = getuid()
    for path in (store.directory, store.path):
        try:
            found = os.stat(path)
        except OSError:
            continue
        if found.st_uid != me:
            return (
                f"cache entries in {store.directory} belong to uid {found.st_uid}: not "
                f"trusted; run `flow2 cache clear`"
            )
        if path == store.directory and found.st_mode & stat.S_IWOTH:
            return (
                f"the run store {store.directory} may be written by other users: its cache "
                f"entries are not trusted; run `chmod o-w {store.directory}` and "
                f"`flow2 cache clear`"
            )
    return None


#: The digest of the shared parts a row's ``parts`` names (see flow2._store._keys.SHARED).
_REFERENCE = """json_extract(parts, '$."@shared"')"""


def entries(connection: sqlite3.Connection, task: str | None = None) -> list[CacheEntry]:
    """The cache's entries, oldest first; those of ``task`` (a path, a name or a key) only
    when given."""
    rows = connection.execute(
        f"SELECT flow, path, key, {_SIZE}, coalesce(length(CAST(result AS BLOB)), 0), created, "
        "run_id, origin, parts, outputs, kept_outputs FROM cache_entries ORDER BY created, rowid"
    ).fetchall()
    shared: dict[str, dict[str, str]] = {}
    found = []
    for flow, path, key, size, result_size, created, run_id, origin, parts, outputs, kept in rows:
        kept_outputs = kept_of(kept)
        names = tuple(json.loads(path))
        found.append(
            CacheEntry(
                flow,
                names,
                key,
                # What the entry takes in the store: its row and its outputs' copies.
                size + total_size(kept_outputs),
                result_size,
                created,
                run_id,
                origin,
                expand_parts(connection, parts, names, shared),
                json.loads(outputs),
                kept_outputs,
            )
        )
    if task is None:
        return found
    return [entry for entry in found if names_task(task, entry.path, snake_case(entry.path[-1]))]


def delete(connection: sqlite3.Connection, doomed: list[CacheEntry]) -> int:
    """Delete ``doomed`` in one transaction, and the output copies no other entry keeps.

    :returns: how many output copies were deleted
    """
    from ._failures import rollback

    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.executemany(
            "DELETE FROM cache_entries WHERE run_id = ? AND path = ?",
            [(entry.run_id, json.dumps(list(entry.path))) for entry in doomed],
        )
        # The shared parts of keys no entry or key names any more.
        connection.execute(
            "DELETE FROM key_parts WHERE digest NOT IN ("
            f"SELECT {_REFERENCE} FROM cache_entries WHERE {_REFERENCE} IS NOT NULL "
            f"UNION SELECT {_REFERENCE} FROM task_keys WHERE {_REFERENCE} IS NOT NULL)"
        )
        copies = collect_garbage(connection)
        connection.execute("COMMIT")
    except BaseException:
        rollback(connection)
        raise
    return copies


def to_prune(
    found: list[CacheEntry],
    *,
    max_size: int | None = None,
    older_than_days: float | None = None,
    now: float | None = None,
) -> list[CacheEntry]:
    """The entries (oldest first, as :func:`entries` gives them) that ``prune`` deletes:
    those older than ``older_than_days``, then the oldest until the rest fit in ``max_size``."""
    now = time.time() if now is None else now
    doomed = []
    kept = []
    for entry in found:
        if older_than_days is not None and now - entry.created > older_than_days * 86400:
            doomed.append(entry)
        else:
            kept.append(entry)
    if max_size is not None:
        total = sum(entry.size for entry in kept)
        for entry in kept:
            if total <= max_size:
                break
            doomed.append(entry)
            total -= entry.size
    return doomed


_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """``"500M"`` → 524288000: a number of bytes, with an optional K, M, G or T (powers of 1024).

    :raises flow2.ConfigurationError: on anything else
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text, re.IGNORECASE)
    if found is None:
        raise ConfigurationError(
            f"{text!r} is not a size; write e.g. 500M, 2G or 10000 (bytes)",
            option="max_size",
            value=text,
        )
    return int(float(found.group(1)) * _UNITS[found.group(2).upper()])


def human_size(size: float) -> str:
    """``524288000`` → ``"500.0 MiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def human_age(seconds: float) -> str:
    """``5400`` → ``"1.5h"``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
