"""Controlling reuse: ``--force``, ``--cache`` / ``--no-cache``, ``flow2 cache``, trust.

Each test runs a tree or a flow twice with one control changed, and checks
what ran, the reason kept in the store, and what the cache holds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import Ran, run, stored_run, write_flow
from .test_cli import assert_usage_error
from .test_cli import flow2 as flow2_command
from .test_reuse import RELEASE, explained, rerun_reasons, runner, step

pytestmark = pytest.mark.usefixtures("python_first_on_path")


@pytest.fixture(autouse=True)
def default_store_location(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flows run in their own folder and use the default store there (.flow2)."""
    monkeypatch.delenv("FLOW2_STORE", raising=False)


def _tree(ran: Ran) -> flow2.Task:
    return flow2.SerialTaskGroup(
        "Tree",
        step(ran, "A", 1),
        flow2.SerialTaskGroup("Checks", step(ran, "B", 2), step(ran, "C", 3)),
        cache=True,
    )


def _release(folder: Path) -> Path:
    (folder / "src").mkdir()
    (folder / "src" / "a.py").write_text("print('a')\n")
    return write_flow(folder, RELEASE)


def _ran(folder: Path) -> list[str]:
    path = folder / "ran.txt"
    if not path.exists():
        return []
    names = [line.split()[0] for line in path.read_text().splitlines() if line]
    path.unlink()
    return names


def _run_flow(folder: Path, *more: str | Path, **env: str) -> str:
    result = flow2_command(
        "run", folder / "flow.yml", "version=1.0", "--display", "plain", *more, cwd=folder, **env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _cache(folder: Path, *arguments: str) -> Any:
    result = flow2_command("cache", *arguments, cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout) if "--json" in arguments else result.stdout


# --force ---------------------------------------------------------------------------


def test_force_runs_a_reusable_task_and_says_forced(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    run(runner(tmp_path).run(_tree(ran)))
    ran.clear()
    run(runner(tmp_path, force=["b"]).run(_tree(ran)))
    assert ran == ["B"]
    reasons = rerun_reasons(tmp_path)
    assert reasons["b"] == "forced (--force b)"
    assert reasons["a"].startswith("cached from run ")
    # A group forces every task in it; a path names it as well as a name does.
    ran.clear()
    run(runner(tmp_path, force=["Tree/Checks"]).run(_tree(ran)))
    assert ran == ["B", "C"]
    assert rerun_reasons(tmp_path)["c"] == "forced (--force Tree/Checks)"
    ran.clear()
    run(runner(tmp_path, force=["Checks"]).run(_tree(ran)))
    assert ran == ["B", "C"]
    with pytest.raises(flow2.ConfigurationError, match="--force 'Build' names no task") as error:
        run(runner(tmp_path, force=["Build"]).run(_tree(ran)))
    assert error.value.option == "force"


def test_force_on_the_command_line_and_in_the_dry_run(tmp_path: Path) -> None:
    _release(tmp_path)
    _run_flow(tmp_path)
    assert _ran(tmp_path) == ["wheel", "upload"]
    planned = flow2_command(
        "run", "flow.yml", "version=1.0", "--dry-run", "--force", "Wheel", cwd=tmp_path
    ).stdout
    assert "Wheel → wheel  RUN (forced (--force Wheel))" in planned
    _run_flow(tmp_path, "--force", "Release/Wheel")
    # The wheel is rebuilt, byte for byte the same: its reader stays cached.
    assert _ran(tmp_path) == ["wheel"]
    assert explained(tmp_path / ".flow2", "wheel")["reason"] == "forced (--force Release/Wheel)"
    result = flow2_command("run", "flow.yml", "version=1", "--force", "nothing", cwd=tmp_path)
    assert_usage_error(result, "--force 'nothing' names no task or group of 'Release'")


def test_force_on_flow2_resume(tmp_path: Path) -> None:
    _release(tmp_path)
    _run_flow(tmp_path)
    _ran(tmp_path)
    result = flow2_command(
        "resume", "last", "--display", "plain", "--force", "upload", "--no-cache", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _ran(tmp_path) == ["upload"]
    assert "REUSED    Wheel (0.00s): succeeded in run " in result.stdout
    assert explained(tmp_path / ".flow2", "upload")["reason"] == "forced (--force upload)"


# --cache and --no-cache ----------------------------------------------------------------


def test_no_cache_neither_reads_nor_writes_the_cache_and_a_resume_still_works(
    tmp_path: Path,
) -> None:
    _release(tmp_path)
    _run_flow(tmp_path)
    first = stored_run(tmp_path / ".flow2").id
    _ran(tmp_path)
    output = _run_flow(tmp_path, "--no-cache")
    assert _ran(tmp_path) == ["wheel", "upload"]
    assert "cached" not in output.lower().replace("0 cancelled", "")
    assert explained(tmp_path / ".flow2", "wheel")["reason"] == (
        "the cache is off (--no-cache): nothing is taken from it"
    )
    # What the --no-cache run wrote is not in the cache: a plain run takes
    # the first run's entries.
    output = _run_flow(tmp_path)
    assert _ran(tmp_path) == []
    assert f"CACHED    Wheel (0.00s): cached from run {first}" in output
    # ... and a resume of a --no-cache run reuses its lineage.
    _run_flow(tmp_path, "--no-cache")
    no_cache_run = stored_run(tmp_path / ".flow2").id
    _ran(tmp_path)
    output = _run_flow(tmp_path, "--resume", "--no-cache")
    assert _ran(tmp_path) == []
    assert f"REUSED    Wheel (0.00s): succeeded in run {no_cache_run}" in output


def test_read_only_reuses_entries_and_writes_none(tmp_path: Path) -> None:
    _release(tmp_path)
    _run_flow(tmp_path)
    first = stored_run(tmp_path / ".flow2").id
    _ran(tmp_path)
    output = _run_flow(tmp_path, FLOW2_CACHE="read-only")
    assert _ran(tmp_path) == []
    assert f"cached from run {first}" in output
    (tmp_path / "src" / "a.py").write_text("print('b')\n")
    _run_flow(tmp_path, "--cache=read-only")
    assert _ran(tmp_path) == ["wheel", "upload"]
    # Nothing was written for the new source: the next run builds it again.
    _run_flow(tmp_path, "--cache", "read-only")
    assert _ran(tmp_path) == ["wheel", "upload"]
    _run_flow(tmp_path, "--cache=on")
    assert _ran(tmp_path) == ["wheel", "upload"]
    _run_flow(tmp_path)
    assert _ran(tmp_path) == []


def test_cache_options_that_contradict_or_are_wrong_are_usage_errors(tmp_path: Path) -> None:
    _release(tmp_path)
    result = flow2_command("run", "flow.yml", "version=1", "--no-cache", "--cache=on", cwd=tmp_path)
    assert_usage_error(result, "--no-cache contradicts --cache=on; choose one")
    result = flow2_command("run", "flow.yml", "version=1", cwd=tmp_path, FLOW2_CACHE="sometimes")
    assert_usage_error(result, "FLOW2_CACHE", "'sometimes' is not one of: on, read-only, off")
    with pytest.raises(flow2.ConfigurationError, match="cache='maybe' is not one of") as error:
        flow2.Runner(cache="maybe")
    assert error.value.option == "cache"
    assert flow2.Runner(cache="read-only", store=tmp_path).settings.cache is False


def test_runner_cache_true_under_flow2_cache_read_only_writes_no_entry(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    read_only = {"FLOW2_CACHE": "read-only"}
    run(runner(tmp_path, cache=True, environ=read_only).run(_tree(ran)))
    ran.clear()
    run(runner(tmp_path, cache=True, environ=read_only).run(_tree(ran)))
    assert ran == ["A", "B", "C"]  # nothing was written to take
    ran.clear()
    run(runner(tmp_path, cache=True).run(_tree(ran)))
    assert ran == ["A", "B", "C"]
    ran.clear()
    result = run(runner(tmp_path, cache=True, environ=read_only).execute(_tree(ran)))
    assert ran == [] and result.counts.cached == 3


# Trust -----------------------------------------------------------------------------


def test_a_store_others_may_write_is_not_trusted(tmp_path: Path) -> None:
    _release(tmp_path)
    _run_flow(tmp_path)
    _ran(tmp_path)
    (tmp_path / ".flow2").chmod(0o777)
    output = _run_flow(tmp_path)
    assert _ran(tmp_path) == ["wheel", "upload"]
    told = "may be written by other users: its cache entries are not trusted"
    assert output.count(told) == 1
    assert explained(tmp_path / ".flow2", "wheel")["reason"].startswith("not reused: ")
    (tmp_path / ".flow2").chmod(0o700)
    _run_flow(tmp_path)
    assert _ran(tmp_path) == []


@pytest.mark.skipif(
    not hasattr(os, "getuid") or os.getuid() != 0, reason="giving a file away takes root"
)
def test_a_store_file_of_another_user_is_not_trusted(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    run(runner(tmp_path).run(_tree(ran)))
    ran.clear()
    os.chown(tmp_path / "runs.sqlite3", 12345, -1)
    result = run(runner(tmp_path).execute(_tree(ran)))
    assert result.counts.cached == 0
    assert ran == ["A", "B", "C"]


def test_declared_files_out_of_the_working_directory_are_never_read(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (tmp_path / "secret.txt").write_text("outside")
    write_flow(
        folder,
        """
        plugin: shell
        name: Build
        cache: true
        cmd: echo build >> ran.txt
        sources: [../secret.txt]
        """,
    )
    _run_flow(folder)
    _run_flow(folder)
    assert _ran(folder) == ["build", "build"]
    assert explained(folder / ".flow2", "build")["reason"] == (
        "not reusable: its declared files cannot be read "
        "('../secret.txt' leads out of the working directory)"
    )


# flow2 cache ---------------------------------------------------------------------


def test_cache_list_show_and_clear(tmp_path: Path) -> None:
    _release(tmp_path)
    _run_flow(tmp_path)
    first = stored_run(tmp_path / ".flow2").id
    _run_flow(tmp_path)
    _ran(tmp_path)
    listed = _cache(tmp_path, "list", "--json")
    # Each run keeps its own entry of each task (a reused one too): its resume finds it.
    assert listed["count"] == 4
    assert {entry["task"] for entry in listed["entries"]} == {"Release/Wheel", "Release/Upload"}
    assert listed["size"] == sum(entry["size"] for entry in listed["entries"]) > 0
    assert all(entry["origin"] == first and entry["shared"] for entry in listed["entries"])
    text = _cache(tmp_path, "list")
    assert "Release › Wheel" in text and f"run {first}" in text
    assert text.rstrip().splitlines()[-1].startswith("4 entries, ")
    shown = _cache(tmp_path, "show", "wheel", "--json")
    assert len(shown["entries"]) == 2
    parts = shown["entries"][0]["parts"]
    assert "source src/a.py" in parts and "env MODE" in parts
    assert list(shown["entries"][0]["outputs"]) == ["dist/pkg.whl"]
    assert "output dist/pkg.whl: " in _cache(tmp_path, "show", "Release/Wheel")
    assert _cache(tmp_path, "clear", "Wheel").startswith("deleted 2 entries, ")
    _run_flow(tmp_path)
    # The wheel ran again, the same bytes: the upload is taken from the cache.
    assert _ran(tmp_path) == ["wheel"]
    assert _cache(tmp_path, "clear").startswith("deleted 4 entries, ")
    assert _cache(tmp_path, "list") == "the cache is empty\n"
    result = flow2_command("cache", "show", "wheel", cwd=tmp_path)
    assert_usage_error(result, "no cache entry for 'wheel'")


def test_cache_prune_by_size_and_age(tmp_path: Path) -> None:
    _release(tmp_path)
    for _ in range(3):
        _run_flow(tmp_path, "--force", "Release")
    listed = _cache(tmp_path, "list", "--json")["entries"]
    assert len(listed) == 6
    newest_two = sum(entry["size"] for entry in listed[-2:])
    output = _cache(tmp_path, "prune", "--max-size", str(newest_two))
    assert output.startswith("deleted 4 entries, ") and "; 2 entries, " in output
    left = _cache(tmp_path, "list", "--json")["entries"]
    assert [entry["run"] for entry in left] == [entry["run"] for entry in listed[-2:]]
    assert _cache(tmp_path, "prune", "--older-than", "1").startswith("deleted 0 entries, ")
    assert _cache(tmp_path, "prune", "--older-than", "0").startswith("deleted 2 entries, ")
    assert_usage_error(
        flow2_command("cache", "prune", cwd=tmp_path), "--max-size SIZE, --older-than DAYS"
    )
    assert_usage_error(
        flow2_command("cache", "prune", "--max-size", "lots", cwd=tmp_path),
        "'lots' is not a size; write e.g. 500M",
    )
