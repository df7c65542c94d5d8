"""Commands that look at a flow without running it (validate, render, show, graph), and plugins."""

from __future__ import annotations

import click

from .._engine._exceptions import DefinitionError
from .._flows._loader import render as render_flow
from .._listeners._text import visible
from ._arguments import (
    FLOW_HELP,
    UsageProblem,
    declared_secrets,
    find_flow,
    flow_masker,
    load_flow,
    loaded_masker,
    parse_variables,
)
from ._words import flow_and_variables


@click.command(epilog=FLOW_HELP)
@click.argument("words", nargs=-1, metavar="[FLOW] [VARIABLE=VALUE]...")
def validate(words: tuple[str, ...]) -> None:
    """Load FLOW (default: the nearest flow2.yml) and check it, running nothing."""
    flow, variables = flow_and_variables(words)
    loaded, values = load_flow(flow, variables)
    masker = loaded_masker(loaded, values)
    nodes = loaded.nodes()
    groups = sum(1 for node in nodes if node.task.children or not node.task.stores_result)
    tasks = len(nodes) - groups
    click.echo(
        masker.mask(
            f"{loaded.file}: valid flow '{visible(loaded.root.task.name)}', {tasks} "
            f"task{'' if tasks == 1 else 's'} in {groups} group{'' if groups == 1 else 's'}"
        )
    )


@click.command(epilog=FLOW_HELP)
@click.argument("words", nargs=-1, metavar="[FLOW] [VARIABLE=VALUE]...")
def render(words: tuple[str, ...]) -> None:
    """Print FLOW's text after templating (${{ … }} is left for run time)."""
    flow, variables = flow_and_variables(words)
    values = parse_variables(variables)
    try:
        text = render_flow(find_flow(flow), values)
    except DefinitionError as error:
        raise UsageProblem(str(error), masker=flow_masker(values, [])) from None
    text = flow_masker(values, declared_secrets(text)).mask(text)
    click.echo(text, nl=not text.endswith("\n"))


@click.command(epilog=FLOW_HELP)
@click.argument("words", nargs=-1, metavar="[FLOW] [VARIABLE=VALUE]...")
def show(words: tuple[str, ...]) -> None:
    """Print FLOW's task tree, with each task's plugin and options."""
    flow, variables = flow_and_variables(words)
    from .._flows._graph import tree_lines

    loaded, values = load_flow(flow, variables)
    masker = loaded_masker(loaded, values)
    for line in tree_lines(loaded.root):
        click.echo(masker.mask(line))


@click.command(epilog=FLOW_HELP)
@click.argument("words", nargs=-1, metavar="[FLOW] [VARIABLE=VALUE]...")
@click.option("--dot", is_flag=True, help="Print Graphviz DOT instead of a Mermaid flowchart.")
def graph(words: tuple[str, ...], dot: bool) -> None:
    """Print FLOW as a Mermaid flowchart (paste it in a ```mermaid block) or as DOT.

    Groups are boxes; an arrow means "runs after". Children of a parallel
    group have no arrows between them. A dashed arrow labelled "needs" goes
    from the task storing a result to each task that needs it.
    """
    flow, variables = flow_and_variables(words)
    from .._flows._graph import dot_graph, mermaid_graph

    loaded, values = load_flow(flow, variables)
    text = dot_graph(loaded.root) if dot else mermaid_graph(loaded.root)
    click.echo(loaded_masker(loaded, values).mask(text))


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
