"""What ``cache: {restore_outputs: true}`` costs for a big output, in time and memory.

Run: ``python benchmarks/bench_restore.py`` (``--megabytes``, default 300).
A flow whose one shell task writes that many random bytes to ``out.bin``
runs in a fresh folder, as ``flow2 run`` in a process of its own:

1. with ``cache: true`` (the output digested, not kept);
2. with ``cache: {restore_outputs: true}`` (the output copied into the store);
3. again, with ``out.bin`` deleted: it is restored from the store.

Each line gives the wall time of the process and its peak resident memory
(``ru_maxrss`` of the child): the copy and the restore go through the
store in chunks of 1 MiB, so the memory stays flat whatever the size.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOW = """
name: Big
cache: {cache}
tasks:
  - name: Make
    cmd: head -c {size} /dev/urandom > out.bin
    outputs: [out.bin]
"""


def timed(folder: Path, label: str) -> None:
    """Run the flow in ``folder`` in a child process; print its time and peak memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "flow2", "run", "flow.yml", "--display", "none"],
        cwd=folder,
        check=True,
    )
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    memory = f"{peak / 1024:.0f} MiB" if peak > before else "no higher than before"
    print(f"{label:<44} {elapsed:6.2f} s   peak RSS {memory}")


def digest(path: Path) -> str:
    hashed = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            hashed.update(block)
    return hashed.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=300)
    arguments = parser.parse_args()
    size = arguments.megabytes << 20
    print(f"one output of {arguments.megabytes} MiB")
    with tempfile.TemporaryDirectory() as plain, tempfile.TemporaryDirectory() as kept:
        Path(plain, "flow.yml").write_text(FLOW.format(cache="true", size=size))
        timed(Path(plain), "cache: true (digested only)")
        flow = FLOW.format(cache="{restore_outputs: true}", size=size)
        Path(kept, "flow.yml").write_text(flow)
        timed(Path(kept), "restore_outputs: run, output kept")
        output = Path(kept, "out.bin")
        expected = digest(output)
        output.unlink()
        timed(Path(kept), "restore_outputs: output deleted, restored")
        assert digest(output) == expected, "the restored output differs"


if __name__ == "__main__":
    main()
