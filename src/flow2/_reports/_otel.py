"""OpenTelemetry spans for a run: the run is a span, each task a span inside its group's.

Enabled by ``Runner(tracing=True)``, ``FLOW2_OTEL=1`` or ``flow2 run --otel``;
needs ``opentelemetry-api`` (``flow2[otel]``), imported only then. Spans go
to the application's tracer provider (the global one, as
``opentelemetry-instrument`` and the ``OTEL_*`` variables configure it), and
the span current where the run starts (around ``await root.run()``) is the
run span's parent. Each task span is named after the task and carries
``flow2.task.key``, ``flow2.task.path``, ``flow2.task.status`` and
``flow2.task.attempts``; a failure is recorded on its span with status ERROR.
A task that never started (skipped, reused) is a span of no duration.

Everything a span carries (its name, attributes, events, the failure's
message and traceback) goes through the run's secret masker first, and a
task's name or path shows its control characters as text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._engine._events import RunEvent, Status, TaskEvent
from .._listeners._text import describe_error, user_traceback, visible, visible_path

if TYPE_CHECKING:
    from .._engine._events import Event
    from .._engine._state import TaskRun
    from .._listeners._secrets import SecretMasker

#: The instrumentation scope's name.
TRACER_NAME = "flow2"

_RUNNING, _RETRYING, _FAILED = Status.RUNNING, Status.RETRYING, Status.FAILED


def _nanoseconds(seconds: float) -> int:
    return int(seconds * 1e9)


class TracingListener:
    """An event listener that turns a run's events into OpenTelemetry spans.

    :param masker: masks secrets in everything a span carries
    :raises ImportError: when opentelemetry-api is not installed (the runner
        checks first and names the extra)
    """

    def __init__(self, *, masker: SecretMasker | None = None) -> None:
        from opentelemetry import context, trace

        from .. import __version__

        self._trace = trace
        self._context = context
        self._tracer = trace.get_tracer(TRACER_NAME, __version__)
        self._run_span: Any = None
        self._spans: dict[int, Any] = {}
        self._masker = masker

    def _mask(self, text: str) -> str:
        masker = self._masker
        return masker.mask(text) if masker is not None else text

    def __call__(self, event: Event) -> None:
        if type(event) is TaskEvent:
            self._task(event)
        elif isinstance(event, RunEvent):
            self._run(event)

    def _run(self, event: RunEvent) -> None:
        if event.status is _RUNNING:
            # The context current here is the caller's: a span active around
            # ``await root.run()`` becomes the parent.
            self._run_span = self._tracer.start_span(
                self._mask(f"flow2 run {visible(event.run.root.name)}"),
                context=self._context.get_current(),
                start_time=_nanoseconds(event.time),
                attributes={
                    "flow2.run.id": event.run.id,
                    "flow2.run.root": self._mask(visible(event.run.root.name)),
                },
            )
            return
        span = self._run_span
        if span is None:
            return
        span.set_attribute("flow2.run.status", event.status.value)
        if event.error is not None:
            self._fail(span, event.error)
        elif event.status is _FAILED:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, "a task failed"))
        # Spans still open (the run stopped under them) end with the run.
        for open_span in self._spans.values():
            if open_span.is_recording():
                open_span.end(end_time=_nanoseconds(event.time))
        self._spans.clear()
        span.end(end_time=_nanoseconds(event.time))
        self._run_span = None

    def _task(self, event: TaskEvent) -> None:
        record = event.record
        status = event.status
        span = self._spans.get(id(record))
        if span is None or status is _RUNNING:
            if span is not None and span.is_recording():  # pragma: no cover - a rerun
                span.end(end_time=_nanoseconds(event.time))
            span = self._start(record, event)
        if status is _RUNNING:
            return
        if status is _RETRYING:
            attributes = {"flow2.task.attempt": event.attempt}
            if event.error is not None:
                self._record_exception(span, event.error, attributes, _nanoseconds(event.time))
            span.add_event("retry", attributes=attributes, timestamp=_nanoseconds(event.time))
            return
        span.set_attribute("flow2.task.status", status.value)
        span.set_attribute("flow2.task.attempts", event.attempt)
        if event.reason:
            span.set_attribute("flow2.task.reason", self._mask(visible(event.reason)))
        if status is _FAILED and event.error is not None:
            self._fail(span, event.error)
        span.end(end_time=_nanoseconds(event.time))

    def _start(self, record: TaskRun, event: TaskEvent) -> Any:
        parent = record.parent
        parent_span = self._spans.get(id(parent)) if parent is not None else self._run_span
        if parent_span is None:
            parent_span = self._run_span
        parent_context = (
            self._trace.set_span_in_context(parent_span) if parent_span is not None else None
        )
        start = event.time - event.duration if event.duration else event.time
        span = self._tracer.start_span(
            self._mask(visible(event.task.name)),
            context=parent_context,
            start_time=_nanoseconds(start),
            attributes={
                "flow2.task.key": self._mask(visible(event.task.key)),
                "flow2.task.path": self._mask(visible_path(event.path)),
                "flow2.task.status": event.status.value,
                "flow2.task.attempts": event.attempt,
                "flow2.task.group": not event.task.stores_result,
            },
        )
        self._spans[id(record)] = span
        return span

    def _fail(self, span: Any, error: BaseException) -> None:
        self._record_exception(span, error)
        span.set_status(
            self._trace.Status(self._trace.StatusCode.ERROR, self._mask(describe_error(error)))
        )

    def _record_exception(
        self,
        span: Any,
        error: BaseException,
        attributes: dict[str, Any] | None = None,
        timestamp: int | None = None,
    ) -> None:
        """What ``span.record_exception`` records, masked: an "exception" event."""
        # The SDK's record_exception formats the message and the traceback
        # itself, out of the masker's reach: build the event from masked text.
        fields: dict[str, Any] = {
            "exception.type": type(error).__qualname__,
            "exception.message": self._mask(describe_error(error).partition(": ")[2]),
            "exception.stacktrace": self._mask("\n".join(user_traceback(error))),
            "exception.escaped": "False",
        }
        fields.update(attributes or {})
        span.add_event("exception", attributes=fields, timestamp=timestamp)
