"""A run returns its outcome: RunResult, RunFailed, flow2.run, scripts that end like the CLI."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import os
import subprocess
import sys
import textwrap
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import run


def _ok(context: dict[str, Any]) -> str:
    return "fine"


def _broken(context: dict[str, Any]) -> None:
    raise RuntimeError("lint found 3 problems")


def _checks() -> flow2.Task:
    return flow2.SerialTaskGroup(
        "Release",
        flow2.ParallelTaskGroup(
            "Checks",
            flow2.CallbackTask("Lint", _broken),
            flow2.CallbackTask("Types", _ok),
        ),
        flow2.CallbackTask("Publish", _ok),
    )


def test_execute_returns_the_outcome_of_a_failing_parallel_check() -> None:
    result = run(flow2.Runner(display="none").execute(_checks()))
    assert isinstance(result, flow2.RunResult)
    assert result.status is flow2.Status.PARTIAL
    assert not result.succeeded
    assert result.exit_code == 1
    assert result.counts == flow2.Counts(succeeded=2, failed=1)
    assert [failure.path for failure in result.failures] == [("Release", "Checks", "Lint")]
    _, error = result.failures[0]
    assert isinstance(error, RuntimeError) and str(error) == "lint found 3 problems"
    assert result.context["types"] == "fine" and result.context["publish"] == "fine"
    assert len(result.id) == 12 and result.duration >= 0 and result.start > 0


def test_a_serial_failure_is_returned_not_raised_with_the_rest_skipped() -> None:
    tree = flow2.SerialTaskGroup(
        "Root", flow2.CallbackTask("Build", _broken), flow2.CallbackTask("Ship", _ok)
    )
    result = run(flow2.Runner(display="none").execute(tree))
    assert result.status is flow2.Status.FAILED
    assert result.counts.failed == 1 and result.counts.skipped == 1
    # The group failed with its child's error: the failure is listed once.
    assert [failure.path for failure in result.failures] == [("Root", "Build")]


def test_failures_are_listed_in_tree_order() -> None:
    tree = flow2.ParallelTaskGroup(
        "Root",
        flow2.SerialTaskGroup("A", flow2.CallbackTask("A1", _broken)),
        flow2.CallbackTask("B", _ok),
        flow2.CallbackTask("C", _broken),
    )
    result = run(flow2.Runner(display="none").execute(tree))
    assert [failure.path for failure in result.failures] == [("Root", "A", "A1"), ("Root", "C")]


def test_a_group_that_raises_its_childrens_errors_lists_each_child_once() -> None:
    tree = flow2.ParallelTaskGroup(
        "Root",
        flow2.CallbackTask("A", _broken),
        flow2.CallbackTask("B", _broken),
        on_error="raise",
    )
    result = run(flow2.Runner(display="none").execute(tree))
    assert result.status is flow2.Status.FAILED
    assert [failure.path for failure in result.failures] == [("Root", "A"), ("Root", "B")]


def test_a_successful_run_checks_and_exits_zero() -> None:
    result = run(flow2.Runner(display="none").execute(flow2.CallbackTask("Only", _ok)))
    assert result.succeeded and result.exit_code == 0
    assert result.check() is result
    assert result.counts.total == 1
    assert "succeeded" in str(result)


def test_check_raises_run_failed_carrying_the_result() -> None:
    result = run(flow2.Runner(display="none").execute(_checks()))
    with pytest.raises(flow2.RunFailed) as raised:
        result.check()
    assert raised.value.result is result
    assert isinstance(raised.value, flow2.FlowError)
    assert "Release › Checks › Lint" in str(raised.value)
    assert "lint found 3 problems" in str(raised.value)


def test_an_event_file_that_cannot_be_written_makes_the_exit_code_1(tmp_path: Path) -> None:
    class FullDisk(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    result = run(
        flow2.Runner(display="none", events=FullDisk()).execute(flow2.CallbackTask("A", _ok))
    )
    assert result.status is flow2.Status.SUCCEEDED
    assert not result.succeeded and result.exit_code == 1
    assert "No space left on device" in result.recording_errors[0]


def test_a_caller_cancelling_the_run_gets_cancelled_error() -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def wait(context: dict[str, Any]) -> None:
            started.set()
            await asyncio.sleep(60)

        running = asyncio.create_task(
            flow2.Runner(display="none").execute(flow2.CallbackTask("Wait", wait))
        )
        await started.wait()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    run(main())


def test_run_from_synchronous_code_returns_the_result() -> None:
    result = flow2.run(_checks(), display="none", handle_signals=False)
    assert result.exit_code == 1 and result.counts.failed == 1
    result = flow2.run(flow2.CallbackTask("Sum", lambda context: context["a"] + 1), {"a": 1})
    assert result.context["sum"] == 2 and result.exit_code == 0


def test_run_still_raises_a_definition_error() -> None:
    task = flow2.CallbackTask("A", _ok)
    with pytest.raises(flow2.DuplicateTaskError):
        flow2.run(flow2.SerialTaskGroup("Root", task, task), display="none")


def test_task_run_still_returns_the_context() -> None:
    tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask("A", _ok))
    assert run(tree.run()) == {"a": "fine"}


def test_a_failure_raised_to_the_caller_shows_the_users_frames() -> None:
    tree = flow2.SerialTaskGroup("Root", flow2.CallbackTask("Build", _broken))
    with pytest.raises(RuntimeError) as raised:
        run(tree.run())
    files = [frame.filename for frame in traceback.extract_tb(raised.value.__traceback__)]
    package = os.path.dirname(flow2.__file__)
    inside = [name for name in files if name.startswith(package)]
    assert inside == [os.path.join(package, "_engine", "_groups.py")], files
    # Below the root's one frame: the user's code only (asyncio.run's frames
    # above it are the caller's own call).
    below = files[files.index(inside[0]) + 1 :]
    assert below == [__file__], files


# -- scripts end like the CLI --------------------------------------------------------


SCRIPT = """\
import flow2

def ok(context):
    return 1

def lint(context):
    raise RuntimeError("lint found 3 problems")

tree = flow2.SerialTaskGroup(
    "Release",
    flow2.ParallelTaskGroup(
        "Checks", flow2.CallbackTask("Lint", lint), flow2.CallbackTask("Ok", ok)
    ),
)
result = flow2.run(tree)
raise SystemExit(result.exit_code)
"""


def _python(script: str, tmp_path: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **environment},
        cwd=tmp_path,
    )


def test_the_readme_script_ending_exits_like_the_command(tmp_path: Path) -> None:
    done = _python(SCRIPT, tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last)" not in done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith("Release finished with failures"), done.stdout
    assert "Lint" in done.stdout


def test_the_readme_script_ending_is_interrupted_like_the_command(tmp_path: Path) -> None:
    script = """\
    import os, signal, flow2

    async def stop(context):
        os.kill(os.getpid(), signal.SIGTERM)
        import asyncio
        await asyncio.sleep(30)

    result = flow2.run(flow2.SerialTaskGroup("Root", flow2.CallbackTask("Stop", stop)))
    raise SystemExit(result.exit_code)
    """
    done = _python(script, tmp_path)
    assert done.returncode == 143, done.stderr
    assert "Traceback" not in done.stderr


# -- embedding is quiet and cheap ------------------------------------------------------


SERVICE = """\
import asyncio, sys, flow2

def work(context):
    print("task output")
    return 1

async def main():
    tree = flow2.ParallelTaskGroup("Job", *(flow2.CallbackTask(f"T{n}", work) for n in range(3)))
    results = await asyncio.gather(*(flow2.Runner().execute(tree) for _ in range(2)))
    context = await tree.run()
    sys.stderr.write(f"{[r.exit_code for r in results]} {sorted(context)}\\n")

asyncio.run(main())
"""


def test_an_embedded_run_writes_nothing_to_stdout(tmp_path: Path) -> None:
    done = _python(SERVICE, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().endswith("[0, 0] ['t0', 't1', 't2']")


def test_an_embedded_run_keeps_what_tasks_print_in_the_store(tmp_path: Path) -> None:
    script = """\
    import asyncio, flow2

    def work(context):
        print("the output of work")

    asyncio.run(flow2.Runner(store="store").execute(flow2.CallbackTask("Work", work)))
    record = flow2.read_store("last", store="store")
    print("stored:", record.tasks[0].output)
    """
    done = _python(script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["stored: the output of work"]


def test_under_ci_an_embedded_run_prints_plain_lines(tmp_path: Path) -> None:
    done = _python(SERVICE, tmp_path, CI="true")
    assert "SUCCESS   T0" in done.stdout


def test_runs_share_one_thread_pool_by_default() -> None:
    threads: set[int] = set()
    barrier = threading.Barrier(4, timeout=10)

    def where(context: dict[str, Any]) -> None:
        threads.add(threading.get_ident())

    def meet(context: dict[str, Any]) -> None:
        # Four runs at once each hold a thread here: they really overlap.
        barrier.wait()

    async def main() -> None:
        trees = [
            flow2.ParallelTaskGroup(
                "Job",
                flow2.CallbackTask("Meet", meet),
                *(flow2.CallbackTask(f"T{n}", where) for n in range(8)),
            )
            for _ in range(4)
        ]
        await asyncio.gather(*(flow2.Runner(display="none").execute(tree) for tree in trees))

    run(main())
    run(main())
    # A pool per run would use up to 4 x its size of threads over the rounds;
    # the shared one stays within its size, and its threads stay after the runs.
    assert len(threads) <= min(32, (os.cpu_count() or 1) + 4)
    assert threads <= {thread.ident for thread in threading.enumerate()}


def test_a_concurrent_futures_executor_runs_the_sync_callbacks() -> None:
    names: list[str] = []

    def where(context: dict[str, Any]) -> str:
        names.append(threading.current_thread().name)
        return "done"

    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="app-pool") as pool:
        result = run(
            flow2.Runner(display="none", executor=pool).execute(flow2.CallbackTask("A", where))
        )
        # The pool stays the application's: still usable after the run.
        assert pool.submit(lambda: 1).result() == 1
    assert result.context["a"] == "done"
    assert names[0].startswith("app-pool")


def test_executor_must_be_an_executor() -> None:
    with pytest.raises(flow2.ConfigurationError, match="concurrent.futures.Executor") as raised:
        flow2.Runner(executor="fast")  # type: ignore[arg-type]
    assert raised.value.option == "executor" and raised.value.value == "fast"


# -- settings read once -------------------------------------------------------------------


def test_settings_read_a_given_environment_not_the_process() -> None:
    runner = flow2.Runner(
        environ={"FLOW2_VERBOSITY": "quiet", "FLOW2_GRACE": "2", "NO_COLOR": "1", "CI": "true"}
    )
    settings = runner.settings
    assert settings.verbosity is flow2.Verbosity.QUIET
    assert settings.grace == 2.0
    assert settings.color is False
    assert settings.is_ci


def test_a_bad_variable_in_a_given_environment_names_it() -> None:
    with pytest.raises(flow2.ConfigurationError) as raised:
        flow2.Runner(environ={"FLOW2_MAX_THREADS": "many"})
    assert raised.value.variable == "FLOW2_MAX_THREADS"
    assert raised.value.option == "max_threads"
    assert "FLOW2_MAX_THREADS='many'" in str(raised.value)


def test_a_runner_keeps_no_state_of_its_runs() -> None:
    runner = flow2.Runner(display="none")
    before = dict(vars(runner))
    run(runner.execute(_checks()))
    assert vars(runner) == before


# -- the tree is checked once -------------------------------------------------------


def test_a_run_checks_the_tree_and_analyses_needs_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flow2._engine import _needs, _run

    checks: list[object] = []
    analyses: list[object] = []
    check, analyse = _run.validate_tree, _needs.Needs.__init__

    def counting_check(*args: Any, **kwargs: Any) -> Any:
        checks.append(args[0])
        return check(*args, **kwargs)

    def counting_analysis(self: Any, *args: Any, **kwargs: Any) -> None:
        analyses.append(self)
        analyse(self, *args, **kwargs)

    monkeypatch.setattr(_run, "validate_tree", counting_check)
    monkeypatch.setattr(_needs.Needs, "__init__", counting_analysis)
    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.CallbackTask("Build", _ok),
        flow2.CallbackTask("Ship", _ok, needs=["build"]),
        flow2.CallbackTask("Tell", _ok),
    )
    result = run(flow2.Runner(display="none", store=tmp_path, skip=["tell"]).execute(tree))
    assert result.succeeded and result.counts.skipped == 1
    assert len(checks) == 1 and len(analyses) == 1


def test_a_python_caller_asks_for_the_html_report_as_the_command_does(tmp_path: Path) -> None:
    report = tmp_path / "run.html"
    result = run(flow2.Runner(display="none", report=report).execute(_checks()))
    assert result.exit_code == 1
    html = report.read_text(encoding="utf-8")
    assert "<html" in html.lower() and "Lint" in html


def test_a_report_that_cannot_be_written_fails_before_the_run(tmp_path: Path) -> None:
    with pytest.raises(flow2.ConfigurationError, match="report") as raised:
        flow2.Runner(report=tmp_path / "missing" / "run.html")
    assert raised.value.option == "report"


def test_an_embedded_run_keeps_what_tasks_print_in_their_log_files(tmp_path: Path) -> None:
    script = """\
    import asyncio, pathlib, flow2

    def work(context):
        print("the output of work")

    asyncio.run(flow2.Runner(log_dir="logs").execute(flow2.CallbackTask("Work", work)))
    print("logged:", pathlib.Path("logs/work.log").read_text().strip())
    """
    done = _python(script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["logged: the output of work"]
