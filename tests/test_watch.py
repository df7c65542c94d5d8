"""``flow2 run --watch``: a run, then a run of what changed each time a source changes.

The command runs in a subprocess; each step waits for the line that says
the watcher is ready (its snapshot taken) before touching a file, so no
test races the polling.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .conftest import write_flow
from .test_cli import assert_usage_error, environment
from .test_cli import flow2 as flow2_command

pytestmark = pytest.mark.usefixtures("python_first_on_path")

WATCHED = """
plugin: serial
name: Watched
tasks:
  - plugin: shell
    name: Lib
    cmd: echo lib >> ran.txt
    sources: [src/lib.txt]
  - plugin: shell
    name: App
    cmd: echo app >> ran.txt
    sources: [src/app.txt]
  - plugin: shell
    name: Docs
    cmd: echo docs >> ran.txt
"""

WATCHING = "flow2: watching "


class Watcher:
    """``flow2 run FLOW --watch`` in a subprocess, its stdout read line by line."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lines: queue.Queue[str] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flow2", "run", "flow.yml", "--watch", "--display", "plain"],
            cwd=folder,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, start: str) -> list[str]:
        """The lines up to the first that starts with ``start`` (generous bound: 60 s)."""
        seen = []
        while True:
            line = self.lines.get(timeout=60)
            seen.append(line)
            if line.startswith(start):
                return seen

    def ran(self) -> list[str]:
        path = self.folder / "ran.txt"
        names = path.read_text().split() if path.exists() else []
        path.unlink(missing_ok=True)
        return names


def test_watch_reruns_what_changed_and_what_depends_on_it_until_ctrl_c(tmp_path: Path) -> None:
    write_flow(tmp_path, WATCHED)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "lib.txt").write_text("lib\n")
    (tmp_path / "src" / "app.txt").write_text("app\n")
    watcher = Watcher(tmp_path)
    try:
        first = watcher.wait_for(WATCHING)
        assert "flow2: watching 2 files (src/lib.txt, src/app.txt); Ctrl-C to stop" in first
        assert watcher.ran() == ["lib", "app", "docs"]
        (tmp_path / "src" / "app.txt").write_text("app, edited\n")
        second = watcher.wait_for(WATCHING)
        assert second[0] == "──── src/app.txt changed: running again ────"
        assert any(line.startswith("REUSED    Lib") for line in second)
        # App changed; Docs, after it in the serial group, reads its result.
        assert watcher.ran() == ["app", "docs"]
        (tmp_path / "src" / "lib.txt").unlink()
        third = watcher.wait_for(WATCHING)
        assert third[0] == "──── src/lib.txt changed: running again ────"
        assert watcher.ran() == ["lib", "app", "docs"]
        watcher.process.send_signal(signal.SIGINT)
        _, errors = watcher.process.communicate(timeout=60)
    finally:
        if watcher.process.poll() is None:
            watcher.process.kill()
            watcher.process.wait()
    assert watcher.process.returncode == 130
    assert "Traceback" not in errors
    assert "flow2: stopped watching" in errors


def test_watch_without_sources_names_the_fix(tmp_path: Path) -> None:
    write_flow(tmp_path, "plugin: shell\nname: Build\ncmd: echo build\n")
    result = flow2_command("run", "flow.yml", "--watch", cwd=tmp_path)
    assert_usage_error(
        result,
        "flow.yml: --watch watches the files the tasks declare as sources:",
        "sources: [src]",
    )
    result = flow2_command("run", "flow.yml", "--watch", "--no-store", cwd=tmp_path)
    assert_usage_error(result, "--watch contradicts --no-store")
