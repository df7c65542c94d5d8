"""The ``flow2`` command: run, check and draw YAML flows, list plugins, see and resume runs.

Exit codes: 0 everything succeeded, 1 a task failed, 2 a usage or definition
error (nothing ran), 128 + the signal's number when a signal stopped the run
(130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).

The commands live by what they do: :mod:`._run` (run), :mod:`._resume` (resume),
:mod:`._runs` (runs and its subcommands), :mod:`._explain` (explain),
:mod:`._cache` (cache and its subcommands), :mod:`._watch` (run --watch),
:mod:`._report` (report), :mod:`._inspect` (validate, render, show, graph,
plugins), :mod:`._tasks` (list, init, schema); what they share is in
:mod:`._arguments` (FLOW, VARIABLE=VALUE, options) and :mod:`._stores` (the
store, RUN, log folders).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from ._cache import cache
from ._explain import explain
from ._inspect import graph, plugins, render, show, validate
from ._report import report
from ._resume import resume
from ._run import run
from ._runs import runs
from ._tasks import init, list_tasks, schema


def documentation() -> str:
    """Where an installed flow2 documents itself, for ``flow2 --help``.

    The ``Documentation`` (else ``Homepage``) URL of the package's
    ``[project.urls]`` when it has one; else ``flows.md`` of the documentation
    the wheel installs in the package (``flow2/docs/``), or of the source
    checkout an editable install runs from; else the installed metadata file,
    which holds the README.
    """
    # Here, not at the top: the package metadata is read (email parsing,
    # zip support) only when help is shown, never for a run.
    import importlib.metadata

    try:
        distribution = importlib.metadata.distribution("flow2")
    except importlib.metadata.PackageNotFoundError:
        distribution = None
    if distribution is not None:
        urls: dict[str, str] = dict(
            entry.split(", ", 1)
            for entry in distribution.metadata.get_all("Project-URL") or []
            if ", " in entry
        )
        for label in ("Documentation", "Homepage"):
            if label in urls:
                return urls[label]
    package = Path(__file__).resolve().parent.parent
    for folder in (package / "docs", package.parent.parent / "docs"):
        if (folder / "flows.md").is_file():
            return str(folder / "flows.md")
    files = (distribution.files or []) if distribution is not None else []
    for file in files:
        if file.name == "METADATA":
            return f"the README, kept in {file.locate()}"
    return "the README of the flow2 project"  # pragma: no cover - metadata without files


class _Group(click.Group):
    """The ``flow2`` group, whose help ends with where the documentation is.

    That place is looked up when the help is shown (:func:`documentation`),
    not when the command is imported: a run never reads the package metadata.
    """

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        formatter.write_paragraph()
        with formatter.indentation():
            # \b keeps click from breaking the URL or path across lines.
            formatter.write_text(f"\b\nDocumentation: {documentation()}")


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 all succeeded, 1 a task failed (or the events file could not be "
    "written), 2 usage or definition error, 128 + the signal when a signal stopped the run "
    "(130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).",
    commands=[
        run,
        list_tasks,
        init,
        resume,
        runs,
        explain,
        cache,
        report,
        validate,
        render,
        show,
        graph,
        plugins,
        schema,
    ],
)
@click.version_option(package_name="flow2", prog_name="flow2")
def cli() -> None:
    """Run workflows written as YAML files: serial and parallel tasks, shell commands,
    Python callbacks and plugins."""
    import_from_working_directory()


def import_from_working_directory() -> None:
    """Let ``callback: module:function`` find modules in the working directory.

    ``python -m flow2`` has the working directory first on ``sys.path``; the
    ``flow2`` console script has its own ``bin`` folder there instead. Both
    commands find the same callbacks with this.
    """
    folder = os.getcwd()
    if "" not in sys.path and folder not in sys.path:
        sys.path.insert(0, folder)


def main(arguments: list[str] | None = None) -> NoReturn:
    """The console script's entry point."""
    cli.main(args=arguments, prog_name="flow2")
    raise AssertionError("click exits")  # pragma: no cover
