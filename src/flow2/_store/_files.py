"""Content digests of the files a task declares (``sources:``, ``outputs:``).

A pattern is a path, a glob (``src/**/*.py``) or a directory (every file
under it), relative to the flow's working directory. Each file's digest is
a sha256 of its bytes.
"""

from __future__ import annotations

import hashlib
import pathlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The digest given to a pattern that matches no file.
MISSING = "missing"


class FileIndex:
    """Digests of declared files, by path relative to ``base``."""

    def digests(self, patterns: Sequence[str], base: pathlib.Path) -> dict[str, str]:
        """Each matched file's path (relative, ``/``-separated) → its digest.

        A pattern that matches nothing appears as itself → :data:`MISSING`.
        """
        found: dict[str, str] = {}
        for pattern in patterns:
            paths = _expand(pattern, base)
            if not paths:
                found[pattern] = MISSING
            for path in paths:
                found[path.relative_to(base).as_posix()] = _hash(path)
        return dict(sorted(found.items()))


def _expand(pattern: str, base: pathlib.Path) -> list[pathlib.Path]:
    target = base / pattern
    if target.is_file():
        return [target]
    if target.is_dir():
        return sorted(path for path in target.rglob("*") if path.is_file())
    return sorted(path for path in base.glob(pattern) if path.is_file())


def _hash(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
