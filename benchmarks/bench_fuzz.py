"""Fuzz the flow2 command with random flow files, and time the name → key conversion.

Run: ``python benchmarks/bench_fuzz.py`` (10,000 files from seed 1; ``--files N``
and ``--seed S`` for others). Each generated file (tests/fuzzing.py: random
plugins, keys, types, nesting, Jinja, anchors and aliases, ``!!python/object``
tags, huge numbers, non-UTF-8 bytes, BOMs, tabs) goes through ``validate``,
``render``, ``show``, ``graph`` and ``run`` in-process, with random
``key=value`` arguments; then a tenth as many files of one task echoing a
random expression (operators, Jinja's filters with odd arguments, nesting
hundreds deep), evaluated when the task starts, in its ``if:`` or when the
file loads, through ``validate`` and ``run``. It prints the count per exit code and every case
that broke the contract (an exit code other than 0, 1 or 2, a Python
traceback, an error message quoting the planted environment value); it
exits 1 if there is one.

First the median time of ``snake_case`` on upper-case names of growing
length, next to the former regular expressions (quadratic), interleaved.
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fuzzing import COMMANDS, Case, Outcome, check, describe, expression_cases, generate

from flow2._engine._naming import snake_case

_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[\W_]+")


def former_snake_case(name: str) -> str:
    spaced = _CAMEL.sub(r"\1_\2", _ACRONYM.sub(r"\1_\2", name))
    return _SEPARATORS.sub("_", spaced).strip("_").lower()


def fuzz(files: int, seed: int) -> int:
    folder = Path(tempfile.mkdtemp(prefix="flow2-fuzz-"))
    problems = _fuzz(f"{files:,} flow files", generate(seed, files), folder, seed)
    # A tenth as many files of one task echoing a random expression (operators,
    # Jinja's filters with odd arguments, deep nesting), at run time and load time.
    cases = expression_cases(seed, max(1, files // 10))
    problems += _fuzz(f"{len(cases):,} expressions", cases, folder, seed, ("validate", "run"))
    for outcome in problems[:20]:
        print(describe(outcome))
    return len(problems)


def _fuzz(
    what: str, cases: list[Case], folder: Path, seed: int, commands: tuple[str, ...] = COMMANDS
) -> list[Outcome]:
    codes: collections.Counter[int] = collections.Counter()
    problems = []
    started = time.perf_counter()
    for case in cases:
        for outcome in check(case, folder, commands):
            codes[outcome.exit_code] += 1
            if outcome.problem is not None:
                problems.append(outcome)
    elapsed = time.perf_counter() - started
    print(
        f"{what} (seed {seed}) x {len(commands)} commands in {elapsed:.0f} s: "
        f"exit codes {dict(sorted(codes.items()))}, {len(problems)} problems",
        flush=True,
    )
    return problems


def time_names(repeat: int) -> None:
    print(f"snake_case of 'A' * n (median of {repeat} runs):")
    for length in (1_000, 4_000, 16_000):
        name = "A" * length
        new: list[float] = []
        old: list[float] = []
        for _ in range(repeat):
            for function, times in ((snake_case, new), (former_snake_case, old)):
                started = time.perf_counter()
                function(name)
                times.append(time.perf_counter() - started)
        print(
            f"  n={length:>6,}: {statistics.median(new) * 1000:8.2f} ms, former "
            f"{statistics.median(old) * 1000:9.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    time_names(arguments.repeat)
    sys.exit(1 if fuzz(arguments.files, arguments.seed) else 0)


if __name__ == "__main__":
    main()
