"""A short Markdown summary, for ``$GITHUB_STEP_SUMMARY`` or a pull-request comment.

The verdict, the counts and the duration, the slowest tasks, then each
failure with its place in the tree, its message and the user's traceback
(folded in ``<details>``).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from ._source import MARKS, VERDICTS, format_path, format_seconds, masked, record_of

if TYPE_CHECKING:
    from ._source import ReportSource

#: How many of the slowest tasks are listed.
SLOWEST_COUNT = 5
#: Failures listed in full; the rest are counted.
MAX_FAILURES = 20


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell or inline code."""
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def markdown_report(source: ReportSource, *, run: str = "last") -> str:
    """A short Markdown summary of a run: verdict, counts, duration, slowest tasks, failures.

    :param source: a :class:`flow2.RunRecord`, or the path of a JSON event file
    :param run: with an event file, which of its runs: an id, a unique prefix, or "last"
    :raises flow2.ReportError: the event file cannot be read
    """
    record = masked(record_of(source, run))
    mark = MARKS.get(record.status, "✗")
    verdict = VERDICTS.get(record.status, record.status)
    lines = [f"### {mark} {_cell(record.name)} {verdict} in {format_seconds(record.duration)}", ""]
    counts = record.counts()
    shown = ", ".join(
        f"{count} {status}" for status, count in counts.items() if count or status != "unfinished"
    )
    started = datetime.datetime.fromtimestamp(record.start, datetime.UTC)
    lines.append(
        f"{shown} · {len(record.leaves())} tasks · run `{record.id}` started "
        f"{started.strftime('%Y-%m-%d %H:%M:%S')} UTC"
        + (f" · flow `{_cell(record.flow)}`" if record.flow else "")
    )
    if not record.complete:
        lines += ["", "> **Incomplete:** the record stops before the run ended (killed?)."]
    finished = [task for task in record.leaves() if task.duration is not None]
    slowest = sorted(finished, key=lambda task: -(task.duration or 0.0))[:SLOWEST_COUNT]
    if slowest:
        lines += ["", "| Slowest | Time |", "|---|---:|"]
        lines += [
            f"| {_cell(format_path(task.path))} | {format_seconds(task.duration)} |"
            for task in slowest
        ]
    failures = record.failures()
    if failures:
        lines += ["", f"#### Failures ({len(failures)})", ""]
        for task in failures[:MAX_FAILURES]:
            error = task.error
            message = _cell(error.describe()) if error else "failed"
            note = task.label[len(task.name) :]
            lines.append(f"- **{_cell(format_path(task.path))}{note}**: `{message}`")
            if error is not None and error.traceback:
                traceback = error.traceback.replace("```", "'''")
                lines += [
                    "  <details><summary>traceback</summary>",
                    "",
                    "  ```",
                    *(f"  {line}" for line in traceback.splitlines()),
                    "  ```",
                    "  </details>",
                ]
        if len(failures) > MAX_FAILURES:
            lines.append(f"- … and {len(failures) - MAX_FAILURES} more")
    return "\n".join(lines) + "\n"
