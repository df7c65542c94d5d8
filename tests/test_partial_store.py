"""Partial runs that read the run store: --from, and the plan of a resume (--dry-run --resume)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import run, write_flow

FLOW = """
plugin: serial
name: Release
tasks:
  - {plugin: shell, name: Version, cmd: "echo version >> ran.txt; echo 1.2.3"}
  - plugin: parallel
    name: Checks
    tasks:
      - {plugin: shell, name: Lint, cmd: "echo lint >> ran.txt"}
      - {plugin: shell, name: Test, cmd: "echo test >> ran.txt; test -f fixed"}
  - {plugin: shell, name: Publish, cmd: "echo publish ${{ version.stdout }} >> ran.txt"}
"""


def flow2_command(folder: Path, *arguments: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flow2", *map(str, arguments)],
        capture_output=True,
        text=True,
        cwd=folder,
        check=False,
    )


def ran(folder: Path) -> list[str]:
    """What the tasks wrote since the last call: one line per task that really ran."""
    path = folder / "ran.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


@pytest.fixture
def release(tmp_path: Path, python_first_on_path: None) -> Path:
    write_flow(tmp_path, FLOW)
    return tmp_path


def test_from_runs_the_task_and_those_after_it_with_the_results_before_it(release: Path) -> None:
    assert flow2_command(release, "run", "flow.yml", "--display", "none").returncode == 1
    assert sorted(ran(release)) == ["lint", "publish 1.2.3", "test", "version"]
    result = flow2_command(release, "run", "flow.yml", "--from", "publish", "--display", "plain")
    assert result.returncode == 0, result.stderr
    # Only Publish ran, with Version's stored result in its command.
    assert ran(release) == ["publish 1.2.3"]
    assert "REUSED    Version" in result.stdout
    assert "before 'Publish' (--from)" in result.stdout  # Test failed: nothing to take
    touch = release / "fixed"
    touch.write_text("")
    result = flow2_command(release, "run", "flow.yml", "--from", "checks", "--display", "none")
    assert result.returncode == 0, result.stderr
    assert sorted(ran(release)) == ["lint", "publish 1.2.3", "test"]
    # The run with --from is recorded: its reused result serves the next --from.
    result = flow2_command(release, "run", "flow.yml", "--from", "publish", "--display", "none")
    assert result.returncode == 0 and ran(release) == ["publish 1.2.3"]


def test_from_names_what_the_store_is_missing(release: Path) -> None:
    result = flow2_command(release, "run", "flow.yml", "--from", "publish")
    assert result.returncode == 2
    assert "there is no run store in" in result.stderr and "--from 'publish'" in result.stderr
    write_flow(
        release,
        """
        plugin: serial
        name: Chain
        tasks:
          - {plugin: shell, name: Build, cmd: "echo build >> ran.txt; test -f fixed && echo w"}
          - {plugin: shell, name: Upload, cmd: "echo upload ${{ build.stdout }} >> ran.txt"}
        """,
        name="chain.yml",
    )
    assert flow2_command(release, "run", "chain.yml", "--display", "none").returncode == 1
    assert ran(release) == ["build"]
    result = flow2_command(release, "run", "flow.yml", "--from", "publish")
    assert result.returncode == 2 and "no run of" in result.stderr and "flow.yml" in result.stderr
    result = flow2_command(release, "run", "chain.yml", "--from", "upload")
    assert result.returncode == 2
    assert "has no result for 'build'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert ran(release) == []  # nothing ran
    for arguments, expected in (
        (("--from", "nope"), "--from 'nope' names no task"),
        (("--from", "upload", "--no-store"), "--no-store contradicts --from"),
    ):
        result = flow2_command(release, "run", "chain.yml", *arguments)
        assert result.returncode == 2 and expected in result.stderr


def test_runner_start_from_takes_the_earlier_results(tmp_path: Path) -> None:
    calls: list[str] = []

    def step(name: str, value: Any) -> flow2.CallbackTask:
        async def work(context: dict[str, Any]) -> Any:
            calls.append(name)
            return value

        return flow2.CallbackTask(name, work)

    def tree() -> flow2.Task:
        async def total(context: dict[str, Any], *, numbers: tuple[int, ...]) -> int:
            calls.append("Total")
            return sum(numbers)

        return flow2.SerialTaskGroup(
            "Sum", step("Numbers", [1, 2, 3]), flow2.CallbackTask("Total", total)
        )

    store = tmp_path / "store"
    run(flow2.Runner(display="none", store=store).run(tree()))
    calls.clear()
    context = run(flow2.Runner(display="none", store=store, start_from="total").run(tree()))
    assert calls == ["Total"]
    assert context["numbers"] == [1, 2, 3] and type(context["numbers"]) is list
    assert context["total"] == 6
    with pytest.raises(flow2.ConfigurationError, match="start_from='total' takes the results"):
        flow2.Runner(display="none", store=False, start_from="total")
    plan = flow2.Runner(display="none", store=store, start_from="total").dry_run(tree())
    assert plan["numbers"].action == "reuse" and plan["total"].action == "run"


def test_a_dry_run_of_a_resume_says_what_it_reuses_and_why_the_rest_runs(
    release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = flow2_command(release, "run", "flow.yml", "--dry-run", "--resume")
    assert result.returncode == 0, result.stderr
    assert "4 to run, 0 to skip, 0 to reuse" in result.stdout  # nothing recorded yet
    assert flow2_command(release, "run", "flow.yml", "--display", "none").returncode == 1
    run_id = flow2.read_store().id  # FLOW2_STORE, which flow2 run recorded into
    ran(release)
    (release / "fixed").write_text("")
    result = flow2_command(release, "run", "flow.yml", "--dry-run", "--resume")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert ran(release) == []  # nothing ran
    assert any(
        line.strip().startswith("Version → version  REUSE") and run_id in line for line in lines
    )
    assert any(line.strip() == f"Test → test  RUN (failed in run {run_id})" for line in lines)
    assert f"1 to run, 0 to skip, 3 to reuse from run {run_id}" in result.stdout
    # The plan says what the resume does.
    result = flow2_command(release, "run", "flow.yml", "--resume", "--display", "none")
    assert result.returncode == 0 and ran(release) == ["test"]
    # A changed task runs again, and the plan says why.
    (release / "flow.yml").write_text(FLOW.replace("echo lint >>", "echo lint  >>"))
    result = flow2_command(release, "run", "flow.yml", "--dry-run", "--resume")
    assert "Lint → lint  RUN (command changed)" in result.stdout
    runner = flow2.Runner(display="none", store=True, resume="last", flow_file=release / "flow.yml")
    monkeypatch.chdir(release)  # a shell task's working directory is part of its definition
    # Once looked up, the class says flow2.ShellTask: its definition is the same.
    assert flow2.ShellTask.__module__ == "flow2"
    plan = runner.dry_run(flow2.load(release / "flow.yml"))
    assert plan["version"].action == "reuse", plan["version"].reason
    assert plan["lint"].action == "run"
