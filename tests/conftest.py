from __future__ import annotations

import asyncio
import io
import textwrap
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

import flow2


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-files",
        type=int,
        default=300,
        help="how many random flow files tests/test_fuzz.py generates (default 300; "
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


def write_flow(folder: Path, text: str, name: str = "flow.yml") -> Path:
    """Write a dedented flow file into ``folder`` and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path
