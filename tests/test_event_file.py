"""Every event as a JSON line, in a file or a stream, by argument or FLOW2_EVENTS."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

import flow2
from flow2._listeners._event_file import FORMAT_VERSION
from tests.conftest import run

TASK_FIELDS = {
    "event",
    "run_id",
    "status",
    "time",
    "task",
    "key",
    "path",
    "group",
    "output",
    "attempt",
    "duration",
    "failed_count",
    "retry_delay",
    "error",
    "traceback",
    "reason",
}
RUN_FIELDS = {"event", "run_id", "status", "time", "root", "duration", "error"}


async def _nothing(context: dict[str, Any]) -> str:
    return "done"


def _release() -> flow2.Task:
    attempts = 0

    async def flaky(context: dict[str, Any]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("reset by peer")

    async def broken(context: dict[str, Any]) -> None:
        raise ValueError("no such file")

    return flow2.SerialTaskGroup(
        "Release",
        flow2.ParallelTaskGroup(
            "Build",
            flow2.CallbackTask("Flaky", flaky, retries=1, retry_delay=0),
            flow2.CallbackTask("Wheel", broken),
            on_error="raise",
        ),
        flow2.CallbackTask("Publish", _nothing),
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_event_is_one_json_line_with_the_documented_fields(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    recorder: list[flow2.Event] = []
    runner = flow2.Runner(display="none", events=path, listeners=[recorder.append])
    run(runner.run(_release(), raises=False))
    lines = _lines(path)
    assert len(lines) == len(recorder)
    first, last = lines[0], lines[-1]
    assert set(first) == RUN_FIELDS | {"format"} and first["format"] == FORMAT_VERSION
    assert first["event"] == "run" and first["status"] == "running" and first["root"] == "Release"
    assert set(last) == RUN_FIELDS and last["status"] == "failed"
    assert last["duration"] >= 0 and last["error"] is None  # raises=False: nothing raised
    run_id = first["run_id"]
    tasks = lines[1:-1]
    assert all(set(line) == TASK_FIELDS and line["run_id"] == run_id for line in tasks)
    by_task = {(line["task"], line["status"]): line for line in tasks}

    retry = by_task["Flaky", "retrying"]
    assert retry["path"] == ["Release", "Build", "Flaky"] and retry["key"] == "flaky"
    assert retry["attempt"] == 1 and retry["retry_delay"] == 0
    assert retry["error"] == {"type": "ConnectionError", "message": "reset by peer"}
    assert retry["traceback"].startswith("Traceback (your code, most recent call last):")
    assert by_task["Flaky", "succeeded"]["attempt"] == 2

    failed = by_task["Wheel", "failed"]
    assert failed["group"] is False and failed["duration"] >= 0 and failed["failed_count"] == 1
    assert failed["time"] >= first["time"]
    group = by_task["Build", "failed"]
    assert (
        group["group"] is True
        and group["failed_count"] == 1
        and group["path"] == ["Release", "Build"]
    )
    assert group["error"]["type"] == "ExceptionGroup"
    skipped = by_task["Publish", "skipped"]
    assert skipped["duration"] is None and skipped["error"] is None
    assert skipped["traceback"] is None and "Build" in skipped["reason"]
    assert by_task["Wheel", "running"]["duration"] is None


def test_runs_append_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    runner = flow2.Runner(display="none", events=str(path))
    for _ in range(2):
        run(runner.run(flow2.SerialTaskGroup("Root", flow2.CallbackTask("Step", _nothing))))
    lines = _lines(path)
    assert len(lines) == 12  # run start, 2 tasks x 2 events, run end; twice
    assert len({line["run_id"] for line in lines}) == 2


def test_a_stream_is_written_and_flushed_never_closed() -> None:
    stream = io.StringIO()
    run(
        flow2.Runner(display="none", events=stream).run(
            flow2.SerialTaskGroup("Café ☕", flow2.CallbackTask("Étape", _nothing))
        )
    )
    assert not stream.closed
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[1]["path"] == ["Café ☕"] and lines[2]["path"] == ["Café ☕", "Étape"]
    assert "Café ☕" in stream.getvalue()  # readable, not \\u-escaped


def test_environment_variable_chooses_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "from-env.jsonl"
    monkeypatch.setenv("FLOW2_EVENTS", str(path))
    run(flow2.Runner(display="none").run(flow2.CallbackTask("Only", _nothing)))
    assert [line["status"] for line in _lines(path)] == [
        "running",
        "running",
        "succeeded",
        "succeeded",
    ]


def test_empty_environment_variable_means_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW2_EVENTS", "")
    assert flow2.Runner(display="none").settings.events is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{tmp}", "is a directory; give a file path such as"),
        ("{tmp}/missing/events.jsonl", "does not exist; create it or choose another path"),
        ("  ", "is empty; give a file path"),
    ],
)
def test_bad_environment_values_are_configuration_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("FLOW2_EVENTS", value.format(tmp=tmp_path))
    with pytest.raises(
        flow2.ConfigurationError, match="environment variable FLOW2_EVENTS="
    ) as caught:
        flow2.Runner()
    assert message in str(caught.value)


def test_bad_argument_values_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(flow2.ConfigurationError, match=r"events=42 is neither a file path"):
        flow2.Runner(events=42)  # type: ignore[arg-type]
    with pytest.raises(flow2.ConfigurationError, match=r"events='.*' is a directory"):
        flow2.Runner(events=tmp_path)


def test_a_file_that_cannot_be_opened_fails_before_anything_runs(tmp_path: Path) -> None:
    ran = []

    async def work(context: dict[str, Any]) -> None:
        ran.append(True)

    runner = flow2.Runner(display="none", events=tmp_path / ("x" * 300))
    with pytest.raises(
        flow2.ConfigurationError, match="cannot open the events file .*choose a writable path"
    ):
        run(runner.run(flow2.CallbackTask("Work", work)))
    assert ran == []


def test_the_run_line_carries_the_exception_the_run_raised() -> None:
    stream = io.StringIO()

    async def broken(context: dict[str, Any]) -> None:
        raise KeyError("version")

    with pytest.raises(KeyError):
        run(flow2.Runner(display="none", events=stream).run(flow2.CallbackTask("Read", broken)))
    last = json.loads(stream.getvalue().splitlines()[-1])
    assert last["event"] == "run" and last["status"] == "failed"
    assert last["error"] == {"type": "KeyError", "message": "'version'"}


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_file_that_fails_to_write_is_closed_and_the_run_goes_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # /dev/full opens, then every write fails with "No space left on device".
    runner = flow2.Runner(display="none", events="/dev/full")
    context = run(runner.run(_release(), raises=False))
    assert isinstance(context["wheel"], ValueError)  # the work went on without the file
    message = capsys.readouterr().err
    assert "'EventFile' failed and stopped receiving events" in message
    assert "No space left on device" in message and "object at 0x" not in message


# Crashes, permissions, full disks -------------------------------------------------


def test_a_new_events_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    run(flow2.Runner(display="none", events=path).run(flow2.CallbackTask("A", _nothing)))
    assert path.stat().st_mode & 0o777 == 0o600


def test_each_task_end_is_in_the_file_while_the_run_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    seen: list[str] = []

    async def read_the_file(context: dict[str, Any]) -> None:
        # "First" ended a moment ago; its line must be readable now.
        seen.extend(path.read_text().splitlines())

    tree = flow2.SerialTaskGroup(
        "Run", flow2.CallbackTask("First", _nothing), flow2.CallbackTask("Reader", read_the_file)
    )
    run(flow2.Runner(display="none", events=path).run(tree))
    lines = [json.loads(line) for line in seen]
    assert any(line.get("task") == "First" and line["status"] == "succeeded" for line in lines)


def test_after_kill_9_every_line_is_valid_json(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    path = tmp_path / "events.jsonl"
    script = tmp_path / "crash.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, flow2

            async def step(context):
                await asyncio.sleep(0.001)
                return "x" * 3000  # long lines: many writes per second

            tree = flow2.SerialTaskGroup(
                "Long", *(flow2.CallbackTask(f"Step {{i}}", step) for i in range(100000))
            )
            asyncio.run(flow2.Runner(display="none", events={str(path)!r}).run(tree))
            """
        )
    )
    process = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 60
        while not path.exists() or path.stat().st_size < 200_000:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    lines = path.read_text().splitlines()
    assert len(lines) > 10
    for line in lines:
        json.loads(line)  # raises on a torn line
    assert path.read_text().endswith("\n")


def test_dev_full_makes_flow2_run_exit_1_saying_so(tmp_path: Path) -> None:
    import subprocess
    import sys

    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    flow = tmp_path / "flow.yml"
    flow.write_text("plugin: shell\ncmd: echo fine\n")
    result = subprocess.run(
        [sys.executable, "-m", "flow2", "run", str(flow), "--events", "/dev/full"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "the events file '/dev/full' could not be written" in result.stderr
    assert "No space left on device" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("where", ["/proc/flow2-no/events.jsonl", "flow.yml/events.jsonl"])
def test_an_events_file_that_cannot_be_opened_exits_2(tmp_path: Path, where: str) -> None:
    import subprocess
    import sys

    events = str(tmp_path / where)
    flow = tmp_path / "flow.yml"
    flow.write_text("plugin: shell\ncmd: touch ran\n")
    result = subprocess.run(
        [sys.executable, "-m", "flow2", "run", str(flow), "--events", events],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert events in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "ran").exists()  # nothing ran


def test_files_holding_output_are_owner_only(tmp_path: Path) -> None:
    import subprocess
    import sys

    flow = tmp_path / "flow.yml"
    flow.write_text("plugin: shell\nname: Talk\ncmd: echo secret-ish output\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flow2",
            "run",
            str(flow),
            "--display",
            "plain",
            "--events",
            "events.jsonl",
            "--report",
            "report.html",
            "--store",
            "store",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    written = [tmp_path / "events.jsonl", tmp_path / "report.html", tmp_path / "store"]
    written += list((tmp_path / "store").rglob("*"))
    assert any(path.suffix == ".log" for path in written)  # the task's log file is there
    for path in written:
        expected = 0o700 if path.is_dir() else 0o600
        assert path.stat().st_mode & 0o777 == expected, path
