"""Commands that look at a flow without running it (validate, render, show, graph), and plugins."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from .._engine._exceptions import DefinitionError
from .._flows._loader import render as render_flow
from ._arguments import FLOW_HELP, UsageProblem, find_flow, load_flow, parse_variables

if TYPE_CHECKING:
    from .._listeners._secrets import SecretMasker


@click.command(epilog=FLOW_HELP)
@click.argument("flow")
@click.argument("variables", nargs=-1, metavar="[VARIABLE=VALUE]...")
def validate(flow: str, variables: tuple[str, ...]) -> None:
    """Load FLOW and check it, running nothing."""
    loaded, _ = load_flow(flow, variables)
    nodes = loaded.nodes()
    groups = sum(1 for node in nodes if node.task.children or not node.task.stores_result)
    tasks = len(nodes) - groups
    click.echo(
        f"{loaded.file}: valid flow {loaded.root.task.name!r}, "
        f"{tasks} task{'' if tasks == 1 else 's'} in {groups} group{'' if groups == 1 else 's'}"
    )


@click.command(epilog=FLOW_HELP)
@click.argument("flow")
@click.argument("variables", nargs=-1, metavar="[VARIABLE=VALUE]...")
def render(flow: str, variables: tuple[str, ...]) -> None:
    """Print FLOW's text after templating (${{ … }} is left for run time)."""
    values = parse_variables(variables)
    try:
        text = render_flow(find_flow(flow), values)
    except DefinitionError as error:
        raise UsageProblem(str(error)) from None
    text = _masker(values, _declared_secrets(text)).mask(text)
    click.echo(text, nl=not text.endswith("\n"))


@click.command(epilog=FLOW_HELP)
@click.argument("flow")
@click.argument("variables", nargs=-1, metavar="[VARIABLE=VALUE]...")
def show(flow: str, variables: tuple[str, ...]) -> None:
    """Print FLOW's task tree, with each task's plugin and options."""
    from .._flows._graph import tree_lines

    loaded, values = load_flow(flow, variables)
    masker = _masker(values, loaded.secrets)
    for line in tree_lines(loaded.root):
        click.echo(masker.mask(line))


@click.command(epilog=FLOW_HELP)
@click.argument("flow")
@click.argument("variables", nargs=-1, metavar="[VARIABLE=VALUE]...")
@click.option("--dot", is_flag=True, help="Print Graphviz DOT instead of a Mermaid flowchart.")
def graph(flow: str, variables: tuple[str, ...], dot: bool) -> None:
    """Print FLOW as a Mermaid flowchart (paste it in a ```mermaid block) or as DOT.

    Groups are boxes; an arrow means "runs after". Children of a parallel
    group have no arrows between them. A dashed arrow labelled "needs" goes
    from the task storing a result to each task that needs it.
    """
    from .._flows._graph import dot_graph, mermaid_graph

    loaded, _ = load_flow(flow, variables)
    click.echo(dot_graph(loaded.root) if dot else mermaid_graph(loaded.root))


@click.command()
def plugins() -> None:
    """List the installed plugins: name, what it loads, the distribution providing it."""
    from .._flows._plugins import installed_plugins

    found = installed_plugins()
    if not found:
        click.echo("no plugins installed (is flow2 itself installed?)")
        return
    width = max(map(len, found))
    for plugin in found.values():
        click.echo(f"{plugin.name.ljust(width)}  {plugin.target}  ({plugin.distribution})")
        summary = plugin.summary()
        if summary:
            click.echo(f"{' ' * width}  {summary}")


def _masker(variables: dict[str, Any], declared: list[str]) -> SecretMasker:
    """A flow's secrets: secret-named variables (environment, command line), declared ones."""
    from .._listeners._secrets import SecretMasker

    masker = SecretMasker.from_environment(
        str(variables[name]) if name in variables else os.environ.get(name, "") for name in declared
    )
    masker.add_from_mapping({key: str(value) for key, value in variables.items()})
    return masker


def _declared_secrets(text: str) -> list[str]:
    """The names in a rendered flow's top-level ``secrets:`` list; none when it cannot be read."""
    from .._flows._yaml import parse

    try:
        # flow2's own YAML reading: bad tags, alias bombs and deep nesting
        # are a FlowFileError there, not a crash (tests/test_fuzz.py).
        data = parse("", text)
    except DefinitionError:
        return []
    names = data.get("secrets") if isinstance(data, dict) else None
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []
