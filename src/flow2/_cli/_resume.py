"""``flow2 resume RUN``: run a recorded run's flow file again, reusing what succeeded."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from .._engine._exceptions import DefinitionError
from .._flows._loader import read_flow
from ._arguments import (
    FLOW_HELP,
    UsageProblem,
    cache_mode,
    parse_variables,
    run_options,
)
from ._ending import end_on_signals, exit_with
from ._run import run_flow
from ._stores import chosen_store, find_run, log_directory

if TYPE_CHECKING:
    from .._store._database import StoredRun


@click.command(epilog=FLOW_HELP)
@click.argument("run_reference", metavar="RUN")
@click.argument("variables", nargs=-1, metavar="[VARIABLE=VALUE]...")
@run_options
def resume(
    run_reference: str,
    variables: tuple[str, ...],
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
    """Resume RUN (an id, a unique prefix of one, or last) with its own flow file and variables.

    Tasks that succeeded in RUN are reused when their definition and inputs
    are unchanged; the others run. VARIABLE=VALUE overrides one of the run's
    variables (a secret one, which the store does not keep, must be given again).
    """
    if quiet and verbose:
        raise UsageProblem("--quiet and --verbose contradict each other; choose one")
    if no_store:
        raise UsageProblem("--no-store contradicts resume, which reads the run store")
    end_on_signals()
    directory = chosen_store(store)
    previous = find_run(directory, run_reference)
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
        loaded = read_flow(previous.flow, values, for_a_run=True)
    except DefinitionError as error:
        raise UsageProblem(str(error)) from None
    verbosity = "quiet" if quiet else "verbose" if verbose else None
    exit_with(
        run_flow(
            loaded,
            values,
            display=display,
            verbosity=verbosity,
            jobs=jobs,
            events=events,
            grace=grace,
            report=report,
            tracing=otel or None,
            store=directory,
            resume=previous.id,
            pickle_results=pickle_results,
            log_dir=log_directory(log_dir, no_log_files, store),
            cache=cache_mode(cache, no_cache),
            force=[reference for given in force for reference in given.split(",") if reference],
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
