"""Make a picture of the HTML report: ``python examples/capture_report.py [FOLDER]``.

Runs a small release flow (parallel checks, a retried test, a failing
build, docs in series, a cancelled and a skipped step), writes its HTML
report to a temporary folder and, when Chromium is installed, a screenshot
of it to ``FOLDER/report.png`` (the working directory when no folder is
given; the docs' picture is made with ``python examples/capture_report.py docs``).
"""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import subprocess
import sys
import tempfile
from typing import Any

import flow2

#: Where the picture goes: the folder given on the command line, else the working directory.
FOLDER = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path.cwd()
attempts = {"Unit tests": 0}


def sleeper(seconds: float) -> Any:
    async def work(context: dict[str, Any]) -> None:
        await asyncio.sleep(seconds)

    return work


async def unit_tests(context: dict[str, Any]) -> None:
    attempts["Unit tests"] += 1
    await asyncio.sleep(0.25)
    if attempts["Unit tests"] < 2:
        raise ConnectionError("database container not ready")
    await asyncio.sleep(0.3)


async def build_wheel(context: dict[str, Any]) -> None:
    await asyncio.sleep(0.45)
    raise FileNotFoundError("setup.cfg: no [metadata] section")


async def wait_forever(context: dict[str, Any]) -> None:
    await asyncio.Event().wait()


def release() -> flow2.Task:
    return flow2.SerialTaskGroup(
        "Release 1.4.0",
        flow2.ParallelTaskGroup(
            "Checks",
            flow2.CallbackTask("Lint", sleeper(0.3)),
            flow2.CallbackTask("Types", sleeper(0.5)),
            flow2.CallbackTask("Unit tests", unit_tests, retries=2, retry_delay=0.1),
        ),
        flow2.ParallelTaskGroup(
            "Build",
            flow2.CallbackTask("Source archive", sleeper(0.2)),
            flow2.SerialTaskGroup(
                "Docs",
                flow2.CallbackTask("Render", sleeper(0.3)),
                flow2.CallbackTask("Search index", sleeper(0.2)),
            ),
            flow2.CallbackTask("Container image", wait_forever),
            flow2.CallbackTask("Wheel", build_wheel),
            on_error="cancel",
        ),
        flow2.SerialTaskGroup(
            "Publish",
            flow2.CallbackTask("Upload", sleeper(0.1)),
            flow2.CallbackTask("Announce", sleeper(0.1)),
        ),
    )


def main() -> None:
    folder = pathlib.Path(tempfile.mkdtemp())
    runner = flow2.Runner(display="none", events=str(folder / "events.jsonl"))
    asyncio.run(runner.run(release(), raises=False))
    record = flow2.read_events(folder / "events.jsonl")
    record.flow, record.variables = "release.yml", {"version": "1.4.0", "pypi_token": "xyz"}
    page = folder / "report.html"
    page.write_text(flow2.html_report(record), encoding="utf-8")
    chromium = shutil.which("chromium")
    if chromium:
        profile = tempfile.mkdtemp()
        flags = [
            *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"),
            *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
            *(f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1100,1000"),
        ]
        subprocess.run(
            [chromium, *flags, f"--screenshot={FOLDER / 'report.png'}", page.as_uri()],
            check=True,
            capture_output=True,
        )
        shutil.rmtree(profile, ignore_errors=True)
    print(f"wrote {page}" + (f" and {FOLDER / 'report.png'}" if chromium else ""))


if __name__ == "__main__":
    main()
