"""A store is data: planted ids, symlinks and damage are refused; failures to record are loud."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import run, write_flow
from .test_cli import flow2 as flow2_command

pytestmark = pytest.mark.usefixtures("python_first_on_path")


@pytest.fixture(autouse=True)
def default_store_location(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests use the default store of their folder (.flow2) unless they name one."""
    monkeypatch.delenv("FLOW2_STORE", raising=False)


FLOW = """
plugin: serial
name: Demo
tasks:
  - plugin: shell
    name: hello
    cmd: echo hi
"""


def one_task() -> flow2.Task:
    async def work(context: dict[str, Any]) -> str:
        return "x" * 200_000  # more than the pages the store has free

    return flow2.CallbackTask("Big", work)


def recorded(store: Path) -> Path:
    """A store in ``store`` holding one finished run."""
    run(flow2.Runner(display="none", store=store).run(one_task()))
    return store / "runs.sqlite3"


def plant_runs(database: Path, *run_ids: str) -> None:
    """Copy the store's only run under each of ``run_ids``, older than it."""
    connection = sqlite3.connect(database)
    try:
        (real,) = connection.execute("SELECT id FROM runs").fetchone()
        for age, run_id in enumerate(run_ids, start=1):
            connection.execute(
                "INSERT INTO runs SELECT ?, name, flow, variables, started_at - ?, ended_at, "
                "last_seen, status, pid, host, resumed_from, counts, error, process FROM runs "
                "WHERE id = ?",
                (run_id, 100 * age, real),
            )
        connection.commit()
    finally:
        connection.close()


def stored_ids(database: Path) -> list[str]:
    connection = sqlite3.connect(database)
    try:
        return sorted(row[0] for row in connection.execute("SELECT id FROM runs"))
    finally:
        connection.close()


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# Planted ids and symlinks -------------------------------------------------------


@pytest.mark.parametrize("kind", ["parent", "absolute"])
def test_a_planted_run_id_is_refused_and_nothing_is_deleted(tmp_path: Path, kind: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    store = tmp_path / "project" / ".flow2"
    database = recorded(store)
    hostile = "../../../victim" if kind == "parent" else str(victim)
    plant_runs(database, hostile)
    before = stored_ids(database)
    flow = write_flow(tmp_path / "project", FLOW)
    for arguments in (
        ("runs",),
        ("runs", "prune", "--keep", "0"),
        ("runs", "show", "last"),
        ("report", "--markdown", "-"),
        ("run", flow),
    ):
        result = flow2_command(*arguments, cwd=tmp_path / "project", FLOW2_STORE_KEEP="0")
        shown = str(Path(".flow2") / "runs.sqlite3")
        assert_one_line(result, 2, shown, repr(hostile), "nothing in it was changed")
        assert (victim / "precious").read_text() == "keep me"
    assert stored_ids(database) == before and len(before) == 2
    with pytest.raises(flow2.StoreError, match="never writes") as caught:
        run(flow2.Runner(display="none", store=store).run(one_task()))
    assert caught.value.cause == "corrupt" and caught.value.file == str(database)


def test_prune_deletes_only_inside_the_store(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    store = tmp_path / "store"
    database = recorded(store)
    plant_runs(database, "0123456789ab")
    # The old run's folder is a symlink out of the store: refused, nothing deleted.
    (store / "runs").mkdir(exist_ok=True)
    (store / "runs" / "0123456789ab").symlink_to(victim)
    result = flow2_command("runs", "prune", "--keep", "1", "--store", store)
    assert_one_line(result, 2, "leads out of it", "nothing in it was changed")
    assert (victim / "precious").exists()
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    # The same with the runs folder itself a symlink out of the store.
    (store / "runs" / "0123456789ab").unlink()
    (store / "runs").rmdir()
    (victim / "0123456789ab").mkdir()
    (store / "runs").symlink_to(victim)
    result = flow2_command("runs", "prune", "--keep", "1", "--store", store)
    assert_one_line(result, 2, "leads out of it", "nothing in it was changed")
    assert (victim / "0123456789ab").is_dir()
    # A real folder is deleted, and a symlink inside it goes, not what it points to.
    (store / "runs").unlink()
    (store / "runs" / "0123456789ab").mkdir(parents=True)
    (store / "runs" / "0123456789ab" / "link").symlink_to(victim)
    result = flow2_command("runs", "prune", "--keep", "1", "--store", store)
    assert result.returncode == 0, result.stderr
    assert "deleted 1 run" in result.stdout
    assert not (store / "runs" / "0123456789ab").exists()
    assert (victim / "precious").exists()


def test_a_database_symlinked_out_of_the_store_is_refused(tmp_path: Path) -> None:
    elsewhere = recorded(tmp_path / "elsewhere")
    store = tmp_path / "store"
    store.mkdir()
    (store / "runs.sqlite3").symlink_to(elsewhere)
    result = flow2_command("runs", "--store", store)
    assert_one_line(result, 2, "symlink out of it")


def test_a_log_file_symlinked_out_of_the_store_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("private words")
    flow = write_flow(tmp_path, FLOW)
    assert flow2_command("run", flow, cwd=tmp_path).returncode == 0
    (logs,) = (tmp_path / ".flow2" / "runs").glob("*/logs")
    for log in logs.iterdir():
        log.unlink()
    (logs / "hello.log").symlink_to(secret)
    result = flow2_command("runs", "logs", "last", "hello", cwd=tmp_path)
    assert "private words" not in result.stdout
    assert "hi" in result.stdout  # what the store kept instead


# Corrupt stores -------------------------------------------------------------------


def damage(database: Path, *, keep_header_pages: int) -> None:
    """Overwrite every page of ``database`` after the first ``keep_header_pages`` with noise."""
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    size = database.stat().st_size
    with database.open("r+b") as file:
        for page in range(keep_header_pages, size // page_size):
            file.seek(page * page_size)
            file.write(os.urandom(page_size))


@pytest.mark.parametrize("damage_kind", ["random bytes", "truncated", "data pages"])
def test_a_corrupt_store_is_one_line_in_every_command(tmp_path: Path, damage_kind: str) -> None:
    flow = write_flow(tmp_path, FLOW)
    assert flow2_command("run", flow, cwd=tmp_path).returncode == 0
    database = tmp_path / ".flow2" / "runs.sqlite3"
    if damage_kind == "random bytes":
        database.write_bytes(os.urandom(20_000))
        for stale in database.parent.glob("runs.sqlite3-*"):
            stale.unlink()
    elif damage_kind == "truncated":
        damage(database, keep_header_pages=0)
        with database.open("r+b") as file:
            file.truncate(5000)
    else:
        damage(database, keep_header_pages=1)
    before = database.read_bytes()
    for arguments in (
        ("runs",),
        ("runs", "--json"),
        ("runs", "show", "last"),
        ("runs", "logs", "last", "hello"),
        ("runs", "prune", "--keep", "0"),
        ("report", "--markdown", "-"),
        ("run", flow),
        ("run", flow, "--resume"),
        ("run", flow, "--dry-run", "--resume"),
        ("resume", flow),
    ):
        result = flow2_command(*arguments, cwd=tmp_path)
        assert result.returncode in (1, 2), (arguments, result.stderr)
        assert "Traceback" not in result.stderr, (arguments, result.stderr)
        assert str(Path(".flow2") / "runs.sqlite3") in result.stderr, (arguments, result.stderr)
        assert "--store" in result.stderr, (arguments, result.stderr)
    assert database.read_bytes() == before


# Failures to record -------------------------------------------------------------


def limit_store(monkeypatch: pytest.MonkeyPatch, pragma: str) -> None:
    """Each new store connection gets ``pragma``: what a read-only file or a full disk does."""
    from flow2._store._database import Store

    connect = Store.connect

    def limited(self: Store, **options: Any) -> sqlite3.Connection:
        connection = connect(self, **options)
        if pragma == "full":
            (pages,) = connection.execute("PRAGMA page_count").fetchone()
            connection.execute(f"PRAGMA max_page_count = {pages}")
        else:
            connection.execute("PRAGMA query_only = ON")
        return connection

    monkeypatch.setattr(Store, "connect", limited)


@pytest.mark.parametrize(("pragma", "cause"), [("full", "disk full"), ("read-only", "read-only")])
def test_a_run_that_cannot_be_recorded_says_why_and_fails(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pragma: str,
    cause: str,
) -> None:
    recorded(tmp_path)
    limit_store(monkeypatch, pragma)
    result = run(flow2.Runner(display="none", store=tmp_path).execute(one_task()))
    assert result.status is flow2.Status.SUCCEEDED
    (problem,) = result.recording_errors
    assert f"was not recorded completely in the run store {tmp_path} ({cause})" in problem
    assert "cannot rollback" not in problem and "not a flow2 run store" not in problem
    assert result.exit_code == 1 and not result.succeeded
    assert problem in capsys.readouterr().err


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root writes a read-only file; the read-only pragma test covers it as root",
)
def test_a_read_only_store_file_fails_the_command(tmp_path: Path) -> None:  # pragma: no cover
    flow = write_flow(tmp_path, FLOW)
    assert flow2_command("run", flow, cwd=tmp_path).returncode == 0
    database = tmp_path / ".flow2" / "runs.sqlite3"
    database.chmod(0o400)
    result = flow2_command("run", flow, cwd=tmp_path)
    assert result.returncode != 0 and "read-only" in result.stderr


def test_a_store_directory_that_is_a_file_fails_before_the_run(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, FLOW)
    (tmp_path / ".flow2").write_text("not a folder")
    result = flow2_command("run", flow, cwd=tmp_path)
    assert_one_line(result, 2, ".flow2 is a file")
    assert flow2_command("run", flow, "--no-store", cwd=tmp_path).returncode == 0


def test_a_full_log_disk_marks_the_log_incomplete_and_the_task_succeeds(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():  # pragma: no cover - not Linux
        pytest.skip("no /dev/full to stand for a full disk")
    flow = write_flow(
        tmp_path,
        """
        plugin: serial
        name: Demo
        tasks:
          - plugin: shell
            name: hello
            cmd: seq 1 20000
        """,
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "hello.log").symlink_to("/dev/full")
    result = flow2_command("run", flow, "--log-dir", logs, "--no-store", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "the log file" in result.stderr and "is incomplete" in result.stderr
    assert "No space left on device" in result.stderr
    assert "[hello] 20000" in result.stdout  # the display went on
    assert "failed and stopped receiving events" not in result.stderr


# Liveness and retention -----------------------------------------------------------


def test_a_killed_run_of_a_reused_pid_is_interrupted_and_pruned(tmp_path: Path) -> None:
    database = recorded(tmp_path)
    plant_runs(database, "0123456789ab", "0123456789ac", "0123456789ad")
    with sqlite3.connect(database) as connection:
        # Killed runs that never ended: one recorded by a process that had
        # this very pid (a container's pid 1, a pid given again), one by a
        # live pid whose heartbeat stopped long ago, one still going on.
        update = (
            "UPDATE runs SET ended_at = NULL, status = 'running', pid = ?, last_seen = ?, "
            "process = ? WHERE id = ?"
        )
        now = time.time()
        connection.execute(update, (os.getpid(), now, "another-boot:1", "0123456789ab"))
        connection.execute(update, (os.getpid(), now - 3600, None, "0123456789ac"))
        connection.execute(update, (os.getpid(), now, None, "0123456789ad"))
    listed = flow2_command("runs", "--json", "--store", tmp_path)
    statuses = {run["id"]: run["status"] for run in json.loads(listed.stdout)}
    assert statuses["0123456789ab"] == "interrupted"
    assert statuses["0123456789ac"] == "interrupted"
    assert statuses["0123456789ad"] == "running" or sys.platform != "linux"
    result = flow2_command("runs", "prune", "--keep", "0", "--store", tmp_path)
    assert result.returncode == 0, result.stderr
    left = flow2_command("runs", "--json", "--store", tmp_path)
    assert [run["id"] for run in json.loads(left.stdout)] == ["0123456789ad"]


def test_a_run_records_its_process_and_is_running_while_it_lives(tmp_path: Path) -> None:
    from flow2._store._liveness import process_identity, status_of

    recorded(tmp_path)
    with sqlite3.connect(tmp_path / "runs.sqlite3") as connection:
        ((pid, process),) = connection.execute("SELECT pid, process FROM runs").fetchall()
    assert pid == os.getpid()
    assert process == process_identity(os.getpid())
    import socket

    host = socket.gethostname()
    now = time.time()
    assert status_of("running", None, os.getpid(), host, process=process, last_seen=now) == (
        "running"
    )


def test_the_store_directory_ignores_itself_in_git(tmp_path: Path) -> None:
    recorded(tmp_path / ".flow2")
    ignore = tmp_path / ".flow2" / ".gitignore"
    assert ignore.read_text().splitlines()[-1] == "*"
    ignore.write_text("# mine\n")
    recorded(tmp_path / ".flow2")
    assert ignore.read_text() == "# mine\n"  # a file of the user's is kept


def test_the_logs_of_a_run_without_a_store_are_ignored_in_git_too(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, "plugin: shell\nname: Say\ncmd: echo hello\n")
    environment = {name: value for name, value in os.environ.items() if name != "FLOW2_STORE"}
    done = subprocess.run(
        [sys.executable, "-m", "flow2", "run", "--no-store", str(flow)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / ".flow2" / "runs").glob("*/logs/*.log"))
    assert (tmp_path / ".flow2" / ".gitignore").read_text().splitlines()[-1] == "*"
