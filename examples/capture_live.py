"""Capture the live view of a small release workflow as live.svg and live.txt.

Run it with ``python examples/capture_live.py [FOLDER]``: the files go into
FOLDER (the working directory when none is given); the pictures in the
docs are made with ``python examples/capture_live.py docs``. It needs the
``live`` extra and pyte, a terminal emulator (``pip install pyte``). The flow runs for real under
flow2's own live view (``Runner(display="live")``), which draws into a buffer
as it would on an 80×25 terminal; halfway through, with a task failed, one
retrying, one printing and one still working, the buffer is played into the
emulator and its screen exported as SVG. The text file also holds the final
screen with the summary.
"""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path
from typing import Any

import pyte
from rich.console import Console
from rich.text import Text

import flow2

WIDTH, HEIGHT = 80, 25  # what the view draws for a stream that is not a terminal
#: Where the pictures go: the folder given on the command line, else the working directory.
FOLDER = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()

halfway = asyncio.Event()
go_on = asyncio.Event()
tests_retrying = asyncio.Event()


async def read_version(context: dict[str, Any]) -> str:
    await asyncio.sleep(0.2)
    return "1.4.0"


async def lint(context: dict[str, Any]) -> None:
    flow2.logger.info("checked 48 files")
    await asyncio.sleep(0.4)


async def build_wheel(context: dict[str, Any]) -> None:
    await asyncio.sleep(0.6)
    raise FileNotFoundError("setup.cfg: no [metadata] section")


async def build_docs(context: dict[str, Any]) -> None:
    for page in range(1, 32):
        await asyncio.sleep(0.03)
        if page % 10 == 1:
            flow2.logger.info("rendering page %d of 40", page)
        print(f"wrote docs/page-{page}.html")
    await go_on.wait()


attempts = 0


async def unit_tests(context: dict[str, Any]) -> None:
    global attempts
    attempts += 1
    if attempts == 1:
        await asyncio.sleep(0.5)
        tests_retrying.set()
        raise ConnectionError("database container not ready")
    await go_on.wait()


async def sdist(context: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0.3)
    return {"file": "dist/demo-1.4.0.tar.gz", "size_kb": 31}


async def upload(context: dict[str, Any]) -> None:
    await asyncio.sleep(0.1)


workflow = flow2.SerialTaskGroup(
    "Release",
    flow2.ParallelTaskGroup(
        "Prepare",
        flow2.CallbackTask("Version", read_version),
        flow2.CallbackTask("Lint", lint),
    ),
    flow2.ParallelTaskGroup(
        "Build",
        flow2.CallbackTask("Wheel", build_wheel),
        flow2.CallbackTask("Docs", build_docs),
        flow2.CallbackTask("Unit tests", unit_tests, retries=2, retry_delay=1.5),
        flow2.CallbackTask("Source archive", sdist),
        on_error="raise",
    ),
    flow2.SerialTaskGroup(
        "Publish",
        flow2.CallbackTask("Upload", upload),
        flow2.CallbackTask("Announce", upload),
    ),
)


def screen_of(output: str, rows: int) -> pyte.Screen:
    """The screen a terminal shows after receiving ``output``."""
    screen = pyte.Screen(WIDTH, rows)
    pyte.Stream(screen).feed(output.replace("\n", "\r\n"))
    return screen


_COLORS = {"red": "red", "green": "green", "brown": "yellow", "magenta": "magenta", "cyan": "cyan"}


def as_text(screen: pyte.Screen) -> Text:
    """The screen with its colors, for rich to export."""
    text = Text()
    for row in range(screen.lines):
        line = screen.buffer[row]
        for column in range(screen.columns):
            char = line[column]
            style = _COLORS.get(char.fg, "")
            if char.bold:
                style += " bold"
            text.append(char.data, style=style.strip() or None)
        text.append("\n")
    return text


def plain(screen: pyte.Screen) -> str:
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


async def main() -> None:
    terminal = io.StringIO()
    runner = flow2.Runner(display="live", stream=terminal, color=True)
    running = asyncio.create_task(runner.run(workflow, raises=False))

    await tests_retrying.wait()
    await asyncio.sleep(1.0)  # the wheel has failed, the docs are half done
    middle = screen_of(terminal.getvalue(), HEIGHT)
    go_on.set()
    await running
    final = screen_of(terminal.getvalue(), 60)

    recorder = Console(record=True, width=WIDTH, file=io.StringIO(), force_terminal=True)
    recorder.print(as_text(middle), end="")
    FOLDER.mkdir(exist_ok=True)
    (FOLDER / "live.svg").write_text(
        recorder.export_svg(title="flow2: a run in progress"), encoding="utf-8"
    )
    (FOLDER / "live.txt").write_text(
        "# While it runs\n\n" + plain(middle) + "\n# When it ends\n\n" + plain(final),
        encoding="utf-8",
    )
    print(f"wrote {FOLDER / 'live.svg'} and {FOLDER / 'live.txt'}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
