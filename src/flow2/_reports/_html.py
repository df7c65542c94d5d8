"""The HTML report: one self-contained file with a timeline of the run.

Everything is inline (style, script, data) and a Content-Security-Policy
forbids the page any request, so it works offline and leaks nothing. The
run's facts, variables and failures are written as HTML; the timeline (one
SVG bar per task, on the lanes of :mod:`._layout`), the task tree and the
details panel are drawn by a small script (``report.js``) from the data
embedded as JSON. The data is compact (a list per task, errors shared), so
10,000 tasks make about 2 MB.
"""

from __future__ import annotations

import datetime
import html
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from .._engine._events import Status
from ._layout import lay_out
from ._source import MARKS, VERDICTS, format_path, format_seconds, masked, record_of

if TYPE_CHECKING:
    from ._model import ErrorRecord, RunRecord
    from ._source import ReportSource

#: The output tail kept per task: at most this many characters ...
MAX_OUTPUT = 4000
#: ... and, over all tasks, about this many.
MAX_TOTAL_OUTPUT = 4_000_000
#: Failures written in full in the failures section; all are in the details.
MAX_FAILURES = 200

_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


def html_report(source: ReportSource, *, run: str = "last") -> str:
    """A run as one self-contained HTML page: timeline, tree, failures, run facts.

    :param source: a :class:`flow2.RunRecord`, or the path of a JSON event file
    :param run: with an event file, which of its runs: an id, a unique prefix, or "last"
    :raises flow2.ReportError: the event file cannot be read

    Example::

        pathlib.Path("report.html").write_text(flow2.html_report("events.jsonl"))
    """
    record = masked(record_of(source, run))
    data = json.dumps(_data(record), ensure_ascii=False, separators=(",", ":"))
    # Inside <script>, "</" could end the element early; JSON allows "<\/".
    data = data.replace("</", "<\\/")
    assets = resources.files(__package__)
    style = (assets / "report.css").read_text(encoding="utf-8")
    script = (assets / "report.js").read_text(encoding="utf-8")
    title = f"{record.name} {VERDICTS.get(record.status, record.status)} · flow2"
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            '<meta name="generator" content="flow2">\n',
            f"<title>{html.escape(title)}</title>\n<style>\n{style}</style>\n</head>\n",
            f'<body class="run-{html.escape(record.status)}">\n',
            _header(record),
            _timeline_section(),
            '<section id="details" hidden><h2>Task</h2><div id="details-body"></div></section>\n',
            _failures(record),
            '<section id="tree-section"><h2>Tasks</h2><div id="tree" role="tree"></div>'
            "</section>\n",
            _variables(record),
            '<div id="tip" role="tooltip" hidden></div>\n',
            f'<script type="application/json" id="flow2-data">{data}</script>\n',
            f"<script>\n{script}</script>\n</body>\n</html>\n",
        ]
    )


def _when(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _header(record: RunRecord) -> str:
    escape = html.escape
    counts = record.counts()
    verdict = VERDICTS.get(record.status, record.status)
    items = [
        ("Run", f"<code>{escape(record.id)}</code>"),
        ("Flow", f"<code>{escape(record.flow)}</code>" if record.flow else "—"),
        ("Started", escape(_when(record.start))),
        ("Duration", escape(format_seconds(record.duration))),
        (
            "Status",
            f'<span class="status s-{escape(record.status)}">{escape(record.status)}</span>',
        ),
        (
            "Tasks",
            ", ".join(
                f'<span class="count s-{status}">{count} {status}</span>'
                for status, count in counts.items()
                if count or status != "unfinished"
            )
            + f" <small>({len(record.leaves())} tasks, "
            f"{len(record.tasks) - len(record.leaves())} groups)</small>",
        ),
    ]
    facts = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in items)
    warning = ""
    if not record.complete:
        warning = (
            '<p class="incomplete" id="incomplete"><strong>Incomplete report:</strong> the '
            "record stops before the run ended (the run was killed, or its event file was cut "
            "short). Tasks shown as unfinished were still running when it stops.</p>\n"
        )
    error = ""
    if record.error is not None:
        error = f'<p class="run-error">The run raised {escape(record.error.describe())}</p>\n'
    mark = MARKS.get(record.status, "")
    return (
        f'<header><h1><span class="mark s-{escape(record.status)}">{mark}</span> '
        f"{escape(record.name)} <small>{escape(verdict)}</small></h1>\n"
        f'<dl class="facts">{facts}</dl>\n{warning}{error}</header>\n'
    )


def _timeline_section() -> str:
    legend = "".join(
        f'<span class="key"><i class="swatch s-{status}"></i>{status}</span>'
        for status in (
            "succeeded",
            "partial",
            "failed",
            "skipped",
            "cancelled",
            "reused",
            "cached",
            "retried",
            "queued",
            "running",
        )
    )
    return (
        '<section id="timeline-section"><h2>Timeline</h2>\n'
        '<div class="toolbar"><button id="zoom-out" title="Zoom out (-)">−</button>'
        '<button id="zoom-in" title="Zoom in (+)">+</button>'
        '<button id="zoom-fit" title="Fit the whole run (0)">fit</button>'
        '<span id="zoom-level"></span><span class="hint">Ctrl + wheel zooms, '
        "drag the scroll bar to move; hover or click a bar for details</span>"
        f'<span class="legend">{legend}</span></div>\n'
        '<div id="chart"><svg id="axis" xmlns="http://www.w3.org/2000/svg" height="22"></svg>'
        '<svg id="bars" xmlns="http://www.w3.org/2000/svg"></svg></div>\n'
        "<noscript><p>The timeline, tree and task details need JavaScript.</p></noscript>\n"
        "</section>\n"
    )


def _failures(record: RunRecord) -> str:
    failures = record.failures()
    if not failures:
        return ""
    escape = html.escape
    parts = [f'<section id="failures"><h2>Failures ({len(failures)})</h2>\n']
    for task in failures[:MAX_FAILURES]:
        error = task.error
        parts.append(
            f'<div class="failure" data-i="{task.index}">'
            f"<h3>{escape(format_path(task.path) + task.label[len(task.name) :])}</h3>"
        )
        if error is not None:
            parts.append(f'<p class="message">{escape(error.describe())}</p>')
            if error.traceback:
                parts.append(f'<pre class="traceback">{escape(error.traceback)}</pre>')
        if task.output:
            parts.append(
                f'<details><summary>output (last lines)</summary><pre class="output">'
                f"{escape(task.output)}</pre></details>"
            )
        parts.append("</div>\n")
    if len(failures) > MAX_FAILURES:
        parts.append(
            f"<p>… and {len(failures) - MAX_FAILURES} more failures: click a red bar or a "
            "task in the tree for each one's details.</p>\n"
        )
    parts.append("</section>\n")
    return "".join(parts)


def _variables(record: RunRecord) -> str:
    escape = html.escape
    if not record.variables:
        body = "<p>No variables recorded.</p>"
    else:
        rows = "".join(
            f"<tr><th>{escape(str(name))}</th><td><code>{escape(_show(value))}</code></td></tr>"
            for name, value in record.variables.items()
        )
        body = f"<table>{rows}</table>"
    return f'<section id="variables"><h2>Variables</h2>{body}</section>\n'


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except ValueError:  # a circular structure
        return repr(value)


def _data(record: RunRecord) -> dict[str, Any]:
    """The JSON the script draws from: one list per task, errors shared."""
    slots, rows = lay_out(record)
    errors: list[list[str]] = []
    error_index: dict[tuple[str, str, str], int] = {}

    def error_of(error: ErrorRecord | None) -> int:
        if error is None:
            return -1
        identity = (error.type, error.message, error.traceback)
        index = error_index.get(identity)
        if index is None:
            index = error_index[identity] = len(errors)
            errors.append(list(identity))
        return index

    with_output = sum(1 for task in record.tasks if task.output) or 1
    output_limit = max(200, min(MAX_OUTPUT, MAX_TOTAL_OUTPUT // with_output))
    origin = record.start
    tasks: list[list[Any]] = []
    for slot in slots:
        task = slot.task
        attempts = [
            [
                round((attempt.start - origin) * 1e6),
                None if attempt.end is None else round((attempt.end - origin) * 1e6),
                "retried" if attempt.status is Status.RETRYING else attempt.status.value,
                error_of(attempt.error),
            ]
            for attempt in task.attempts
        ]
        output = task.output
        if len(output) > output_limit:
            output = "…" + output[-output_limit:]
        tasks.append(
            [
                task.label,
                -1 if task.parent is None else task.parent,
                1 if task.is_group else 0,
                task.status.value,
                slot.start,
                slot.end,
                slot.lane,
                slot.depth,
                attempts,
                error_of(task.error),
                output,
                task.reason or "",
                task.key,
                1 if task.attempts else 0,
                round(task.queued * 1e6),
                task.description,
            ]
        )
    return {
        "run": {
            "id": record.id,
            "name": record.name,
            "status": record.status,
            "start": record.start,
            "span": max(1, round(record.duration * 1e6)),
            "complete": record.complete,
        },
        "tasks": tasks,
        "lanes": rows,
        "errors": errors,
    }
