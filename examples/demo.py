"""The documentation's example, made runnable: a small release workflow.

Run it with ``python examples/demo.py``.
"""

from __future__ import annotations

import asyncio
import time

import flow2


async def read_version(context: dict[str, object]) -> str:
    await asyncio.sleep(0.2)
    return "1.4.0"


def build_wheel(context: dict[str, object]) -> dict[str, object]:
    time.sleep(0.3)  # a blocking call: runs in a worker thread, the loop keeps going
    return {"file": "dist/demo-1.4.0-py3-none-any.whl", "size_kb": 42}


class Changelog(flow2.Task):
    """A task of our own: the constructor takes what it needs, run() does the work."""

    def __init__(self, name: str, heading: str, **kwargs: object) -> None:
        super().__init__(name, **kwargs)  # type: ignore[arg-type]
        self.heading = heading

    async def run(self, context: dict[str, object]) -> str:
        return f"{self.heading} {context['version']}"


async def announce(context: dict[str, object]) -> str:
    return f"released {context['version']} ({context['changelog']})"


workflow = flow2.SerialTaskGroup(
    "Release",
    flow2.ParallelTaskGroup(
        "Prepare",
        flow2.CallbackTask("Version", read_version),
        flow2.CallbackTask("Build wheel", build_wheel),
    ),
    flow2.SerialTaskGroup(
        "Publish",
        Changelog("Changelog", "## Release"),
        flow2.CallbackTask("Announce", announce),
    ),
)


async def main() -> None:
    result = await workflow.run()
    print(f"\nresult keys: {sorted(result)}")


if __name__ == "__main__":
    asyncio.run(main())
