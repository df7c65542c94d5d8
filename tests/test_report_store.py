"""Reports drawn from the run store: the same record and reports as from the event file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import report_tree, run, write_flow


def run_ids(events: Path) -> list[str]:
    return [
        fields["run_id"]
        for fields in map(json.loads, events.read_text().splitlines())
        if fields["event"] == "run" and fields["status"] == "running"
    ]


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Path]:
    """A run of :func:`report_tree` and its resume, in a store and an event file."""
    events, store = tmp_path / "events.jsonl", tmp_path / "store"
    for resume in (None, "last"):
        runner = flow2.Runner(display="none", events=str(events), store=store, resume=resume)
        run(runner.run(report_tree(), raises=False))
    return events, store


def test_the_store_gives_the_record_the_event_file_gives(recorded: tuple[Path, Path]) -> None:
    events, store = recorded
    first, resumed = run_ids(events)
    for run_id in (first, resumed):
        from_file = flow2.read_events(events, run_id)
        from_store = flow2.read_store(run_id, store=store)
        assert from_store == from_file
    record = flow2.read_store("last", store=store)
    assert record.id == resumed
    statuses = {task.name: task.status for task in record.tasks}
    assert statuses["Version"] is flow2.Status.REUSED
    assert statuses["Hang"] is flow2.Status.CANCELLED
    assert statuses["Upload"] is flow2.Status.SKIPPED
    assert statuses["Build"] is flow2.Status.PARTIAL
    first_record = flow2.read_store(first, store=store)
    unit = next(task for task in first_record.tasks if task.name == "Unit tests")
    assert [attempt.status for attempt in unit.attempts] == [
        flow2.Status.RETRYING,
        flow2.Status.SUCCEEDED,
    ]
    assert unit.attempts[0].error is not None
    assert unit.attempts[0].error.describe() == "ConnectionError: database container not ready"
    wheel = next(task for task in first_record.tasks if task.name == "Wheel")
    assert wheel.error is not None and "raise FileNotFoundError" in wheel.error.traceback
    reused = next(task for task in record.tasks if task.name == "Version")
    assert reused.reason == f"succeeded in run {first}"


@pytest.mark.parametrize(
    "report", [flow2.html_report, flow2.trace_report, flow2.junit_report, flow2.markdown_report]
)
def test_every_report_from_the_store_equals_the_one_from_the_event_file(
    recorded: tuple[Path, Path], report: Any
) -> None:
    events, store = recorded
    for run_id in run_ids(events):
        assert report(flow2.read_store(run_id, store=store)) == report(events, run=run_id)


def flow2_command(*arguments: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flow2", *map(str, arguments)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_flow2_report_reads_the_store_by_default(
    recorded: tuple[Path, Path], tmp_path: Path
) -> None:
    events, store = recorded
    first = run_ids(events)[0]
    for kind in ("--html", "--trace", "--junit", "--markdown"):
        for reference in ("last", first[:6]):
            stored = flow2_command("report", reference, kind, "-", "--store", store, cwd=tmp_path)
            from_file = flow2_command(
                "report", reference, kind, "-", "--events", events, cwd=tmp_path
            )
            assert stored.returncode == 0, stored.stderr
            assert stored.stdout == from_file.stdout
    # FLOW2_STORE, like every other command.
    result = subprocess.run(
        [sys.executable, "-m", "flow2", "report", "--markdown", "-"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "FLOW2_STORE": str(store)},
        check=False,
    )
    assert result.returncode == 0 and "reused" in result.stdout


def test_a_report_from_the_store_has_the_flow_its_masked_variables_and_output(
    tmp_path: Path, python_first_on_path: None
) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: serial
        name: Deploy
        tasks:
          - {plugin: shell, name: Greet, cmd: "echo greeting {{ who }} with {{ api_token }}"}
          - {plugin: shell, name: Break, cmd: "echo about to break; exit 3"}
        """,
    )
    result = flow2_command(
        "run", flow, "who=world", "api_token=s3cr3t", "--display", "none", cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    record = flow2.read_store()  # FLOW2_STORE, which flow2 run recorded into
    assert record.flow == str(flow)
    assert record.variables == {"who": "world", "api_token": "***"}
    greet, broken = record.leaves()
    assert greet.output == "greeting world with ***"
    assert broken.output == "about to break"
    assert broken.error is not None and broken.error.type == "CommandError"
    junit = flow2_command("report", "last", "--junit", "-", cwd=tmp_path)
    assert "<system-out>about to break</system-out>" in junit.stdout
    html = flow2_command("report", "--html", "-", cwd=tmp_path).stdout
    assert str(flow) in html and "s3cr3t" not in html


def test_flow2_report_refuses_an_unknown_run_or_store_in_one_line(
    recorded: tuple[Path, Path], tmp_path: Path
) -> None:
    events, store = recorded
    for arguments, expected in (
        (("nope", "--html", "-", "--store", store), "no run 'nope'"),
        (("--html", "-", "--store", tmp_path / "empty"), "no run store in"),
        (("--html", "-", "--store", store, "--events", events), "choose one"),
    ):
        result = flow2_command("report", *arguments, cwd=tmp_path)
        assert result.returncode == 2
        assert expected in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with pytest.raises(flow2.StoreError, match="no run 'nope'"):
        flow2.read_store("nope", store=store)


def test_a_killed_run_in_the_store_gives_an_incomplete_record(tmp_path: Path) -> None:
    store = tmp_path / "store"
    run(flow2.Runner(display="none", store=store).run(report_tree(), raises=False))
    import sqlite3

    gone_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_pid.wait()
    # What a kill -9 leaves: no end, a process that is gone, the last tasks missing.
    with sqlite3.connect(store / "runs.sqlite3") as connection:
        connection.execute(
            "UPDATE runs SET ended_at = NULL, status = 'running', pid = ?", (gone_pid.pid,)
        )
        connection.execute("DELETE FROM tasks WHERE name IN ('Publish', 'Upload', 'Announce')")
        connection.execute(
            "UPDATE tasks SET status = 'running', ended_at = NULL WHERE name = 'Index'"
        )
    record = flow2.read_store(store=store)
    assert record.status == "interrupted" and not record.complete
    assert [task.name for task in record.tasks][-1] != "Announce"
    index = next(task for task in record.tasks if task.name == "Index")
    assert not index.is_finished and index.end is None
    assert "interrupted" in flow2.markdown_report(record)


def described_tree() -> flow2.Task:
    """A group with descriptions (one holding a secret), many plain successes, and
    cleanup: an ``on_failure`` task, a ``finally`` task that fails, a ``finally`` group."""

    def succeed(context: dict[str, Any]) -> None:
        return None

    def fail(context: dict[str, Any]) -> None:
        raise RuntimeError("tests failed")

    checks = [
        flow2.CallbackTask(f"Check {index}", succeed, description=f"Check part {index}")
        for index in range(30)
    ]
    return flow2.SerialTaskGroup(
        "CI",
        flow2.ParallelTaskGroup("Checks", *checks, description="Every check, side by side"),
        flow2.CallbackTask("Test", fail, description="Runs the tests against hunter2-db"),
        on_failure=[flow2.CallbackTask("Report", succeed, description="Says what failed")],
        finally_tasks=[
            flow2.CallbackTask("Stop database", fail),
            flow2.SerialTaskGroup(
                "Tidy", flow2.CallbackTask("Remove files", succeed), description="Tidies up"
            ),
        ],
        description="The pipeline",
    )


def test_descriptions_and_cleanup_roles_reach_the_reports_drawn_from_the_store(
    tmp_path: Path,
) -> None:
    events, store = tmp_path / "events.jsonl", tmp_path / "store"
    runner = flow2.Runner(display="none", events=str(events), store=store, secrets=["hunter2"])
    run(runner.run(described_tree(), raises=False))

    record = flow2.read_store("last", store=store)
    assert record == flow2.read_events(events)
    shown = {task.label: task.description for task in record.tasks}
    assert shown["CI"] == "The pipeline"
    assert shown["Checks"] == "Every check, side by side"
    assert shown["Check 7"] == "Check part 7"
    assert shown["Test"] == "Runs the tests against ***-db"  # the secret, masked
    assert shown["Report (on failure)"] == "Says what failed"
    assert shown["Stop database (finally)"] == ""
    assert shown["Tidy (finally)"] == "Tidies up"
    assert shown["Remove files"] == ""  # inside a cleanup group: not a cleanup task itself
    for report in (flow2.html_report, flow2.trace_report, flow2.junit_report):
        assert report(record) == report(events)
    markdown = flow2.markdown_report(record)
    assert markdown == flow2.markdown_report(events)
    assert "- **CI › Stop database (finally)**: `RuntimeError: tests failed`" in markdown
    html = flow2_command("report", "--html", "-", "--store", store, cwd=tmp_path).stdout
    assert "Says what failed" in html and "Report (on failure)" in html
    assert "Runs the tests against ***-db" in html and "hunter2" not in html


def test_a_report_written_by_the_run_masks_the_descriptions(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    runner = flow2.Runner(display="none", report=str(report), secrets=["hunter2"])
    run(runner.run(described_tree(), raises=False))
    html = report.read_text()
    assert "Runs the tests against ***-db" in html and "hunter2" not in html


def test_runs_show_and_explain_mark_the_cleanup_tasks_of_a_stored_run(tmp_path: Path) -> None:
    store = tmp_path / "store"
    run(flow2.Runner(display="none", store=store).run(described_tree(), raises=False))

    shown = flow2_command("runs", "show", "last", "--store", store, cwd=tmp_path).stdout
    assert "SUCCESS   Report (on failure) (" in shown
    assert "FAILED    Stop database (finally) (" in shown
    assert "SUCCESS   Tidy (finally) (" in shown
    assert "SUCCESS   Remove files (" in shown and "SUCCESS   Check 3 (" in shown
    assert "Failed: CI › Stop database (finally)\n" in shown
    explained = flow2_command("explain", "Report", "--json", "--store", store, cwd=tmp_path)
    assert json.loads(explained.stdout)["role"] == "on_failure"
    explained = flow2_command("explain", "Check 3", "--json", "--store", store, cwd=tmp_path)
    assert json.loads(explained.stdout)["role"] is None
    explained = flow2_command("explain", "Stop database", "--store", store, cwd=tmp_path)
    assert explained.stdout.startswith("CI › Stop database (finally) in run ")
