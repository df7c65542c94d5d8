"""What deciding reuse costs in hashing: declared files and values.

Run: ``python benchmarks/bench_hashing.py`` (``--megabytes``, ``--files``,
``--small-files``, ``--rounds``). Prints a table:

- **changed files**: a fresh :class:`FileIndex` (every file read, in
  threads) over ``--files`` files of ``--megabytes`` in all, against
  ``sha256sum`` over the same files, interleaved in one time window, both
  with the files in the page cache (a first pass of each warms it). The
  ratio is the median of the per-round ratios. Also timed with one reader
  thread (``READERS = 1``); the digests are checked against sha256sum's.
- **no change, 10,000 small files**: a second pass of the same index over a
  tree of ``--small-files`` files (a stat each, nothing read), and the same
  as a new process would do it: load the index from SQLite, the pass, save.
  The files are made older than the racy margin (2 s) first, as files not
  edited in the last seconds are.
- **values**: :func:`value_digest` of a list of 100,000 ints, and of 10,000
  small dicts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from flow2._store import _files
from flow2._store._files import FileIndex
from flow2._store._fingerprint import value_digest


def make_big_files(folder: Path, count: int, megabytes: int) -> list[str]:
    size = megabytes * (1 << 20) // count
    names = []
    for number in range(count):
        path = folder / f"big{number:03}.bin"
        with path.open("wb") as file:
            remaining = size
            while remaining:
                block = min(remaining, 1 << 20)
                file.write(os.urandom(block))
                remaining -= block
        names.append(path.name)
    return names


def make_small_files(folder: Path, count: int) -> None:
    for number in range(count):
        path = folder / f"package{number % 50:02}" / f"module{number // 50 % 20:02}"
        path.mkdir(parents=True, exist_ok=True)
        (path / f"file{number}.py").write_text(f"value = {number}\n")


def check_against_sha256sum(folder: Path, names: list[str]) -> None:
    """The digests are sha256sum's, file by file."""
    output = subprocess.run(
        ["sha256sum", *names], cwd=folder, check=True, capture_output=True, text=True
    ).stdout
    theirs = {line.split()[1]: line.split()[0] for line in output.splitlines()}
    ours = {name: digest for name, digest in FileIndex().digests(names, folder).items()}
    assert ours == theirs, "FileIndex and sha256sum disagree"


def time_index(folder: Path) -> float:
    index = FileIndex()
    started = time.perf_counter()
    index.digests(["."], folder)
    return time.perf_counter() - started


def time_sha256sum(folder: Path, names: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(["sha256sum", *names], cwd=folder, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--small-files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as temporary:
        big = Path(temporary) / "big"
        big.mkdir()
        names = make_big_files(big, options.files, options.megabytes)
        check_against_sha256sum(big, names)  # and the page cache is warm for both
        ours, one_thread, theirs, ratios = [], [], [], []
        threads = _files.READERS
        for _ in range(options.rounds):
            index_time = time_index(big)
            sum_time = time_sha256sum(big, names)
            _files.READERS = 1
            one_thread.append(time_index(big))
            _files.READERS = threads
            ours.append(index_time)
            theirs.append(sum_time)
            ratios.append(index_time / sum_time)
        rows.append(
            (
                f"changed files: FileIndex, {options.megabytes} MB in {options.files} files",
                f"{statistics.median(ours):.3f} s",
            )
        )
        rows.append(
            (
                "changed files: FileIndex, one reader thread",
                f"{statistics.median(one_thread):.3f} s",
            )
        )
        rows.append(("changed files: sha256sum, same files", f"{statistics.median(theirs):.3f} s"))
        rows.append(("changed files: FileIndex / sha256sum", f"{statistics.median(ratios):.2f}x"))

        small = Path(temporary) / "small"
        small.mkdir()
        make_small_files(small, options.small_files)
        time.sleep(2.1)  # older than the racy margin, as files not edited just now are
        index = FileIndex()
        started = time.perf_counter()
        index.digests(["."], small)
        cold = time.perf_counter() - started
        warm = []
        for _ in range(options.rounds):
            started = time.perf_counter()
            index.digests(["."], small)
            warm.append(time.perf_counter() - started)
        database = Path(temporary) / "index.sqlite3"
        with sqlite3.connect(database) as connection:
            index.save(connection)
        connection.close()
        reads_before = index.reads
        loaded_times = []
        for _ in range(options.rounds):
            started = time.perf_counter()
            connection = sqlite3.connect(database)
            loaded = FileIndex.load(connection)
            loaded.digests(["."], small)
            loaded.save(connection)
            connection.close()
            loaded_times.append(time.perf_counter() - started)
            assert loaded.reads == 0, "a file was read although nothing changed"
        assert index.reads == reads_before
        count = f"{options.small_files:,}"
        rows.append((f"no change: first pass, {count} small files (all read)", f"{cold:.3f} s"))
        rows.append(
            (
                f"no change: second pass, {count} files (stat only)",
                f"{statistics.median(warm):.3f} s",
            )
        )
        rows.append(
            (
                f"no change: load from SQLite + pass + save, {count} files",
                f"{statistics.median(loaded_times):.3f} s",
            )
        )
        async_times = []
        for _ in range(options.rounds):
            started = time.perf_counter()
            asyncio.run(index.digests_async(["."], small))
            async_times.append(time.perf_counter() - started)
        rows.append(
            (f"no change: digests_async, {count} files", f"{statistics.median(async_times):.3f} s")
        )

    integers = list(range(100_000))
    dicts = [{"name": f"task {n}", "retries": n % 3, "tags": ["a", "b"]} for n in range(10_000)]
    for label, value in (("values: 100,000 ints", integers), ("values: 10,000 small dicts", dicts)):
        times = []
        for _ in range(options.rounds):
            started = time.perf_counter()
            value_digest(value)
            times.append(time.perf_counter() - started)
        rows.append((label, f"{statistics.median(times) * 1000:.1f} ms"))

    width = max(len(label) for label, _ in rows)
    print(f"{'what':<{width}}  median")
    for label, figure in rows:
        print(f"{label:<{width}}  {figure}")


if __name__ == "__main__":
    main()
