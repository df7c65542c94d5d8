"""Outputs kept in the run store, and put back from it (``cache: {restore_outputs: true}``).

After a success, each file among a task's declared ``outputs`` is copied
into the table ``output_blobs`` under the sha256 of its bytes: a content
already there (the same file from an earlier run, two equal files) is not
copied again. The cache entry names what it kept as ``path → [digest, mode,
size]`` (``cache_entries.kept_outputs``).

When a later run finds the entry's key unchanged but an output missing or
modified, :func:`restore` writes the kept bytes back: into a temporary file
in the output's directory, checked against the digest, its mode set, then
renamed over the path (a reader never sees half a file). A path that would
leave the working directory is refused, as is one under a symbolic link that
leads out of it.

Files are copied and written in chunks of :data:`CHUNK` bytes through
SQLite's incremental blob I/O: a file of several GB never sits in memory
whole. A content is kept in rows of at most :data:`PART` bytes (``part``
0, 1, …): SQLite holds no value over 1 GB. Everything here touches the
disk and runs in a worker thread (the store's writer thread, or a thread
of the task's decision), never on the event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from typing import TYPE_CHECKING, Any

from ._failures import rollback

if TYPE_CHECKING:
    import pathlib
    import sqlite3
    from collections.abc import Mapping

#: Bytes read and written at a time.
CHUNK = 1 << 20
#: Bytes of a content in one row of ``output_blobs`` at most.
PART = 64 << 20

#: What a kept output is: its content's digest, its mode bits, its size.
Kept = tuple[str, int, int]


class NotRestored(Exception):
    """An output could not be put back: :attr:`reason` says why, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_content(digest: str) -> bool:
    """Whether ``digest`` is a file's content (not "missing", a FIFO, a link met before)."""
    return len(digest) == 64 and ":" not in digest


def keep(
    connection: sqlite3.Connection, base: pathlib.Path, outputs: Mapping[str, str]
) -> dict[str, Kept] | None:
    """Copy each output file whose content ``outputs`` gives into ``output_blobs``.

    One transaction. A content already stored is not read again.

    :param outputs: path relative to ``base`` → the digest recorded for it
    :returns: what the entry keeps (path → digest, mode, size); None when a
        file is no longer what ``outputs`` recorded (it changed since, or is
        gone): nothing of it is kept then
    """
    kept: dict[str, Kept] = {}
    connection.execute("BEGIN IMMEDIATE")
    try:
        for path, digest in sorted(outputs.items()):
            if not is_content(digest):
                continue
            copied = _copy_in(connection, os.path.join(base, path), digest)
            if copied is None:
                rollback(connection)
                return None
            kept[path] = (digest, *copied)
        connection.execute("COMMIT")
    except BaseException:
        rollback(connection)
        raise
    return kept


def _copy_in(connection: sqlite3.Connection, path: str, digest: str) -> tuple[int, int] | None:
    """Store the file at ``path`` under ``digest`` unless stored already: (mode, size);
    None when its bytes do not have that digest (any more)."""
    try:
        file = open(path, "rb", buffering=0)  # closed below, after the checks
    except OSError:
        return None
    with file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            return None
        mode, size = stat.S_IMODE(status.st_mode), status.st_size
        known = connection.execute(
            "SELECT 1 FROM output_blobs WHERE digest = ? LIMIT 1", (digest,)
        ).fetchone()
        if known is not None:
            return mode, size
        hashed = hashlib.sha256()
        view = memoryview(bytearray(CHUNK))
        written = part = 0
        while part == 0 or written < size:  # an empty file has one empty part
            length = min(PART, size - written)
            row = connection.execute(
                "INSERT INTO output_blobs (digest, part, content) VALUES (?, ?, zeroblob(?))",
                (digest, part, length),
            ).lastrowid
            assert row is not None
            with connection.blobopen("output_blobs", "content", row) as blob:
                filled = 0
                while filled < length:
                    count = file.readinto(view[: min(CHUNK, length - filled)])
                    if not count:
                        return None  # shorter than it was: changed
                    blob.write(view[:count])
                    hashed.update(view[:count])
                    filled += count
            written += length
            part += 1
        if file.read(1) or hashed.hexdigest() != digest:
            return None
    return mode, size


def kept_of(text: str | None) -> dict[str, Kept]:
    """``cache_entries.kept_outputs`` read back."""
    if not text:
        return {}
    try:
        found = json.loads(text)
        return {path: (str(kept[0]), int(kept[1]), int(kept[2])) for path, kept in found.items()}
    except (ValueError, TypeError, LookupError, AttributeError):  # not as written: none kept
        return {}


def restore(
    connection: sqlite3.Connection,
    base: pathlib.Path,
    files: Mapping[str, Kept],
    told: Mapping[str, str],
) -> None:
    """Write each of ``files`` back under ``base`` from its kept copy.

    :param told: what happened to each path (``outputs: dist/a.whl missing``),
        the start of the reason when it cannot be put back
    :raises NotRestored: a path leads out of ``base``, or its copy is gone
        (``flow2 cache prune``, ``clear``) or damaged; the files written
        before stay (the task runs and writes them anyway)
    """
    root = os.path.realpath(base)
    for path, (digest, mode, size) in sorted(files.items()):
        what = told.get(path, f"outputs: {path} changed")
        target = _inside(root, path, what)
        parts = connection.execute(
            "SELECT rowid, length(content) FROM output_blobs WHERE digest = ? ORDER BY part",
            (digest,),
        ).fetchall()
        if not parts or sum(length for _, length in parts) != size:
            raise NotRestored(f"{what}, and its copy in the run store is gone (pruned)")
        _write(connection, parts, target, digest, mode, what)


def _inside(root: str, path: str, what: str) -> str:
    """The absolute path of ``path`` under ``root``, its folders made; refused when it
    (or a symbolic link on the way) leads out of ``root``."""
    normal = os.path.normpath(path)
    target = os.path.join(root, normal)
    if (
        os.path.isabs(normal)
        or normal == ".."
        or normal.startswith(".." + os.sep)
        or os.path.commonpath([root, os.path.realpath(os.path.dirname(target))]) != root
    ):
        raise NotRestored(f"{what}, and not restored: {path!r} leads out of the working directory")
    folder = os.path.dirname(target)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise NotRestored(f"{what}, and not restored: {error}") from None
    return target


def _write(
    connection: sqlite3.Connection,
    parts: list[tuple[int, int]],
    target: str,
    digest: str,
    mode: int,
    what: str,
) -> None:
    """The kept bytes of ``parts`` (rowid, length) into ``target``, atomically: a
    temporary file renamed."""
    folder, name = os.path.split(target)
    hashed = hashlib.sha256()
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".restoring", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as file:
            for row, length in parts:
                with connection.blobopen("output_blobs", "content", row, readonly=True) as blob:
                    done = 0
                    while done < length:
                        chunk = blob.read(min(CHUNK, length - done))
                        if not chunk:
                            break
                        hashed.update(chunk)
                        file.write(chunk)
                        done += len(chunk)
            os.fchmod(file.fileno(), mode)
        if hashed.hexdigest() != digest:
            raise NotRestored(f"{what}, and its copy in the run store is damaged")
        os.replace(temporary, target)
    except OSError as error:
        raise NotRestored(f"{what}, and not restored: {error}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def collect_garbage(connection: sqlite3.Connection) -> int:
    """Delete the kept contents no cache entry names, in the caller's transaction.

    A content is written just before the entry naming it (see ``keep``):
    one deleted between the two is missing when the entry is used, and its
    task runs, saying so.

    :returns: how many were deleted
    """
    unused = (
        "digest NOT IN (SELECT json_extract(kept.value, '$[0]') FROM cache_entries, "
        "json_each(cache_entries.kept_outputs) AS kept "
        "WHERE cache_entries.kept_outputs IS NOT NULL)"
    )
    (count,) = connection.execute(
        f"SELECT count(DISTINCT digest) FROM output_blobs WHERE {unused}"
    ).fetchone()
    if count:
        connection.execute(f"DELETE FROM output_blobs WHERE {unused}")
    return int(count)


def total_size(kept: Mapping[str, Any]) -> int:
    """Bytes of the outputs an entry keeps (each path's size)."""
    return sum(int(item[2]) for item in kept.values())
