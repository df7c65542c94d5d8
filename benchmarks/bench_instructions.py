"""Instructions per task, counted by callgrind: a figure the machine's noise does not move.

On a shared machine a timing moves by a fifth from one run to the next;
the number of instructions a run executes does not (same interpreter, same
hash seed). This runs a tree of no-op async callbacks (and, as ``threads``,
of no-op sync callbacks in the thread pool) of ``--small`` and of
``--large`` tasks under ``valgrind --tool=callgrind`` and divides the
difference by the difference in tasks: the per-task cost, without the
interpreter's start and the imports. ``--against DIR`` does the same with
another checkout's ``src`` (e.g. a ``git worktree`` of an earlier commit)
first on ``PYTHONPATH``, for a before/after.

    python benchmarks/bench_instructions.py [--small 1000] [--large 5000] [--against ../old/src]

Needs valgrind (Debian's package).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = """\
import asyncio, sys
import flow2

async def noop(context):
    return None

def sync_noop(context):
    return None

kind, count = sys.argv[1], int(sys.argv[2])
callback = sync_noop if kind == "threads" else noop
tasks = [flow2.CallbackTask(f"t{n}", callback) for n in range(count)]
group = flow2.SerialTaskGroup if kind == "serial" else flow2.ParallelTaskGroup
asyncio.run(flow2.Runner(display="none").run(group("Root", *tasks)))
"""


def instructions(script: Path, source: str, kind: str, count: int) -> int:
    """Instructions callgrind counts for one run of ``count`` tasks."""
    environment = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": source}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(script),
            kind,
            str(count),
        ],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count:\n{done.stderr}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--against", metavar="SRC", help="another checkout's src folder")
    options = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    sources = {"this checkout": str(Path(__file__).resolve().parent.parent / "src")}
    if options.against:
        sources = {"against": os.path.abspath(options.against), **sources}
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "tree.py"
        script.write_text(SCRIPT, encoding="utf-8")
        # threads: a parallel group of sync callbacks, each handed to the thread pool
        for kind in ("serial", "parallel", "threads"):
            for name, source in sources.items():
                small = instructions(script, source, kind, options.small)
                large = instructions(script, source, kind, options.large)
                per_task = (large - small) / (options.large - options.small)
                print(f"{kind:>8}, {name:>13}: {per_task:,.0f} instructions per task", flush=True)


if __name__ == "__main__":
    main()
