"""``flow2 runs``: list the recorded runs; show one, print a task's output, prune old ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._arguments import UsageProblem, store_option
from ._stores import chosen_store, find_recorded_task, find_run, open_store

if TYPE_CHECKING:
    from pathlib import Path


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of lines.")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Show at most this many runs. Default: 20 lines; every run with --json.",
)
@store_option
@click.pass_context
def runs(context: click.Context, as_json: bool, limit: int | None, store: str | None) -> None:
    """List the recorded runs, newest first: id, name, start, duration, status, counts.

    RUN in the subcommands is a run's id, a unique prefix of one, or last.
    """
    context.ensure_object(dict)
    context.obj["store"] = store
    if context.invoked_subcommand is not None:
        return
    from .._store._database import StoreError
    from .._store._history import run_line, runs_as_json

    found, connection = open_store(chosen_store(store))
    try:
        recorded = found.runs(connection, limit if limit is not None or as_json else 20)
    except StoreError as error:
        raise UsageProblem(str(error)) from None
    finally:
        connection.close()
    if as_json:
        click.echo(runs_as_json(recorded))
    elif not recorded:
        click.echo(f"no runs recorded in {found.directory}")
    else:
        for stored in recorded:
            click.echo(run_line(stored))


def _subcommand_store(context: click.Context, store: str | None) -> Path:
    return chosen_store(store if store is not None else context.obj.get("store"))


@runs.command(name="show")
@click.argument("run_reference", metavar="RUN")
@store_option
@click.pass_context
def runs_show(context: click.Context, run_reference: str, store: str | None) -> None:
    """Print RUN's tree with each task's status and time, its summary, and why tasks ran again."""
    from .._store._history import show_lines

    for line in show_lines(find_run(_subcommand_store(context, store), run_reference)):
        click.echo(line)


@runs.command(name="logs")
@click.argument("run_reference", metavar="RUN")
@click.argument("task")
@store_option
@click.pass_context
def runs_logs(context: click.Context, run_reference: str, task: str, store: str | None) -> None:
    """Print the output TASK (its key, its path or its name) recorded in RUN."""
    from .._store._database import Store
    from .._store._history import task_output

    directory = _subcommand_store(context, store)
    recorded, found = find_recorded_task(directory, run_reference, task)
    text = task_output(Store(directory), recorded, found)
    if text is None:
        click.echo(
            f"task {' › '.join(found.path)!r} recorded no output in run {recorded.id}", err=True
        )
        return
    click.echo(text, nl=False)


@runs.command(name="prune")
@click.option("--keep", type=click.IntRange(min=0), default=None, help="Keep the newest N runs.")
@click.option(
    "--older-than",
    "older_than",
    type=click.FloatRange(min=0),
    default=None,
    metavar="DAYS",
    help="Delete the runs started more than DAYS days ago.",
)
@store_option
@click.pass_context
def runs_prune(
    context: click.Context, keep: int | None, older_than: float | None, store: str | None
) -> None:
    """Delete runs and their log files: those beyond the newest --keep N, or older than
    --older-than DAYS. Runs still going on are kept."""
    if keep is None and older_than is None:
        raise UsageProblem("say what to delete: --keep N, --older-than DAYS, or both")
    from .._store._database import StoreError

    found, connection = open_store(_subcommand_store(context, store))
    try:
        deleted = found.prune(connection, keep=keep, older_than_days=older_than)
    except StoreError as error:
        raise UsageProblem(str(error)) from None
    finally:
        connection.close()
    click.echo(
        f"deleted {len(deleted)} run{'' if len(deleted) == 1 else 's'} from {found.directory}"
    )
