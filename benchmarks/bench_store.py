"""What recording a run in the store costs: 10,000 no-op tasks with the store and without.

Run: ``python benchmarks/bench_store.py`` (``--tasks``, ``--repeat``,
``--rounds``). The two variants are interleaved in one process, so the noise
of a shared machine hits them alike, and each process reports the medians of
``--repeat`` runs of each. That is done in ``--rounds`` fresh processes (how
one process lays out its memory moves both figures by up to a fifth), and the
figure quoted is the median of their ratios. A run is
timed from ``Runner.run`` until it returns, which for the store includes the
writer thread's last commit and the retention's pruning. The runs with the
store record into one store that already exists (as after a project's first
run), with the default retention (the newest 100 runs are kept).

``--full-store`` starts from a store at that limit, as in a project used for
a while: every run then also deletes the oldest one. The store is filled
with copies of a recorded run (its rows under other ids, earlier), which
is what as many runs would have written, without the wait.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import flow2
from flow2._store._database import DATABASE_NAME, DEFAULT_KEEP
from flow2._store._schema import BATCH_COLUMNS, NOTE_COLUMNS, TASK_COLUMNS


async def noop(context: dict[str, Any]) -> None:
    return None


def time_run(count: int, store: str | None) -> float:
    root = flow2.ParallelTaskGroup(
        "Bench", *(flow2.CallbackTask(f"Task {index}", noop) for index in range(count))
    )
    runner = flow2.Runner(display="none", store=store if store is not None else False)

    async def main() -> float:
        gc.collect()
        started = time.perf_counter()
        await runner.run(root)
        return time.perf_counter() - started

    return asyncio.run(main())


def fill_store(folder: str, runs: int) -> None:
    """Copy the newest run of the store in ``folder`` until it holds ``runs`` runs, all older."""
    with sqlite3.connect(Path(folder) / DATABASE_NAME) as connection:
        (source, started) = connection.execute(
            "SELECT id, started_at FROM runs ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        (count,) = connection.execute("SELECT count(*) FROM runs").fetchone()
        for age in range(1, runs - count + 1):
            copy = os.urandom(6).hex()
            columns = "name, flow, variables, ended_at, last_seen, status, pid, host, counts"
            connection.execute(
                f"INSERT INTO runs (id, started_at, {columns}) "
                f"SELECT ?, ?, {columns} FROM runs WHERE id = ?",
                (copy, started - 3600 * age, source),
            )
            for table, names in (
                ("tasks", TASK_COLUMNS),
                ("task_notes", NOTE_COLUMNS),
                ("task_batches", BATCH_COLUMNS),
            ):
                connection.execute(
                    f"INSERT INTO {table} SELECT ?, {', '.join(names[1:])} FROM {table} "
                    f"WHERE run_id = ?",
                    (copy, source),
                )


def measure(tasks: int, repeat: int, full_store: bool) -> tuple[float, float]:
    """Median seconds of a run without the store and with it, interleaved in this process."""
    without: list[float] = []
    with_store: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        time_run(tasks, None)  # warm up imports and caches
        time_run(tasks, folder)  # creates the store
        if full_store:
            fill_store(folder, DEFAULT_KEEP)
        for _ in range(repeat):
            without.append(time_run(tasks, None))
            with_store.append(time_run(tasks, folder))
    return statistics.median(without), statistics.median(with_store)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="fresh processes, each timing --repeat pairs (the figure is their median ratio)",
    )
    parser.add_argument(
        "--full-store",
        action="store_true",
        help=f"start from a store holding {DEFAULT_KEEP} runs: every run deletes the oldest",
    )
    parser.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one_round:
        print(*measure(arguments.tasks, arguments.repeat, arguments.full_store))
        return
    store = f", the store at its limit of {DEFAULT_KEEP} runs" if arguments.full_store else ""
    print(
        f"{arguments.tasks:,} no-op tasks{store}; {arguments.rounds} processes, "
        f"each the median of {arguments.repeat} interleaved runs of each"
    )
    ratios = []
    for round_number in range(1, arguments.rounds + 1):
        command = [sys.executable, __file__, "--one-round", "--tasks", str(arguments.tasks)]
        command += ["--repeat", str(arguments.repeat)]
        if arguments.full_store:
            command.append("--full-store")
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        plain, stored = map(float, output.split())
        ratios.append(stored / plain)
        print(
            f"  process {round_number}: store off {plain:.3f}s, on {stored:.3f}s, "
            f"ratio {stored / plain:.2f}x"
        )
    print(f"  median ratio: {statistics.median(ratios):.2f}x  (target <= 1.25x)")


if __name__ == "__main__":
    main()
