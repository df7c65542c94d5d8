"""The run store: recording, history, resume, crash safety, concurrency, bad input."""

from __future__ import annotations

import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import Ran, run, write_flow
from .test_cli import environment
from .test_cli import flow2 as flow2_command


def runner(store: Path, **options: Any) -> flow2.Runner:
    return flow2.Runner(display="none", store=store, **options)


def side_effect_tree(ran: Ran, *, fail_at: str | None = None) -> flow2.Task:
    """A serial tree of four tasks; each appends its name to ``ran`` when it runs,
    and ``fail_at`` raises."""
    ran.fail(fail_at)

    def step(name: str, result: Any) -> Any:
        async def work(context: dict[str, Any]) -> Any:
            ran.append(name)
            if ran.fails(name):
                raise RuntimeError(f"{name} broke")
            return result

        work.__qualname__ = "step.work"
        return work

    return flow2.SerialTaskGroup(
        "Pipeline",
        flow2.CallbackTask("Fetch", step("fetch", [1, 2, 3])),
        flow2.CallbackTask("Parse", step("parse", {"rows": 3, "ratio": 0.5})),
        flow2.CallbackTask("Build", step("build", "wheel")),
        flow2.CallbackTask("Publish", step("publish", None)),
    )


# Resume from Python ------------------------------------------------------------


@pytest.fixture(autouse=True)
def default_store_location(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests run in their own folder and use the default store there (.flow2)."""
    monkeypatch.delenv("FLOW2_STORE", raising=False)


def test_resume_reuses_what_succeeded_with_equal_values_and_types(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    first = run(runner(tmp_path).run(side_effect_tree(ran, fail_at="build"), raises=False))
    assert isinstance(first["build"], RuntimeError)
    ran.clear()
    events: list[flow2.Event] = []
    context = run(
        runner(tmp_path, resume="last", listeners=[events.append]).run(side_effect_tree(ran))
    )
    assert ran == ["build", "publish"]  # fetch and parse did not run again
    assert context["fetch"] == [1, 2, 3] and type(context["fetch"]) is list
    assert context["parse"] == {"rows": 3, "ratio": 0.5}
    assert type(context["parse"]["ratio"]) is float
    reused = [
        e.task.name
        for e in events
        if isinstance(e, flow2.TaskEvent) and e.status is flow2.Status.REUSED
    ]
    assert reused == ["Fetch", "Parse"]


def test_a_result_json_cannot_hold_exactly_is_not_stored_and_the_task_runs_again(
    tmp_path: Path,
) -> None:
    ran = Ran(tmp_path)

    async def pair(context: dict[str, Any]) -> tuple[int, int]:
        ran.append("pair")
        return (1, 2)

    async def keys(context: dict[str, Any]) -> dict[int, str]:
        ran.append("keys")
        return {1: "one"}

    def tree() -> flow2.Task:
        return flow2.ParallelTaskGroup(
            "Values", flow2.CallbackTask("Pair", pair), flow2.CallbackTask("Keys", keys)
        )

    run(runner(tmp_path).run(tree()))
    ran.clear()
    context = run(runner(tmp_path, resume="last").run(tree()))
    assert sorted(ran) == ["keys", "pair"]
    assert context["pair"] == (1, 2) and type(context["pair"]) is tuple
    # With the opt-in, the tuple is pickled, and comes back a tuple.
    run(runner(tmp_path, pickle_results=True).run(tree()))
    ran.clear()
    context = run(runner(tmp_path, resume="last", pickle_results=True).run(tree()))
    assert ran == []
    assert context["pair"] == (1, 2) and type(context["pair"]) is tuple
    assert context["keys"] == {1: "one"}


def test_a_changed_definition_and_everything_after_it_runs_again(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    run(runner(tmp_path).run(side_effect_tree(ran)))
    ran.clear()
    changed = side_effect_tree(ran)
    changed.tasks[1].timeout = 30  # Parse's definition changes
    run(runner(tmp_path, resume="last").run(changed))
    assert ran == ["parse", "build", "publish"]
    store = _read_store(tmp_path)
    reasons = dict(
        store.execute(
            "SELECT key, reason FROM tasks JOIN task_notes USING (run_id, number) "
            "WHERE run_id = (SELECT id FROM runs ORDER BY started_at DESC LIMIT 1)"
        )
    )
    assert reasons["parse"] == "option timeout changed"
    assert reasons["build"] == "input 'parse' changed"


def test_a_task_declaring_its_inputs_depends_only_on_them(tmp_path: Path) -> None:
    ran = Ran(tmp_path)

    def tree(version: str) -> flow2.Task:
        async def make_version(context: dict[str, Any]) -> str:
            ran.append("version")
            return version

        async def fetch(context: dict[str, Any]) -> int:
            ran.append("fetch")
            return 7

        async def double(context: dict[str, Any], *, fetch: int) -> int:
            ran.append("double")
            return fetch * 2

        return flow2.SerialTaskGroup(
            "Declared",
            flow2.CallbackTask("Fetch", fetch),
            flow2.CallbackTask("Version", make_version),
            flow2.CallbackTask("Double", double),
        )

    run(runner(tmp_path).run(tree("1.0")))
    ran.clear()
    # Version's callback changes (a different closure value is not its source:
    # force a change through an option), Double reads only fetch: reused.
    new = tree("1.0")
    new.tasks[1].retries = 2
    context = run(runner(tmp_path, resume="last").run(new))
    assert ran == ["version"]
    assert context["double"] == 14


def test_changed_variables_rerun_the_tasks_that_may_read_them(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    run(runner(tmp_path).run(side_effect_tree(ran), {"target": "prod"}))
    ran.clear()
    run(runner(tmp_path, resume="last").run(side_effect_tree(ran), {"target": "prod"}))
    assert ran == []
    run(runner(tmp_path, resume="last").run(side_effect_tree(ran), {"target": "test"}))
    assert ran == ["fetch", "parse", "build", "publish"]


def test_a_library_call_records_nothing_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run(side_effect_tree(Ran(tmp_path)).run())
    run(flow2.Runner(display="none").run(side_effect_tree(Ran(tmp_path))))
    assert not (tmp_path / ".flow2").exists()
    monkeypatch.setenv("FLOW2_STORE", str(tmp_path / "chosen"))
    run(flow2.Runner(display="none").run(side_effect_tree(Ran(tmp_path))))
    assert (tmp_path / "chosen" / "runs.sqlite3").is_file()


def test_resume_needs_a_store() -> None:
    with pytest.raises(flow2.ConfigurationError, match="needs a run store"):
        flow2.Runner(resume="last")


# The command line ----------------------------------------------------------------

PIPE = """
plugin: serial
name: Pipe
tasks:
  - plugin: shell
    name: One
    cmd: echo one >> ran.txt; echo out-one
  - plugin: shell
    name: Two
    cmd: echo two >> ran.txt; {two}
  - plugin: shell
    name: Three
    cmd: echo three >> ran.txt
"""


def ran_lines(folder: Path) -> list[str]:
    lines = (folder / "ran.txt").read_text().split()
    (folder / "ran.txt").unlink()
    return lines


def test_command_line_resume_after_a_fix_and_after_a_change(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, PIPE.format(two="exit 3"))
    assert flow2_command("run", flow, cwd=tmp_path).returncode == 1
    assert ran_lines(tmp_path) == ["one", "two"]
    # After a fix to the failing command: One is reused.
    write_flow(tmp_path, PIPE.format(two="true"))
    result = flow2_command("run", flow, "--resume", "--display", "plain", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ran_lines(tmp_path) == ["two", "three"]
    assert result.stdout.splitlines()[0].startswith("resuming run ")
    assert "1 task succeeded in its lineage" in result.stdout.splitlines()[0]
    assert "1 reused" in result.stdout
    # Unchanged: nothing runs.
    result = flow2_command("run", flow, "--resume", "--display", "plain", cwd=tmp_path)
    assert "3 tasks succeeded in its lineage" in result.stdout
    assert not (tmp_path / "ran.txt").exists()
    # A change to the first task: everything after it may read it, so it runs.
    flow.write_text(flow.read_text().replace("echo out-one", "echo out-ONE"))
    assert flow2_command("run", flow, "--resume", cwd=tmp_path).returncode == 0
    assert ran_lines(tmp_path) == ["one", "two", "three"]
    shown = flow2_command("runs", "show", "last", cwd=tmp_path).stdout
    assert "One: command changed" in shown
    assert "Two: input 'one' changed" in shown


def test_runs_json_lists_newest_first_with_the_documented_keys(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, PIPE.format(two="exit 3"))
    flow2_command("run", flow, cwd=tmp_path)
    write_flow(tmp_path, PIPE.format(two="true"))
    flow2_command("run", flow, "--resume", cwd=tmp_path)
    result = flow2_command("runs", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)
    assert [entry["status"] for entry in runs] == ["succeeded", "failed"]
    assert set(runs[0]) == {"id", "name", "flow", "status", "started_at", "duration", "counts"}
    assert runs[0]["counts"] == {
        "succeeded": 2,
        "failed": 0,
        "skipped": 0,
        "cancelled": 0,
        "reused": 1,
        "cached": 0,
    }
    assert runs[1]["counts"] == {
        "succeeded": 1,
        "failed": 1,
        "skipped": 1,
        "cancelled": 0,
        "reused": 0,
        "cached": 0,
    }
    assert runs[0]["name"] == "Pipe" and runs[0]["flow"] == str(flow)
    assert runs[0]["started_at"][:4].isdigit() and "T" in runs[0]["started_at"]
    assert isinstance(runs[0]["duration"], float)
    text = flow2_command("runs", cwd=tmp_path).stdout.splitlines()
    assert text[0].startswith(runs[0]["id"]) and "succeeded" in text[0]
    logs = flow2_command("runs", "logs", runs[0]["id"][:6], "one", cwd=tmp_path)
    assert logs.returncode == 0 and logs.stdout == "out-one\n"
    logs = flow2_command("runs", "logs", "last", "Pipe/Two", cwd=tmp_path)
    assert logs.returncode == 0


def test_flow2_resume_uses_the_runs_own_flow_file_and_variables(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: serial
        name: Vars
        tasks:
          - plugin: shell
            name: Greet
            cmd: echo {{ who }} >> ran.txt
          - plugin: shell
            name: Check
            cmd: test -f ok
        """,
    )
    assert flow2_command("run", flow, "who=world", cwd=tmp_path).returncode == 1
    (tmp_path / "ok").touch()
    runs = json.loads(flow2_command("runs", "--json", cwd=tmp_path).stdout)
    other = tmp_path / "elsewhere"
    other.mkdir()
    result = flow2_command("resume", runs[0]["id"], "--store", tmp_path / ".flow2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ran_lines(tmp_path) == ["world"]  # only from the first run
    flow.unlink()
    result = flow2_command("resume", "last", cwd=tmp_path)
    assert result.returncode == 2 and "is gone" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigkill_mid_run_shows_interrupted_and_resume_reruns_only_the_rest(
    tmp_path: Path,
) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: serial
        name: Long
        tasks:
          - plugin: shell
            name: Quick
            cmd: echo quick >> ran.txt
          - plugin: shell
            name: Slow
            cmd: echo slow >> ran.txt; touch started; while [ -f block ]; do sleep 0.05; done
          - plugin: shell
            name: After
            cmd: echo after >> ran.txt
        """,
    )
    (tmp_path / "block").touch()
    process = subprocess.Popen(
        [sys.executable, "-m", "flow2", "run", str(flow), "--display", "none"],
        cwd=tmp_path,
        env=environment(),
    )
    try:
        database = tmp_path / ".flow2" / "runs.sqlite3"
        deadline = time.monotonic() + 60
        # Wait until Quick's success is committed (within half a second of it).
        while time.monotonic() < deadline:
            if (tmp_path / "started").exists() and database.exists():
                with sqlite3.connect(database) as store:
                    done = store.execute(
                        "SELECT count(*) FROM tasks WHERE key = 'quick' AND status = 'succeeded'"
                    ).fetchone()[0]
                if done:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the first task was never recorded")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    runs = json.loads(flow2_command("runs", "--json", cwd=tmp_path).stdout)
    assert runs[0]["status"] == "interrupted"
    (tmp_path / "block").unlink()
    (tmp_path / "ran.txt").unlink()
    result = flow2_command("run", flow, "--resume", "--display", "plain", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 task succeeded in its lineage" in result.stdout
    assert ran_lines(tmp_path) == ["slow", "after"]


def test_two_runs_at_once_on_one_store_are_both_recorded(tmp_path: Path) -> None:
    # Each run waits until the other has started: they overlap for sure.
    flows = [
        write_flow(
            tmp_path,
            f"""
            plugin: parallel
            name: Run {mine}
            tasks:
            """
            + "".join(
                f"""
              - plugin: shell
                name: Task {index}
                cmd: touch {mine}-{index}; while [ ! -f {other}-{index} ]; do sleep 0.02; done
            """
                for index in range(20)
            ),
            name=f"{mine}.yml",
        )
        for mine, other in (("a", "b"), ("b", "a"))
    ]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "flow2", "run", str(flow), "--display", "none"],
            cwd=tmp_path,
            env=environment(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for flow in flows
    ]
    errors = [process.communicate(timeout=90)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], errors
    assert not any("locked" in error for error in errors)
    runs = json.loads(flow2_command("runs", "--json", cwd=tmp_path).stdout)
    assert sorted(entry["name"] for entry in runs) == ["Run a", "Run b"]
    assert all(entry["counts"]["succeeded"] == 20 for entry in runs)


def test_a_planted_pickle_is_never_loaded_without_the_opt_in(tmp_path: Path) -> None:
    async def pair(context: dict[str, Any]) -> tuple[int, int]:
        return (1, 2)

    def tree() -> flow2.Task:
        return flow2.SerialTaskGroup("Planted", flow2.CallbackTask("Pair", pair))

    run(runner(tmp_path, pickle_results=True).run(tree()))
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Touch(str(marker)))
    with sqlite3.connect(tmp_path / "runs.sqlite3") as store:
        store.execute("UPDATE tasks SET result = ? WHERE key = 'pair'", (payload,))
        store.execute("UPDATE cache_entries SET result = ?", (payload,))
    context = run(runner(tmp_path, resume="last").run(tree()))
    assert not marker.exists()
    assert context["pair"] == (1, 2)  # it ran again
    reason = (
        _read_store(tmp_path)
        .execute(
            "SELECT reason FROM task_notes JOIN tasks USING (run_id, number) WHERE key = 'pair' "
            "AND reason IS NOT NULL"
        )
        .fetchone()[0]
    )
    assert "pickle" in reason and "--pickle-results" in reason
    # The check can fail: with the opt-in, the pickle is loaded (and runs).
    runs = json.loads(flow2_command("runs", "--json", "--store", tmp_path).stdout)
    run(runner(tmp_path, resume=runs[-1]["id"], pickle_results=True).run(tree()))
    assert marker.exists()


class _Touch:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def test_secrets_are_masked_in_the_store(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: serial
        name: Leaks
        tasks:
          - plugin: shell
            name: Leak
            cmd: echo "$DEPLOY_TOKEN and {{ api_token }}"
          - plugin: shell
            name: Quiet {{ api_token }}
            cmd: "true"
        """,
    )
    result = flow2_command(
        "run", flow, "api_token=hunter2-value", cwd=tmp_path, DEPLOY_TOKEN="s3cr3t-value"
    )
    assert result.returncode == 0, result.stderr
    raw = (tmp_path / ".flow2" / "runs.sqlite3").read_bytes()
    wal = tmp_path / ".flow2" / "runs.sqlite3-wal"
    if wal.exists():
        raw += wal.read_bytes()
    assert b"s3cr3t-value" not in raw and b"hunter2-value" not in raw
    assert b"hunter2_value" not in raw  # the key made from the name "Quiet hunter2-value"
    shown = flow2_command("runs", "show", "last", cwd=tmp_path)
    assert "api_token" in shown.stdout and "hunter2" not in shown.stdout
    resumed = flow2_command("resume", "last", cwd=tmp_path)
    assert resumed.returncode == 2 and "give it again" in resumed.stderr


# Bad input -----------------------------------------------------------------------


def test_run_references_that_match_nothing_or_several(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, PIPE.format(two="true"))
    flow2_command("run", flow, cwd=tmp_path)
    flow2_command("run", flow, cwd=tmp_path)
    result = flow2_command("runs", "show", "zzzz", cwd=tmp_path)
    assert result.returncode == 2 and "no run 'zzzz'" in result.stderr
    result = flow2_command("runs", "show", "", cwd=tmp_path)
    assert result.returncode == 2 and "matches 2 runs" in result.stderr
    result = flow2_command("resume", "zzzz", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    result = flow2_command("runs", "logs", "last", "nothing", cwd=tmp_path)
    assert result.returncode == 2 and "has no task 'nothing'" in result.stderr


def test_a_store_that_cannot_be_used_is_one_message_and_exit_2(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, PIPE.format(two="true"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = flow2_command("run", flow, "--store", blocker, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not (tmp_path / "ran.txt").exists()  # nothing ran
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "runs.sqlite3").write_bytes(b"this is not a database" * 100)
    for arguments in (("run", flow, "--store", garbage), ("runs", "--store", garbage)):
        result = flow2_command(*arguments, cwd=tmp_path)
        assert result.returncode == 2 and "is not a flow2 run store" in result.stderr
    other = tmp_path / "other"
    other.mkdir()
    with sqlite3.connect(other / "runs.sqlite3") as database:
        database.execute("CREATE TABLE music (title TEXT)")
    result = flow2_command("runs", "--store", other, cwd=tmp_path)
    assert result.returncode == 2 and "is not a flow2 run store" in result.stderr
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = flow2_command("run", flow, "--store", locked / "store", cwd=tmp_path)
        assert result.returncode == 2 and "cannot write the run store" in result.stderr


def test_a_newer_store_is_refused_and_an_older_one_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flow2._store import _database

    run(runner(tmp_path).run(side_effect_tree(Ran(tmp_path))))
    with sqlite3.connect(tmp_path / "runs.sqlite3") as store:
        store.execute("UPDATE flow2_store SET value = '99' WHERE key = 'schema_version'")
    result = flow2_command("runs", "--store", tmp_path)
    assert result.returncode == 2 and "written by a newer flow2 (schema 99" in result.stderr
    with pytest.raises(flow2.ConfigurationError, match="newer flow2"):
        run(runner(tmp_path).run(side_effect_tree(Ran(tmp_path))))
    # An older store: this flow2 pretends to be one schema ahead.
    with sqlite3.connect(tmp_path / "runs.sqlite3") as store:
        store.execute("UPDATE flow2_store SET value = '1' WHERE key = 'schema_version'")
    monkeypatch.setattr(_database, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(_database.MIGRATIONS, 1, ["ALTER TABLE runs ADD COLUMN note TEXT"])
    run(runner(tmp_path).run(side_effect_tree(Ran(tmp_path))))
    with sqlite3.connect(tmp_path / "runs.sqlite3") as store:
        assert store.execute(
            "SELECT value FROM flow2_store WHERE key = 'schema_version'"
        ).fetchone() == ("2",)
        assert "note" in {row[1] for row in store.execute("PRAGMA table_info(runs)")}
        assert store.execute("SELECT count(*) FROM runs").fetchone() == (2,)


def test_prune_and_the_default_retention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW2_STORE_KEEP", "3")
    for _ in range(5):
        run(runner(tmp_path).run(side_effect_tree(Ran(tmp_path))))
    (tmp_path / "runs").mkdir()
    ids = [
        entry["id"]
        for entry in json.loads(flow2_command("runs", "--json", "--store", tmp_path).stdout)
    ]
    assert len(ids) == 3
    for run_id in ids:
        (tmp_path / "runs" / run_id / "logs").mkdir(parents=True)
    result = flow2_command("runs", "prune", "--keep", "1", "--store", tmp_path)
    assert result.returncode == 0 and "deleted 2 runs" in result.stdout
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == [ids[0]]
    result = flow2_command("runs", "prune", "--older-than", "0", "--store", tmp_path)
    assert "deleted 1 run" in result.stdout
    assert flow2_command("runs", "prune", "--store", tmp_path).returncode == 2


def _read_store(folder: Path) -> sqlite3.Connection:
    return sqlite3.connect(folder / "runs.sqlite3")
