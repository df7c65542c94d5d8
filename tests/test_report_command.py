"""``flow2 report`` and ``flow2 run --report``, end to end in subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from .conftest import write_flow
from .test_cli import assert_usage_error, environment, flow2

pytestmark = pytest.mark.usefixtures("python_first_on_path")


def test_report_writes_every_kind_from_an_event_file(report_events: Path, tmp_path: Path) -> None:
    html, trace, junit = tmp_path / "r.html", tmp_path / "t.json", tmp_path / "j.xml"
    result = flow2(
        "report",
        "--events",
        report_events,
        "--html",
        html,
        "--trace",
        trace,
        "--junit",
        junit,
        "--markdown",
        "-",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("### ✗ Release failed in ")
    assert "<title>Release failed · flow2</title>" in html.read_text()
    assert len([e for e in json.loads(trace.read_text())["traceEvents"] if e["ph"] == "X"]) == 14
    assert ElementTree.parse(junit).getroot().get("tests") == "10"


def test_report_picks_a_run_of_the_event_file(report_events: Path) -> None:
    run_id = json.loads(report_events.read_text().splitlines()[0])["run_id"]
    result = flow2("report", run_id[:6], "--events", report_events, "--junit", "-")
    assert result.returncode == 0, result.stderr
    assert f'id="{run_id}"' in result.stdout
    assert_usage_error(
        flow2("report", "nope", "--events", report_events, "--junit", "-"),
        "no run 'nope' in the file",
    )


def test_report_refuses_bad_input_in_one_line(report_events: Path, tmp_path: Path) -> None:
    assert_usage_error(flow2("report", "--events", report_events), "--html FILE")
    assert_usage_error(
        flow2("report", "last", "--html", "-", "--store", tmp_path / "none"),
        "no run store",
        "--events",
    )
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text("<html>not events</html>\n")
    assert_usage_error(
        flow2("report", "--events", foreign, "--html", "-"),
        "foreign.jsonl, line 1: not a flow2 event file",
    )
    assert_usage_error(
        flow2("report", "--events", report_events, "--html", tmp_path / "no" / "r.html"),
        "folder that does not exist",
    )
    assert_usage_error(
        flow2("report", "--events", report_events, "--trace", tmp_path), "is a directory"
    )
    for result in (
        flow2("report", "--events", foreign, "--html", "-"),
        flow2("report", "--events", tmp_path / "missing.jsonl", "--html", "-"),
    ):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_run_writes_the_html_report_when_a_task_fails(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        name: Release {{ version }}
        tasks:
          - {plugin: shell, name: Build, cmd: "echo building"}
          - {plugin: shell, name: Test, cmd: "python -c 'raise SystemExit(3)'"}
          - {plugin: shell, name: Publish, cmd: "echo never"}
        """,
    )
    report = tmp_path / "report.html"
    result = flow2(
        "run",
        path,
        "version=1.4",
        "api_token=abc-secret-1",
        "--report",
        report,
        "--display",
        "none",
    )
    assert result.returncode == 1, result.stderr
    page = report.read_text()
    assert "Release 1.4 failed · flow2" in page
    assert str(path) in page and "<th>version</th><td><code>1.4</code>" in page
    assert "abc-secret-1" not in page and "<th>api_token</th><td><code>***</code>" in page
    assert '"Publish"' in page and '"skipped"' in page


def test_run_refuses_an_unwritable_report_path_before_running(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "plugin: shell\nname: Touch\ncmd: touch ran\n")
    result = flow2("run", path, "--report", tmp_path / "missing" / "r.html", cwd=tmp_path)
    assert_usage_error(result, "--report path", "folder that does not exist")
    assert not (tmp_path / "ran").exists()


def test_run_writes_the_report_when_interrupted(tmp_path: Path) -> None:
    started = tmp_path / "started"
    path = write_flow(
        tmp_path,
        f"""
        plugin: parallel
        name: Long
        tasks:
          - {{plugin: shell, name: Quick, cmd: "echo quick"}}
          - plugin: shell
            name: Sleeper
            cmd:
              - python
              - -c
              - "import time; open({str(started)!r}, 'w').close(); time.sleep(600)"
        """,
    )
    report = tmp_path / "report.html"
    process = subprocess.Popen(
        [sys.executable, "-m", "flow2", "run", str(path), f"--report={report}", "--display=none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)  # waiting for the task to have started, not racing it
        assert started.exists(), "the task never started"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stdout + stderr
    page = report.read_text()
    assert "Long was cancelled · flow2" in page
    assert '"Sleeper"' in page and '"cancelled"' in page


def test_run_with_otel_needs_no_exporter_to_succeed(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry")
    path = write_flow(tmp_path, "plugin: shell\nname: Echo\ncmd: echo hi\n")
    assert flow2("run", path, "--otel", "--display", "none").returncode == 0
    assert flow2("run", path, "--display", "none", FLOW2_OTEL="1").returncode == 0
    assert_usage_error(flow2("run", path, FLOW2_OTEL="sometimes"), "FLOW2_OTEL")
