"""Run-wide job slots (``jobs=N``, ``flow2 run -j N``) and the GNU make jobserver they serve."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import flow2
from tests.conftest import run, write_flow

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="a jobserver needs fifos")


class Counter:
    """Counts the callbacks working at once, and the most at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    def work(self, seconds: float = 0.02) -> Any:
        async def working(context: flow2.Context) -> None:
            self.now += 1
            self.most = max(self.most, self.now)
            try:
                await asyncio.sleep(seconds)
            finally:
                self.now -= 1

        return working


def quiet(**options: Any) -> flow2.Runner:
    return flow2.Runner(display="none", **options)


def test_no_more_tasks_work_at_once_than_there_are_slots() -> None:
    counter = Counter()
    chain = flow2.SerialTaskGroup(
        "chain", *(flow2.CallbackTask(f"step {n}", counter.work()) for n in range(4))
    )
    wide = flow2.ParallelTaskGroup(
        "wide", *(flow2.CallbackTask(f"part {n}", counter.work()) for n in range(12))
    )
    tree = flow2.ParallelTaskGroup("all", chain, wide)
    result = run(quiet(jobs=3).execute(tree))
    assert result.succeeded
    assert counter.most == 3  # never more, and the slots were all used

    counter = Counter()
    tree = flow2.ParallelTaskGroup(
        "wide", *(flow2.CallbackTask(f"part {n}", counter.work()) for n in range(12))
    )
    assert run(quiet().execute(tree)).succeeded
    assert counter.most == 12  # no jobs: no limit


def test_tasks_waiting_for_needs_hold_no_slot() -> None:
    # With one slot, a task holding it while it waits for its need would
    # wait for ever: the need could not run. Each waiter is listed first.
    counter = Counter()
    tasks = []
    for n in range(4):
        tasks.append(flow2.CallbackTask(f"use {n}", counter.work(), needs=f"make_{n}"))
        tasks.append(flow2.CallbackTask(f"make {n}", counter.work()))
    tree = flow2.ParallelTaskGroup("all", *tasks)

    async def bounded() -> flow2.RunResult:
        return await asyncio.wait_for(quiet(jobs=1).execute(tree), 30)

    result = run(bounded())
    assert result.succeeded
    assert counter.most == 1


def test_max_parallel_still_applies_inside() -> None:
    narrow_counter, counter = Counter(), Counter()

    def both(seconds: float = 0.02) -> Any:
        narrow = narrow_counter.work(seconds)
        overall = counter.work(seconds)

        async def working(context: flow2.Context) -> None:
            await asyncio.gather(narrow(context), overall(context))

        return working

    narrow = flow2.ParallelTaskGroup(
        "narrow", *(flow2.CallbackTask(f"n {n}", both()) for n in range(6)), max_parallel=1
    )
    wide = flow2.ParallelTaskGroup(
        "wide", *(flow2.CallbackTask(f"w {n}", counter.work()) for n in range(8))
    )
    result = run(quiet(jobs=3).execute(flow2.ParallelTaskGroup("all", narrow, wide)))
    assert result.succeeded
    assert narrow_counter.most == 1
    assert counter.most == 3


def test_failures_timeouts_and_cancellations_give_their_slot_back() -> None:
    counter = Counter()

    async def fail(context: flow2.Context) -> None:
        raise RuntimeError("no")

    async def hang(context: flow2.Context) -> None:
        await asyncio.sleep(60)

    tasks = [
        flow2.CallbackTask("fails", fail),
        flow2.CallbackTask("times out", hang, timeout=0.05),
        *(flow2.CallbackTask(f"after {n}", counter.work()) for n in range(3)),
    ]
    tree = flow2.ParallelTaskGroup("all", *tasks)

    async def bounded() -> flow2.RunResult:
        return await asyncio.wait_for(quiet(jobs=1).execute(tree), 30)

    result = run(bounded())
    assert result.counts.failed == 2
    assert counter.most == 1
    assert result.status is flow2.Status.PARTIAL

    # A run cancelled from outside: the tasks waiting for a slot are
    # cancelled, never started.
    started = asyncio.Event()

    async def first(context: flow2.Context) -> None:
        started.set()
        await asyncio.sleep(60)

    async def cancelled_run() -> flow2.RunResult:
        recorder: list[flow2.Event] = []
        tree = flow2.ParallelTaskGroup(
            "all", flow2.CallbackTask("first", first), flow2.CallbackTask("second", fail)
        )
        job = asyncio.ensure_future(quiet(jobs=1, listeners=[recorder.append]).execute(tree))
        await started.wait()
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        second = [
            event.status
            for event in recorder
            if isinstance(event, flow2.TaskEvent) and event.task.name == "second"
        ]
        assert second == [flow2.Status.CANCELLED]
        return None  # type: ignore[return-value]

    run(cancelled_run())


def test_a_retry_delay_holds_no_slot() -> None:
    other_ran = asyncio.Event()
    attempts = []

    async def flaky(context: flow2.Context) -> str:
        attempts.append(other_ran.is_set())
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return "done"

    async def other(context: flow2.Context) -> None:
        other_ran.set()

    tree = flow2.ParallelTaskGroup(
        "all",
        flow2.CallbackTask("flaky", flaky, retries=1, retry_delay=0.2),
        flow2.CallbackTask("other", other),
    )
    result = run(quiet(jobs=1).execute(tree))
    assert result.succeeded
    # The other task took the slot while the flaky one waited to retry.
    assert attempts == [False, True]


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True, "4"])
def test_jobs_must_be_a_whole_number_of_slots(jobs: object) -> None:
    with pytest.raises(flow2.ConfigurationError) as caught:
        flow2.Runner(jobs=jobs)  # type: ignore[arg-type]
    assert caught.value.option == "jobs"
    assert "whole number >= 1" in str(caught.value)


def test_jobs_from_the_environment() -> None:
    assert flow2.Runner(environ={"FLOW2_JOBS": "3"}).settings.jobs == 3
    with pytest.raises(flow2.ConfigurationError) as caught:
        flow2.Runner(environ={"FLOW2_JOBS": "many"})
    assert caught.value.variable == "FLOW2_JOBS"


def test_a_flow_files_jobs_must_be_a_whole_number(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        jobs: 0
        plugin: shell
        cmd: 'true'
        """,
    )
    with pytest.raises(flow2.FlowFileError) as caught:
        flow2.load(path)
    assert caught.value.key == "jobs"
    assert caught.value.line == 1


# --- through the command line, with processes -----------------------------------------


def flow2_command(*arguments: object, cwd: Path, **extra: str) -> subprocess.Popen[str]:
    environment = {**os.environ, "NO_COLOR": "1", **extra}
    return subprocess.Popen(
        [sys.executable, "-m", "flow2", *map(str, arguments)],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class ProcessSampler:
    """Counts the ``name`` processes below a process, sampling ``/proc`` every few ms."""

    def __init__(self, root: int, name: bytes = b"sleep") -> None:
        self.root = root
        self.name = name
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _count(self) -> int:
        parents: dict[int, int] = {}
        sleeping: list[int] = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as file:
                    data = file.read()
            except OSError:
                continue
            head, _, rest = data.rpartition(b")")
            parents[int(entry)] = int(rest.split()[1])
            if head.split(b"(", 1)[1] == self.name:
                sleeping.append(int(entry))
        count = 0
        for pid in sleeping:
            seen = 0
            while pid > 1 and seen < 64:
                pid = parents.get(pid, 0)
                seen += 1
                if pid == self.root:
                    count += 1
                    break
        return count

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._count())
            time.sleep(0.003)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def most(self) -> int:
        return max(self.samples, default=0)


def sampled(process: subprocess.Popen[str], name: bytes = b"sleep") -> tuple[str, ProcessSampler]:
    sampler = ProcessSampler(process.pid, name)
    try:
        output, _ = process.communicate(timeout=100)
    finally:
        sampler.stop()
    return output, sampler


def makefile(folder: Path, targets: int, seconds: float = 0.2) -> Path:
    names = [f"t{n}" for n in range(targets)]
    lines = [f".PHONY: all {' '.join(names)}", f"all: {' '.join(names)}"]
    lines += [f"{name}:\n\t@sleep {seconds}" for name in names]
    path = folder / "Makefile"
    path.write_text("\n".join(lines) + "\n")
    return path


def four_makes(folder: Path, count: int = 4) -> Path:
    """A flow of ``count`` shell tasks, each running plain ``make`` (no -j of its own)."""
    makefile(folder, 12)
    tasks = "".join(
        f"  - plugin: shell\n    name: make {n}\n    cmd: make -s -f {folder / 'Makefile'}\n"
        for n in range(count)
    )
    return write_flow(folder, f"plugin: parallel\nname: makes\ntasks:\n{tasks}")


@posix_only
@needs_make
@pytest.mark.parametrize("jobs", [4, 2])
def test_make_inside_tasks_shares_the_slots(tmp_path: Path, jobs: int) -> None:
    flow = four_makes(tmp_path)
    process = flow2_command(
        "run", flow, "-j", jobs, "--no-store", "--display", "none", cwd=tmp_path
    )
    output, sampler = sampled(process)
    assert process.returncode == 0, output
    assert sampler.most <= jobs, sampler.samples
    # The jobserver is used: make ran several jobs at once.
    assert sum(1 for count in sampler.samples if count > 1) > 5


@posix_only
@needs_make
def test_one_make_runs_its_jobs_in_the_runs_slots(tmp_path: Path) -> None:
    flow = four_makes(tmp_path, count=1)
    process = flow2_command("run", flow, "-j", 3, "--no-store", "--display", "none", cwd=tmp_path)
    output, sampler = sampled(process)
    assert process.returncode == 0, output
    # Only the jobserver lets a plain make run jobs at once: three here.
    assert sampler.most == 3, sampler.samples


@posix_only
@needs_make
def test_a_flow_files_jobs_caps_the_run(tmp_path: Path) -> None:
    tasks = "".join(f"  - plugin: shell\n    cmd: sleep 0.3\n    name: s{n}\n" for n in range(6))
    flow = write_flow(tmp_path, f"jobs: 2\nplugin: parallel\nname: sleeps\ntasks:\n{tasks}")
    process = flow2_command("run", flow, "--no-store", "--display", "none", cwd=tmp_path)
    output, sampler = sampled(process)
    assert process.returncode == 0, output
    assert sampler.most == 2, sampler.samples


@posix_only
@needs_make
def test_flow2_under_make_joins_its_jobserver(tmp_path: Path) -> None:
    flow = four_makes(tmp_path)
    outer = tmp_path / "Outer.mk"
    command = f"{sys.executable} -m flow2 run {flow} --no-store --display none"
    outer.write_text(f"all:\n\t+{command}\n")
    process = subprocess.Popen(
        ["make", "-s", "-j3", "-f", str(outer)],
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, sampler = sampled(process)
    assert process.returncode == 0, output
    assert sampler.most <= 3, sampler.samples
    assert sum(1 for count in sampler.samples if count > 1) > 5


#: A command that takes tokens from the jobserver MAKEFLAGS names and keeps them.
HOARD = """
import os, re, sys, time
auth = re.findall(r"--jobserver-auth=(\\S+)", os.environ["MAKEFLAGS"])[-1]
if auth.startswith("fifo:"):
    read = os.open(auth[5:], os.O_RDONLY | os.O_NONBLOCK)
else:
    read = os.open("/proc/self/fd/" + auth.split(",")[0], os.O_RDONLY | os.O_NONBLOCK)
taken = 0
for _ in range(int(sys.argv[1])):
    taken += len(os.read(read, 1))
print("took", taken, "from a", "fifo" if auth.startswith("fifo:") else "pipe", flush=True)
if sys.argv[2] == "keep":
    time.sleep(60)
os.write(os.open("/proc/self/fd/" + auth.split(",")[1], os.O_WRONLY)
    if not auth.startswith("fifo:") else os.open(auth[5:], os.O_WRONLY), b"+" * taken)
"""

#: Counts the tokens in the pool (taking them all, then putting them back).
COUNT = """
import os, re
auth = re.findall(r"--jobserver-auth=(\\S+)", os.environ["MAKEFLAGS"])[-1]
path = auth[5:] if auth.startswith("fifo:") else "/proc/self/fd/" + auth.split(",")[0]
read = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
count = 0
while True:
    try:
        got = os.read(read, 64)
    except BlockingIOError:
        break
    count += len(got)
wpath = auth[5:] if auth.startswith("fifo:") else "/proc/self/fd/" + auth.split(",")[1]
os.write(os.open(wpath, os.O_WRONLY), b"+" * count)
print("pool holds", count, flush=True)
"""


@posix_only
@pytest.mark.parametrize("make_version", ["4.3", "4.4.1"])
def test_tokens_a_killed_command_kept_are_taken_back(tmp_path: Path, make_version: str) -> None:
    # GNU make 4.3 on the PATH: the pipe style; 4.4.1: the fifo, read by path.
    path = fake_make(tmp_path / "bin", make_version)
    (tmp_path / "hoard.py").write_text(HOARD)
    (tmp_path / "count.py").write_text(COUNT)
    python = sys.executable
    flow = write_flow(
        tmp_path,
        f"""
        plugin: serial
        name: leak
        tasks:
          - plugin: parallel
            name: first
            on_error: continue
            tasks:
              - plugin: shell
                name: hoarder
                timeout: 2
                cmd: {python} hoard.py 2 keep
          - plugin: shell
            name: counter
            cmd: {python} count.py
        """,
    )
    process = flow2_command(
        "run", flow, "-j", 4, "--no-store", "--display", "plain", cwd=tmp_path, PATH=path
    )
    output, _ = process.communicate(timeout=60)
    style = "pipe" if make_version == "4.3" else "fifo"
    assert f"took 2 from a {style}" in output, output
    # Four slots: the counter holds flow2's own, the three tokens are back.
    assert "pool holds 3" in output, output
    assert "Jobserver: 2 token(s) kept by the stopped command of leak › first › hoarder" in output


@posix_only
def test_a_command_that_gives_its_tokens_back_leaks_nothing(tmp_path: Path) -> None:
    (tmp_path / "hoard.py").write_text(HOARD)
    (tmp_path / "count.py").write_text(COUNT)
    python = sys.executable
    flow = write_flow(
        tmp_path,
        f"""
        plugin: serial
        name: fair
        tasks:
          - plugin: shell
            name: borrower
            cmd: {python} hoard.py 2 return
          - plugin: shell
            name: counter
            cmd: {python} count.py
        """,
    )
    process = flow2_command("run", flow, "-j", 3, "--no-store", "--display", "plain", cwd=tmp_path)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "took 2" in output and "pool holds 2" in output, output
    assert "Jobserver:" not in output


def ninja_1_13() -> str | None:
    """The ``ninja`` of the test extra (1.13 or later: a jobserver client), if installed."""
    found = shutil.which("ninja", path=str(Path(sys.executable).parent))
    if found is None:
        return None
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    return found if numbers >= (1, 13) else None


def ninja_flow(folder: Path, ninja: str, count: int) -> Path:
    """``count`` shell tasks, each running ``ninja`` (no -j of its own) on 12 sleeps."""
    rule = "rule sleep\n  command = sleep 0.2 && touch $out\n"
    for n in range(count):
        (folder / f"b{n}").mkdir()
        builds = "".join(f"build t{t}: sleep\n" for t in range(12))
        (folder / f"b{n}" / "build.ninja").write_text(rule + builds)
    tasks = "".join(
        f"  - {{name: ninja {n}, cmd: '{ninja} -C {folder / f'b{n}'} > /dev/null'}}\n"
        for n in range(count)
    )
    return write_flow(folder, f"name: ninjas\nparallel:\n{tasks}")


@posix_only
@pytest.mark.parametrize(("count", "jobs", "make"), [(4, 3, None), (1, 2, None), (1, 2, "4.4.1")])
def test_ninja_inside_tasks_shares_the_slots(
    tmp_path: Path, count: int, jobs: int, make: str | None
) -> None:
    ninja = ninja_1_13()
    if ninja is None:
        pytest.skip("needs ninja 1.13 or later (the test extra installs it)")
    # A make before 4.4 on PATH (Debian 12's 4.3) gives ninja the pipe style;
    # a make of 4.4 or none, the fifo style: ninja 1.13 reads both.
    extra = {"PATH": fake_make(tmp_path / "make", make)} if make else {}
    flow = ninja_flow(tmp_path, ninja, count)
    process = flow2_command(
        "run", flow, "-j", jobs, "--no-store", "--display", "none", cwd=tmp_path, **extra
    )
    output, sampler = sampled(process)
    assert process.returncode == 0, output
    # Without the jobserver, each ninja would run as many jobs as the machine
    # has cores and two more.
    assert sampler.most == jobs, sampler.samples


def cargo_workspace(folder: Path, crates: int) -> None:
    """A workspace of ``crates`` small crates that depend on nothing (built offline)."""
    members = ", ".join(f'"c{n}"' for n in range(crates))
    (folder / "Cargo.toml").write_text(f'[workspace]\nmembers = [{members}]\nresolver = "2"\n')
    for n in range(crates):
        (folder / f"c{n}" / "src").mkdir(parents=True)
        (folder / f"c{n}" / "Cargo.toml").write_text(
            f'[package]\nname = "c{n}"\nversion = "0.1.0"\nedition = "2021"\n'
        )
        functions = "".join(
            f"pub fn f{k}(x: u64) -> u64 {{ x.wrapping_mul({k}) ^ {n} }}\n" for k in range(150)
        )
        (folder / f"c{n}" / "src" / "lib.rs").write_text(functions)


@posix_only
@pytest.mark.parametrize(("count", "jobs"), [(1, 1), (2, 2)])
def test_cargo_inside_tasks_shares_the_slots(tmp_path: Path, count: int, jobs: int) -> None:
    cargo = shutil.which("cargo") or shutil.which("cargo", path=str(Path.home() / ".cargo/bin"))
    if cargo is None:
        pytest.skip("needs cargo")
    cargo_workspace(tmp_path, 6)
    tasks = "".join(
        f"  - {{name: cargo {n}, cmd: '{cargo} build --offline -q --target-dir t{n}'}}\n"
        for n in range(count)
    )
    flow = write_flow(tmp_path, f"name: cargos\nparallel:\n{tasks}")
    process = flow2_command(
        "run", flow, "-j", jobs, "--no-store", "--display", "none", cwd=tmp_path
    )
    output, sampler = sampled(process, b"rustc")
    assert process.returncode == 0, output
    # cargo reads the jobserver from CARGO_MAKEFLAGS: alone, it would run one
    # rustc per core.
    assert 1 <= sampler.most <= jobs, sampler.samples


def fake_make(folder: Path, version: str) -> str:
    """A PATH whose ``make`` says it is GNU Make ``version``."""
    folder.mkdir()
    program = folder / "make"
    program.write_text(f"#!/bin/sh\necho 'GNU Make {version}'\n")
    program.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


@posix_only
def test_make_before_4_4_gets_the_pipe_style_and_the_others_the_fifo(tmp_path: Path) -> None:
    old, new = fake_make(tmp_path / "old", "4.3"), fake_make(tmp_path / "new", "4.4.1")
    show = 'echo "[$MAKEFLAGS] [$CARGO_MAKEFLAGS]"'
    tree = flow2.ParallelTaskGroup(
        "all",
        flow2.ShellTask("old", show, env={"PATH": old}),
        flow2.ShellTask("new", show, env={"PATH": new}),
        flow2.ShellTask("opted out", 'echo "[${MAKEFLAGS-none}]"', jobserver=False),
    )
    context = run(quiet(jobs=3).run(tree))
    old_flags, new_flags = context["old"]["stdout"], context["new"]["stdout"]
    assert old_flags.startswith("[ -j3 --jobserver-auth=")
    auth = old_flags.split("=", 1)[1].split("]")[0]
    assert auth.replace(",", "").isdigit()  # R,W: descriptors it inherits
    assert "fifo:" in old_flags  # CARGO_MAKEFLAGS
    assert new_flags.startswith("[ -j3 --jobserver-auth=fifo:")
    assert context["opted_out"]["stdout"] == "[none]"


@posix_only
def test_a_task_that_opts_out_gets_no_makeflags_under_a_make(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: parallel
        name: two
        tasks:
          - plugin: shell
            name: shared
            cmd: echo "shared=[$MAKEFLAGS]"
          - plugin: shell
            name: private
            jobserver: false
            cmd: echo "private=[${MAKEFLAGS-none}]"
        """,
    )
    outer = tmp_path / "Outer.mk"
    outer.write_text(f"all:\n\t+{sys.executable} -m flow2 run {flow} --no-store --display plain\n")
    result = subprocess.run(
        ["make", "-s", "-j2", "-f", str(outer)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "private=[none]" in result.stdout
    assert "shared=[s -j2 --jobserver-auth=" in result.stdout  # as make passed it


def test_the_command_line_checks_jobs(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, "plugin: shell\ncmd: 'true'\n")
    process = flow2_command("run", flow, "-j", 0, "--no-store", cwd=tmp_path)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "'-j' / '--jobs'" in output and "whole number >= 1" in output


def test_jobserver_is_true_or_false() -> None:
    with pytest.raises(flow2.DefinitionError) as caught:
        flow2.ShellTask("Build", "make", jobserver="no")  # type: ignore[arg-type]
    assert caught.value.option == "jobserver"
    # Only an opted-out task's definition says so: the others keep theirs.
    assert "jobserver" not in flow2.ShellTask("Build", "make").definition()
    assert flow2.ShellTask("Build", "make", jobserver=False).definition()["jobserver"] is False
