"""What the commands share: how they read FLOW and VARIABLE=VALUE, their options.

A FLOW is a path or a name looked up in the flow folders; VARIABLE=VALUE
keeps its text unless it reads back as the same number or boolean (the run
store and RUN are read in ``_stores``). Every problem with them is a
:class:`UsageProblem`: one message, exit code 2, nothing ran.

Nothing a command prints carries a secret: :func:`flow_masker` masks what
the commands that look at a flow print, and every :class:`UsageProblem`'s
message is masked before it is shown.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .._engine._exceptions import DefinitionError
from .._flows._loader import LoadedFlow, read_flow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .._listeners._secrets import SecretMasker

_Command = TypeVar("_Command", bound="Callable[..., Any]")

#: The environment variable locating the user's flow folder (see :func:`user_flows_folder`).
USER_FLOWS_VARIABLE = "XDG_CONFIG_HOME"
FLOW_EXTENSIONS = (".yml", ".yaml")

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: The epilog of every command taking FLOW and VARIABLE=VALUE.
FLOW_HELP = (
    "FLOW is a path to a YAML file, or a name looked up as NAME, NAME.yml or NAME.yaml in "
    "./.flow2/flows/ then in $XDG_CONFIG_HOME/flow2/flows/ (~/.config/flow2/flows/). "
    "Each VARIABLE is key=value; a value keeps its text unless it reads back as the same "
    "number or boolean: n=3 and ratio=0.5 are numbers, debug=true a boolean, version=1.10, "
    "mode=0755 and answer=on stay text; tags=[a,b] is a list."
)


class UsageProblem(click.ClickException):
    """A usage or definition error: printed as one message, exit code 2.

    :param message: what is wrong and the fix
    :param masker: the secrets to mask in it (those of the environment when None)
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, masker: SecretMasker | None = None) -> None:
        if masker is None:
            from .._listeners._secrets import SecretMasker

            masker = SecretMasker.from_environment()
        super().__init__(masker.mask(message))

    def format_message(self) -> str:
        return self.message


def parse_variables(assignments: tuple[str, ...]) -> dict[str, Any]:
    """``("n=3", "version=1.10")`` → ``{"n": 3, "version": "1.10"}``.

    A value keeps its text unless it reads back as exactly the same number
    or boolean (see :mod:`flow2._flows._variables`).

    :raises UsageProblem: on an assignment without ``=``, a bad name or an unreadable list
    """
    from .._flows._variables import VariableError, parse_assignment

    variables: dict[str, Any] = {}
    for assignment in assignments:
        try:
            key, value = parse_assignment(assignment)
        except VariableError as error:
            raise UsageProblem(str(error)) from None
        variables[key] = value
    return variables


def with_arguments(variables: dict[str, Any], arguments: list[str] | None) -> dict[str, Any]:
    """``variables`` with ``args``, the words after ``--`` (None: there was no ``--``).

    Without ``--``, ``args`` is not a variable of the run (nor recorded):
    templates and expressions read it as ``[]`` (see ``_templates.ARGUMENTS``).

    :raises UsageProblem: when ``args=…`` and ``--`` both give it
    """
    from .._flows._templates import ARGUMENTS as ARGUMENTS_VARIABLE

    if arguments is None:
        return variables
    if ARGUMENTS_VARIABLE in variables:
        raise UsageProblem(
            f"{ARGUMENTS_VARIABLE}= and the words after -- both set the variable "
            f"{ARGUMENTS_VARIABLE!r}; give one"
        )
    return {**variables, ARGUMENTS_VARIABLE: list(arguments)}


def load_flow(
    flow: str,
    assignments: tuple[str, ...],
    *,
    for_a_run: bool = False,
    import_callbacks: bool = False,
    arguments: list[str] | None = None,
) -> tuple[LoadedFlow, dict[str, Any]]:
    """The flow ``flow`` names, read with the variables of ``assignments``, and those variables.

    :param for_a_run: leave the tree's check to the run (see :func:`read_flow`)
    :param import_callbacks: import the callbacks' modules: only for a run;
        the commands that look at a flow run none of its code
    :param arguments: the words after ``--``, the variable ``args`` (``[]`` without them)
    :raises UsageProblem: when there is no such flow or it is not a valid one
    """
    variables = with_arguments(parse_variables(assignments), arguments)
    try:
        loaded = read_flow(
            find_flow(flow), variables, for_a_run=for_a_run, import_callbacks=import_callbacks
        )
        return loaded, variables
    except DefinitionError as error:
        # The file's ``secrets:`` are secrets in its errors too: read them
        # from its text as well as it can be read.
        declared = declared_secrets(_text_of(error.file)) if error.file else []
        raise UsageProblem(str(error), masker=flow_masker(variables, declared)) from None


def flow_masker(variables: dict[str, Any], declared: Iterable[str]) -> SecretMasker:
    """A flow's secrets: secret-named variables (environment, command line), declared ones.

    :param declared: the names in the flow's ``secrets:`` list (variables, else
        environment variables)
    """
    from .._listeners._secrets import SecretMasker

    masker = SecretMasker.from_environment(
        str(variables[name]) if name in variables else os.environ.get(name, "") for name in declared
    )
    masker.add_from_mapping({key: str(value) for key, value in variables.items()})
    return masker


def loaded_masker(loaded: LoadedFlow, variables: dict[str, Any]) -> SecretMasker:
    """The secrets of a loaded flow: :func:`flow_masker`'s, and its ``dotenv:`` secrets."""
    masker = flow_masker(variables, loaded.secrets)
    masker.add(loaded.dotenv_secrets)
    return masker


def declared_secrets(text: str) -> list[str]:
    """The names in a flow's top-level ``secrets:`` list; none when it cannot be read."""
    from .._flows._yaml import parse

    try:
        # flow2's own YAML reading: bad tags, alias bombs and deep nesting
        # are a FlowFileError there, not a crash (tests/test_fuzz.py).
        data = parse("", text)
    except DefinitionError:
        # Templates may keep the whole file from parsing: the usual one-line form.
        found = re.search(r"^secrets:\s*\[([^\]\n]*)\]", text, re.MULTILINE)
        return [name.strip(" '\"") for name in found.group(1).split(",")] if found else []
    names = data.get("secrets") if isinstance(data, dict) else None
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


def _text_of(file: str) -> str:
    """The text of ``file``, "" when it cannot be read (or is an environment file)."""
    from .._flows._loader import is_env_text

    try:
        text = Path(file).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "" if is_env_text(text) else text


def user_flows_folder() -> Path:
    """The user's flow folder: ``$XDG_CONFIG_HOME/flow2/flows``, else ``~/.config/flow2/flows``."""
    base = os.environ.get(USER_FLOWS_VARIABLE)
    root = Path(base) if base else Path.home() / ".config"
    return root / "flow2" / "flows"


def flow_folders() -> list[Path]:
    """The folders a flow name is looked up in, in order."""
    return [Path(".flow2") / "flows", user_flows_folder()]


def find_flow(reference: str) -> Path:
    """The file of the flow ``reference``: a path, or a name in the flow folders.

    :raises flow2.DefinitionError: when there is no such file or flow
    """
    path = Path(reference)
    if path.is_file():
        return path
    looks_like_path = os.sep in reference or "/" in reference or path.suffix in FLOW_EXTENSIONS
    if not looks_like_path:
        for folder in flow_folders():
            for candidate in (
                folder / reference,
                *(folder / (reference + extension) for extension in FLOW_EXTENSIONS),
            ):
                if candidate.is_file():
                    return candidate
    if looks_like_path or path.exists():
        raise DefinitionError(f"{reference}: no such flow file", file=reference)
    available = sorted(
        {
            candidate.stem
            for folder in flow_folders()
            if folder.is_dir()
            for candidate in folder.iterdir()
            if candidate.suffix in FLOW_EXTENSIONS
        }
    )
    where = " then ".join(str(folder) for folder in flow_folders())
    listed = ", ".join(available) if available else "none"
    raise DefinitionError(
        f"no flow file {reference!r} and no flow named {reference!r} in {where}; "
        f"flows there: {listed}",
        value=reference,
    )


def store_option(command: _Command) -> _Command:
    """The ``--store DIR`` option of the commands that read or write the run store."""
    return click.option(
        "--store",
        "store",
        type=click.Path(file_okay=False),
        default=None,
        help="The run store directory. Default: $FLOW2_STORE, else .flow2 in the working "
        "directory.",
    )(command)


def run_options(command: _Command) -> _Command:
    """The options of the commands that run a flow (run, resume)."""
    options = [
        click.option(
            "--display",
            type=click.Choice(["auto", "live", "plain", "none"]),
            default=None,
            help="How the run shows itself: the live tree on a terminal (auto), live, one line "
            "per event (plain) or nothing. Default: $FLOW2_DISPLAY, else auto.",
        ),
        click.option(
            "-q", "--quiet", is_flag=True, help="Print only failures, retries and a short summary."
        ),
        click.option(
            "-v", "--verbose", is_flag=True, help="Print debug records and whole task paths."
        ),
        click.option(
            "-j",
            "--jobs",
            default=None,
            metavar="N",
            callback=_check_jobs,
            help="Run at most N tasks at once across the whole run, sharing the N slots with "
            "make, ninja and cargo inside shell tasks (a GNU make jobserver). Default: the "
            "flow's jobs:, else $FLOW2_JOBS, else no limit.",
        ),
        click.option(
            "--events",
            type=click.Path(dir_okay=False),
            default=None,
            help="Append every event as a JSON line to this file. Default: $FLOW2_EVENTS.",
        ),
        click.option(
            "--grace",
            type=click.FloatRange(min=0),
            default=None,
            metavar="SECONDS",
            help="When a signal (Ctrl-C, SIGTERM, SIGHUP) stops the run: seconds commands and "
            "worker processes get between SIGTERM and SIGKILL (a second signal kills at once). "
            "Default: $FLOW2_GRACE, else 5.",
        ),
        click.option(
            "--report",
            "report",
            metavar="FILE.html",
            default=None,
            help="Write the HTML report (timeline, tree, failures) to this file when the run "
            "ends, however it ends.",
        ),
        click.option(
            "--otel",
            is_flag=True,
            default=None,
            help="Emit OpenTelemetry spans (needs flow2[otel]). Default: $FLOW2_OTEL.",
        ),
        store_option,
        click.option("--no-store", is_flag=True, help="Do not record the run in the run store."),
        click.option(
            "--log-dir",
            type=click.Path(file_okay=False),
            default=None,
            help="Write each task's output to a file of its own in this directory ({run_id} is "
            "replaced by the run's id). Default: $FLOW2_LOG_DIR, else runs/{run_id}/logs in "
            "the run store's directory (.flow2).",
        ),
        click.option("--no-log-files", is_flag=True, help="Write no per-task log files."),
        click.option(
            "--force",
            "force",
            multiple=True,
            metavar="TASK",
            help="Run TASK (a key, a name or a path such as release/wheel; a group: all its "
            "tasks) even when a stored result could be reused; repeat it for several.",
        ),
        click.option(
            "--cache",
            "cache",
            type=click.Choice(["on", "read-only", "off"]),
            default=None,
            help="What the tasks that say cache: true do with the cache: reuse and write "
            "entries (on), reuse but write none (read-only, for CI), or neither (off). "
            "Default: $FLOW2_CACHE, else on.",
        ),
        click.option(
            "--no-cache", is_flag=True, help="Take nothing from the cache, write nothing to it."
        ),
        click.option(
            "--pickle-results",
            is_flag=True,
            help="Store results that JSON cannot hold exactly as pickles, and load them when "
            "resuming (only for a store you trust: loading a pickle can run code).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def cache_mode(cache: str | None, no_cache: bool) -> str | None:
    """``--cache`` or ``--no-cache`` as ``Runner(cache=)`` takes it (None: ``$FLOW2_CACHE``).

    :raises UsageProblem: when they contradict each other
    """
    if no_cache and cache not in (None, "off"):
        raise UsageProblem(f"--no-cache contradicts --cache={cache}; choose one")
    return "off" if no_cache else cache


def _check_jobs(context: click.Context, parameter: click.Parameter, value: Any) -> int | None:
    if value is None:
        return None
    jobs = int(value) if str(value).isdigit() else 0
    if jobs < 1:
        raise click.BadParameter(
            f"{value!r} is not a number of job slots; give a whole number >= 1, e.g. -j 4, "
            f"or leave -j out for no limit",
            context,
            parameter,
        )
    return jobs
