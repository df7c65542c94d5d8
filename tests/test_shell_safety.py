"""Shell commands as data and as processes: expressions never become shell code,
a script's text stays out of ``ps``, pipelines fail under every shell, and a
command never outlives a flow2 killed with ``kill -9``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import write_flow
from .test_signals import start_flow2, wait_for_files

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX shells and process groups"),
    pytest.mark.usefixtures("python_first_on_path"),
]


def leftovers(marker: str) -> list[str]:
    """Processes whose (whole, unwrapped) command line holds ``marker``, zombies left out."""
    listing = subprocess.run(
        ["ps", "-ww", "-eo", "stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    return [
        line
        for line in listing.splitlines()
        if marker in line and "ps -ww" not in line and line.split()[0][0] not in "ZX"
    ]


def test_kill_9_of_flow2_stops_its_commands(tmp_path: Path) -> None:
    marker = f"flow2-kill9-{os.getpid()}-{time.monotonic_ns()}"
    # Each command says it started once it runs, then waits.
    wait = "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(30)"
    flow = write_flow(
        tmp_path,
        f"""
        plugin: parallel
        tasks:
          - plugin: shell
            name: Deploy
            kill_grace: 1
            env: {{WAIT: "{wait}"}}
            cmd: |
              python -c "$WAIT" started-1 {marker}
              touch after-1
          - plugin: shell
            name: Server
            kill_grace: 1
            env: {{WAIT: "{wait}"}}
            cmd: |
              (python -c "$WAIT" started-2 {marker}; touch after-2) &
              wait
        """,
    )
    process = start_flow2("run", flow, "--no-store", "--no-log-files", cwd=tmp_path)
    wait_for_files(tmp_path, "started-*", 2, process)
    assert leftovers(marker)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while leftovers(marker) and time.monotonic() < deadline:
        time.sleep(0.05)  # the watcher's work cannot be awaited from here
    assert leftovers(marker) == []
    assert not list(tmp_path.glob("after-*"))
