"""Reports after a run: the record, the trace, JUnit XML, Markdown and the HTML page."""

from __future__ import annotations

import asyncio
import json
import random
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import report_tree, run

# The record ------------------------------------------------------------------


def by_name(record: flow2.RunRecord) -> dict[str, flow2.TaskRecord]:
    return {task.name: task for task in record.tasks}


def test_the_record_holds_every_task_with_its_outcome(report_events: Path) -> None:
    record = flow2.read_events(report_events)
    tasks = by_name(record)
    assert record.name == "Release" and record.status == "failed" and record.complete
    assert record.counts() == {
        "succeeded": 5,
        "failed": 2,
        "skipped": 2,
        "cancelled": 1,
        "reused": 0,
        "cached": 0,
        "unfinished": 0,
    }
    assert sum(record.counts().values()) == len(record.leaves()) == 10
    assert len(record.tasks) == 16
    # Parents come before their children and point at their group.
    for task in record.tasks:
        assert record.tasks[task.index] is task
        if task.parent is not None:
            assert task.parent < task.index
            assert record.tasks[task.parent].path == task.parent_path
    assert tasks["Render"].parent == tasks["Docs"].index
    assert tasks["Docs"].is_group and not tasks["Render"].is_group
    wheel = tasks["Wheel"]
    assert wheel.error is not None and wheel.error.type == "FileNotFoundError"
    assert "raise FileNotFoundError" in wheel.error.traceback
    assert tasks["Hang"].status is flow2.Status.CANCELLED
    assert tasks["Upload"].status is flow2.Status.SKIPPED
    assert tasks["Upload"].reason and "Checks" in tasks["Upload"].reason
    assert tasks["Upload"].attempts == [] and tasks["Upload"].duration is None
    assert [task.path for task in record.failures()] == [
        ("Release", "Build", "Wheel"),
        ("Release", "Checks", "Audit"),
    ]
    for task in record.tasks:
        if task.attempts:
            assert task.end is not None and task.start <= task.end
            assert record.start <= task.start and task.end <= record.end + 1e-3


def test_a_retried_task_has_one_attempt_per_try(report_events: Path) -> None:
    unit = by_name(flow2.read_events(report_events))["Unit tests"]
    assert unit.status is flow2.Status.SUCCEEDED
    first, second = unit.attempts
    assert (first.number, second.number) == (1, 2)
    assert first.status is flow2.Status.RETRYING and second.status is flow2.Status.SUCCEEDED
    assert first.error is not None and first.error.message == "database container not ready"
    assert first.end is not None and second.end is not None
    # The second attempt starts after the first ended and the backoff passed.
    assert first.start < first.end <= second.start <= second.end
    assert unit.error is None


def test_a_record_built_in_memory_equals_the_one_read_from_the_file(tmp_path: Path) -> None:
    from flow2._reports._model import RunCollector

    collector = RunCollector(flow="release.yml", variables={"version": "1.0"})
    path = tmp_path / "events.jsonl"
    runner = flow2.Runner(display="none", events=str(path), listeners=[collector])
    run(runner.run(report_tree(), raises=False))
    in_memory, from_file = collector.record(), flow2.read_events(path)
    assert in_memory.flow == "release.yml" and in_memory.variables == {"version": "1.0"}
    in_memory.flow, in_memory.variables = None, {}
    assert in_memory == from_file


def cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def test_a_truncated_event_file_gives_an_incomplete_report(report_events: Path) -> None:
    lines = report_events.read_text().splitlines()
    running = next(i for i, line in enumerate(lines) if '"Hang"' in line and "running" in line)
    # Cut in the middle of the line after "Hang" started: a run killed mid-way.
    text = "\n".join(lines[: running + 1]) + "\n" + lines[running + 1][:25]
    report_events.write_text(text)
    record = flow2.read_events(report_events)
    assert not record.complete and record.status == "interrupted"
    hang = by_name(record)["Hang"]
    assert not hang.is_finished and hang.end is None
    assert record.counts()["unfinished"] >= 1
    assert "Publish" not in by_name(record)  # never reached in what was written
    assert "Incomplete report" in flow2.html_report(record)
    assert "Incomplete" in flow2.markdown_report(record)
    suite = ElementTree.fromstring(flow2.junit_report(record)).find("testsuite")
    assert suite is not None and int(suite.get("errors", "0")) == record.counts()["unfinished"]
    check_trace_nesting(json.loads(flow2.trace_report(record)))


def test_an_event_file_cut_at_a_line_end_is_incomplete_too(report_events: Path) -> None:
    lines = report_events.read_text().splitlines(keepends=True)
    report_events.write_text("".join(lines[:-1]))  # the run's end line is missing
    record = flow2.read_events(report_events)
    assert not record.complete and record.status == "interrupted"
    assert all(task.is_finished for task in record.tasks if task.name != "Release")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no run in the file"),
        ("hello world\n", "line 1: not a flow2 event file"),
        ('{"a": 1}\n', "line 1: not a flow2 event"),
        ('{"event": "run", "run_id": "ab", "time": 1', "line 1: not a flow2 event file"),
        (
            '{"event": "task", "run_id": "ab", "time": 1, "status": "running"}\n',
            "before that run's start line",
        ),
        (
            '{"event": "run", "run_id": "ab", "time": 1, "status": "running", "root": "R", '
            '"format": 9}\n',
            "written by a newer flow2",
        ),
        (
            '{"event": "run", "run_id": "ab", "time": 1, "status": "running", "root": "R"}\n'
            '{"event": "task", "run_id": "ab", "time": 2, "status": "bogus"}\n',
            "run ab has an event flow2 cannot read",
        ),
    ],
)
def test_files_that_are_not_flow2_event_files_are_refused(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(text)
    with pytest.raises(flow2.ReportError, match=re.escape(fragment)) as caught:
        flow2.read_events(path)
    assert caught.value.file == str(path)
    with pytest.raises(flow2.ReportError, match="cannot read the event file"):
        flow2.read_events(tmp_path / "missing.jsonl")


def test_a_run_is_chosen_by_id_prefix_or_last(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    for _ in range(2):
        run(flow2.Runner(display="none", events=str(path)).run(report_tree(), raises=False))
    ids = [json.loads(line)["run_id"] for line in path.read_text().splitlines()]
    first, last = ids[0], ids[-1]
    assert flow2.read_events(path).id == last
    assert flow2.read_events(path, first).id == first
    assert flow2.read_events(path, first[:8]).id == first
    with pytest.raises(flow2.ReportError, match="no run 'zz' in the file"):
        flow2.read_events(path, "zz")
    lines = path.read_text().splitlines()
    twins = [line.replace(first, "aaaa11111111") for line in lines if first in line] + [
        line.replace(last, "aaaa22222222") for line in lines if last in line
    ]
    path.write_text("\n".join(twins) + "\n")
    with pytest.raises(flow2.ReportError, match="'aaaa' matches 2 runs"):
        flow2.read_events(path, "aaaa")


def event_lines(*tasks: dict[str, Any], end: str | None = "succeeded") -> str:
    """A hand-written event file: one run whose task lines are ``tasks``."""
    lines: list[dict[str, Any]] = [
        {"event": "run", "run_id": "feed00000001", "status": "running", "time": 100.0}
        | {"root": "Root", "duration": None, "error": None, "format": 1}
    ]
    for fields in tasks:
        lines.append(
            {"event": "task", "run_id": "feed00000001", "group": False, "attempt": 1}
            | {"duration": None, "error": None, "key": fields["path"][-1].lower()}
            | fields
        )
    if end:
        lines.append(
            {"event": "run", "run_id": "feed00000001", "status": end, "time": 110.0}
            | {"root": "Root", "duration": 10.0, "error": None}
        )
    return "".join(json.dumps(line) + "\n" for line in lines)


def test_reused_tasks_and_output_tails_are_read_when_the_file_has_them(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        event_lines(
            {"path": ["Root"], "status": "running", "time": 100.0, "group": True},
            {
                "path": ["Root", "Build"],
                "status": "reused",
                "time": 100.5,
                "duration": 0.0,
                "reason": "succeeded in run 3f2a",
            },
            {"path": ["Root", "Test"], "status": "running", "time": 101.0},
            {
                "path": ["Root", "Test"],
                "status": "failed",
                "time": 104.0,
                "duration": 3.0,
                "error": {"type": "CommandError", "message": "exit 1"},
                "output": ["collected 3 items", "FAILED test_x.py::test_y"],
            },
            {"path": ["Root"], "status": "failed", "time": 104.5, "group": True, "duration": 4.5},
            end="failed",
        )
    )
    record = flow2.read_events(path)
    tasks = by_name(record)
    assert tasks["Build"].status is flow2.Status.REUSED
    assert tasks["Build"].reason == "succeeded in run 3f2a"
    assert record.counts()["reused"] == 1
    assert tasks["Test"].output == "collected 3 items\nFAILED test_x.py::test_y"
    assert tasks["Test"].duration == pytest.approx(3.0)
    suite = ElementTree.fromstring(flow2.junit_report(record))
    outputs = {case.get("name"): case.findtext("system-out") for case in suite.iter("testcase")}
    assert outputs == {
        "Build": "reused: succeeded in run 3f2a",
        "Test": "collected 3 items\nFAILED test_x.py::test_y",
    }
    assert "FAILED test_x.py::test_y" in flow2.html_report(record)


# The trace -------------------------------------------------------------------


def check_trace_nesting(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """Assert that complete events on each thread nest; return them."""
    slices = [event for event in trace["traceEvents"] if event["ph"] == "X"]
    lanes: dict[int, list[dict[str, Any]]] = {}
    for event in slices:
        assert isinstance(event["ts"], int) and isinstance(event["dur"], int)
        assert event["dur"] >= 0 and event["pid"] == 1
        lanes.setdefault(event["tid"], []).append(event)
    for events in lanes.values():
        events.sort(key=lambda event: (event["ts"], -event["dur"]))
        open_ends: list[int] = []
        for event in events:
            while open_ends and open_ends[-1] <= event["ts"]:
                open_ends.pop()
            end = event["ts"] + event["dur"]
            assert not open_ends or end <= open_ends[-1], f"partial overlap: {event}"
            open_ends.append(end)
    return slices


def test_the_trace_nests_on_each_lane_and_shows_retries_as_slices(report_events: Path) -> None:
    trace = json.loads(flow2.trace_report(report_events))
    slices = check_trace_nesting(trace)
    names = [event["name"] for event in slices]
    # Every task that started has a slice; the retried one has one per attempt.
    assert names.count("Unit tests") == 2
    started = "Release Prepare Version Lint Build Wheel Docs Render Index Checks Hang Audit"
    assert sorted(set(names)) == sorted([*started.split(), "Unit tests"])
    attempts = [event for event in slices if event["name"] == "Unit tests"]
    assert [event["args"]["attempt"] for event in attempts] == [1, 2]
    assert [event["args"]["status"] for event in attempts] == ["retried", "succeeded"]
    assert attempts[0]["args"]["attempts"] == 2
    assert attempts[0]["ts"] + attempts[0]["dur"] <= attempts[1]["ts"]
    wheel = next(event for event in slices if event["name"] == "Wheel")
    assert wheel["args"] == {
        "status": "failed",
        "key": "wheel",
        "path": "Release › Build › Wheel",
        "attempts": 1,
        "error": "FileNotFoundError: setup.cfg: no [metadata] section",
    }
    # Parallel children run on separate lanes; serial ones share their group's.
    lane = {event["name"]: event["tid"] for event in slices}
    assert len({lane["Wheel"], lane["Unit tests"], lane["Docs"]}) == 3
    assert lane["Render"] == lane["Index"] == lane["Docs"]
    threads = {event["tid"] for event in trace["traceEvents"] if event["name"] == "thread_name"}
    assert set(lane.values()) <= threads


def random_record(seed: int) -> flow2.RunRecord:
    """A record of a random tree of serial and parallel groups with random durations."""
    chance = random.Random(seed)
    record = flow2.RunRecord("r", "Root", 1000.0, 1000.0, "succeeded")

    def place(path: tuple[str, ...], parent: int | None, start: float, depth: int) -> float:
        index = len(record.tasks)
        is_group = depth < 3 and chance.random() < 0.6
        task = flow2.TaskRecord(
            index, parent, path, path[-1], path[-1], is_group, flow2.Status.SUCCEEDED, start
        )
        record.tasks.append(task)
        if is_group:
            parallel = chance.random() < 0.5
            end = at = start + chance.random() * 1e-4
            for number in range(chance.randint(1, 5)):
                child_end = place((*path, f"{path[-1]}.{number}"), index, at, depth + 1)
                end = max(end, child_end)
                if not parallel:
                    at = child_end
        else:
            end = start + chance.choice([0.0, 1e-7, chance.random()])
        task.end = end
        task.attempts = [flow2.AttemptRecord(1, start, end, flow2.Status.SUCCEEDED)]
        return end

    record.end = place(("Root",), None, 1000.0, 0)
    return record


@pytest.mark.parametrize("seed", range(40))
def test_lanes_nest_for_any_tree(seed: int) -> None:
    record = random_record(seed)
    slices = check_trace_nesting(json.loads(flow2.trace_report(record)))
    assert len(slices) == len(record.tasks)


# JUnit and Markdown ----------------------------------------------------------


def test_junit_has_one_case_per_leaf_and_counts_that_add_up(report_events: Path) -> None:
    root = ElementTree.fromstring(flow2.junit_report(report_events))
    suite = root.find("testsuite")
    assert suite is not None
    cases = list(suite.iter("testcase"))
    assert len(cases) == int(suite.get("tests", "")) == int(root.get("tests", "")) == 10
    failures = [case for case in cases if case.find("failure") is not None]
    skipped = [case for case in cases if case.find("skipped") is not None]
    assert len(failures) == int(suite.get("failures", "")) == 2
    assert len(skipped) == int(suite.get("skipped", "")) == 3  # 2 skipped, 1 cancelled
    assert int(suite.get("errors", "")) == 0
    wheel = next(case for case in cases if case.get("name") == "Wheel")
    assert wheel.get("classname") == "Release › Build"
    failure = wheel.find("failure")
    assert failure is not None and failure.get("type") == "FileNotFoundError"
    assert failure.get("message") == "setup.cfg: no [metadata] section"
    assert "raise FileNotFoundError" in (failure.text or "")
    hang = next(case for case in cases if case.get("name") == "Hang")
    assert (hang.find("skipped").get("message") or "").startswith("cancelled")  # type: ignore[union-attr]
    assert float(next(c for c in cases if c.get("name") == "Render").get("time", "")) > 0


def test_markdown_says_the_verdict_counts_slowest_and_failures(report_events: Path) -> None:
    text = flow2.markdown_report(report_events)
    assert text.startswith("### ✗ Release failed in ")
    assert "5 succeeded, 2 failed, 2 skipped, 1 cancelled, 0 reused" in text
    assert "| Slowest | Time |" in text
    assert (
        "- **Release › Build › Wheel**: `FileNotFoundError: setup.cfg: no [metadata] section`"
        in (text)
    )
    assert "Release › Checks › Audit" in text and "raise FileNotFoundError" in text


# The HTML page ---------------------------------------------------------------


def test_the_page_requests_nothing_from_outside(report_events: Path) -> None:
    page = flow2.html_report(report_events)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # Nothing loads from elsewhere: no src, href, url() or @import at all.
    assert not re.search(r"""\s(src|href)\s*=|url\(|@import""", page)
    for address in re.findall(r"https?://[^\s\"'<)]+", page):
        assert address == "http://www.w3.org/2000/svg"


def test_secrets_are_masked_in_every_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cr3t-value")
    path = tmp_path / "events.jsonl"
    path.write_text(
        event_lines(
            {"path": ["Root"], "status": "running", "time": 100.0},
            {
                "path": ["Root"],
                "status": "failed",
                "time": 101.0,
                "duration": 1.0,
                "error": {"type": "ValueError", "message": "bad token s3cr3t-value"},
            },
            end="failed",
        )
    )
    record = flow2.read_events(path)
    record.variables = {"api_token": "abc-123-xyz", "target": "prod s3cr3t-value"}
    reports = [
        flow2.html_report(record),
        flow2.junit_report(record),
        flow2.markdown_report(record),
        flow2.trace_report(record),
    ]
    for text in reports:
        assert "s3cr3t-value" not in text and "abc-123-xyz" not in text
    assert "bad token ***" in reports[0] and "prod ***" in reports[0]


@pytest.fixture
def browser() -> Any:
    from . import browser

    if browser.CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs it: apt-get install chromium)")
    return browser


def test_the_page_loads_in_chromium_with_one_bar_per_task(
    report_events: Path, tmp_path: Path, browser: Any
) -> None:
    page = tmp_path / "report.html"
    page.write_text(flow2.html_report(report_events), encoding="utf-8")
    result = browser.load_page(
        page,
        {
            "bars": "document.querySelectorAll('#bars rect.bar').length",
            "rects": "document.querySelectorAll('rect').length",
            "tree": "document.querySelectorAll('#tree .node').length",
            "retried": "document.querySelectorAll('#bars path.retried').length",
            "failed": "document.querySelectorAll('#bars rect.bar.s-failed').length",
            "details": (
                "(() => { const wheel = [...document.querySelectorAll('#tree .node')]"
                ".find(node => node.textContent.includes('Wheel'));"
                "wheel.click(); return document.getElementById('details').innerText; })()"
            ),
            "zoomed": (
                "(() => { const before = document.getElementById('bars').getAttribute('width');"
                "document.getElementById('zoom-in').click();"
                "return [before, document.getElementById('bars').getAttribute('width')]; })()"
            ),
        },
    )
    assert result.errors == []
    assert all(url.startswith("file:") for url in result.requests), result.requests
    values = result.values
    assert values["bars"] == values["rects"] == values["tree"] == 16
    assert values["retried"] == 1
    assert values["failed"] == 4  # Wheel, Audit, and the groups failing: Checks, Release
    assert "Release › Build › Wheel" in values["details"]
    assert "raise FileNotFoundError" in values["details"]
    before, after = values["zoomed"]
    assert float(after) > float(before) * 1.5


def test_a_10000_task_page_stays_small_and_draws_every_bar(tmp_path: Path, browser: Any) -> None:
    async def nothing(context: dict[str, Any]) -> None:
        return None

    groups = [
        flow2.ParallelTaskGroup(
            f"Shard {shard}",
            *(flow2.CallbackTask(f"Task {shard}.{n}", nothing) for n in range(1000)),
            max_parallel=8,
        )
        for shard in range(10)
    ]
    events = tmp_path / "events.jsonl"
    # Without asyncio's debug mode, which makes 10,000 tasks ten times slower.
    runner = flow2.Runner(display="none", events=str(events))
    asyncio.run(runner.run(flow2.SerialTaskGroup("Big", *groups)))
    page = tmp_path / "report.html"
    page.write_text(flow2.html_report(events), encoding="utf-8")
    assert page.stat().st_size <= 10_000_000
    result = browser.load_page(page, {"bars": "document.querySelectorAll('#bars rect.bar').length"})
    assert result.errors == []
    assert result.values["bars"] == 10_011


# Queue time ------------------------------------------------------------------


def queued_events(tmp_path: Path) -> Path:
    """A run whose task waited 3 s for a worker, then worked 2 s."""

    def task(status: str, time: float, name: str, **fields: Any) -> dict[str, Any]:
        return {
            "event": "task",
            "run_id": "r1",
            "status": status,
            "time": time,
            "task": name,
            "key": name.lower(),
            "path": ["Remote", name] if name != "Remote" else ["Remote"],
            "group": name == "Remote",
            "attempt": 1,
            "duration": None,
            "failed_count": 0,
            "retry_delay": None,
            "error": None,
            "traceback": None,
            "reason": None,
            "output": None,
            **fields,
        }

    run_fields = {"event": "run", "run_id": "r1", "root": "Remote", "error": None}
    lines = [
        {**run_fields, "status": "running", "time": 100.0, "duration": None, "format": 1},
        task("running", 100.0, "Remote"),
        task("running", 100.0, "Crunch"),
        task("succeeded", 105.0, "Crunch", duration=2.0, queued=3.0),
        task("succeeded", 105.0, "Remote", duration=5.0),
        {**run_fields, "status": "succeeded", "time": 105.0, "duration": 5.0},
    ]
    path = tmp_path / "queued.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_queue_time_is_shown_apart_from_the_work(tmp_path: Path) -> None:
    events = queued_events(tmp_path)
    crunch = by_name(flow2.read_events(events))["Crunch"]
    assert (crunch.start, crunch.end, crunch.queued, crunch.duration) == (100.0, 105.0, 3.0, 2.0)
    # JUnit times the work only.
    case = next(ElementTree.fromstring(flow2.junit_report(events)).iter("testcase"), None)
    assert case is not None and float(case.get("time", "")) == pytest.approx(2.0)
    # The trace has the wait as its own slice before the work.
    trace = json.loads(flow2.trace_report(events))
    slices = [event for event in trace["traceEvents"] if event.get("name") == "Crunch"]
    assert [(event["cat"], event["ts"], event["dur"]) for event in slices] == [
        ("queued", 0, 3_000_000),
        ("task", 3_000_000, 2_000_000),
    ]
    # The page carries it for its timeline, and says what the grey is.
    page = flow2.html_report(events)
    assert 'class="swatch s-queued"' in page
    match = re.search(r'id="flow2-data">(.*?)</script>', page)
    assert match is not None
    data = json.loads(match.group(1))
    row = next(row for row in data["tasks"] if row[0] == "Crunch")
    assert (row[4], row[5], row[14]) == (0, 5_000_000, 3_000_000)  # start, end, queued


def test_the_page_draws_queue_time_over_the_start_of_the_bar(tmp_path: Path, browser: Any) -> None:
    page = tmp_path / "report.html"
    page.write_text(flow2.html_report(queued_events(tmp_path)), encoding="utf-8")
    result = browser.load_page(
        page,
        {
            "queued": "document.querySelector('#bars path.queued').getAttribute('d')",
            "tip": (
                "(() => { const bar = document.querySelector('#bars rect.bar[data-i=\"1\"]');"
                "bar.dispatchEvent(new MouseEvent('mousemove', {bubbles: true}));"
                "return document.getElementById('tip').textContent; })()"
            ),
        },
    )
    assert result.errors == []
    assert result.values["queued"].startswith("M0.0 ")
    assert "succeeded in 2" in result.values["tip"]
    assert "queued 3" in result.values["tip"]
