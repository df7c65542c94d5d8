"""``flow2 run``: run a flow file, or print a dry run's plan.

:func:`run_flow` runs a loaded flow with the command's options and returns
the exit code (``flow2 resume`` runs through it too); :func:`print_plan`
prints what a run would do and runs nothing.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from .._engine._exceptions import ConfigurationError, DefinitionError, FlowError
from ._arguments import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    FLOW_HELP,
    UsageProblem,
    cache_mode,
    load_flow,
    loaded_masker,
    run_options,
)
from ._ending import end_on_signals, end_quietly, exit_with, tell
from ._stores import chosen_store, log_directory
from ._words import PassThroughCommand, move_to, sort_words

if TYPE_CHECKING:
    from pathlib import Path

    from .._flows._loader import LoadedFlow

#: How ``flow2 run`` reads its words, for its ``--help``.
RUN_HELP = (
    "Without FLOW, the flow is the nearest flow2.yml (or flow2.yaml) in the working "
    "directory or a folder above it, run from its folder. NAME runs that task or group "
    "(see `flow2 list`) and what it needs; without NAME the flow's default: task, else "
    "everything. The words after -- are the variable args, a list of strings."
)


@click.command(cls=PassThroughCommand, epilog=f"{RUN_HELP}\n\n{FLOW_HELP}")
@click.argument("words", nargs=-1, metavar="[FLOW] [NAME]... [VARIABLE=VALUE]... [-- ARGS]")
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
@click.option(
    "--watch",
    is_flag=True,
    help="After the run, watch the files the tasks declare as sources: and run again when "
    "they change (the tasks whose sources changed, and what depends on them), until Ctrl-C.",
)
@run_options
def run(
    words: tuple[str, ...],
    resume: bool,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    until: str | None,
    start_from: str | None,
    dry_run: bool,
    watch: bool,
    display: str | None,
    quiet: bool,
    verbose: bool,
    jobs: int | None,
    events: str | None,
    grace: float | None,
    report: str | None,
    otel: bool | None,
    store: str | None,
    no_store: bool,
    force: tuple[str, ...],
    cache: str | None,
    no_cache: bool,
    pickle_results: bool,
    log_dir: str | None,
    no_log_files: bool,
) -> None:
    """Run FLOW (default: the nearest flow2.yml), or its tasks NAME..., with the variables.

    The variables fill the templates and are the run's first context
    entries, so tasks (and ${{ … }} expressions) can read them too. Every
    run is recorded in the run store (see `flow2 runs`) unless --no-store.
    """
    if quiet and verbose:
        raise UsageProblem("--quiet and --verbose contradict each other; choose one")
    if no_store and (resume or store is not None or start_from is not None):
        contradicted = "--resume" if resume else "--from" if start_from is not None else "--store"
        raise UsageProblem(f"--no-store contradicts {contradicted}; choose one")
    end_on_signals()
    if watch and (no_store or dry_run):
        contradicted = "--no-store" if no_store else "--dry-run"
        raise UsageProblem(
            f"--watch contradicts {contradicted}: it runs the flow again and again, reusing "
            f"from the run store what did not change; choose one"
        )
    sorted_out = sort_words(words, click.get_current_context().meta.get("arguments"))
    if sorted_out.folder is not None:
        # Paths the user typed stay relative to where they typed them.
        events, report, store, log_dir = (
            None if path is None else os.path.abspath(path)
            for path in (events, report, store, log_dir)
        )
        shown = move_to(sorted_out.folder)
        click.echo(f"flow2: running {os.path.join(shown, sorted_out.flow)}", err=True)
    try:
        # A dry run, as validate, show and graph, runs no code of the flow's
        # modules: see tests/test_plugins.py::test_check_commands_import_no_callback_module
        loaded, values = load_flow(
            sorted_out.flow,
            sorted_out.assignments,
            for_a_run=True,
            import_callbacks=not dry_run,
            arguments=sorted_out.arguments,
        )
    except KeyboardInterrupt:
        # Ctrl-C while a callback's module imports: the documented 130, not
        # click's generic "Aborted!" and 1.
        click.echo("flow2: interrupted while loading the flow; nothing ran", err=True)
        sys.exit(EXIT_INTERRUPTED)
    verbosity = "quiet" if quiet else "verbose" if verbose else None
    caching: dict[str, Any] = {"cache": cache_mode(cache, no_cache), "force": _split(force)}
    selection: dict[str, Any] = {
        "select": [],
        "only": _split(only),
        "skip": _split(skip),
        "until": until,
        "start_from": start_from,
    }
    named = chosen_tasks(loaded, sorted_out.names)
    if selection["only"]:
        # With --only, the named tasks join its list, and what is left out
        # is reported as --only reports it.
        selection["only"] = [*named, *selection["only"]]
    else:
        # Named tasks are the run: the others are not part of it at all
        # (see tests/test_named_tasks.py::test_a_named_run_shows_only_what_it_runs).
        selection["select"] = named
    if dry_run:
        sys.exit(
            print_plan(
                loaded,
                values,
                selection,
                store=False if no_store else chosen_store(store, nearest=False),
                resume=resume,
                pickle_results=pickle_results,
                **caching,
            )
        )
    options: dict[str, Any] = {
        "display": display,
        "verbosity": verbosity,
        "jobs": jobs,
        "events": events,
        "grace": grace,
        "report": report,
        "tracing": otel or None,
        "store": False if no_store else chosen_store(store, nearest=False),
        "pickle_results": pickle_results,
        "log_dir": log_directory(log_dir, no_log_files, store),
        **caching,
        **selection,
    }
    if watch:
        from ._watch import watch as watch_flow

        def again(first: bool) -> int:
            # Each run after the first resumes the one before: what did not change is reused.
            chosen = "last" if resume or not first else None
            # A copy: a run fills the context it is given with its results.
            return run_flow(loaded, dict(values), resume=chosen, last=False, **options)

        exit_with(watch_flow(loaded.root.task, loaded.file, again))
    exit_with(run_flow(loaded, values, resume="last" if resume else None, **options))


def chosen_tasks(loaded: LoadedFlow, names: list[str]) -> list[str]:
    """The tasks to run: ``names``, else the flow's ``default:``, else none (all of them).

    :raises UsageProblem: when a name names no task, or several
    """
    from .._flows._names import check_names

    try:
        check_names(loaded.root, names, file=loaded.file)
    except DefinitionError as error:
        raise UsageProblem(f"{loaded.file}: {error}") from None
    return names or ([loaded.default] if loaded.default is not None else [])


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
    cache: str | None = None,
    force: list[str] | None = None,
    last: bool = True,
) -> int:
    """Print what a run of the flow would do (what a resume would reuse too); exit code 0."""
    from .._listeners._text import visible
    from .._running._runner import Runner

    masker = loaded_masker(loaded, variables)
    try:
        runner = Runner(
            display="none",
            # The store is only read: what a resume or the cache would reuse.
            store=store,
            resume="last" if resume else None,
            pickle_results=pickle_results,
            cache=cache,
            force=force or (),
            flow_file=loaded.file,
            **selection,
        )
        plan = runner.dry_run(loaded.root.task, dict(variables))
    except DefinitionError as error:  # the tree, checked once, by the plan
        raise UsageProblem(str(loaded.located(error)), masker=masker) from None
    except ConfigurationError as error:
        raise UsageProblem(str(error), masker=masker) from None
    click.echo(masker.mask(f"{loaded.file}: plan of '{visible(loaded.root.task.name)}'"))
    click.echo(masker.mask(str(plan)))
    return 0


def run_flow(
    loaded: LoadedFlow,
    variables: dict[str, Any],
    *,
    display: str | None,
    verbosity: str | None,
    events: str | None,
    jobs: int | None = None,
    grace: float | None = None,
    report: str | None = None,
    tracing: bool | None = None,
    select: list[str] | None = None,
    only: list[str] | None = None,
    skip: list[str] | None = None,
    until: str | None = None,
    start_from: str | None = None,
    store: Path | bool = False,
    resume: str | None = None,
    pickle_results: bool = False,
    log_dir: str | None = None,
    cache: str | None = None,
    force: list[str] | None = None,
    last: bool = True,
) -> int:
    """Run a loaded flow and return the exit code: the :class:`flow2.RunResult`'s.

    :param store: the run store directory, or False for none
    :param resume: the recorded run to resume ("last": the newest of this flow file)
    :param log_dir: the directory of the task log files (``{run_id}``: the run's id)
    :param select: the tasks named (``flow2 run NAME``, else the ``default:``):
        the run is of them and what they need alone
    :param jobs: the job slots (``-j``); the flow's ``jobs:`` when None
    :param cache: ``--cache`` (None: ``$FLOW2_CACHE``, else on)
    :param force: the tasks ``--force`` names
    :param last: the process ends after this run (False: ``--watch`` runs it
        again, and Ctrl-C between runs must still stop the watch)
    """
    from .._running._runner import Runner
    from .._running._settings import RunSettings

    try:
        if report is not None:
            from .._reports._writing import check_writable

            check_writable(report, "--report")  # named as the command line names it
        settings = RunSettings.from_options(
            display=display,
            verbosity=verbosity,
            events=events,
            jobs=jobs if jobs is not None else loaded.jobs,
            report=report,
            variables=variables,
            tracing=tracing,
            select=select or (),
            only=only or (),
            skip=skip or (),
            until=until,
            start_from=start_from,
            store=store,
            resume=resume,
            pickle_results=pickle_results,
            cache=cache,
            force=force or (),
            flow_file=loaded.file,
            log_dir=log_dir,
            secrets=loaded.secret_values(variables),
            handle_signals=True,
            grace=grace,
            owns_process=True,
        )
    except ConfigurationError as error:
        raise UsageProblem(str(error)) from None
    wait_for_commands_in_the_loop()
    try:
        result = asyncio.run(Runner.from_settings(settings).execute(loaded.root.task, variables))
    except KeyboardInterrupt:  # Ctrl-C before the handlers were in place
        return EXIT_INTERRUPTED
    except DefinitionError as error:  # the tree, checked once, by the run
        masker = loaded_masker(loaded, variables)
        raise UsageProblem(str(loaded.located(error)), masker=masker) from None
    except ConfigurationError as error:  # the store
        raise UsageProblem(str(error)) from None
    except FlowError as error:  # an executor could not start, ...
        tell(loaded_masker(loaded, variables).mask(f"flow2: {error}"))
        return EXIT_FAILED
    if last:
        end_quietly()
    if result.signal is not None:
        # The run was cancelled, every task reported and the summary printed.
        tell(f"flow2: interrupted by {result.signal.name}")
    return result.exit_code


def wait_for_commands_in_the_loop() -> None:
    """Learn of each command's exit through a pidfd in the event loop, as Python 3.12 does.

    Python 3.11's default starts a thread per command to wait for it: a
    thread start the loop waits for before the command is followed, and a
    hop from that thread back to the loop when it exits, for every shell
    task. The command owns its process, so it may choose the process's child
    watcher; 3.12 and later choose pidfds themselves (and deprecate choosing),
    and a kernel without ``pidfd_open`` (before Linux 5.3) keeps the threads.
    See test_commands_are_waited_for_in_the_loop.
    """
    if sys.version_info >= (3, 12) or sys.platform != "linux":
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # pragma: no cover - a kernel before 5.3, or a sandbox refusing it
        return
    policy = asyncio.get_event_loop_policy()
    if not isinstance(policy.get_child_watcher(), asyncio.PidfdChildWatcher):
        policy.set_child_watcher(asyncio.PidfdChildWatcher())
