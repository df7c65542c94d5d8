"""GitHub Actions: a Markdown summary of the run in ``$GITHUB_STEP_SUMMARY``.

Under GitHub Actions (``GITHUB_ACTIONS=true``) the runner adds this
listener; the job's page then shows, below the log, the verdict, a table of
the counts (succeeded, failed, skipped, cancelled, reused), the slowest
tasks and every failure with the last lines of its output, secrets masked.
The file is appended to, as GitHub asks, so several runs in one step each
add their section.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._engine._events import RunEvent
from ._summary import OUTPUT_LINES, SummaryListener
from ._text import describe_error, strip_escapes, user_traceback, visible_path

if TYPE_CHECKING:
    from .._engine._events import Event


_ICONS = {"succeeded": "✅", "failed": "❌", "partial": "⚠️", "cancelled": "⊘"}


class StepSummary(SummaryListener):
    """An event listener appending a Markdown summary of the run to a file.

    :param path: the file (``$GITHUB_STEP_SUMMARY``)
    :param options: those of :class:`SummaryListener` (``masker``, ``output``, ...)
    """

    def __init__(self, path: str, **options: object) -> None:
        super().__init__(color=False, **options)  # type: ignore[arg-type]
        self.path = path

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunEvent) and event.status.is_finished:
            try:
                with open(self.path, "a", encoding="utf-8") as file:
                    file.write(self.markdown(event))
            except OSError as error:
                print(
                    f"flow2: cannot append to GITHUB_STEP_SUMMARY={self.path!r}: {error.strerror}",
                    file=self.stream,
                )
            return
        super().__call__(event)

    def markdown(self, event: RunEvent) -> str:
        """The run's section of the step summary."""
        icon = _ICONS.get(event.status.value, "")
        lines = [f"### {icon} {self.verdict(event)}".replace("  ", " "), ""]
        # One column per count, the header from the same keys as the row.
        lines.append("| " + " | ".join(status.value for status in self.counts) + " |")
        lines.append("|" + "---|" * len(self.counts))
        lines.append("| " + " | ".join(str(count) for count in self.counts.values()) + " |")
        slowest = self.slowest()
        if slowest:
            lines += ["", "**Slowest**", ""]
            lines += [
                f"- {duration:.2f}s {visible_path(record.path)}" for duration, record in slowest
            ]
        for group in self.grouped_failures(event.run):
            first = group[0]
            names = ", ".join(f"`{visible_path(failure.record.path)}`" for failure in group)
            # Four backticks: a three-backtick fence in the output does not end the block.
            lines += ["", f"**Failed:** {names}", "", "````"]
            lines.append(describe_error(first.error))
            lines += user_traceback(first.error)
            if first.output:
                lines += ["", "last lines of output:", *first.output.splitlines()[-OUTPUT_LINES:]]
            lines.append("````")
        directory = self._log_directory()
        if directory is not None:
            lines += ["", f"Task logs: `{directory}{os.sep}`"]
        return strip_escapes(self._mask("\n".join(lines))) + "\n\n"
