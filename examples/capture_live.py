"""Capture the live view of a small release workflow as docs/live.svg and docs/live.txt.

Run it with ``python examples/capture_live.py`` (needs the ``live`` extra).
The flow runs for real under flow2's own live view; halfway through, with a
task failed, one retrying and one still working, the screen is captured:
the lines printed above the tree and the tree itself, drawn by the view's
own code onto a recording rich console and exported as SVG. The text file
also holds the final tree and the summary.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.text import Text

import flow2
from flow2._listeners._live import LiveView
from flow2._listeners._logging import TaskRecordRouter
from flow2._listeners._summary import SummaryListener

WIDTH, HEIGHT = 84, 30
DOCS = Path(__file__).resolve().parent.parent / "docs"

halfway = asyncio.Event()
go_on = asyncio.Event()
tests_retrying = asyncio.Event()


class RecordingView(LiveView):
    """The live view, keeping a copy of everything it prints above the tree."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.printed: list[Text] = []

    def _redraw(self) -> None:
        self.printed.extend(self._above)
        super()._redraw()


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


def snapshot(view: RecordingView) -> Group:
    return Group(*view.printed, view._render())


async def main() -> None:
    os.environ["COLUMNS"], os.environ["LINES"] = str(WIDTH), str(HEIGHT)
    view = RecordingView(stream=io.StringIO(), force_terminal=True, color=True)
    summary_text = io.StringIO()
    summary = SummaryListener(summary_text, color=False)
    router = TaskRecordRouter(view.show_record, flow2.Verbosity.NORMAL.log_level)
    runner = flow2.Runner(display="none", listeners=[router, view, summary])
    running = asyncio.create_task(runner.run(workflow, raises=False))

    await tests_retrying.wait()
    await asyncio.sleep(1.0)  # the wheel has failed, the docs are half done
    view._redraw()
    middle = snapshot(view)
    go_on.set()
    await running
    final = snapshot(view)

    recorder = Console(record=True, width=WIDTH, file=io.StringIO(), force_terminal=True)
    recorder.print(middle)
    DOCS.mkdir(exist_ok=True)
    (DOCS / "live.svg").write_text(
        recorder.export_svg(title="flow2: a run in progress"), encoding="utf-8"
    )

    text = Console(width=WIDTH, file=io.StringIO(), no_color=True, force_terminal=False)
    with text.capture() as captured:
        text.print(middle)
    during = captured.get()
    with text.capture() as captured:
        text.print(final)
    after = captured.get()
    (DOCS / "live.txt").write_text(
        "# While it runs\n\n" + during + "\n# When it ends\n\n" + after + summary_text.getvalue(),
        encoding="utf-8",
    )
    print(f"wrote {DOCS / 'live.svg'} and {DOCS / 'live.txt'}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
