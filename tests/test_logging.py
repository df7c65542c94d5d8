"""Every event on the `flow2` logger, with task attributes; listeners."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import flow2
from tests.conftest import Recorder, run


def give(name: str, value: object = "ok") -> flow2.CallbackTask:
    async def callback(context: dict[str, Any]) -> object:
        return value

    return flow2.CallbackTask(name, callback)


def test_records_levels_and_attributes(caplog: pytest.LogCaptureFixture) -> None:
    async def fail(context: dict[str, Any]) -> None:
        raise ValueError("bad input")

    tree = flow2.SerialTaskGroup("Release", give("Build wheel"), flow2.CallbackTask("Push", fail))
    with caplog.at_level(logging.DEBUG, logger="flow2"):
        run(flow2.Runner(display="none").run(tree, raises=False))
    records = [record for record in caplog.records if getattr(record, "key", None)]
    by_message = {record.getMessage(): record for record in records}
    started = by_message["STARTING Build wheel"]
    assert started.levelno == logging.DEBUG
    assert (started.task, started.key, started.status) == ("Build wheel", "build_wheel", "running")  # type: ignore[attr-defined]
    assert started.duration is None  # type: ignore[attr-defined]
    succeeded = by_message["SUCCESS Build wheel"]
    assert succeeded.levelno == logging.INFO
    assert succeeded.duration >= 0  # type: ignore[attr-defined]
    assert succeeded.path == "Release › Build wheel"  # type: ignore[attr-defined]
    failed = by_message["FAILED Push"]
    assert failed.levelno == logging.ERROR
    assert failed.exc_info is not None and isinstance(failed.exc_info[1], ValueError)
    group = by_message["FAILED Release: 1 failed inside"]
    assert group.levelno == logging.ERROR and group.exc_info is None
    assert {record.run_id for record in records} == {succeeded.run_id}  # type: ignore[attr-defined]


def test_nothing_is_logged_below_the_configured_level(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flow2"):
        run(flow2.Runner(display="none").run(give("A")))
    assert [record for record in caplog.records if record.name == "flow2"] == []


def test_unconfigured_logging_prints_no_stray_records() -> None:
    script = textwrap.dedent(
        """
        import asyncio, flow2
        async def fail(context):
            raise ValueError("x")
        asyncio.run(flow2.Runner(display="none").run(flow2.CallbackTask("F", fail), raises=False))
        """
    )
    process = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert process.stdout == "" and process.stderr == ""


def test_task_logger_records_carry_the_task(caplog: pytest.LogCaptureFixture) -> None:
    class Talkative(flow2.Task):
        async def run(self, context: dict[str, Any]) -> None:
            self.logger.info("from the task")
            flow2.logger.warning("from anywhere inside it")

    tree = flow2.SerialTaskGroup("Root", Talkative("Talk"))
    with caplog.at_level(logging.INFO, logger="flow2.tasks"):
        run(flow2.Runner(display="none").run(tree))
    records = [record for record in caplog.records if record.name == "flow2.tasks"]
    assert [record.getMessage() for record in records] == [
        "from the task",
        "from anywhere inside it",
    ]
    assert {record.task for record in records} == {"Talk"}  # type: ignore[attr-defined]
    assert {record.path for record in records} == {"Root › Talk"}  # type: ignore[attr-defined]


def test_flow2_logger_outside_any_task(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="flow2.tasks"):
        flow2.logger.info("outside")
    assert caplog.records[-1].task is None  # type: ignore[attr-defined]


def test_listeners_receive_the_whole_event_stream(recorder: Recorder) -> None:
    tree = flow2.SerialTaskGroup("Root", give("A", 1))
    run(flow2.Runner(display="none", listeners=[recorder]).run(tree))
    kinds = [
        (
            type(event).__name__,
            event.status.name,
            getattr(getattr(event, "task", None), "name", None),
        )
        for event in recorder.events
    ]
    assert kinds == [
        ("RunEvent", "RUNNING", None),
        ("TaskEvent", "RUNNING", "Root"),
        ("TaskEvent", "RUNNING", "A"),
        ("TaskEvent", "SUCCEEDED", "A"),
        ("TaskEvent", "SUCCEEDED", "Root"),
        ("RunEvent", "SUCCEEDED", None),
    ]
    a_done = recorder.events[3]
    assert isinstance(a_done, flow2.TaskEvent)
    assert a_done.result == 1 and a_done.path == ("Root", "A") and a_done.duration is not None
    assert repr(a_done) == "<TaskEvent SUCCEEDED 'A' attempt=1>"
    end = recorder.events[-1]
    assert isinstance(end, flow2.RunEvent) and end.duration is not None and end.duration >= 0


def test_a_broken_listener_is_removed_and_the_work_goes_on(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], recorder: Recorder
) -> None:
    def broken(event: flow2.Event) -> None:
        raise RuntimeError("listener bug")

    with caplog.at_level(logging.ERROR, logger="flow2"):
        context = run(flow2.Runner(display="none", listeners=[broken, recorder]).run(give("A")))
    assert context == {"a": "ok"}
    assert "failed and was removed" in caplog.text
    stderr = capsys.readouterr().err
    assert "stopped receiving events (RuntimeError: listener bug)" in stderr
    assert stderr.count("\n") == 1  # said once, not once per event
    assert recorder.final("A") is flow2.Status.SUCCEEDED
    # The listener after the broken one still saw the event that broke it.
    first = recorder.events[0]
    assert isinstance(first, flow2.RunEvent) and first.status is flow2.Status.RUNNING


def test_a_listener_receives_only_the_statuses_it_listens_to(recorder: Recorder) -> None:
    class Outcomes(Recorder):
        listens_to = frozenset({flow2.Status.SUCCEEDED, flow2.Status.FAILED})

    async def fail(context: dict[str, Any]) -> None:
        raise ValueError("no")

    outcomes = Outcomes()
    tree = flow2.ParallelTaskGroup("Root", give("A"), flow2.CallbackTask("B", fail))
    runner = flow2.Runner(display="none", listeners=[outcomes, recorder])
    run(runner.run(tree, raises=False))
    # Run events always, task events of the statuses asked for only...
    assert [(type(event).__name__, event.status.name) for event in outcomes.events] == [
        ("RunEvent", "RUNNING"),
        ("TaskEvent", "SUCCEEDED"),
        ("TaskEvent", "FAILED"),
        ("RunEvent", "PARTIAL"),  # not the group's PARTIAL task event
    ]
    # ... while the listener next to it still receives every event.
    assert recorder.statuses("A") == [flow2.Status.RUNNING, flow2.Status.SUCCEEDED]
    assert recorder.statuses("Root") == [flow2.Status.RUNNING, flow2.Status.PARTIAL]


def test_a_listens_to_that_is_not_a_set_of_statuses_means_every_event() -> None:
    class Named:
        # A user's listener may well have a method of that name.
        def __init__(self) -> None:
            self.statuses: list[flow2.Status] = []

        def listens_to(self) -> str:
            return "everything"

        def __call__(self, event: flow2.Event) -> None:
            if isinstance(event, flow2.TaskEvent):
                self.statuses.append(event.status)

    listener = Named()
    run(flow2.Runner(display="none", listeners=[listener]).run(give("A")))
    assert listener.statuses == [flow2.Status.RUNNING, flow2.Status.SUCCEEDED]
