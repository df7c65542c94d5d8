"""A group's cleanup: ``on_failure`` and ``finally`` tasks, from Python, flow files and signals."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import Recorder, run, write_flow
from .test_cli import flow2 as flow2_command
from .test_signals import start_flow2, wait_for_files, wait_for_no_leftovers


def steps(ran: list[str]) -> Any:
    """A factory of callback tasks that append their name to ``ran`` (and fail when told)."""

    def step(name: str, *, fails: bool = False, result: Any = None) -> flow2.CallbackTask:
        def work(context: dict[str, Any]) -> Any:
            ran.append(name)
            if fails:
                raise RuntimeError(f"{name} broke")
            return result if result is not None else name

        return flow2.CallbackTask(name, work)

    return step


def started(recorder: Recorder) -> list[str]:
    return [
        event.task.name
        for event in recorder.events
        if isinstance(event, flow2.TaskEvent) and event.status is flow2.Status.RUNNING
    ]


def quiet(recorder: Recorder, **options: Any) -> flow2.Runner:
    return flow2.Runner(display="plain", stream=io.StringIO(), listeners=[recorder], **options)


# From Python --------------------------------------------------------------------


def test_after_success_finally_runs_and_on_failure_is_skipped(recorder: Recorder) -> None:
    ran: list[str] = []
    step = steps(ran)
    tree = flow2.SerialTaskGroup(
        "CI",
        step("Build"),
        step("Test"),
        on_failure=[step("Report")],
        finally_tasks=[step("Stop database")],
    )
    result = run(quiet(recorder).execute(tree))
    assert ran == ["Build", "Test", "Stop database"]
    assert result.status is flow2.Status.SUCCEEDED and result.exit_code == 0
    assert recorder.final("Report") is flow2.Status.SKIPPED
    skipped = [
        e for e in recorder.events if isinstance(e, flow2.TaskEvent) and e.task.name == "Report"
    ]
    assert skipped[-1].reason == "nothing in group 'CI' failed"
    assert result.context["stop_database"] == "Stop database"
    assert "failures" not in result.context  # the cleanup's own view, not the run's


def test_after_a_failure_on_failure_then_finally_run_and_read_what_failed(
    recorder: Recorder,
) -> None:
    ran: list[str] = []
    step = steps(ran)
    read: list[Any] = []

    def report(context: dict[str, Any]) -> str:
        read.append(context["failures"])
        return "reported"

    tree = flow2.SerialTaskGroup(
        "CI",
        step("Build", fails=True),
        step("Test"),
        on_failure=[flow2.CallbackTask("Report", report)],
        finally_tasks=[step("Stop database")],
    )
    result = run(quiet(recorder).execute(tree))
    assert ran == ["Build", "Stop database"]
    assert started(recorder) == ["CI", "Build", "Report", "Stop database"]
    assert read == [[{"task": "CI/Build", "error": "RuntimeError: Build broke"}]]
    assert result.context["report"] == "reported"
    assert result.status is flow2.Status.FAILED and result.exit_code == 1
    assert recorder.final("Test") is flow2.Status.SKIPPED


def test_a_failing_cleanup_does_not_hide_the_original_failure(recorder: Recorder) -> None:
    ran: list[str] = []
    step = steps(ran)
    tree = flow2.SerialTaskGroup(
        "CI",
        step("Build", fails=True),
        on_failure=[step("Report", fails=True)],
        finally_tasks=[step("Stop database", fails=True), step("Remove temp")],
    )
    with pytest.raises(RuntimeError, match="Build broke"):
        run(quiet(recorder).run(tree))
    # Each cleanup ran, whatever the one before did.
    assert ran == ["Build", "Report", "Stop database", "Remove temp"]
    result = run(quiet(Recorder()).execute(tree))
    assert result.exit_code == 1
    assert [path for path, _ in result.failures] == [
        ("CI", "Build"),
        ("CI", "Report"),
        ("CI", "Stop database"),
    ]


def test_a_failing_finally_fails_a_successful_run(recorder: Recorder) -> None:
    ran: list[str] = []
    step = steps(ran)
    tree = flow2.SerialTaskGroup("CI", step("Build"), finally_tasks=[step("Clean", fails=True)])
    result = run(quiet(recorder).execute(tree))
    assert result.status is flow2.Status.FAILED and result.exit_code == 1
    assert recorder.final("CI") is flow2.Status.FAILED
    assert [path for path, _ in result.failures] == [("CI", "Clean")]


def test_nested_groups_run_the_inner_cleanup_before_the_outer(recorder: Recorder) -> None:
    ran: list[str] = []
    step = steps(ran)
    inner = flow2.SerialTaskGroup(
        "Inner",
        step("Work", fails=True),
        on_failure=[step("Inner report")],
        finally_tasks=[step("Inner finally")],
    )
    tree = flow2.SerialTaskGroup(
        "Outer",
        inner,
        step("After"),
        on_failure=[step("Outer report")],
        finally_tasks=[step("Outer finally")],
    )
    run(quiet(recorder).execute(tree))
    assert ran == ["Work", "Inner report", "Inner finally", "Outer report", "Outer finally"]


def test_a_parallel_group_that_continues_still_runs_on_failure(recorder: Recorder) -> None:
    ran: list[str] = []
    step = steps(ran)
    read: list[Any] = []

    def report(context: dict[str, Any]) -> None:
        read.append([failure["task"] for failure in context["failures"]])

    tree = flow2.ParallelTaskGroup(
        "Matrix",
        step("Linux"),
        step("Mac", fails=True),
        on_failure=[flow2.CallbackTask("Report", report)],
        finally_tasks=[step("Upload logs")],
    )
    result = run(quiet(recorder).execute(tree))
    assert read == [["Matrix/Mac"]]
    assert ran[-1] == "Upload logs"
    assert result.status is flow2.Status.PARTIAL


def test_cancelling_a_group_runs_its_finally(recorder: Recorder) -> None:
    entered = asyncio.Event()
    ran: list[str] = []

    async def wait_for_ever(context: dict[str, Any]) -> None:
        entered.set()
        await asyncio.Event().wait()

    tree = flow2.SerialTaskGroup(
        "CI",
        flow2.CallbackTask("Serve", wait_for_ever),
        on_failure=[steps(ran)("Report")],
        finally_tasks=[steps(ran)("Stop")],
    )

    async def cancel_it() -> None:
        work = asyncio.ensure_future(quiet(recorder).run(tree))
        await entered.wait()
        work.cancel()
        with pytest.raises(asyncio.CancelledError):
            await work

    run(cancel_it())
    # A cancellation is not a failure: only finally runs.
    assert ran == ["Stop"]
    assert recorder.final("Serve") is flow2.Status.CANCELLED
    assert recorder.final("Stop") is flow2.Status.SUCCEEDED


def test_cleanup_records_say_which_cleanup_they_are(recorder: Recorder) -> None:
    step = steps([])
    report, stop, build = step("Report"), step("Stop"), step("Build")
    tree = flow2.SerialTaskGroup("CI", build, on_failure=[report], finally_tasks=[stop])
    result = run(quiet(recorder).execute(tree))
    assert result.succeeded
    roles = {
        event.task.name: event.record.cleanup
        for event in recorder.events
        if isinstance(event, flow2.TaskEvent)
    }
    assert roles == {
        "CI": None,
        "Build": None,
        "Report": flow2.Cleanup.ON_FAILURE,
        "Stop": flow2.Cleanup.FINALLY,
    }
    assert tree.children == (build, report, stop)


def test_cleanup_options_must_be_lists_of_tasks() -> None:
    with pytest.raises(flow2.DefinitionError, match="finally_tasks=.* is not a list of tasks"):
        flow2.SerialTaskGroup("CI", finally_tasks=steps([])("Stop"))  # type: ignore[arg-type]
    with pytest.raises(flow2.TaskTypeError, match="not a flow2.Task"):
        flow2.ParallelTaskGroup("CI", on_failure=["echo"])  # type: ignore[list-item]


def test_a_task_needing_its_groups_cleanup_is_an_error() -> None:
    step = steps([])
    reader = flow2.CallbackTask("Reader", lambda context: None, needs="stop")
    tree = flow2.ParallelTaskGroup("CI", reader, finally_tasks=[step("Stop")])
    with pytest.raises(flow2.NeedsError, match="a cleanup task runs after the group's tasks"):
        run(flow2.Runner(display="none").run(tree))


def test_a_cleanup_reading_a_sibling_of_a_bounded_group_runs_after_it(recorder: Recorder) -> None:
    ran: list[str] = []
    step = steps(ran)
    reader = flow2.CallbackTask("Reader", lambda context: context["a"], needs="a")
    waiting = flow2.CallbackTask("B", lambda context: ran.append("B"), needs="a")
    tree = flow2.ParallelTaskGroup("CI", waiting, step("A"), max_parallel=1, finally_tasks=[reader])
    result = run(quiet(recorder).execute(tree))
    assert result.succeeded and result.context["reader"] == "A"
    # A first (B waits for it), the cleanup last.
    assert started(recorder) == ["CI", "A", "B", "Reader"]


def test_cleanup_tasks_run_again_when_a_run_is_resumed(tmp_path: Path) -> None:
    ran: list[str] = []
    step = steps(ran)

    def tree(*, fails: bool) -> flow2.Task:
        return flow2.SerialTaskGroup(
            "CI",
            step("Build"),
            step("Test", fails=fails),
            finally_tasks=[step("Clean")],
        )

    store = tmp_path / "store"
    run(flow2.Runner(display="none", store=store).run(tree(fails=True), raises=False))
    assert ran == ["Build", "Test", "Clean"]
    ran.clear()
    run(flow2.Runner(display="none", store=store, resume="last").run(tree(fails=False)))
    # Build is reused; the cleanup is never reused: it runs again.
    assert ran == ["Test", "Clean"]
    ran.clear()
    run(flow2.Runner(display="none", store=store, resume="last").run(tree(fails=False)))
    # Everything succeeded last time: only the cleanup runs.
    assert ran == ["Clean"]
    # A dry run says so too. (The steps' closure holds `ran`, part of their
    # reuse key: as it was when they last ran.)
    ran.clear()
    plan = flow2.Runner(display="none", store=store, resume="last").dry_run(tree(fails=False))
    assert plan["build"].action == "reuse"
    assert (plan["clean"].action, plan["clean"].reason) == ("run", "a cleanup task always runs")


# Flow files ---------------------------------------------------------------------------

FLOW = """
    plugin: serial
    name: CI
    tasks:
      - plugin: shell
        name: Build
        cmd: echo building; exit 3
    on_failure:
      - plugin: shell
        name: Report
        cmd: "echo 'failed: ${{ failures[0].task }} (${{ failures[0].error }})'"
    finally:
      - plugin: shell
        name: Clean
        cmd: echo cleaned > cleaned.txt; exit CLEAN_CODE
"""


@pytest.mark.usefixtures("python_first_on_path")
def test_a_flow_cleans_up_and_the_summary_lists_the_original_failure_first(
    tmp_path: Path,
) -> None:
    path = write_flow(tmp_path, FLOW.replace("CLEAN_CODE", "2"))
    done = flow2_command("run", path, "--display", "plain", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "failed: CI/Build (CommandError: command exited with code 3" in out
    assert "SUCCESS   Report (on failure)" in out
    assert (tmp_path / "cleaned.txt").exists()
    failed = [line for line in out.splitlines() if line.startswith("Failed:")]
    assert failed == ["Failed: CI › Build", "Failed: CI › Clean (finally)"]


@pytest.mark.usefixtures("python_first_on_path")
def test_a_flow_whose_tasks_succeed_fails_when_its_finally_fails(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        name: CI
        tasks:
          - plugin: shell
            name: Build
            cmd: echo built
        finally:
          - plugin: shell
            name: Clean
            cmd: exit 4
        """,
    )
    done = flow2_command("run", path, "--display", "plain", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Failed: CI › Clean (finally)" in done.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            """
            plugin: serial
            tasks:
              - plugin: shell
                cmd: "echo ${{ failures }}"
            """,
            "uses 'failures', which is neither",
        ),
        (
            """
            plugin: serial
            tasks: []
            finally_tasks:
              - plugin: shell
                cmd: echo
            """,
            "as finally:, not finally_tasks:",
        ),
        (
            """
            plugin: shell
            cmd: echo
            finally:
              - plugin: shell
                cmd: echo
            """,
            "unknown key 'finally'",
        ),
        (
            """
            plugin: serial
            tasks: []
            on_failure: {plugin: shell, cmd: echo}
            """,
            "on_failure: of 'Task 1' must be a list of tasks",
        ),
    ],
)
def test_flow_file_cleanup_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = write_flow(tmp_path, text)
    with pytest.raises(flow2.FlowFileError, match=message.replace("(", r"\(")):
        flow2.load(path)


# Signals --------------------------------------------------------------------------------

SIGNAL_FLOW = """
    plugin: parallel
    name: Deploy
    tasks:
      - plugin: serial
        name: Stack
        tasks:
          - plugin: shell
            name: Serve
            cmd: touch ready; sleep 600
        finally:
          - plugin: shell
            name: Tear down
            cmd: {cleanup}
"""

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.mark.usefixtures("python_first_on_path")
@pytest.mark.parametrize(("signal_number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_runs_finally_within_the_grace_and_keeps_the_signals_exit_code(
    tmp_path: Path, signal_number: int, code: int
) -> None:
    path = write_flow(tmp_path, SIGNAL_FLOW.format(cleanup="echo done > torn-down; exit 5"))
    process = start_flow2("run", path, "--display", "plain", "--grace", "60", cwd=tmp_path)
    try:
        wait_for_files(tmp_path, "ready", 1, process)
        process.send_signal(signal_number)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    # The cleanup ran, failed, and the exit code is still the signal's.
    assert process.returncode == code, stdout + stderr
    assert (tmp_path / "torn-down").read_text() == "done\n"
    assert "CANCELLED Serve" in stdout
    assert "FAILED    Tear down (finally)" in stdout
    assert "Deploy was cancelled in" in stdout


@pytest.mark.usefixtures("python_first_on_path")
def test_a_second_signal_during_cleanup_kills_it(tmp_path: Path) -> None:
    marker = f"{time.monotonic_ns() % 1000 + 100}.31"
    path = write_flow(tmp_path, SIGNAL_FLOW.format(cleanup=f"touch cleaning; sleep {marker}"))
    process = start_flow2("run", path, "--display", "plain", "--grace", "600", cwd=tmp_path)
    try:
        wait_for_files(tmp_path, "ready", 1, process)
        process.send_signal(signal.SIGINT)
        try:
            wait_for_files(tmp_path, "cleaning", 1, process)
        except AssertionError:
            process.kill()
            raise AssertionError(f"the cleanup never started: {process.communicate()}") from None
        process.send_signal(signal.SIGINT)
        # Well under the 600 s grace: the second signal does not wait for the cleanup.
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stdout + stderr
    # Stopped, as everything that still runs at a second signal: cancelled,
    # like the tasks the first signal stopped, not failed by the kill.
    assert "CANCELLED Tear down (finally)" in stdout
    assert "FAILED" not in stdout and "killed by SIGKILL" not in stdout
    assert wait_for_no_leftovers(marker) == []


def test_the_event_file_and_the_reports_mark_cleanup_tasks(tmp_path: Path) -> None:
    step = steps([])
    tree = flow2.SerialTaskGroup(
        "CI",
        step("Build", fails=True),
        on_failure=[step("Report")],
        finally_tasks=[step("Clean", fails=True)],
    )
    events = tmp_path / "events.jsonl"
    run(flow2.Runner(display="none", events=events).execute(tree))
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    marks = {line["task"]: line.get("cleanup") for line in lines if line["event"] == "task"}
    assert marks == {"CI": None, "Build": None, "Report": "on_failure", "Clean": "finally"}
    markdown = flow2.markdown_report(events)
    assert "- **CI › Build**" in markdown
    assert "- **CI › Clean (finally)**" in markdown
    page = flow2.html_report(events)
    assert '"Report (on failure)"' in page  # the tree and the timeline
    assert "<h3>CI › Clean (finally)</h3>" in page  # the failures


def test_only_keeps_the_cleanup_of_the_groups_it_runs() -> None:
    ran: list[str] = []
    step = steps(ran)
    tree = flow2.SerialTaskGroup(
        "CI",
        flow2.SerialTaskGroup("Build", step("Compile"), finally_tasks=[step("Clean build")]),
        flow2.SerialTaskGroup("Docs", step("Sphinx"), finally_tasks=[step("Clean docs")]),
    )
    runner = flow2.Runner(display="none", store=False, only=["compile"])
    assert runner.dry_run(tree)["clean_build"].action == "run"
    assert runner.dry_run(tree)["clean_docs"].action == "skip"
    run(runner.run(tree))
    assert ran == ["Compile", "Clean build"]


def test_show_marks_cleanup_tasks_and_graph_draws_them_after_the_groups_tasks(
    tmp_path: Path,
) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: parallel
        name: Matrix
        tasks:
          - {plugin: shell, name: Linux, cmd: echo}
          - {plugin: shell, name: Mac, cmd: echo}
        on_failure:
          - {plugin: shell, name: Report, cmd: echo}
        finally:
          - {plugin: shell, name: Upload, cmd: echo}
        """,
    )
    shown = flow2_command("show", path).stdout
    assert "├── Report (on failure) → report" in shown
    assert "└── Upload (finally) → upload" in shown
    graph = flow2_command("graph", path).stdout
    for arrow in ("n2 --> n4", "n3 --> n4", "n4 --> n5"):
        assert arrow in graph
