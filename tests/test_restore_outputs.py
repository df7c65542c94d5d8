"""``cache: {restore_outputs: true}``: a cached task's outputs kept in the run store, and
put back when a later run finds them missing or modified."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import Ran, run, stored_run, to_schema_5, write_flow
from .test_cli import flow2 as flow2_command
from .test_reuse import explained, rerun_reasons, runner, statuses

pytestmark = pytest.mark.usefixtures("python_first_on_path")

# Bytes no text encoding would leave alone, and a mode no umask gives.
PAYLOAD = bytes(range(256)) * 5
MODE = 0o750

WHEEL = """
plugin: serial
name: Release
cache: {restore_outputs: true}
tasks:
  - plugin: shell
    name: Wheel
    cmd: >-
      python -c "import os, pathlib; d = pathlib.Path('dist/docs'); d.mkdir(parents=True,
      exist_ok=True); pathlib.Path('dist/pkg.whl').write_bytes(bytes(range(256)) * 5);
      os.chmod('dist/pkg.whl', 0o750); (d / 'index.html').write_text('${{ version }}')"
      && echo wheel >> ran.txt
    outputs: [dist]
"""


@pytest.fixture(autouse=True)
def default_store_location(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flows run in their own folder and use the default store there (.flow2)."""
    monkeypatch.delenv("FLOW2_STORE", raising=False)


def _run_flow(folder: Path, *more: str, **env: str) -> str:
    result = flow2_command(
        "run", folder / "flow.yml", "version=1.0", "--display", "plain", *more, cwd=folder, **env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _ran(folder: Path) -> list[str]:
    path = folder / "ran.txt"
    if not path.exists():
        return []
    names = path.read_text().split()
    path.unlink()
    return names


def _copies(store: Path) -> int:
    with sqlite3.connect(store / "runs.sqlite3") as connection:
        (count,) = connection.execute("SELECT count(DISTINCT digest) FROM output_blobs").fetchone()
    return int(count)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_deleted_output_is_restored_and_the_task_is_cached(tmp_path: Path) -> None:
    write_flow(tmp_path, WHEEL)
    wheel = tmp_path / "dist" / "pkg.whl"
    _run_flow(tmp_path)
    assert _ran(tmp_path) == ["wheel"]
    first = stored_run(tmp_path / ".flow2").id
    assert wheel.read_bytes() == PAYLOAD and _mode(wheel) == MODE
    wheel.unlink()

    planned = flow2_command("run", "flow.yml", "version=1.0", "--dry-run", cwd=tmp_path).stdout
    assert f"REUSE (outputs to restore: dist/pkg.whl; cached from run {first})" in planned
    assert not wheel.exists()  # a dry run writes nothing

    output = _run_flow(tmp_path)
    assert _ran(tmp_path) == []
    assert f"CACHED    Wheel (0.00s): outputs restored: dist/pkg.whl; cached from run {first}" in (
        output
    )
    assert wheel.read_bytes() == PAYLOAD and _mode(wheel) == MODE
    # No temporary file left behind.
    assert sorted(path.name for path in wheel.parent.iterdir()) == ["docs", "pkg.whl"]
    found = explained(tmp_path / ".flow2", "Wheel")
    assert found["decision"] == "cached"
    assert found["reason"] == f"outputs restored: dist/pkg.whl; cached from run {first}"
    assert found["differences"] == ["outputs: dist/pkg.whl missing"]
    told = flow2_command("explain", "Wheel", "--store", tmp_path / ".flow2").stdout
    assert "cached (outputs restored: dist/pkg.whl" in told
    assert "  outputs: dist/pkg.whl missing" in told

    # The whole folder deleted: every file of it comes back, and nothing runs.
    for path in sorted((tmp_path / "dist").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (tmp_path / "dist").rmdir()
    output = _run_flow(tmp_path)
    assert _ran(tmp_path) == []
    assert "outputs restored: dist/docs/index.html, dist/pkg.whl;" in output
    assert (tmp_path / "dist" / "docs" / "index.html").read_text() == "1.0"
    assert wheel.read_bytes() == PAYLOAD and _mode(wheel) == MODE
    # One copy of each content, however many runs reused it.
    assert _copies(tmp_path / ".flow2") == 2


def test_a_modified_output_is_restored_from_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = Ran(tmp_path)

    def build(context: dict[str, Any]) -> str:
        ran.append("build")
        Path("out.bin").write_bytes(PAYLOAD)
        os.chmod("out.bin", MODE)
        return "built"

    def tree() -> flow2.Task:
        return flow2.SerialTaskGroup(
            "Tree",
            flow2.CallbackTask("Build", build, outputs=["out.bin"], cache=True),
            cache=flow2.Cache(restore_outputs=True),
        )

    store = tmp_path / "store"
    run(runner(store).run(tree()))
    output = tmp_path / "out.bin"
    output.write_bytes(b"tampered")
    output.chmod(0o600)
    ran.clear()
    events: list[flow2.Event] = []
    result = run(runner(store, listeners=[events.append]).run(tree()))
    assert ran == []
    assert result["build"] == "built"
    status, reason = statuses(events)["build"]
    assert status is flow2.Status.CACHED
    assert reason is not None and reason.startswith("outputs restored: out.bin; cached from run")
    assert output.read_bytes() == PAYLOAD and _mode(output) == MODE


def test_a_resume_restores_too_and_says_where_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = Ran(tmp_path)

    def build(context: dict[str, Any]) -> None:
        ran.append("build")
        Path("out.txt").write_text("built")

    def tree() -> flow2.Task:
        task = flow2.CallbackTask(
            "Build", build, outputs=["out.txt"], cache=flow2.Cache(restore_outputs=True)
        )
        return flow2.SerialTaskGroup("Tree", task)

    store = tmp_path / "store"
    run(runner(store).run(tree()))
    first = stored_run(store).id
    Path("out.txt").unlink()
    ran.clear()
    events: list[flow2.Event] = []
    run(runner(store, resume="last", listeners=[events.append]).run(tree()))
    assert ran == []
    assert statuses(events)["build"] == (
        flow2.Status.REUSED,
        f"outputs restored: out.txt; succeeded in run {first}",
    )
    assert Path("out.txt").read_text() == "built"


def test_the_nearest_cache_option_decides_and_the_runner_can_say_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = Ran(tmp_path)

    def build(context: dict[str, Any]) -> None:
        ran.append("build")
        Path("out.txt").write_text("built")

    def tree(cache: bool | flow2.Cache | None) -> flow2.Task:
        return flow2.SerialTaskGroup(
            "Tree",
            flow2.CallbackTask("Build", build, outputs=["out.txt"], cache=cache),
            cache=flow2.Cache(restore_outputs=True),
        )

    store = tmp_path / "store"
    # The task's own Cache(restore_outputs=False) wins over its group's.
    run(runner(store).run(tree(flow2.Cache())))
    Path("out.txt").unlink()
    ran.clear()
    run(runner(store).run(tree(flow2.Cache())))
    assert ran == ["build"]
    assert rerun_reasons(store)["build"] == "outputs: out.txt missing"
    assert _copies(store) == 0

    # Runner(cache=flow2.Cache(restore_outputs=True)) for a tree that says nothing.
    def plain() -> flow2.Task:
        return flow2.SerialTaskGroup(
            "Tree", flow2.CallbackTask("Build", build, outputs=["out.txt"])
        )

    option = flow2.Cache(restore_outputs=True)
    store = tmp_path / "another store"  # the first kept no copy, and stands in until it runs
    run(runner(store, cache=option).run(plain()))
    Path("out.txt").unlink()
    ran.clear()
    run(runner(store, cache=option).run(plain()))
    assert ran == []
    assert Path("out.txt").read_text() == "built"
    assert rerun_reasons(store)["build"].startswith("outputs restored: out.txt;")


def test_without_restore_outputs_a_deleted_output_runs_again_and_nothing_is_kept(
    tmp_path: Path,
) -> None:
    write_flow(tmp_path, WHEEL.replace("cache: {restore_outputs: true}", "cache: true"))
    _run_flow(tmp_path)
    _ran(tmp_path)
    (tmp_path / "dist" / "pkg.whl").unlink()
    _run_flow(tmp_path)
    assert _ran(tmp_path) == ["wheel"]
    assert explained(tmp_path / ".flow2", "Wheel")["reason"] == "outputs: dist/pkg.whl missing"
    assert _copies(tmp_path / ".flow2") == 0


def test_an_output_whose_copy_is_gone_runs_again_and_says_why(tmp_path: Path) -> None:
    write_flow(tmp_path, WHEEL)
    _run_flow(tmp_path)
    _ran(tmp_path)
    with sqlite3.connect(tmp_path / ".flow2" / "runs.sqlite3") as connection:
        connection.execute("DELETE FROM output_blobs WHERE length(content) = ?", (len(PAYLOAD),))
    (tmp_path / "dist" / "pkg.whl").unlink()
    output = _run_flow(tmp_path)
    assert _ran(tmp_path) == ["wheel"]
    reason = "outputs: dist/pkg.whl missing, and its copy in the run store is gone (pruned)"
    assert explained(tmp_path / ".flow2", "Wheel")["reason"] == reason
    assert "SUCCESS   Wheel" in output
    assert (tmp_path / "dist" / "pkg.whl").read_bytes() == PAYLOAD
    # Its success kept the file again: deleted once more, it comes back.
    (tmp_path / "dist" / "pkg.whl").unlink()
    _run_flow(tmp_path)
    assert _ran(tmp_path) == []


def test_a_recorded_path_out_of_the_working_directory_is_never_written(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    write_flow(folder, WHEEL)
    _run_flow(folder)
    _ran(folder)
    database = folder / ".flow2" / "runs.sqlite3"
    for planted in ("../escaped.whl", str(tmp_path / "escaped.whl")):
        # A store edited by hand (or planted): an entry whose output lies outside.
        with sqlite3.connect(database) as connection:
            rows = connection.execute("SELECT rowid, outputs, kept_outputs FROM cache_entries")
            for rowid, outputs, kept in rows.fetchall():
                moved = {
                    planted if "pkg" in path else path: value
                    for path, value in json.loads(outputs).items()
                }
                held = {
                    planted if "pkg" in path else path: value
                    for path, value in json.loads(kept).items()
                }
                connection.execute(
                    "UPDATE cache_entries SET outputs = ?, kept_outputs = ? WHERE rowid = ?",
                    (json.dumps(moved), json.dumps(held), rowid),
                )
        (folder / "dist" / "pkg.whl").unlink()
        _run_flow(folder)
        assert _ran(folder) == ["wheel"]
        reason = explained(folder / ".flow2", "Wheel")["reason"]
        assert reason == (
            f"outputs: {planted} missing, and not restored: {planted!r} leads out of the "
            f"working directory"
        )
        assert not (tmp_path / "escaped.whl").exists()


def test_a_folder_that_links_out_of_the_working_directory_is_never_written_into(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    write_flow(folder, WHEEL.replace("outputs: [dist]", "outputs: [dist/pkg.whl]"))
    _run_flow(folder)
    _ran(folder)
    outside = tmp_path / "outside"
    outside.mkdir()
    for path in sorted((folder / "dist").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (folder / "dist").rmdir()
    (folder / "dist").symlink_to(outside)
    _run_flow(folder)
    assert _ran(folder) == ["wheel"]
    assert explained(folder / ".flow2", "Wheel")["reason"] == (
        "outputs: dist/pkg.whl missing, and not restored: 'dist/pkg.whl' leads out of the "
        "working directory"
    )


def test_an_output_bigger_than_a_chunk_goes_in_and_out_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flow2._store import _kept

    # Three parts of 3,000 bytes at most, each in chunks of 1,000.
    monkeypatch.setattr(_kept, "CHUNK", 1000)
    monkeypatch.setattr(_kept, "PART", 3000)
    monkeypatch.chdir(tmp_path)
    ran = Ran(tmp_path)
    big = PAYLOAD * 7 + b"tail"

    def build(context: dict[str, Any]) -> None:
        ran.append("build")
        Path("big.bin").write_bytes(big)

    def tree() -> flow2.Task:
        return flow2.CallbackTask(
            "Build", build, outputs=["big.bin"], cache=flow2.Cache(restore_outputs=True)
        )

    store = tmp_path / "store"
    run(runner(store).run(tree()))
    Path("big.bin").write_bytes(big[:-1] + b"!")  # same size, one byte changed
    ran.clear()
    run(runner(store).run(tree()))
    assert ran == []
    assert Path("big.bin").read_bytes() == big
    with sqlite3.connect(store / "runs.sqlite3") as connection:
        parts = connection.execute("SELECT part, length(content) FROM output_blobs").fetchall()
    assert sorted(parts) == [(0, 3000), (1, 3000), (2, len(big) - 6000)]


def test_cache_clear_prune_and_retention_delete_the_copies_no_entry_keeps(
    tmp_path: Path,
) -> None:
    write_flow(tmp_path, WHEEL)
    store = tmp_path / ".flow2"
    _run_flow(tmp_path)
    _run_flow(tmp_path, "--force", "Wheel")  # the same files: kept once
    assert _copies(store) == 2
    listed = json.loads(flow2_command("cache", "list", "--json", "--store", store).stdout)
    assert [entry["outputs_kept"] for entry in listed["entries"]] == [len(PAYLOAD) + 3] * 2
    shown = flow2_command("cache", "show", "Wheel", "--store", store).stdout
    assert "(kept, 1.2 KiB)" in shown and "outputs kept: 1.3 KiB" in shown
    assert "(outputs kept: 1.3 KiB)" in flow2_command("cache", "list", "--store", store).stdout

    # A new version of the docs: its copy is added, the wheel's is shared.
    result = flow2_command("run", "flow.yml", "version=2.0", "--display", "plain", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _copies(store) == 3
    newest = listed["entries"][-1]["size"]
    pruned = flow2_command("cache", "prune", "--max-size", str(newest + 100), "--store", store)
    assert "(with 1 kept output no entry uses now)" in pruned.stdout, pruned.stdout
    assert _copies(store) == 2

    # Retention: the runs beyond the last one go, with their entries and copies.
    _ran(tmp_path)
    _run_flow(tmp_path, FLOW2_STORE_KEEP="1")
    assert _ran(tmp_path) == ["wheel"]  # its entry was pruned
    assert _copies(store) == 2
    (tmp_path / "dist" / "docs" / "index.html").unlink()
    _run_flow(tmp_path, FLOW2_STORE_KEEP="1")
    assert _ran(tmp_path) == []

    cleared = flow2_command("cache", "clear", "--store", store)
    assert "(with 2 kept outputs no entry uses now)" in cleared.stdout, cleared.stdout
    assert _copies(store) == 0


def test_a_store_of_schema_5_is_migrated_and_keeps_outputs(tmp_path: Path) -> None:
    write_flow(tmp_path, WHEEL)
    _run_flow(tmp_path)
    _ran(tmp_path)
    with sqlite3.connect(tmp_path / ".flow2" / "runs.sqlite3") as connection:
        to_schema_5(connection)
    (tmp_path / "dist" / "pkg.whl").unlink()
    _run_flow(tmp_path)  # its entry kept nothing: the task runs, and keeps its outputs now
    assert _ran(tmp_path) == ["wheel"]
    (tmp_path / "dist" / "pkg.whl").unlink()
    _run_flow(tmp_path)
    assert _ran(tmp_path) == []
    assert (tmp_path / "dist" / "pkg.whl").read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    ("cache", "line", "key", "message"),
    [
        (
            "{restore_outputs: yes-please}",
            3,
            "cache.restore_outputs",
            "task 'Wheel' (plugin 'shell'): cache: restore_outputs: must be true or false, "
            "got the string 'yes-please'",
        ),
        (
            "\n      restore_outputs: true\n      restore: true",
            5,
            "cache.restore",
            "task 'Wheel' (plugin 'shell'): cache: has an unknown key 'restore'; "
            "did you mean 'restore_outputs'?",
        ),
        (
            "3",
            3,
            "cache",
            "task 'Wheel' (plugin 'shell'): cache: must be true, false or options such as",
        ),
    ],
)
def test_wrong_cache_options_name_the_file_the_line_and_the_key(
    tmp_path: Path, cache: str, line: int, key: str, message: str
) -> None:
    flow = tmp_path / "flow.yml"
    flow.write_text(f"tasks:\n  - name: Wheel\n    cache: {cache}\n    cmd: 'true'\n")
    with pytest.raises(flow2.FlowFileError) as caught:
        flow2.load(flow)
    error = caught.value
    assert (error.file, error.line, error.key) == (str(flow), line, key)
    assert error.reason.startswith(message), error.reason
    result = flow2_command("run", flow, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"flow.yml:{line}:" in result.stderr


def test_wrong_cache_options_in_python_say_what_to_write() -> None:
    with pytest.raises(flow2.DefinitionError, match="restore_outputs=True") as caught:
        flow2.Cache(restore_outputs="yes")  # type: ignore[arg-type]
    assert caught.value.option == "restore_outputs"
    with pytest.raises(flow2.DefinitionError, match="true, false or a flow2.Cache"):
        flow2.CallbackTask("Build", print, cache="yes")  # type: ignore[arg-type]
    assert flow2.Cache.__module__ == "flow2"
