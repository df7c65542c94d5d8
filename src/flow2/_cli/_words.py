"""What ``flow2 run [FLOW] [NAME...] [key=value...] [-- ARGS...]`` means, word by word.

- FLOW, first and optional, is a flow file: a word naming a file on disk,
  or ending in ``.yml``/``.yaml`` (``release/checks`` is a group's path).
  Without one, the default flow is the nearest ``flow2.yml`` (else
  ``flow2.yaml``) in the working directory or its parents
  (:func:`find_default_flow`); the run then takes place in that file's
  folder, as if started there. With no default flow
  anywhere, a first word naming a flow of the flow folders (``.flow2/flows/``,
  the user's) is that flow, as before there were default flows.
- A word with ``=`` is a variable, ``key=value``.
- Any other word is the NAME of a task or group to run (``flow2 list``).
- The words after ``--`` are the variable ``args``, a list of strings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import click

from ._arguments import FLOW_EXTENSIONS, UsageProblem, flow_folders

#: The names of a default flow file, in the order they are looked for.
DEFAULT_FLOW_NAMES = ("flow2.yml", "flow2.yaml")


@dataclass
class Words:
    """The words of a command line, sorted out.

    :ivar flow: the flow file (or the name of a flow of the flow folders)
    :ivar folder: the folder to run in when the flow is a default flow found
        above the working directory, else None
    :ivar names: the tasks to run, as typed
    :ivar assignments: the ``key=value`` words
    :ivar arguments: the words after ``--``, None when there was no ``--``
    """

    flow: str
    folder: Path | None = None
    names: list[str] = field(default_factory=list)
    assignments: tuple[str, ...] = ()
    arguments: list[str] | None = None


class PassThroughCommand(click.Command):
    """A command keeping the words after ``--`` apart, in ``context.meta["arguments"]``.

    Click would mix them into the positional arguments, where a word after
    ``--`` could not be told from a task name.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            position = args.index("--")
            args, ctx.meta["arguments"] = args[:position], args[position + 1 :]
        return super().parse_args(ctx, args)


def is_flow_file(word: str) -> bool:
    """Whether a command-line word names a flow file rather than a task."""
    path = Path(word)
    return path.is_file() or path.suffix in FLOW_EXTENSIONS


def find_default_flow(start: Path | None = None) -> Path | None:
    """The nearest ``flow2.yml`` (or ``flow2.yaml``) in ``start`` (the working directory)
    or the folders above it; None when there is none."""
    folder = (start or Path.cwd()).resolve()
    for candidate_folder in (folder, *folder.parents):
        for name in DEFAULT_FLOW_NAMES:
            candidate = candidate_folder / name
            if candidate.is_file():
                return candidate
    return None


def _names_a_folder_flow(word: str) -> bool:
    return any(
        (folder / candidate).is_file()
        for folder in flow_folders()
        for candidate in (word, *(word + extension for extension in FLOW_EXTENSIONS))
    )


def no_default_flow() -> UsageProblem:
    """The error of a command given no flow where there is no default flow."""
    return UsageProblem(
        f"no flow file given, and no {' or '.join(DEFAULT_FLOW_NAMES)} in "
        f"{Path.cwd()} or a folder above it; name a flow file (flow2 run FILE.yml), or "
        f"write a starter {DEFAULT_FLOW_NAMES[0]} with `flow2 init`"
    )


def sort_words(words: tuple[str, ...], arguments: list[str] | None) -> Words:
    """Which word is the flow, which are tasks and which are variables.

    :raises UsageProblem: when no flow is given and there is no default flow
    """
    rest = list(words)
    if rest and "=" not in rest[0] and is_flow_file(rest[0]):
        sorted_out = Words(rest.pop(0))
    else:
        found = find_default_flow()
        if found is None:
            if rest and "=" not in rest[0] and _names_a_folder_flow(rest[0]):
                sorted_out = Words(rest.pop(0))
            else:
                raise no_default_flow()
        elif found.parent == Path.cwd().resolve():
            sorted_out = Words(found.name)
        else:
            sorted_out = Words(found.name, folder=found.parent)
    for word in rest:
        if "=" in word:
            sorted_out.assignments += (word,)
        else:
            sorted_out.names.append(word)
    sorted_out.arguments = arguments
    return sorted_out


def move_to(folder: Path) -> str:
    """Make ``folder`` (a default flow's) the working directory; return how it was reached.

    Callback modules are then found there too, as for a run started in it.
    """
    import sys

    relative = os.path.relpath(folder)
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    return relative


def flow_and_variables(words: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """FLOW (the first word, else the default flow) and the ``key=value`` words after it.

    For the commands that look at a flow (list, validate, show, …), which
    take no task names: the default flow is read where it is, nothing runs.

    :raises UsageProblem: without a flow anywhere
    """
    rest = list(words)
    if rest and "=" not in rest[0] and (is_flow_file(rest[0]) or _names_a_folder_flow(rest[0])):
        flow = rest.pop(0)
    else:
        found = find_default_flow()
        if found is None:
            if rest and "=" not in rest[0]:
                flow = rest.pop(0)  # not found: the error names it
            else:
                raise no_default_flow()
        else:
            flow = os.path.relpath(found)
    return flow, tuple(rest)
