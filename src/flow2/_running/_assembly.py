"""The listeners of one run, built in one place from its settings.

What tasks print, a display (plain lines or the live view) with the summary,
GitHub Actions' step summary, logging, the event file, the HTML report,
tracing, the run store's recorder, then the caller's own listeners: all
sharing one :class:`~flow2._listeners._secrets.SecretMasker`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._listeners._settings import Display

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

    from .._engine._events import EventListener
    from .._listeners._console import PlainConsole
    from .._listeners._event_file import EventFile
    from .._listeners._live import LiveView
    from .._listeners._output import TaskOutput
    from .._store._recorder import StoreRecorder
    from ._settings import RunSettings


class RunListeners:
    """The listeners of one run, and the ones whose outcome the runner reads afterwards.

    :ivar listeners: every listener, in the order they are called
    :ivar event_file: the event file's writer, when the run writes one
    :ivar display: the display chosen (NONE: nothing on the stream)
    """

    def __init__(self, settings: RunSettings, recorder: StoreRecorder | None = None) -> None:
        # The listeners load with the first run, not with ``import flow2``.
        from .._listeners._closable import closable
        from .._listeners._console import PlainConsole
        from .._listeners._interrupt import InterruptNotice
        from .._listeners._logging import LoggingListener, TaskRecordRouter
        from .._listeners._output import TaskOutput
        from .._listeners._secrets import MaskLogRecords, SecretMasker

        masker = SecretMasker.from_environment(settings.secrets, settings.environ)
        self.display = display = settings.chosen_display()
        verbosity = settings.verbosity
        self.event_file: EventFile | None = None
        # First: it puts each task's output on the event that ends the task.
        output = TaskOutput(
            masker,
            log_dir=settings.log_dir,
            # What tasks print is attributed and kept (log files, the store,
            # the ``flow2.tasks`` logger) even with no display: it never
            # goes to the stdout of a service that embeds the run.
            capture_prints=True,
            log_lines=display is Display.NONE,
        )
        listeners: list[EventListener] = [output, MaskLogRecords(masker)]
        shown: PlainConsole | LiveView | None = None
        # One stream for the display and the summary, which turns quiet when
        # its reader goes away (``| head``): see test_a_closed_stdout_fails_no_task.
        stream = closable(settings.stream) if display is not Display.NONE else None
        if display is Display.LIVE:
            from .._listeners._live import LiveView  # imports rich: only when used

            shown = LiveView(
                stream,
                color=settings.color,
                verbosity=verbosity,
                force_terminal=settings.display is Display.LIVE,
                masker=masker,
                output=output,
            )
        elif display is Display.PLAIN:
            shown = PlainConsole(
                stream,
                color=settings.color,
                verbosity=verbosity,
                masker=masker,
                output=output,
                github=settings.is_github_actions,
            )
        if shown is not None:
            output.display = shown
            listeners += [
                TaskRecordRouter(_show_record(output, shown), verbosity.log_level),
                shown,
                InterruptNotice([shown]),
            ]
            from .._listeners._summary import SummaryListener

            events = settings.events if isinstance(settings.events, str | os.PathLike) else None
            listeners.append(
                SummaryListener(
                    stream,
                    color=settings.color,
                    verbosity=verbosity,
                    masker=masker,
                    output=output,
                    events=os.fspath(events) if events is not None else None,
                )
            )
        if settings.is_github_actions and settings.github_step_summary:
            from .._listeners._github import StepSummary

            listeners.append(
                StepSummary(settings.github_step_summary, masker=masker, output=output)
            )
        listeners.append(LoggingListener())
        if settings.events is not None:
            from .._listeners._event_file import EventFile

            self.event_file = EventFile(settings.events, masker=masker)
            self.event_file.open()  # a path that cannot be written fails before the run
            listeners.append(self.event_file)
        if settings.report is not None:
            from .._reports._writing import HtmlReportWriter

            listeners.append(
                HtmlReportWriter(
                    settings.report,
                    flow=settings.flow_file,
                    variables=dict(settings.variables) if settings.variables else None,
                    masker=masker,
                )
            )
        if settings.tracing:
            from .._reports._otel import TracingListener  # imports opentelemetry: only when used

            listeners.append(TracingListener(masker=masker))
        if recorder is not None:
            listeners += [TaskRecordRouter(recorder.add_output, _INFO), recorder]
        listeners.extend(settings.listeners)
        self.listeners = listeners


#: Task log records from this level up are stored with the task's output.
_INFO = 20


def _show_record(
    output: TaskOutput, display: PlainConsole | LiveView
) -> Callable[[logging.LogRecord], None]:
    """What the task record router calls: keep the record with the task's output, show it."""
    from .._listeners._text import record_text

    def show(record: logging.LogRecord) -> None:
        output.add_record(record, record_text(record))
        display.show_record(record)

    return show
