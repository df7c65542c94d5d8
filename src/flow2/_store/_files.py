"""Content digests of the files a task declares (``sources:``, ``outputs:``).

A pattern is a path, a glob (``src/**/*.py``: ``*``, ``?`` and ``[…]`` within
a name, ``**`` for any number of folders, hidden names included; a folder it
matches counts with every file under it) or a directory (every file under
it, hidden ones included), relative to the
flow's working directory; a pattern may leave it with ``..`` and is then
shown as given (``../shared/config.yml``). A symbolic link is followed: its
digest is its target's content; a link to a directory is walked the first
time its directory is met (after the real folders: a folder reached both
ways is walked where it is), and recorded as the link after that (so a link
back to a parent makes no loop, and a second link is one entry). A link whose target is missing,
and a pattern that matches no file, have the digest :data:`MISSING`; a
file that is not a regular file (a FIFO, a device) has a digest of its kind.

Each file's digest is a sha256 of its bytes, read in 1 MiB blocks. A
:class:`FileIndex` remembers, like git's index, each file's ``stat``
(modification and change times in nanoseconds, size, inode) with its
digest, and reuses the digest while the ``stat`` is unchanged, without
reading the file. Editing a file changes its change time (``ctime``) even
when its modification time is put back (``os.utime``) and its size is the
same, so the edit is seen. An entry is *racy* when the file was modified
or changed less than :attr:`FileIndex.racy_margin` seconds before its
digest was taken (git's racy-clean rule, with a margin for filesystems
whose timestamps are coarse): a later edit in the same tick would keep its
``stat``, so a racy entry is read again. The ``stat`` kept is the one taken
before the file was read: a file edited while it is read is read again next time.

The index lives in memory; :meth:`FileIndex.load` and :meth:`FileIndex.save`
keep it in a SQLite database (table ``file_index``) between runs. An
entry is dropped when its file is found missing by name; one for a file
deleted under a directory or a glob stays until its path is met again, and
only ever serves a file with the very same ``stat``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import posixpath
import re
import stat
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pathlib
    import sqlite3
    from collections.abc import Callable, Sequence

#: The digest given to a pattern that matches no file, and to a link whose target is missing.
MISSING = "missing"

#: How many files are read at once, in threads.
READERS = min(8, (os.cpu_count() or 1) + 2)

_BLOCK = 1 << 20
_MAGIC = re.compile(r"[*?[]")


@dataclass(frozen=True)
class FileEntry:
    """What the index remembers of one file.

    :ivar mtime_ns: modification time (ns)
    :ivar ctime_ns: status change time (ns)
    :ivar size: size in bytes
    :ivar inode: inode number
    :ivar digest: sha256 of the content, hex
    :ivar taken_ns: the time (ns, wall clock) just before the file was stat'ed and read
    """

    mtime_ns: int
    ctime_ns: int
    size: int
    inode: int
    digest: str
    taken_ns: int


class FileIndex:
    """Digests of declared files, by path relative to ``base``, with a stat cache.

    :param racy_margin: seconds; an entry whose file was modified less than
        this before its digest was taken is read again (default 2.0, the
        coarsest common filesystem timestamp; 0 trusts nanosecond timestamps)
    :ivar reads: how many files this index has read (a file served from the
        index is not counted): a test or a benchmark counts with it
    """

    def __init__(self, *, racy_margin: float = 2.0) -> None:
        self.racy_margin = racy_margin
        self.reads = 0
        self._entries: dict[str, FileEntry] = {}
        self._changed: set[str] = set()  # entries to write at the next save
        self._forgotten: set[str] = set()  # entries to delete at the next save
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def digests(self, patterns: Sequence[str], base: pathlib.Path) -> dict[str, str]:
        """Each matched file's path (relative, ``/``-separated) → its digest.

        A pattern that matches nothing appears as itself → :data:`MISSING`.
        Files whose ``stat`` is unchanged since the index last read them are
        not read; the others are read in threads (at most :data:`READERS`).

        :raises OSError: a matched file or folder cannot be read (the
            error's ``filename`` names it)
        """
        found, pending = self._survey(patterns, base)
        if len(pending) > 1:
            with concurrent.futures.ThreadPoolExecutor(min(READERS, len(pending))) as pool:
                results = list(pool.map(_read, [path for _, path, _ in pending]))
        else:
            results = [_read(path) for _, path, _ in pending]
        return self._finish(found, pending, results)

    async def digests_async(self, patterns: Sequence[str], base: pathlib.Path) -> dict[str, str]:
        """:meth:`digests` off the event loop: the walk and the stats run in a
        thread, each file to read in a thread of its own (at most :data:`READERS`)."""
        found, pending = await asyncio.to_thread(self._survey, patterns, base)
        limit = asyncio.Semaphore(READERS)

        async def read(path: str) -> tuple[str, os.stat_result]:
            async with limit:
                return await asyncio.to_thread(_read, path)

        results = await asyncio.gather(*(read(path) for _, path, _ in pending))
        return self._finish(found, pending, list(results))

    @classmethod
    def load(cls, connection: sqlite3.Connection, *, racy_margin: float = 2.0) -> FileIndex:
        """An index with the entries :meth:`save` wrote to ``connection``'s database
        (empty when it has none)."""
        index = cls(racy_margin=racy_margin)
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'file_index'"
        ).fetchone()
        if not exists:
            return index
        rows = connection.execute(
            "SELECT path, mtime_ns, ctime_ns, size, inode, digest, taken_ns FROM file_index"
        )
        for path, mtime_ns, ctime_ns, size, inode, digest, taken_ns in rows:
            index._entries[path] = FileEntry(
                mtime_ns, ctime_ns, size, inode % (1 << 64), digest, taken_ns
            )
        return index

    def save(self, connection: sqlite3.Connection) -> None:
        """Write the entries added, changed or dropped since the index was loaded
        into ``connection``'s database, table ``file_index``, in one transaction
        (a savepoint: inside the caller's transaction when one is open)."""
        with self._lock:
            changed = [(path, self._entries[path]) for path in sorted(self._changed)]
            forgotten = sorted(self._forgotten)
            self._changed.clear()
            self._forgotten.clear()
        connection.execute("SAVEPOINT flow2_file_index")
        try:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS file_index (path TEXT PRIMARY KEY, "
                "mtime_ns INTEGER, ctime_ns INTEGER, size INTEGER, inode INTEGER, "
                "digest TEXT, taken_ns INTEGER)"
            )
            connection.executemany(
                "INSERT OR REPLACE INTO file_index VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        path,
                        entry.mtime_ns,
                        entry.ctime_ns,
                        entry.size,
                        # SQLite integers are signed 64-bit; inodes may use all 64 bits.
                        entry.inode - (1 << 64) if entry.inode >= 1 << 63 else entry.inode,
                        entry.digest,
                        entry.taken_ns,
                    )
                    for path, entry in changed
                ],
            )
            connection.executemany(
                "DELETE FROM file_index WHERE path = ?", [(path,) for path in forgotten]
            )
        except BaseException:
            connection.execute("ROLLBACK TO flow2_file_index")
            connection.execute("RELEASE flow2_file_index")
            raise
        connection.execute("RELEASE flow2_file_index")

    # -- the two halves of a pass: stat everything, then read what changed --

    def _survey(
        self, patterns: Sequence[str], base: pathlib.Path
    ) -> tuple[dict[str, str], list[tuple[list[str], str, int]]]:
        """The digests known from the stats, and the files to read: (shown, path, taken)."""
        found: dict[str, str] = {}
        pending: list[tuple[list[str], str, int]] = []
        queued: dict[str, list[str]] = {}
        root = os.path.abspath(base)
        margin = int(self.racy_margin * 1e9)
        for pattern in patterns:
            matched = False
            for shown, path, status in _expand(pattern, root):
                matched = True
                if status is None:
                    found[shown] = MISSING
                    self._forget(path)
                    continue
                if isinstance(status, str):
                    found[shown] = status
                    continue
                if not stat.S_ISREG(status.st_mode):
                    found[shown] = _special(status.st_mode)
                    continue
                taken = time.time_ns()
                entry = self._entries.get(path)
                if (
                    entry is not None
                    and entry.mtime_ns == status.st_mtime_ns
                    and entry.ctime_ns == status.st_ctime_ns
                    and entry.size == status.st_size
                    and entry.inode == status.st_ino
                    and max(entry.mtime_ns, entry.ctime_ns) < entry.taken_ns - margin
                ):
                    found[shown] = entry.digest
                else:
                    found[shown] = ""
                    waiting = queued.get(path)
                    if waiting is None:
                        queued[path] = waiting = [shown]
                        pending.append((waiting, path, taken))
                    else:  # matched by two patterns: read once
                        waiting.append(shown)
            if not matched:
                found[pattern] = MISSING
                self._forget(os.path.normpath(os.path.join(root, pattern)))  # a file deleted
        return found, pending

    def _finish(
        self,
        found: dict[str, str],
        pending: list[tuple[list[str], str, int]],
        results: list[tuple[str, os.stat_result]],
    ) -> dict[str, str]:
        with self._lock:
            self.reads += len(pending)
            for (names, path, taken), (digest, status) in zip(pending, results, strict=True):
                for shown in names:
                    found[shown] = digest
                self._entries[path] = FileEntry(
                    status.st_mtime_ns,
                    status.st_ctime_ns,
                    status.st_size,
                    status.st_ino,
                    digest,
                    taken,
                )
                self._changed.add(path)
                self._forgotten.discard(path)
        return dict(sorted(found.items()))

    def _forget(self, path: str) -> None:
        if self._entries.pop(path, None) is not None:
            self._forgotten.add(path)
            self._changed.discard(path)


def _read(path: str) -> tuple[str, os.stat_result]:
    """The sha256 of the file's bytes, and its stat from before they were read."""
    digest = hashlib.sha256()
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as file:
        before = os.fstat(file.fileno())
        while True:
            size = file.readinto(buffer)
            if not size:
                break
            digest.update(view[:size])
    # The stat from before the read goes with the digest: an edit during the
    # read changes the file's stat, so the next pass reads it again (see
    # test_a_file_edited_while_read_is_read_again).
    return digest.hexdigest(), before


def _special(mode: int) -> str:
    kind = (
        "fifo"
        if stat.S_ISFIFO(mode)
        else "socket"
        if stat.S_ISSOCK(mode)
        else "device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "other"
    )
    return "special:" + kind


# -- patterns ---------------------------------------------------------------------


def _expand(pattern: str, root: str) -> list[tuple[str, str, os.stat_result | str | None]]:
    """The files ``pattern`` matches under ``root``: (shown path, path, its stat;
    None for a dangling link; the digest of a link to a directory met before),
    sorted by shown path."""
    normal = pattern.replace(os.sep, "/")
    segments = [segment for segment in normal.split("/") if segment not in ("", ".")]
    literal: list[str] = []
    for segment in segments:
        if _MAGIC.search(segment):
            break
        literal.append(segment)
    rest = segments[len(literal) :]
    shown_prefix = posixpath.normpath("/".join(literal)) if literal else ""
    if normal.startswith("/"):
        shown_prefix = "/" + shown_prefix.lstrip("/")
    start = os.path.normpath(os.path.join(root, shown_prefix)) if shown_prefix else root
    if not rest:  # a path: a file, or a directory (every file under it)
        try:
            status = os.stat(start)
        except FileNotFoundError:
            if os.path.islink(start):
                return [(shown_prefix, start, None)]
            return []
        if not stat.S_ISDIR(status.st_mode):
            return [(shown_prefix, start, status)]
        return sorted(_walk(start, shown_prefix, lambda relative: True, None))
    matcher = _compile(rest)
    depth = None if "**" in rest else len(rest)
    return sorted(_walk(start, shown_prefix, matcher, depth))


def _walk(
    start: str, shown_prefix: str, matches: Callable[[str], bool], depth: int | None
) -> list[tuple[str, str, os.stat_result | str | None]]:
    """Every file under ``start`` whose path relative to it ``matches``, or that
    lies in a folder that matches (``src/*`` covers ``src/pkg/util.py``), down
    to ``depth`` levels (None: all); each folder walked once.

    The real folders are walked first, links to folders after them, in name
    order: a folder reached both ways is walked where it really is, and a
    link to a folder already walked (a second link, a link back up) is
    recorded as the link.
    """
    found: list[tuple[str, str, os.stat_result | str | None]] = []
    try:
        top = os.stat(start)
    except FileNotFoundError:
        return found
    if not stat.S_ISDIR(top.st_mode):
        return found
    visited = {(top.st_dev, top.st_ino)}
    # (path, relative path with a trailing /, level, every file below counts)
    folders: list[tuple[str, str, int, bool]] = [(start, "", 0, False)]
    links: list[tuple[str, str, int, bool, os.stat_result]] = []  # links to folders, for later

    def add(inside: str, path: str, status: os.stat_result | str | None) -> None:
        found.append((f"{shown_prefix}/{inside}" if shown_prefix else inside, path, status))

    while folders or links:
        if not folders:
            path, inside, level, everything, status = links.pop(0)
            identity = (status.st_dev, status.st_ino)
            if identity in visited:
                if everything or matches(inside):
                    add(inside, path, _link_digest(path))
                continue
            visited.add(identity)
            folders.append((path, inside + "/", level, everything or matches(inside)))
            continue
        folder, relative, level, everything = folders.pop()
        with os.scandir(folder) as scanned:
            entries = sorted(scanned, key=lambda entry: entry.name)
        for entry in entries:
            inside = f"{relative}{entry.name}"
            try:
                status = entry.stat()  # follows links
            except FileNotFoundError:  # a link whose target is missing
                if everything or matches(inside):
                    add(inside, entry.path, None)
                continue
            if stat.S_ISDIR(status.st_mode):
                below = everything or matches(inside)
                if not below and depth is not None and level + 1 >= depth:
                    continue
                if entry.is_symlink():
                    links.append((entry.path, inside, level + 1, everything, status))
                    continue
                identity = (status.st_dev, status.st_ino)
                if identity not in visited:  # (a bind mount seen twice is walked once)
                    visited.add(identity)
                    folders.append((entry.path, inside + "/", level + 1, below))
            elif everything or matches(inside):
                add(inside, entry.path, status)
    return found


def _link_digest(path: str) -> str:
    """A link to a directory met before: recorded as the link (where it points)."""
    target = os.readlink(path)
    return "link:" + hashlib.sha256(os.fsencode(target)).hexdigest()


def _compile(segments: list[str]) -> Callable[[str], bool]:
    """A matcher of relative paths for glob segments (``**`` any number of folders)."""
    pieces: list[str] = []
    for number, segment in enumerate(segments):
        last = number == len(segments) - 1
        if segment == "**":
            pieces.append(".*" if last else "(?:[^/]*/)*")
            continue
        pieces.append(_translate(segment) + ("" if last else "/"))
    return re.compile("".join(pieces), re.DOTALL).fullmatch  # type: ignore[return-value]


def _translate(segment: str) -> str:
    """One name's glob as a regular expression (no ``/`` crossed)."""
    out: list[str] = []
    index = 0
    while index < len(segment):
        char = segment[index]
        index += 1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = segment.find(
                "]", index + 1 if segment[index : index + 1] in ("!", "]") else index
            )
            if end < 0:
                out.append(re.escape(char))
                continue
            inner = segment[index:end]
            index = end + 1
            if inner.startswith("!"):
                inner = "^" + inner[1:]
            out.append("[" + inner.replace("\\", "\\\\") + "]")
        else:
            out.append(re.escape(char))
    return "".join(out)
