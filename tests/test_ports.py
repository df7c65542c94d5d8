"""The flows ported from go-task, just and GitHub Actions (examples/ports/) run as their
comments say."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PORTS = Path(__file__).resolve().parent.parent / "examples" / "ports"


@pytest.fixture
def ports(tmp_path: Path) -> Path:
    """A copy of examples/ports: the runs write files next to the flows."""
    return Path(shutil.copytree(PORTS, tmp_path / "ports"))


def cli(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flow2", *arguments],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=cwd,
    )


def printed(result: subprocess.CompletedProcess[str]) -> list[str]:
    return sorted(line for line in result.stdout.splitlines() if line.startswith("["))


def test_taskfile_port(ports: Path) -> None:
    listing = cli("list", "Taskfile.flow2.yml", cwd=ports)
    assert "  check  Build, test and lint [default]" in listing.stdout
    result = cli("run", "Taskfile.flow2.yml", "--display", "plain", cwd=ports)
    assert result.returncode == 0, result.stderr
    assert printed(result) == [
        "[check] all checks passed",
        "[lint] lint found 0 issues",
        "[test] built with GOFLAGS=-mod=mod",
    ]
    (ports / ".env").write_text("GOFLAGS=-mod=vendor\n")  # env: wins over the .env file
    lint = cli("run", "Taskfile.flow2.yml", "test", "--display", "plain", cwd=ports)
    assert printed(lint) == ["[test] built with GOFLAGS=-mod=mod"]


def test_justfile_port(ports: Path) -> None:
    result = cli(
        "run",
        "justfile.flow2.yml",
        "greet",
        "--display",
        "plain",
        "--",
        "Ada",
        "Grace H",
        cwd=ports,
    )
    assert result.returncode == 0, result.stderr
    assert printed(result) == ["[greet] hello, Ada", "[greet] hello, Grace H"]
    test = cli(
        "run", "justfile.flow2.yml", "test", "--display", "plain", "--", "-k", "parser", cwd=ports
    )
    assert printed(test) == ["[test] pytest -q -k parser"]


def test_github_actions_port(ports: Path) -> None:
    result = cli("run", "ci.flow2.yml", "--display", "plain", cwd=ports)
    assert result.returncode == 0, result.stderr
    lines = printed(result)
    assert "[Run ruff] ruff check . (FORCE_COLOR=0)" in lines
    for python in ("3.11", "3.12", "3.13"):
        assert f"[Test {python}] python{python} -m pytest -q" in lines
    assert "[build] python -m build" in lines
    # build comes after the checks
    output = result.stdout
    assert output.index("STARTING  build") > output.index("SUCCESS   checks")
    one_job = cli("run", "ci.flow2.yml", "lint", "--display", "plain", cwd=ports)
    assert printed(one_job) == [
        "[Install linters] pip install ruff",
        "[Run ruff] ruff check . (FORCE_COLOR=0)",
    ]
