"""The ``flow2`` command: run, check and draw YAML flows, list plugins, see and resume runs.

Exit codes: 0 everything succeeded, 1 a task failed, 2 a usage or definition
error (nothing ran), 128 + the signal's number when a signal stopped the run
(130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from .._engine._exceptions import ConfigurationError, DefinitionError, FlowError
from .._flows._loader import LoadedFlow, read_flow
from .._flows._loader import render as render_flow

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._listeners._secrets import SecretMasker
    from .._store._database import Store, StoredRun

_Command = TypeVar("_Command", bound="Callable[..., Any]")

#: The environment variable locating the user's flow folder (see :func:`user_flows_folder`).
USER_FLOWS_VARIABLE = "XDG_CONFIG_HOME"
FLOW_EXTENSIONS = (".yml", ".yaml")

#: Where ``flow2 run`` writes each task's log file (``{run_id}``: the run's id), in
#: the run store's directory: ``runs/<run id>/logs/`` beside its records.
LOG_FOLDER = os.path.join("runs", "{run_id}", "logs")

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_FLOW_HELP = (
    "FLOW is a path to a YAML file, or a name looked up as NAME, NAME.yml or NAME.yaml in "
    "./.flow2/flows/ then in $XDG_CONFIG_HOME/flow2/flows/ (~/.config/flow2/flows/). "
    "Each VARIABLE is key=value; a value keeps its text unless it reads back as the same "
    "number or boolean: n=3 and ratio=0.5 are numbers, debug=true a boolean, version=1.10, "
    "mode=0755 and answer=on stay text; tags=[a,b] is a list."
)


class UsageProblem(click.ClickException):
    """A usage or definition error: printed as one message, exit code 2."""

    exit_code = EXIT_USAGE

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


def _load(flow: str, assignments: tuple[str, ...]) -> tuple[LoadedFlow, dict[str, Any]]:
    variables = parse_variables(assignments)
    try:
        return read_flow(find_flow(flow), variables), variables
    except DefinitionError as error:
        raise UsageProblem(str(error)) from None


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 all succeeded, 1 a task failed (or the events file could not be "
    "written), 2 usage or definition error, 128 + the signal when a signal stopped the run "
    "(130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).",
)
@click.version_option(package_name="flow2", prog_name="flow2")
def cli() -> None:
    """Run workflows written as YAML files: serial and parallel tasks, shell commands,
    Python callbacks and plugins. See docs/flows.md for the file format."""
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


def _store_option(command: _Command) -> _Command:
    return click.option(
        "--store",
        "store",
        type=click.Path(file_okay=False),
        default=None,
        help="The run store directory. Default: $FLOW2_STORE, else .flow2 in the working "
        "directory.",
    )(command)


def _run_options(command: _Command) -> _Command:
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
        _store_option,
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
            "--pickle-results",
            is_flag=True,
            help="Store results that JSON cannot hold exactly as pickles, and load them when "
            "resuming (only for a store you trust: loading a pickle can run code).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command(epilog=_FLOW_HELP)
@click.argument("flow")
@click.argument("variables", nargs=-1, metavar="[VARIABLE=VALUE]...")
@click.option(
    "--resume",
    is_flag=True,
    help="Resume the latest recorded run of FLOW: reuse the tasks that succeeded in it "
    "and whose definition and inputs are unchanged; run the rest (docs/store.md).",
)
@click.option(
    "--only",
    multiple=True,
    metavar="TASK",
    help="Run only TASK (a result key or a group's path such as release/checks) and what "
    "it needs; repeat it or separate with commas for several.",
)
@click.option(
    "--skip", multiple=True, metavar="TASK", help="Leave TASK out; repeat it for several."
)
@click.option("--until", metavar="TASK", help="Stop after TASK (and run what it needs).")
@click.option(
    "--from",
    "start_from",
    metavar="TASK",
    help="Start at TASK, taking the results of the tasks before it from the latest recorded "
    "run of FLOW in the run store.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print what would run, be skipped or reused; run nothing."
)
@_run_options
def run(
    flow: str,
    variables: tuple[str, ...],
    resume: bool,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    until: str | None,
    start_from: str | None,
    dry_run: bool,
    display: str | None,
    quiet: bool,
    verbose: bool,
    events: str | None,
    grace: float | None,
    report: str | None,
    otel: bool | None,
    store: str | None,
    no_store: bool,
    pickle_results: bool,
    log_dir: str | None,
    no_log_files: bool,
) -> None:
    """Run FLOW with the given variables.

    The variables fill the templates and are the run's first context
    entries, so tasks (and ${{ … }} expressions) can read them too. Every
    run is recorded in the run store (see `flow2 runs`) unless --no-store.
    """
    if quiet and verbose:
        raise UsageProblem("--quiet and --verbose contradict each other; choose one")
    if no_store and (resume or store is not None or start_from is not None):
        contradicted = "--resume" if resume else "--from" if start_from is not None else "--store"
        raise UsageProblem(f"--no-store contradicts {contradicted}; choose one")
    try:
        loaded, values = _load(flow, variables)
    except KeyboardInterrupt:
        # Ctrl-C while a callback's module imports: the documented 130, not
        # click's generic "Aborted!" and 1.
        click.echo("flow2: interrupted while loading the flow; nothing ran", err=True)
        sys.exit(EXIT_INTERRUPTED)
    verbosity = "quiet" if quiet else "verbose" if verbose else None
    selection: dict[str, Any] = {
        "only": _split(only),
        "skip": _split(skip),
        "until": until,
        "start_from": start_from,
    }
    if dry_run:
        sys.exit(
            print_plan(
                loaded,
                values,
                selection,
                store=False if no_store else _store_directory(store),
                resume=resume,
                pickle_results=pickle_results,
            )
        )
    _exit(
        run_flow(
            loaded,
            values,
            display=display,
            verbosity=verbosity,
            events=events,
            grace=grace,
            report=report,
            tracing=otel or None,
            store=False if no_store else _store_directory(store),
            resume="last" if resume else None,
            pickle_results=pickle_results,
            log_dir=_log_directory(log_dir, no_log_files, store),
            **selection,
        )
    )


def _split(references: tuple[str, ...]) -> list[str]:
    return [part.strip() for reference in references for part in reference.split(",") if part]


def print_plan(
    loaded: LoadedFlow,
    variables: dict[str, Any],
    selection: dict[str, Any],
    *,
    store: Path | bool = False,
    resume: bool = False,
    pickle_results: bool = False,
) -> int:
    """Print what a run of the flow would do (what a resume would reuse too); exit code 0."""
    from .._running._runner import Runner

    try:
        runner = Runner(
            display="none",
            store=store if resume or selection.get("start_from") is not None else False,
            resume="last" if resume else None,
            pickle_results=pickle_results,
            flow_file=loaded.file,
            **selection,
        )
        plan = runner.dry_run(loaded.root.task, dict(variables))
    except (ConfigurationError, DefinitionError) as error:
        raise UsageProblem(str(error)) from None
    click.echo(f"{loaded.file}: plan of {loaded.root.task.name!r}")
    click.echo(str(plan))
    return 0


@cli.command(epilog=_FLOW_HELP)
@click.argument("run_reference", metavar="RUN")
@click.argument("variables", nargs=-1, metavar="[VARIABLE=VALUE]...")
@_run_options
def resume(
    run_reference: str,
    variables: tuple[str, ...],
    display: str | None,
    quiet: bool,
    verbose: bool,
    events: str | None,
    grace: float | None,
    report: str | None,
    otel: bool | None,
    store: str | None,
    no_store: bool,
    pickle_results: bool,
    log_dir: str | None,
    no_log_files: bool,
) -> None:
    """Resume RUN (an id, a unique prefix of one, or last) with its own flow file and variables.

    Tasks that succeeded in RUN are reused when their definition and inputs
    are unchanged; the others run. VARIABLE=VALUE overrides one of the run's
    variables (a secret one, which the store does not keep, must be given again).
    """
    if quiet and verbose:
        raise UsageProblem("--quiet and --verbose contradict each other; choose one")
    if no_store:
        raise UsageProblem("--no-store contradicts resume, which reads the run store")
    directory = _store_directory(store)
    previous = _find_run(directory, run_reference)
    if previous.flow is None:
        raise UsageProblem(
            f"run {previous.id} of {previous.name!r} was not started from a flow file; "
            f"resume it from Python with flow2.Runner(store=..., resume={previous.id!r})"
        )
    if not os.path.isfile(previous.flow):
        raise UsageProblem(
            f"run {previous.id}: its flow file {previous.flow} is gone; restore it, or run "
            f"the flow from its new place with `flow2 run FILE --resume`"
        )
    values = _variables_of(previous, parse_variables(variables))
    try:
        loaded = read_flow(previous.flow, values)
    except DefinitionError as error:
        raise UsageProblem(str(error)) from None
    verbosity = "quiet" if quiet else "verbose" if verbose else None
    _exit(
        run_flow(
            loaded,
            values,
            display=display,
            verbosity=verbosity,
            events=events,
            grace=grace,
            report=report,
            tracing=otel or None,
            store=directory,
            resume=previous.id,
            pickle_results=pickle_results,
            log_dir=_log_directory(log_dir, no_log_files, store),
        )
    )


def _variables_of(previous: StoredRun, given: dict[str, Any]) -> dict[str, Any]:
    """The variables a resumed run starts with: the recorded ones, overridden by ``given``."""
    values: dict[str, Any] = {}
    for name, entry in previous.variables.items():
        if name in given:
            continue
        if "value" not in entry:
            why = "is secret" if entry.get("masked") else "was not stored exactly"
            raise UsageProblem(
                f"run {previous.id}: variable {name!r} {why}, so the store does not have its "
                f"value; give it again: flow2 resume {previous.id} {name}=…"
            )
        values[name] = entry["value"]
    values.update(given)
    return values


def _log_directory(option: str | None, no_log_files: bool, store: str | None) -> str | None:
    """Where ``flow2 run`` writes the task log files: ``--log-dir``, ``FLOW2_LOG_DIR``,
    else ``runs/{run_id}/logs`` in the run store's directory (``.flow2``)."""
    if no_log_files:
        return None
    if option is not None:
        return option
    from_environment = os.environ.get("FLOW2_LOG_DIR")
    if from_environment:
        return from_environment
    return os.path.join(os.path.relpath(_store_directory(store)), LOG_FOLDER)


def _store_directory(option: str | None) -> Path:
    from .._store._database import store_directory

    directory = store_directory(option if option is not None else True, os.environ)
    assert directory is not None
    return directory


def _open_store(directory: Path) -> tuple[Store, Any]:
    from .._store._database import Store, StoreError

    store = Store(directory)
    try:
        return store, store.connect()
    except StoreError as error:
        raise UsageProblem(str(error)) from None


def _find_run(directory: Path, reference: str) -> StoredRun:
    from .._store._database import StoreError

    store, connection = _open_store(directory)
    try:
        return store.find_run(connection, reference)
    except StoreError as error:
        raise UsageProblem(str(error)) from None
    finally:
        connection.close()


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of lines.")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Show at most this many runs. Default: 20 lines; every run with --json.",
)
@_store_option
@click.pass_context
def runs(context: click.Context, as_json: bool, limit: int | None, store: str | None) -> None:
    """List the recorded runs, newest first: id, name, start, duration, status, counts.

    RUN in the subcommands is a run's id, a unique prefix of one, or last.
    """
    context.ensure_object(dict)
    context.obj["store"] = store
    if context.invoked_subcommand is not None:
        return
    from .._store._history import run_line, runs_as_json

    found, connection = _open_store(_store_directory(store))
    try:
        recorded = found.runs(connection, limit if limit is not None or as_json else 20)
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
    return _store_directory(store if store is not None else context.obj.get("store"))


@runs.command(name="show")
@click.argument("run_reference", metavar="RUN")
@_store_option
@click.pass_context
def runs_show(context: click.Context, run_reference: str, store: str | None) -> None:
    """Print RUN's tree with each task's status and time, its summary, and why tasks ran again."""
    from .._store._history import show_lines

    for line in show_lines(_find_run(_subcommand_store(context, store), run_reference)):
        click.echo(line)


@runs.command(name="logs")
@click.argument("run_reference", metavar="RUN")
@click.argument("task")
@_store_option
@click.pass_context
def runs_logs(context: click.Context, run_reference: str, task: str, store: str | None) -> None:
    """Print the output TASK (its key, its path or its name) recorded in RUN."""
    from .._store._database import Store
    from .._store._history import find_task, task_output

    directory = _subcommand_store(context, store)
    recorded = _find_run(directory, run_reference)
    found = find_task(recorded, task)
    if isinstance(found, list):
        if not found:
            keys = ", ".join(item.key for item in recorded.tasks if not item.is_group)
            raise UsageProblem(
                f"run {recorded.id} has no task {task!r}; give a key or a path, one of: {keys}"
            )
        paths = "; ".join(" › ".join(item.path) for item in found)
        raise UsageProblem(
            f"{task!r} names {len(found)} tasks of run {recorded.id} ({paths}); give its path"
        )
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
@_store_option
@click.pass_context
def runs_prune(
    context: click.Context, keep: int | None, older_than: float | None, store: str | None
) -> None:
    """Delete runs and their log files: those beyond the newest --keep N, or older than
    --older-than DAYS. Runs still going on are kept."""
    if keep is None and older_than is None:
        raise UsageProblem("say what to delete: --keep N, --older-than DAYS, or both")
    from .._store._database import StoreError

    found, connection = _open_store(_subcommand_store(context, store))
    try:
        deleted = found.prune(connection, keep=keep, older_than_days=older_than)
    except StoreError as error:
        raise UsageProblem(str(error)) from None
    finally:
        connection.close()
    click.echo(
        f"deleted {len(deleted)} run{'' if len(deleted) == 1 else 's'} from {found.directory}"
    )


def _exit(code: int) -> NoReturn:
    release_closed_outputs()
    sys.exit(code)


def run_flow(
    loaded: LoadedFlow,
    variables: dict[str, Any],
    *,
    display: str | None,
    verbosity: str | None,
    events: str | None,
    grace: float | None = None,
    report: str | None = None,
    tracing: bool | None = None,
    only: list[str] | None = None,
    skip: list[str] | None = None,
    until: str | None = None,
    start_from: str | None = None,
    store: Path | bool = False,
    resume: str | None = None,
    pickle_results: bool = False,
    log_dir: str | None = None,
) -> int:
    """Run a loaded flow and return the exit code (the :class:`flow2.RunResult`'s).

    :param store: the run store directory, or False for none
    :param resume: the recorded run to resume ("last": the newest of this flow file)
    :param log_dir: the directory of the task log files (``{run_id}``: the run's id)
    """
    from .._running._runner import Runner
    from .._running._settings import RunSettings

    try:
        if report is not None:
            from .._reports._writing import check_writable

            check_writable(report, "--report")
        settings = RunSettings.from_options(
            display=display,
            verbosity=verbosity,
            events=events,
            report=report,
            variables=variables,
            tracing=tracing,
            only=only or (),
            skip=skip or (),
            until=until,
            start_from=start_from,
            store=store,
            resume=resume,
            pickle_results=pickle_results,
            flow_file=loaded.file,
            log_dir=log_dir,
            secrets=loaded.secret_values(variables),
            handle_signals=True,
            grace=grace,
            owns_process=True,
        )
        runner = Runner.from_settings(settings)
    except ConfigurationError as error:
        raise UsageProblem(str(error)) from None
    try:
        result = asyncio.run(runner.execute(loaded.root.task, dict(variables)))
    except KeyboardInterrupt:  # Ctrl-C before the handlers were in place
        return EXIT_INTERRUPTED
    except (DefinitionError, ConfigurationError) as error:  # the tree, the store
        raise UsageProblem(str(error)) from None
    except FlowError as error:  # an executor could not start, ...
        _tell(f"flow2: {error}")
        return EXIT_FAILED
    if result.signal is not None:
        # The run was cancelled, every task reported and the summary printed.
        _tell(f"flow2: interrupted by {result.signal.name}")
    return result.exit_code


def _tell(message: str) -> None:
    """A line on stderr; nothing when stderr is closed."""
    try:
        click.echo(message, err=True)
    except (OSError, ValueError):
        pass


def release_closed_outputs() -> None:
    """Flush stdout and stderr now; point a closed one at /dev/null.

    A reader that went away (``| head``, a dead ``tee``) must not turn into
    "Exception ignored … BrokenPipeError" and exit code 120 when Python
    flushes the streams at exit.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, stream.fileno())
                os.close(null)
            except (OSError, ValueError):
                pass


_REPORT_KINDS = {
    "html": ("HTML report", "html_report"),
    "trace": ("trace", "trace_report"),
    "junit": ("JUnit report", "junit_report"),
    "markdown": ("Markdown report", "markdown_report"),
}


@cli.command()
@click.argument("run_reference", metavar="[RUN]", required=False)
@click.option(
    "--events",
    metavar="EVENTS.jsonl",
    default=None,
    help="Build the reports from this JSON event file (flow2 run --events, FLOW2_EVENTS) "
    "instead of the run store; RUN then picks one of its runs.",
)
@click.option("--html", metavar="FILE", help="The HTML timeline report: one offline file.")
@click.option("--trace", metavar="FILE", help="A Chrome trace (JSON) for ui.perfetto.dev.")
@click.option("--junit", metavar="FILE", help="JUnit XML: one test case per task.")
@click.option("--markdown", metavar="FILE", help="A Markdown summary ($GITHUB_STEP_SUMMARY).")
@_store_option
def report(
    run_reference: str | None,
    events: str | None,
    html: str | None,
    trace: str | None,
    junit: str | None,
    markdown: str | None,
    store: str | None,
) -> None:
    """Write reports on a run recorded in the run store (or in an event file); FILE - is stdout.

    RUN is a run id, a unique prefix of one, or last (the default).
    """
    from .._engine._exceptions import ReportError

    targets = {"html": html, "trace": trace, "junit": junit, "markdown": markdown}
    wanted = {kind: target for kind, target in targets.items() if target}
    if not wanted:
        raise UsageProblem(
            "flow2 report: say which report to write: --html FILE, --trace FILE, "
            "--junit FILE or --markdown FILE (FILE - is stdout)"
        )
    if events is not None and store is not None:
        raise UsageProblem(
            "flow2 report: --events and --store are two sources of the run; choose one"
        )
    import importlib

    from .._reports._writing import check_writable, write_text

    try:
        for kind, target in wanted.items():
            check_writable(target, f"--{kind}")
        if events is not None:
            from .._reports._reading import read_events

            record = read_events(events, run_reference or "last")
        else:
            from .._reports._stored import from_store
            from .._store._database import DATABASE_NAME

            directory = _store_directory(store)
            if not (directory / DATABASE_NAME).is_file():
                raise UsageProblem(
                    f"flow2 report: no run store in {directory} (no {DATABASE_NAME}); choose "
                    f"it with --store DIR or FLOW2_STORE, or build the reports from an event "
                    f"file: flow2 report --events EVENTS.jsonl"
                )
            record = from_store(_find_run(directory, run_reference or "last"))
        for kind, target in wanted.items():
            what, function = _REPORT_KINDS[kind]
            module = importlib.import_module(f"flow2._reports._{kind}")
            write_text(getattr(module, function)(record), target, what)
    except (ReportError, ConfigurationError) as error:
        raise UsageProblem(f"flow2 report: {error}") from None


@cli.command(epilog=_FLOW_HELP)
@click.argument("flow")
@click.argument("variables", nargs=-1, metavar="[VARIABLE=VALUE]...")
def validate(flow: str, variables: tuple[str, ...]) -> None:
    """Load FLOW and check it, running nothing."""
    loaded, _ = _load(flow, variables)
    nodes = loaded.nodes()
    groups = sum(1 for node in nodes if node.task.children or not node.task.stores_result)
    tasks = len(nodes) - groups
    click.echo(
        f"{loaded.file}: valid flow {loaded.root.task.name!r}, "
        f"{tasks} task{'' if tasks == 1 else 's'} in {groups} group{'' if groups == 1 else 's'}"
    )


@cli.command(epilog=_FLOW_HELP)
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


@cli.command(epilog=_FLOW_HELP)
@click.argument("flow")
@click.argument("variables", nargs=-1, metavar="[VARIABLE=VALUE]...")
def show(flow: str, variables: tuple[str, ...]) -> None:
    """Print FLOW's task tree, with each task's plugin and options."""
    from .._flows._graph import tree_lines

    loaded, values = _load(flow, variables)
    masker = _masker(values, loaded.secrets)
    for line in tree_lines(loaded.root):
        click.echo(masker.mask(line))


@cli.command(epilog=_FLOW_HELP)
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

    loaded, _ = _load(flow, variables)
    click.echo(dot_graph(loaded.root) if dot else mermaid_graph(loaded.root))


@cli.command()
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
        raise DefinitionError(f"{reference}: no such flow file")
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
        f"flows there: {listed}"
    )


def main(arguments: list[str] | None = None) -> NoReturn:
    """The console script's entry point."""
    cli.main(args=arguments, prog_name="flow2")
    raise AssertionError("click exits")  # pragma: no cover
