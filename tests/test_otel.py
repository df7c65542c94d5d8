"""OpenTelemetry spans: one per run and per task, inside their group's, on the app's provider."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import flow2

from .conftest import report_tree, run

trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
export = pytest.importorskip("opentelemetry.sdk.trace.export")

_EXPORTER = in_memory.InMemorySpanExporter()


@pytest.fixture
def spans() -> Any:
    """The spans finished during one test, from the globally configured provider."""
    # The global provider can be set once per process: set it on first use.
    if not isinstance(trace.get_tracer_provider(), sdk_trace.TracerProvider):
        provider = sdk_trace.TracerProvider()
        provider.add_span_processor(export.SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def test_each_task_is_a_span_inside_its_groups_inside_the_run_and_the_callers(spans: Any) -> None:
    tracer = trace.get_tracer("test")

    async def main() -> None:
        with tracer.start_as_current_span("deploy job"):
            await flow2.Runner(display="none", tracing=True).run(report_tree(), raises=False)

    run(main())
    finished = spans.get_finished_spans()
    by_name = {span.name: span for span in finished}
    outer = by_name["deploy job"]
    run_span = by_name["flow2 run Release"]
    assert run_span.parent.span_id == outer.context.span_id
    assert run_span.context.trace_id == outer.context.trace_id
    assert run_span.status.status_code is trace.StatusCode.ERROR
    # Every task of the tree is a span, named after it.
    assert len(finished) == 2 + 16
    assert by_name["Release"].parent.span_id == run_span.context.span_id
    chain = []
    span = by_name["Render"]
    while span.parent is not None:
        chain.append(span.name)
        span = next(other for other in finished if other.context.span_id == span.parent.span_id)
    assert chain == ["Render", "Docs", "Build", "Release", "flow2 run Release"]
    wheel = by_name["Wheel"]
    assert dict(wheel.attributes) == {
        "flow2.task.key": "wheel",
        "flow2.task.path": "Release › Build › Wheel",
        "flow2.task.status": "failed",
        "flow2.task.attempts": 1,
        "flow2.task.group": False,
    }
    assert wheel.status.status_code is trace.StatusCode.ERROR
    assert [event.name for event in wheel.events] == ["exception"]
    assert wheel.events[0].attributes["exception.type"] == "FileNotFoundError"
    unit = by_name["Unit tests"]
    assert unit.attributes["flow2.task.attempts"] == 2
    assert unit.status.status_code is trace.StatusCode.UNSET
    assert [event.name for event in unit.events] == ["exception", "retry"]
    assert by_name["Upload"].attributes["flow2.task.status"] == "skipped"
    assert by_name["Hang"].attributes["flow2.task.status"] == "cancelled"
    assert wheel.start_time <= wheel.end_time
    assert run_span.start_time <= by_name["Release"].start_time
    assert by_name["Release"].end_time <= run_span.end_time


def test_the_environment_variable_turns_tracing_on(
    spans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW2_OTEL", "1")
    assert flow2.Runner().settings.tracing is True
    run(flow2.Runner(display="none").run(flow2.CallbackTask("Solo", lambda context: 1)))
    assert sorted(span.name for span in spans.get_finished_spans()) == ["Solo", "flow2 run Solo"]
    monkeypatch.setenv("FLOW2_OTEL", "0")
    assert flow2.Runner().settings.tracing is False
    monkeypatch.setenv("FLOW2_OTEL", "maybe")
    with pytest.raises(flow2.ConfigurationError, match="FLOW2_OTEL='maybe'"):
        flow2.Runner()
    with pytest.raises(flow2.ConfigurationError, match="tracing='yes' is not True or False"):
        flow2.Runner(tracing="yes")  # type: ignore[arg-type]


def test_without_tracing_nothing_of_opentelemetry_is_imported() -> None:
    script = (
        "import asyncio, sys, flow2\n"
        "asyncio.run(flow2.Runner(display='none').run(flow2.CallbackTask('A', lambda c: 1)))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert output.strip() == "[]"


def test_tracing_without_opentelemetry_names_the_extra() -> None:
    from .test_package import _without

    result = _without(
        ["opentelemetry"],
        "import flow2\ntry:\n    flow2.Runner(tracing=True)\n"
        "except flow2.ConfigurationError as error:\n    print('refused:', error)\n",
    )
    assert result.returncode == 0, result.stderr
    assert "refused:" in result.stdout and "flow2[otel]" in result.stdout


def test_spans_carry_no_secret(spans: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from .test_secret_exits import ENVIRONMENT_SECRET, RUNNER_SECRET, assert_clean

    monkeypatch.setenv("DEPLOY_TOKEN", ENVIRONMENT_SECRET)

    async def flaky(context: dict[str, Any]) -> None:
        raise RuntimeError(f"refused {RUNNER_SECRET} for {ENVIRONMENT_SECRET}")

    tree = flow2.SerialTaskGroup(
        f"Ship {ENVIRONMENT_SECRET}",
        flow2.CallbackTask(f"use {RUNNER_SECRET}\x1b[2J", flaky, retries=1, retry_delay=0),
    )
    runner = flow2.Runner(display="none", tracing=True, secrets=[RUNNER_SECRET])
    run(runner.run(tree, raises=False))
    finished = spans.get_finished_spans()
    assert len(finished) == 3
    texts: list[str] = []
    for span in finished:
        texts += [span.name, str(span.status.description)]
        texts += [str(value) for value in span.attributes.values()]
        for event in span.events:
            texts += [event.name, *(str(value) for value in event.attributes.values())]
    text = "\n".join(texts)
    assert "refused *** for ***" in text and "use ***\\x1b[2J" in text
    assert "\x1b" not in text
    assert_clean("the spans", text, ENVIRONMENT_SECRET, RUNNER_SECRET)
    failed = next(span for span in finished if span.name.startswith("use"))
    exceptions = [event for event in failed.events if event.name == "exception"]
    assert len(exceptions) == 2  # the retried attempt and the last one
    assert exceptions[-1].attributes["exception.type"] == "RuntimeError"
    assert "flaky" in exceptions[-1].attributes["exception.stacktrace"]
