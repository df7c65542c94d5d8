"""What YAML flows and shell tasks cost, side by side with their baselines.

Run: ``python benchmarks/bench_flows.py`` (``--quick`` for a smaller run).
Every figure is the median of ``--repeat`` runs; compared variants are
interleaved in one process so the noise of a shared machine hits them alike.

- Loading: ``flow2.load`` of a generated flow (a parallel group of N shell
  tasks, through Jinja, YAML and the plugins), next to reading the same
  text with PyYAML alone, pure Python and libyaml (flow2 uses libyaml's
  parser when PyYAML has it).
- Shell tasks: N commands (``true``) run through ShellTask in a parallel
  group, next to the same N ``asyncio.create_subprocess_exec`` calls
  gathered by hand (pipes read, no logging).
- Command start: ``flow2 --help`` and ``flow2 validate`` of a small flow as
  subprocesses, next to ``python -c pass``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

import flow2
from flow2._flows._shell import ShellTask


def flow_text(count: int) -> str:
    lines = ["plugin: parallel", "name: Many", "tasks:"]
    for index in range(count):
        lines += [
            "  - plugin: shell",
            f"    name: Step {index}",
            f"    cmd: [{sys.executable!r}, -c, pass]",
            "    timeout: 60",
        ]
    return "\n".join(lines) + "\n"


def interleaved(variants: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, function in variants.items():
            start = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


async def raw_processes(program: str, count: int) -> None:
    async def one() -> None:
        process = await asyncio.create_subprocess_exec(
            program, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        await process.communicate()

    await asyncio.gather(*(one() for _ in range(count)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    tasks = 200 if options.quick else 1000
    processes = 20 if options.quick else 100
    repeat = 3 if options.quick else options.repeat

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "many.yml"
        text = flow_text(tasks)
        path.write_text(text)
        loading = interleaved(
            {
                "yaml.safe_load (pure Python)": lambda: yaml.safe_load(text),
                "yaml.load, CSafeLoader (libyaml)": lambda: yaml.load(
                    text, Loader=yaml.CSafeLoader
                ),
                "flow2.load": lambda: flow2.load(path),
            },
            repeat,
        )
        print(f"Loading a flow of {tasks:,} shell tasks (median of {repeat}):\n")
        print("| variant | total | per task |\n|---|---|---|")
        for name, seconds in loading.items():
            print(f"| {name} | {seconds * 1e3:.0f} ms | {seconds / tasks * 1e6:.0f} µs |")

        program = shutil.which("true") or "/bin/true"
        runner = flow2.Runner(display="none", stream=io.StringIO())

        def through_flow2() -> None:
            steps = (ShellTask(f"Step {index}", [program]) for index in range(processes))
            group = flow2.ParallelTaskGroup("Many", *steps)
            asyncio.run(runner.run(group))

        shells = interleaved(
            {
                "asyncio subprocesses, gathered": lambda: asyncio.run(
                    raw_processes(program, processes)
                ),
                "ShellTask in a ParallelTaskGroup": through_flow2,
            },
            repeat,
        )
        print(f"\nRunning {processes} `true` commands at once (median of {repeat}):\n")
        print("| variant | total | per command |\n|---|---|---|")
        for name, seconds in shells.items():
            print(f"| {name} | {seconds * 1e3:.0f} ms | {seconds / processes * 1e3:.2f} ms |")

        small = Path(folder) / "small.yml"
        small.write_text(flow_text(3))

        def command(*arguments: str) -> Callable[[], object]:
            return lambda: subprocess.run(
                [sys.executable, *arguments], check=True, capture_output=True
            )

        starts = interleaved(
            {
                "python -c pass": command("-c", "pass"),
                "python -m flow2 --help": command("-m", "flow2", "--help"),
                "python -m flow2 validate small.yml": command(
                    "-m", "flow2", "validate", str(small)
                ),
            },
            repeat,
        )
        print(f"\nStarting the command (median of {repeat}):\n")
        print("| command | time |\n|---|---|")
        for name, seconds in starts.items():
            print(f"| `{name}` | {seconds * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
