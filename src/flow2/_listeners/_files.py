"""Files flow2 writes that may hold results or output: readable by their owner only.

Event files, task log files, the run store and reports carry what tasks
printed and returned, error messages, sometimes a secret the masker did not
know. They are created with mode 0600 (directories 0700), whatever the
umask, as ssh and gpg create theirs; an existing file keeps its mode.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from pathlib import Path

#: Mode of a file flow2 creates.
FILE_MODE = 0o600
#: Mode of a directory flow2 creates.
DIRECTORY_MODE = 0o700


def open_private(path: str | os.PathLike[str], *, append: bool = False) -> TextIO:
    """Open ``path`` for writing UTF-8 text, created owner-only when it is new.

    :param append: add to its end (else the file is emptied)
    :raises OSError: when it cannot be opened
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    descriptor = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    return open(descriptor, "a" if append else "w", encoding="utf-8")


def make_private_directory(path: Path) -> None:
    """Create ``path`` and its missing parents, each new one owner-only."""
    # mkdir(parents=True) would give the parents the default mode.
    missing = [path, *(parent for parent in path.parents if not parent.exists())]
    for directory in reversed(missing):
        directory.mkdir(mode=DIRECTORY_MODE, exist_ok=True)


def create_private_file(path: str | os.PathLike[str]) -> None:
    """Create ``path`` empty and owner-only unless it exists (before another library opens it)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(descriptor)
