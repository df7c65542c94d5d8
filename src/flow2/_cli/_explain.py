"""``flow2 explain``: why a task of a recorded run was reused, cached, or ran again."""

from __future__ import annotations

import json

import click

from ._arguments import store_option
from ._stores import chosen_store, find_recorded_task, open_store


@click.command()
@click.argument("task")
@click.argument("run_reference", metavar="[RUN]", default="last")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of lines.")
@store_option
def explain(task: str, run_reference: str, as_json: bool, store: str | None) -> None:
    """Print what was decided for TASK (its key, its path or its name) in RUN (default:
    last): reused, cached or ran, and why; the parts of its reuse key; and for a task that
    ran again, each difference from the entry it could have used."""
    from .._store._explain import explanation, explanation_lines

    directory = chosen_store(store)
    recorded, found = find_recorded_task(directory, run_reference, task)
    _, connection = open_store(directory)
    try:
        told = explanation(connection, recorded, found)
    finally:
        connection.close()
    if as_json:
        click.echo(json.dumps(told, indent=2))
    else:
        for line in explanation_lines(told):
            click.echo(line)
