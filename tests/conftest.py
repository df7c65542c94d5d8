from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import sqlite3
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pexpect
import pyte
import pytest

import flow2

if TYPE_CHECKING:
    from flow2._store._database import StoredRun

#: Variables that change what flow2 shows or where it writes: no test inherits them.
_ENVIRONMENT_PREFIXES = ("FLOW2_", "GITHUB_")
_ENVIRONMENT_NAMES = (
    "NO_COLOR",
    "FORCE_COLOR",
    "CI",
    "TERM",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_MAKEFLAGS",
)


@pytest.fixture(autouse=True)
def clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every test starts without the FLOW2_*, color, CI and GitHub variables, nor
    a jobserver of a make that started the tests (MAKEFLAGS).

    Runs that record by default (``flow2 run``) write their store into a
    temporary folder, never into the working directory.
    """
    for name in list(os.environ):
        if name.startswith(_ENVIRONMENT_PREFIXES) or name in _ENVIRONMENT_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLOW2_STORE", str(tmp_path_factory.mktemp("store")))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-files",
        type=int,
        default=1000,
        help="how many random flow files tests/test_fuzz.py generates (default 1,000; "
        "benchmarks/bench_fuzz.py runs 10,000)",
    )


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` on a fresh event loop in asyncio debug mode."""
    return asyncio.run(coroutine, debug=True)


class Recorder:
    """An event listener that keeps every event."""

    def __init__(self) -> None:
        self.events: list[flow2.Event] = []

    def __call__(self, event: flow2.Event) -> None:
        self.events.append(event)

    def statuses(self, name: str) -> list[flow2.Status]:
        return [
            event.status
            for event in self.events
            if isinstance(event, flow2.TaskEvent) and event.task.name == name
        ]

    def final(self, name: str) -> flow2.Status:
        return self.statuses(name)[-1]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def quiet_runner(recorder: Recorder) -> flow2.Runner:
    """A runner that prints into a buffer and records every event."""
    return flow2.Runner(display="plain", stream=io.StringIO(), listeners=[recorder])


@pytest.fixture(scope="session")
def python_on_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH whose first folder has ``python`` and ``python3`` running this interpreter.

    Flow files in tests and examples call ``python``/``python3``; this makes
    them run the test interpreter even where neither is on the PATH.
    """
    import os
    import sys

    folder = tmp_path_factory.mktemp("python-bin")
    for name in ("python", "python3"):
        (folder / name).symlink_to(sys.executable)
    return os.pathsep.join([str(folder), os.environ.get("PATH", "")])


@pytest.fixture
def python_first_on_path(python_on_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put this interpreter first on PATH as ``python`` and ``python3`` for one test."""
    monkeypatch.setenv("PATH", python_on_path)


def environment_without_coverage() -> dict[str, str]:
    """``os.environ`` without what makes coverage measure a Python subprocess.

    For tests about what a fresh interpreter imports: coverage's own
    imports (json, pickle, multiprocessing…) would be counted as flow2's.
    """
    return {
        name: value
        for name, value in os.environ.items()
        if name not in ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")
    }


class Ran:
    """The names of the tasks that ran, kept in a file, and the names told to fail.

    A callback's closure holds only this object, whose state is a path: what
    ran before is no part of the callback's fingerprint (a list in the closure
    would be, and would change the callback's reuse key from run to run).
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / "ran.log"
        self.failing = folder / "failing.log"

    def append(self, name: str) -> None:
        with self.path.open("a") as file:
            file.write(name + "\n")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def names(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def fail(self, name: str | None) -> None:
        """Make the task ``name`` raise when it runs (None: no task)."""
        self.failing.write_text(name or "")

    def fails(self, name: str) -> bool:
        return self.failing.exists() and self.failing.read_text() == name

    def __iter__(self) -> Any:
        return iter(self.names())

    def __eq__(self, other: object) -> bool:
        return self.names() == other

    __hash__ = None  # type: ignore[assignment]


def write_flow(folder: Path, text: str, name: str = "flow.yml") -> Path:
    """Write a dedented flow file into ``folder`` and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def stored_run(store: Path, reference: str = "last") -> StoredRun:
    """A recorded run, with its tasks, as the store in ``store`` reads it back."""
    from flow2._store._database import Store

    database = Store(store)
    connection = database.connect()
    try:
        return database.find_run(connection, reference)
    finally:
        connection.close()


class Terminal:
    """A flow script running under a pty, and the screen a terminal would show."""

    def __init__(
        self,
        script: str,
        tmp_path: Path,
        *,
        columns: int = 80,
        rows: int = 24,
        env: dict[str, str] | None = None,
        arguments: tuple[str, ...] = (),
        feed_screen: bool = True,
        cwd: Path | None = None,
    ) -> None:
        """:param feed_screen: False: keep only the raw bytes (pyte is slow on megabytes)"""
        path = tmp_path / "flow.py"
        path.write_text(textwrap.dedent(script))
        environment = {
            key: value
            for key, value in os.environ.items()
            if key not in ("COLUMNS", "LINES")  # clean_environ has cleared the rest
        }
        environment["TERM"] = "xterm-256color"
        environment.update(env or {})
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.feed_screen = feed_screen
        self.raw = b""
        self.child = pexpect.spawn(
            sys.executable,
            [str(path), *arguments],
            env=environment,
            dimensions=(rows, columns),
            echo=False,
            timeout=60,
            cwd=str(cwd) if cwd is not None else None,
        )

    def read_until(self, predicate: Callable[[list[str]], bool], timeout: float = 60) -> list[str]:
        """Feed output to the screen until ``predicate(screen lines)`` holds."""
        deadline = time.monotonic() + timeout
        while not predicate(self.lines()):
            if time.monotonic() > deadline:
                raise AssertionError("screen never matched:\n" + "\n".join(self.lines()))
            try:
                chunk = self.child.read_nonblocking(65536, timeout=0.5)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                if not predicate(self.lines()):
                    raise AssertionError(
                        "the flow ended first; screen:\n" + "\n".join(self.lines())
                    ) from None
                break
            self.raw += chunk
            if self.feed_screen:
                self.stream.feed(chunk)
        return self.lines()

    def finish(self, *, check: bool = True) -> list[str]:
        """Read everything until the script exits; the final screen."""
        while True:
            try:
                chunk = self.child.read_nonblocking(65536, timeout=60)
            except pexpect.EOF:
                break
            self.raw += chunk
            if self.feed_screen:
                self.stream.feed(chunk)
        self.child.close()
        if check:
            assert self.child.exitstatus == 0, self.lines()
        return self.lines()

    def resize(self, rows: int, columns: int) -> None:
        """Resize the terminal, as a person dragging the window's corner."""
        self.screen.resize(rows, columns)
        self.child.setwinsize(rows, columns)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]


def report_tree() -> flow2.Task:
    """A flow with what reports must show: nested parallel groups, a retry, failures,
    skipped and cancelled tasks. Deterministic: nothing races the clock."""
    failures = {"Unit tests": 1}

    async def ok(context: dict[str, Any]) -> str:
        await asyncio.sleep(0.01)
        return "done"

    async def flaky(context: dict[str, Any]) -> str:
        await asyncio.sleep(0.01)
        if failures["Unit tests"]:
            failures["Unit tests"] -= 1
            raise ConnectionError("database container not ready")
        return "passed"

    async def broken(context: dict[str, Any]) -> None:
        await asyncio.sleep(0.01)
        raise FileNotFoundError("setup.cfg: no [metadata] section")

    async def hang(context: dict[str, Any]) -> None:
        await asyncio.Event().wait()  # until its sibling's failure cancels it

    return flow2.SerialTaskGroup(
        "Release",
        flow2.ParallelTaskGroup(
            "Prepare", flow2.CallbackTask("Version", ok), flow2.CallbackTask("Lint", ok)
        ),
        flow2.ParallelTaskGroup(
            "Build",
            flow2.CallbackTask("Wheel", broken),
            flow2.CallbackTask("Unit tests", flaky, retries=2, retry_delay=0.01),
            flow2.SerialTaskGroup(
                "Docs", flow2.CallbackTask("Render", ok), flow2.CallbackTask("Index", ok)
            ),
        ),
        flow2.ParallelTaskGroup(
            "Checks",
            flow2.CallbackTask("Hang", hang),
            flow2.CallbackTask("Audit", broken),
            on_error="cancel",
        ),
        flow2.SerialTaskGroup(
            "Publish", flow2.CallbackTask("Upload", ok), flow2.CallbackTask("Announce", ok)
        ),
    )


@pytest.fixture
def report_events(tmp_path: Path) -> Path:
    """The event file of one run of :func:`report_tree`."""
    path = tmp_path / "events.jsonl"
    runner = flow2.Runner(display="none", events=str(path))
    run(runner.run(report_tree(), raises=False))
    return path


def to_schema_5(connection: sqlite3.Connection) -> None:
    """Make a store as schema 5 left it: every part of a key in its row (no
    ``key_parts``), no kept outputs, no role, no description."""
    shared = dict(connection.execute("SELECT digest, parts FROM key_parts").fetchall())
    for table in ("cache_entries", "task_keys"):
        rows = connection.execute(
            f"SELECT rowid, path, parts FROM {table} WHERE parts IS NOT NULL"
        ).fetchall()
        for rowid, path, parts in rows:
            own = json.loads(parts)
            reference = own.pop("@shared", None)
            if reference is None:
                continue
            names = "\0".join(json.loads(path)).encode()
            full = {
                "path": hashlib.sha256(names).hexdigest()[:32],
                **json.loads(shared[reference]),
                **own,
            }
            connection.execute(
                f"UPDATE {table} SET parts = ? WHERE rowid = ?", (json.dumps(full), rowid)
            )
    connection.execute("DROP TABLE key_parts")
    connection.execute("DROP TABLE output_blobs")
    connection.execute("ALTER TABLE cache_entries DROP COLUMN kept_outputs")
    connection.execute("ALTER TABLE tasks DROP COLUMN role")
    connection.execute("ALTER TABLE definitions DROP COLUMN description")
    connection.execute("UPDATE flow2_store SET value = '5' WHERE key = 'schema_version'")
