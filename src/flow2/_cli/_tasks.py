"""Commands for a project's own flow: ``list`` (its tasks), ``init`` (a starter), ``schema``."""

from __future__ import annotations

import re
from pathlib import Path

import click

from .._listeners._text import visible
from ._arguments import FLOW_HELP, UsageProblem, load_flow, loaded_masker
from ._words import DEFAULT_FLOW_NAMES, flow_and_variables

#: What ``flow2 init`` writes; ``{name}`` is the project's name.
STARTER = """\
# The tasks of {name}, run by flow2 (`flow2 --help` says where its docs are).
#   flow2 list              lists the tasks with their descriptions
#   flow2 run               runs the default task (below)
#   flow2 run NAME          runs that task, and the tasks it needs
#   flow2 run hello -- a b  passes a and b to the task as args
# A node with cmd: is a shell command, tasks: runs its tasks one after
# another, parallel: all at once. `flow2 schema` prints the JSON Schema
# of this format for your editor.
name: {name}
default: check

tasks:
  - name: hello
    description: Say hello (the words after -- are the args)
    cmd: echo hello ${{{{ args }}}}

  - name: check
    description: Run the checks, side by side
    parallel:
      - name: lint
        description: Look for mistakes
        cmd: echo "lint found nothing to fix"
      - name: test
        description: Run the tests
        cmd: echo "all tests passed"
"""


@click.command("list", epilog=FLOW_HELP)
@click.argument("words", nargs=-1, metavar="[FLOW] [VARIABLE=VALUE]...")
def list_tasks(words: tuple[str, ...]) -> None:
    """List the tasks and groups of FLOW (default: the nearest flow2.yml) with their
    descriptions: the names `flow2 run NAME` takes."""
    from .._flows._names import named_tasks

    loaded, values = load_flow(*flow_and_variables(words))
    masker = loaded_masker(loaded, values)
    tasks = named_tasks(loaded.root)
    click.echo(masker.mask(f"{loaded.file}: tasks of '{visible(loaded.root.task.name)}'"))
    if not tasks:
        click.echo("  (one task, the whole flow: flow2 run)")
        return
    width = max(len(task.name) + 2 * task.depth for task in tasks)
    for task in tasks:
        label = f"{'  ' * task.depth}{task.name}".ljust(width)
        notes = [task.description] if task.description else []
        if task.name == loaded.default:
            notes.append("[default]")
        click.echo(masker.mask(visible(f"  {label}  {' '.join(notes)}".rstrip())))


@click.command()
@click.option("--force", is_flag=True, help="Replace an existing flow2.yml.")
def init(force: bool) -> None:
    """Write a small commented flow2.yml in the working directory, ready for `flow2 run`."""
    target = Path(DEFAULT_FLOW_NAMES[0])
    existing = [Path(name) for name in DEFAULT_FLOW_NAMES if Path(name).exists()]
    if existing and not force:
        raise UsageProblem(
            f"{existing[0]} exists already; edit it, or replace it with `flow2 init --force`"
        )
    folder = Path.cwd().name
    name = folder if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._-]*", folder) else "project"
    try:
        target.write_text(STARTER.format(name=name), encoding="utf-8")
    except OSError as error:
        raise UsageProblem(f"cannot write {target}: {error.strerror or error}") from None
    click.echo(f"wrote {target}: `flow2 list` shows its tasks, `flow2 run` runs the default")


@click.command()
def schema() -> None:
    """Print the JSON Schema of flow files (for editors: completion and checks of keys)."""
    from .._flows._schema import schema_text

    click.echo(schema_text(), nl=False)
