"""Shell commands as data and as processes: expressions never become shell code,
a script's text stays out of ``ps``, pipelines fail under every shell, and a
command never outlives a flow2 killed with ``kill -9``."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import flow2
from flow2._flows._shell import ShellTask, sh_has_pipefail

from .conftest import run, write_flow
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


INJECTION = "x; touch injected; echo $(touch injected2) `touch injected3` ' \" \\"


def run_flow(folder: Path, text: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    flow = write_flow(folder, text)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "flow2",
            "run",
            str(flow),
            "--no-store",
            "--no-log-files",
            "--display",
            "plain",
            *arguments,
        ],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=300,
        check=False,
    )


def test_a_result_is_never_shell_code(tmp_path: Path) -> None:
    (tmp_path / "value.txt").write_text(INJECTION)
    completed = run_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - plugin: shell
            name: Read
            cmd: cat value.txt
          - plugin: shell
            name: Use
            cmd: |
              printf '%s\\n' ${{ read.stdout }} > plain.txt
              printf '%s\\n' "quoted: ${{ read.stdout }}" > double.txt
              printf '%s\\n' 'single: ${{ read.stdout }}' > single.txt
        """,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert not list(tmp_path.glob("injected*"))
    assert (tmp_path / "plain.txt").read_text() == INJECTION + "\n"
    assert (tmp_path / "double.txt").read_text() == f"quoted: {INJECTION}\n"
    assert (tmp_path / "single.txt").read_text() == f"single: {INJECTION}\n"


def test_cmd_expressions_raw_pastes_the_value_as_shell_code(tmp_path: Path) -> None:
    completed = run_flow(
        tmp_path,
        """
        plugin: shell
        name: Built
        cmd_expressions: raw
        cmd: ${{ command }} made-by-raw
        """,
        "command=touch",
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (tmp_path / "made-by-raw").exists()


def test_expressions_in_a_python_cmd_are_refused_at_load_time(tmp_path: Path) -> None:
    completed = run_flow(
        tmp_path,
        """
        plugin: shell
        name: Script
        shell: python
        cmd: print("${{ version }}")
        """,
        "version=1",
    )
    assert completed.returncode == 2
    assert "flow.yml:4" in completed.stderr
    assert "cmd_expressions: raw" in completed.stderr


@pytest.mark.parametrize("shell", ["bash", "sh", "python"])
def test_ps_shows_the_shell_not_the_script(tmp_path: Path, shell: str) -> None:
    secret = f"secret-{os.getpid()}-{time.monotonic_ns()}"
    started = tmp_path / "started"
    wait = "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(30)"
    if shell == "python":
        script = (
            f"import subprocess, sys\n"
            f"subprocess.run([sys.executable, '-c', {wait!r}, {str(started)!r}])  # {secret}\n"
        )
    else:
        # Two lines: a shell runs a lone last command in its own place.
        script = f'python -c "{wait}" {started} # {secret}\ntrue\n'
    task = ShellTask("Quiet", script, shell=shell, kill_grace=1, timeout=120)

    async def look_then_stop() -> list[str]:
        running = asyncio.ensure_future(task.run({}))
        while not started.exists():  # noqa: ASYNC110 - another process's progress
            await asyncio.sleep(0.02)
        found = leftovers(secret)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        return found

    assert run(look_then_stop()) == []


def test_pwsh_gets_its_script_in_an_owner_only_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in pwsh that reports how it was called and what its script file holds.
    secret = f"secret-{os.getpid()}"
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    report = tmp_path / "report.json"
    fake = bin_folder / "pwsh"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, stat, sys\n"
        "path = sys.argv[-1]\n"
        "mode = stat.S_IMODE(os.stat(path).st_mode) if os.path.exists(path) else None\n"
        "text = open(path).read() if mode is not None else None\n"
        "seen = {'argv': sys.argv[1:], 'mode': mode, 'text': text}\n"
        f"json.dump(seen, open({str(report)!r}, 'w'))\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_folder}{os.pathsep}{os.environ['PATH']}")
    task = ShellTask("Pwsh", f"Write-Output '{secret}'", shell="pwsh")
    assert run(task.run({}))["returncode"] == 0
    seen = json.loads(report.read_text())
    *flags, path = seen["argv"]
    assert flags == ["-NoLogo", "-NoProfile", "-NonInteractive", "-File"]
    assert path.endswith(".ps1") and secret not in " ".join(seen["argv"])
    assert seen["mode"] == 0o600
    assert f"Write-Output '{secret}'" in seen["text"]
    assert not Path(path).exists()  # removed once the command ended


@pytest.mark.skipif(shutil.which("pwsh") is None, reason="pwsh is not installed here")
def test_pwsh_runs_its_script_file_and_fails_with_its_code() -> None:  # pragma: no cover
    result = run(ShellTask("Pwsh", "Write-Output 'from pwsh'", shell="pwsh").run({}))
    assert result["stdout"].strip() == "from pwsh"
    with pytest.raises(flow2.CommandError) as caught:
        run(ShellTask("Failing", "exit 3", shell="pwsh").run({}))
    assert caught.value.returncode == 3


@pytest.mark.skipif(sh_has_pipefail(), reason="this machine's sh knows pipefail")
def test_a_pipeline_under_an_sh_without_pipefail_is_refused_at_load_time(tmp_path: Path) -> None:
    completed = run_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - plugin: shell
            name: Fine
            shell: sh
            cmd: echo 'a | b' || true  # no pipeline
          - plugin: shell
            name: Piped
            shell: sh
            cmd: false | cat
        """,
    )
    assert completed.returncode == 2
    assert "flow.yml:9" in completed.stderr
    assert "pipefail" in completed.stderr


@pytest.mark.skipif(not sh_has_pipefail(), reason="this machine's sh lacks pipefail")
def test_a_pipeline_fails_under_sh(tmp_path: Path) -> None:  # pragma: no cover - sh without it
    task = ShellTask("Piped", "false | cat", shell="sh")
    with pytest.raises(flow2.CommandError):
        run(task.run({}))


@pytest.mark.parametrize("shell", ["bash", "sh", "python"])
def test_a_command_reading_stdin_gets_nothing_of_the_script(shell: str) -> None:
    cmd = (
        "import sys\nprint(repr(sys.stdin.read()))\n"
        if shell == "python"
        else "cat\necho after-cat\n"
    )
    result = run(ShellTask("Reads", cmd, shell=shell).run({}))
    assert result["stdout"] == ("''" if shell == "python" else "after-cat")


def test_cmd_expressions_must_be_environment_or_raw(tmp_path: Path) -> None:
    completed = run_flow(
        tmp_path,
        """
        plugin: shell
        name: Odd
        cmd_expressions: quoted
        cmd: echo ${{ value }}
        """,
        "value=1",
    )
    assert completed.returncode == 2
    assert "flow.yml:3" in completed.stderr
    assert "cmd_expressions='quoted'" in completed.stderr


def test_a_pipe_inside_quotes_or_a_comment_or_an_or_is_no_pipeline() -> None:
    for cmd in ["echo 'a | b'", 'echo "a | b"', "true || false", "echo a  # x | y", r"echo a\|b"]:
        ShellTask("Fine", cmd, shell="sh")  # never refused, whatever this machine's sh
