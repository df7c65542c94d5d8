"""``flow2 run --watch``: run, then run again each time a declared source changes.

The files watched are those the flow's tasks declare as ``sources:``
(paths, globs, directories under the working directory), polled with
``os.stat`` every :data:`POLL_SECONDS`. A change is acted on once the files
have stayed the same for :data:`DEBOUNCE_SECONDS` (an editor's save, a
``git checkout``, is one change). Each run after the first resumes the one
before it: a task whose key is unchanged is reused, so only the tasks whose
sources changed run, with what depends on them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._arguments import EXIT_INTERRUPTED, UsageProblem

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._engine._task import Task

#: Seconds between two looks at the watched files.
POLL_SECONDS = 0.3
#: Seconds the files must stay unchanged before the flow runs again.
DEBOUNCE_SECONDS = 0.3

#: What is compared of a file: it changed when any of these did.
Stamp = tuple[int, int, int, int]


def declared_sources(root: Task) -> list[str]:
    """The ``sources:`` patterns of every task of the tree, each once, in tree order."""
    from .._engine._task import Task

    found: dict[str, None] = {}
    stack: list[Any] = [root]
    while stack:
        task = stack.pop()
        if not isinstance(task, Task):
            continue
        found.update(dict.fromkeys(task.sources))
        stack.extend(reversed(task.children))
    return list(found)


def snapshot(patterns: list[str], base: Path) -> dict[str, Stamp]:
    """Each file the patterns match now → its stat stamp (a missing file is left out)."""
    from .._store._reuse import outside

    files: dict[str, Stamp] = {}
    for pattern in patterns:
        if outside(pattern):
            continue  # never read: see test_declared_files_out_of_the_working_directory…
        target = base / pattern
        if target.is_file():
            paths = [target]
        elif target.is_dir():
            paths = [path for path in target.rglob("*") if path.is_file()]
        else:
            paths = [path for path in base.glob(pattern) if path.is_file()]
        for path in paths:
            try:
                found = os.stat(path)
            except OSError:  # gone since it was listed: it changed, and shows as missing
                continue
            stamp = (found.st_mtime_ns, found.st_ctime_ns, found.st_size, found.st_ino)
            files[path.relative_to(base).as_posix()] = stamp
    return files


def changes(before: dict[str, Stamp], after: dict[str, Stamp]) -> list[str]:
    """The files that changed, appeared or went, by name."""
    names = before.keys() | after.keys()
    return sorted(name for name in names if before.get(name) != after.get(name))


def watch(root: Task, file: str, run: Callable[[bool], int]) -> int:
    """Run, then run again whenever a declared source changes, until Ctrl-C.

    :param root: the flow's tree (its tasks' ``sources:`` are watched)
    :param file: the flow file, named in the error when nothing is declared
    :param run: runs the flow once (True: the first run) and returns its exit code
    :returns: 130 once Ctrl-C (or another signal that stopped a run) ends it
    :raises UsageProblem: when no task declares ``sources:``
    """
    patterns = declared_sources(root)
    if not patterns:
        raise UsageProblem(
            f"{file}: --watch watches the files the tasks declare as sources:, and no task "
            f"declares any; add e.g. `sources: [src]` (paths, globs or directories) to the "
            f"tasks that read them"
        )
    base = Path.cwd()
    try:
        code = run(True)
        while code != EXIT_INTERRUPTED:
            seen = snapshot(patterns, base)
            click.echo(
                f"flow2: watching {len(seen)} file{'' if len(seen) == 1 else 's'} "
                f"({', '.join(patterns)}); Ctrl-C to stop"
            )
            changed = _wait_for_change(patterns, base, seen)
            shown = ", ".join(changed[:3])
            if len(changed) > 3:
                shown += f" and {len(changed) - 3} more"
            click.echo(f"──── {shown} changed: running again ────")
            code = run(False)
    except KeyboardInterrupt:
        # Ctrl-C between runs: the watch ends, as a run stopped by it does.
        click.echo("flow2: stopped watching", err=True)
    return EXIT_INTERRUPTED


def _wait_for_change(patterns: list[str], base: Path, seen: dict[str, Stamp]) -> list[str]:
    """Block until the files differ from ``seen`` and then stay the same for the debounce;
    return the files that changed."""
    while True:
        time.sleep(POLL_SECONDS)
        now = snapshot(patterns, base)
        if now == seen:
            continue
        while True:
            time.sleep(DEBOUNCE_SECONDS)
            later = snapshot(patterns, base)
            if later == now:
                break
            now = later
        changed = changes(seen, now)
        if changed:  # back as it was: no change
            return changed
