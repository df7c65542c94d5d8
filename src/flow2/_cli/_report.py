"""``flow2 report``: write reports on a recorded run, from the run store or an event file."""

from __future__ import annotations

import click

from .._engine._exceptions import ConfigurationError
from ._arguments import UsageProblem, store_option
from ._stores import chosen_store, find_run

_REPORT_KINDS = {
    "html": ("HTML report", "html_report"),
    "trace": ("trace", "trace_report"),
    "junit": ("JUnit report", "junit_report"),
    "markdown": ("Markdown report", "markdown_report"),
}


@click.command()
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
@store_option
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

            directory = chosen_store(store)
            if not (directory / DATABASE_NAME).is_file():
                raise UsageProblem(
                    f"flow2 report: no run store in {directory} (no {DATABASE_NAME}); choose "
                    f"it with --store DIR or FLOW2_STORE, or build the reports from an event "
                    f"file: flow2 report --events EVENTS.jsonl"
                )
            record = from_store(find_run(directory, run_reference or "last"))
        for kind, target in wanted.items():
            what, function = _REPORT_KINDS[kind]
            module = importlib.import_module(f"flow2._reports._{kind}")
            write_text(getattr(module, function)(record), target, what)
    except (ReportError, ConfigurationError) as error:
        raise UsageProblem(f"flow2 report: {error}") from None
