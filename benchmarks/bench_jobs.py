"""Run-wide job slots beside make: a four-package CI at ``-j 2``, and make inside tasks.

1. The "four-package CI": four packages, each a serial chain lint → build →
   test (shell ``sleep`` s of different lengths), run by ``flow2 run -j 2``
   and by ``make -j2`` of a Makefile with the same steps, interleaved,
   ``--rounds`` times; the median wall time and the median CPU time of the
   child processes (``resource.getrusage(RUSAGE_CHILDREN)``) of each, and
   of flow2's the run's own duration (from its event file: the wall time
   less the interpreter's start, imports and exit). Python runs from
   compiled bytecode, as an installed flow2 does (``PYTHONDONTWRITEBYTECODE``
   is dropped for the children).
2. make inside tasks: four shell tasks each running plain ``make`` on a
   50-target Makefile of ``sleep 0.2`` s, at ``flow2 run -j 4``, with the
   process table sampled every few milliseconds: the most ``sleep`` s at once
   (never more than 4) and the wall time (50 × 4 × 0.2 s / 4 = 10 s at best).

    python benchmarks/bench_jobs.py [--rounds 5] [--skip-make-inside]

Needs GNU make on the PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

#: Seconds of each package's lint, build and test.
PACKAGES = {
    "core": (0.3, 1.0, 0.8),
    "cli": (0.2, 0.6, 1.2),
    "web": (0.4, 0.8, 0.5),
    "docs": (0.2, 1.2, 0.9),
}
STEPS = ("lint", "build", "test")


def write_ci(folder: Path) -> tuple[Path, Path]:
    """The flow file and the Makefile of the four-package CI."""
    flow = ["plugin: parallel", "name: ci", "tasks:"]
    make = [".PHONY: all " + " ".join(f"{p}-{s}" for p in PACKAGES for s in STEPS)]
    make.append("all: " + " ".join(f"{package}-test" for package in PACKAGES))
    for package, seconds in PACKAGES.items():
        flow += ["  - plugin: serial", f"    name: {package}", "    tasks:"]
        previous = ""
        for step, duration in zip(STEPS, seconds, strict=True):
            flow += [
                "      - plugin: shell",
                f"        name: {package} {step}",
                f"        cmd: sleep {duration}",
            ]
            make.append(f"{package}-{step}:{previous}\n\t@sleep {duration}")
            previous = f" {package}-{step}"
    (folder / "ci.yml").write_text("\n".join(flow) + "\n")
    (folder / "Makefile").write_text("\n".join(make) + "\n")
    return folder / "ci.yml", folder / "Makefile"


#: The children's environment: Python writes and reads compiled bytecode.
ENVIRONMENT = {
    name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"
}


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, of the children) of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=ENVIRONMENT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def flow2_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "flow2", "run", *arguments, "--no-store", "--display", "none"]


def four_package_ci(folder: Path, rounds: int) -> None:
    flow, makefile = write_ci(folder)
    events = folder / "events.jsonl"
    commands = {
        "flow2 run -j 2": flow2_command(str(flow), "-j", "2", "--events", str(events)),
        "make -j2": ["make", "-s", "-j2", "-f", str(makefile)],
    }
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    run_durations = []
    subprocess.run(commands["flow2 run -j 2"], cwd=folder, check=True, env=ENVIRONMENT)  # bytecode
    for _ in range(rounds):
        events.unlink(missing_ok=True)
        for name, command in commands.items():  # interleaved
            figures[name].append(timed(command, folder))
        last = json.loads(events.read_text().splitlines()[-1])
        run_durations.append(last["duration"])
    total = sum(sum(seconds) for seconds in PACKAGES.values())
    print(f"four-package CI ({total:.1f} s of steps; {total / 2:.2f} s at best on 2 slots), ")
    print(f"median of {rounds} interleaved rounds:")
    for name, measured in figures.items():
        wall = statistics.median(wall for wall, _ in measured)
        cpu = statistics.median(cpu for _, cpu in measured)
        print(f"  {name:16} {wall:6.2f} s wall  {cpu:6.2f} s CPU")
    print(f"  the flow2 run itself (its event file): {statistics.median(run_durations):.2f} s")


def descendants_sleeping(root: int) -> int:
    """How many ``sleep`` processes run below ``root`` now."""
    parents: dict[int, int] = {}
    sleeping = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                head, _, rest = file.read().rpartition(b")")
        except OSError:
            continue
        parents[int(entry)] = int(rest.split()[1])
        if head.split(b"(", 1)[1] == b"sleep":
            sleeping.append(int(entry))
    count = 0
    for pid in sleeping:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == root:
                count += 1
                break
    return count


def make_inside(folder: Path, jobs: int = 4) -> None:
    names = [f"t{n}" for n in range(50)]
    makefile = folder / "Fifty.mk"
    makefile.write_text(
        f".PHONY: all {' '.join(names)}\nall: {' '.join(names)}\n"
        + "".join(f"{name}:\n\t@sleep 0.2\n" for name in names)
    )
    tasks = "".join(
        f"  - plugin: shell\n    name: make {n}\n    cmd: make -s -f {makefile}\n" for n in range(4)
    )
    flow = folder / "makes.yml"
    flow.write_text(f"plugin: parallel\nname: makes\ntasks:\n{tasks}")
    start = time.perf_counter()
    process = subprocess.Popen(
        flow2_command(str(flow), "-j", str(jobs)), cwd=folder, env=ENVIRONMENT
    )
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(descendants_sleeping(process.pid))
            time.sleep(0.003)

    sampler = threading.Thread(target=sample)
    sampler.start()
    process.wait()
    done.set()
    sampler.join()
    wall = time.perf_counter() - start
    at_once = sum(1 for count in samples if count > 1)
    print(
        f"4 tasks × plain make of 50 × sleep 0.2 at flow2 run -j {jobs}: {wall:.2f} s wall, "
        f"at most {max(samples, default=0)} sleeps at once over {len(samples)} samples "
        f"({at_once} with more than one)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-make-inside", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        four_package_ci(folder, options.rounds)
        if not options.skip_make_inside:
            make_inside(folder)


if __name__ == "__main__":
    main()
