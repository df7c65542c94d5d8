"""``flow2 cache``: list, show, clear and prune the cache entries of the run store."""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

import click

from ._arguments import UsageProblem, store_option
from ._stores import chosen_store, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from .._store._cache import CacheEntry
    from .._store._database import Store


@click.group()
@store_option
@click.pass_context
def cache(context: click.Context, store: str | None) -> None:
    """See and delete the cache: the results kept for `cache: true` tasks (and for
    --resume), with the reuse key each was computed under. Entries also go with their
    run when the store's retention deletes it ($FLOW2_STORE_KEEP, 100 runs)."""
    context.obj = store


def _directory(context: click.Context, store: str | None) -> Path:
    """``--store`` given after the subcommand, else before it, else the default."""
    return chosen_store(store if store is not None else context.obj)


def _entries(directory: Path, task: str | None = None) -> list[CacheEntry]:
    from .._store._cache import entries

    _, connection = open_store(directory)
    try:
        return entries(connection, task)
    finally:
        connection.close()


def _path(entry: CacheEntry) -> str:
    return " › ".join(entry.path)


def _totals(found: list[CacheEntry]) -> str:
    from .._store._cache import human_size

    size = sum(entry.size for entry in found)
    return f"{len(found)} entr{'y' if len(found) == 1 else 'ies'}, {human_size(size)}"


def _copies(count: int) -> str:
    """`` (with 3 kept outputs …)``: the output copies deleted with the entries, when any."""
    if not count:
        return ""
    return f" (with {count} kept output{'' if count == 1 else 's'} no entry uses now)"


@cache.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
@store_option
@click.pass_context
def cache_list(context: click.Context, as_json: bool, store: str | None) -> None:
    """Print each cache entry (oldest first): its task, key, size, age and run; and the totals."""
    from .._store._cache import human_age, human_size

    found = _entries(_directory(context, store))
    now = time.time()
    if as_json:
        listed = [entry.summary(now) for entry in found]
        total = sum(entry.size for entry in found)
        click.echo(json.dumps({"entries": listed, "count": len(found), "size": total}, indent=2))
        return
    if not found:
        click.echo("the cache is empty")
        return
    width = max(len(_path(entry)) for entry in found)
    for entry in found:
        kept = "" if entry.shared else "  (resume only)"
        if entry.kept:
            kept += f"  (outputs kept: {human_size(entry.kept_size)})"
        click.echo(
            f"{_path(entry):<{width}}  {entry.key[:12]}  {human_size(entry.size):>10}  "
            f"{human_age(now - entry.created):>6}  run {entry.run_id}{kept}"
        )
    click.echo(_totals(found))


@cache.command(name="show")
@click.argument("task")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of lines.")
@store_option
@click.pass_context
def cache_show(context: click.Context, task: str, as_json: bool, store: str | None) -> None:
    """Print TASK's entries (TASK: its key, its name or its path such as Release/Wheel):
    the parts of each key, its outputs' digests (and the size of those kept for
    restore_outputs) and its result's size."""
    from .._store._cache import human_age, human_size

    found = _entries(_directory(context, store), task)
    if not found:
        raise UsageProblem(
            f"no cache entry for {task!r}; `flow2 cache list` shows the tasks that have some"
        )
    now = time.time()
    if as_json:
        shown: list[dict[str, Any]] = [
            {
                **entry.summary(now),
                "parts": entry.parts,
                "outputs": entry.outputs,
                "kept_outputs": {
                    path: {"digest": digest, "mode": oct(mode), "size": size}
                    for path, (digest, mode, size) in entry.kept.items()
                },
                "result_size": entry.result_size,
            }
            for entry in found
        ]
        click.echo(json.dumps({"task": task, "entries": shown}, indent=2))
        return
    for entry in found:
        kept = "" if entry.shared else ", kept for its run's resume only"
        click.echo(
            f"{_path(entry)}: key {entry.key}, {human_size(entry.size)}, "
            f"{human_age(now - entry.created)} old, run {entry.run_id} "
            f"(computed in run {entry.origin}){kept}"
        )
        for name, digest in sorted(entry.parts.items()):
            click.echo(f"  {name}: {digest}")
        for file, digest in sorted(entry.outputs.items()):
            copied = entry.kept.get(file)
            copy = f" (kept, {human_size(copied[2])})" if copied is not None else ""
            click.echo(f"  output {file}: {digest}{copy}")
        click.echo(f"  result: {human_size(entry.result_size)}")
        if entry.kept:
            click.echo(f"  outputs kept: {human_size(entry.kept_size)}")


@cache.command(name="clear")
@click.argument("task", required=False)
@store_option
@click.pass_context
def cache_clear(context: click.Context, task: str | None, store: str | None) -> None:
    """Delete every cache entry, or TASK's only (its key, its name or its path): the
    tasks run again the next time, a resume's included."""
    from .._store._cache import delete, entries

    directory = _directory(context, store)
    found_store, connection = open_store(directory)
    try:
        doomed = entries(connection, task)
        if task is not None and not doomed:
            raise UsageProblem(
                f"no cache entry for {task!r}; `flow2 cache list` shows the tasks that have some"
            )
        with _failing_as_usage(found_store):
            copies = delete(connection, doomed)
    finally:
        connection.close()
    click.echo(f"deleted {_totals(doomed)}{_copies(copies)} from {directory}")


@cache.command(name="prune")
@click.option(
    "--max-size",
    "max_size",
    metavar="SIZE",
    default=None,
    help="Delete the oldest entries until the rest take at most SIZE (500M, 2G, bytes).",
)
@click.option(
    "--older-than",
    "older_than",
    type=click.FloatRange(min=0),
    default=None,
    metavar="DAYS",
    help="Delete the entries written more than DAYS days ago.",
)
@store_option
@click.pass_context
def cache_prune(
    context: click.Context, max_size: str | None, older_than: float | None, store: str | None
) -> None:
    """Delete the entries older than --older-than DAYS, then the oldest until the rest
    fit in --max-size SIZE."""
    from .._engine._exceptions import ConfigurationError
    from .._store._cache import delete, entries, parse_size, to_prune

    if max_size is None and older_than is None:
        raise UsageProblem("say what to delete: --max-size SIZE, --older-than DAYS, or both")
    try:
        limit = parse_size(max_size) if max_size is not None else None
    except ConfigurationError as error:
        raise UsageProblem(f"--max-size {error}") from None
    directory = _directory(context, store)
    found_store, connection = open_store(directory)
    try:
        found = entries(connection)
        doomed = to_prune(found, max_size=limit, older_than_days=older_than)
        with _failing_as_usage(found_store):
            copies = delete(connection, doomed)
    finally:
        connection.close()
    left = [entry for entry in found if entry not in doomed]
    click.echo(f"deleted {_totals(doomed)}{_copies(copies)} from {directory}; {_totals(left)} left")


@contextlib.contextmanager
def _failing_as_usage(store: Store) -> Iterator[None]:
    """A store that cannot be written: one message naming it, exit code 2."""
    import sqlite3

    try:
        yield
    except sqlite3.Error as error:
        raise UsageProblem(str(store.failed(error))) from None
