"""Random flow files from a seed, and a check that the command survives each one.

Shared by tests/test_fuzz.py (a thousand files on every test run) and
benchmarks/bench_fuzz.py (ten thousand or more, by hand). A generated file
mixes plugins, keys, value types, nesting, Jinja, random expressions (operators,
Jinja's filters with odd arguments, nesting hundreds deep) both at load time
(``{{ }}``) and when a task starts (``${{ }}`` in ``cmd`` and ``if``),
anchors and aliases, YAML tags such as ``!!python/object``, huge numbers,
tabs, BOMs and bytes that are not UTF-8; each goes through ``validate``,
``render``, ``show``, ``graph`` and ``run`` with random ``key=value``
arguments. The contract: exit code 0, 1 or 2, never a Python traceback,
and no error message quoting the planted environment value.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: An environment variable some generated files read; no error may quote it.
PLANTED_NAME = "FUZZ_PLANTED_VALUE"
PLANTED_VALUE = "planted-4e7a91c0ffee"

COMMANDS = ("validate", "render", "show", "graph", "run")

_PLUGINS = ["serial", "parallel", "shell", "callback", "callback", "shell", "nosuch", "Shell"]
_CALLBACKS = [
    "builtins:len",
    "builtins:sorted",
    "json:dumps",
    "os.path:join",
    "os.path:nothing",
    "no.such.module:run",
    "builtins",
    "tests.fuzzing:yields_items",
    "tests.fuzzing:raises_unprintable",
    "tests.fuzzing:returns_unprintable",
]
_COMMANDS = ["true", "false", "echo hi", "[true]", "[echo, a, b]", "exit 3", "echo $HOME", "''"]
_SCALARS = [
    "0",
    "-1",
    "1.10",
    "0x",
    ".5",
    "1e400",
    "9" * 400,
    "on",
    "no",
    "~",
    "null",
    "''",
    '"a\\tb"',
    "2020-13-01",
    "2020-01-01",
    "[]",
    "{}",
    "[a, [b, {c: d}]]",
    "!!int abc",
    "!!float a",
    "!!bool ''",
    "!!int 0.5",
    "!!python/object:os.system [echo]",
    "!!binary aGk=",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!str 3",
    "&x 5",
    "*x",
    "*nothere",
    "{{ n }}",
    "{{ 10 ** 5 }}",
    "'{{ environ.FUZZ_PLANTED_VALUE }}'",
    "'${{ n }}'",
    "'${{ missing }}'",
    "'${{ ''.__class__ }}'",
    "'${{ 2 ** 20000 }}'",
    "'${{ range(10**9) | list }}'",
    "'{{ \"a\" * 10**9 }}'",
]
_KEYS = [
    "cmd",
    "callback",
    "timeout",
    "retries",
    "retry_delay",
    "register",
    "output",
    "executor",
    "env",
    "cwd",
    "tasks",
    "name",
    "plugin",
    "max_parallel",
    "on_error",
    "description",
    "tiemout",
    "3",
    "~",
    "''",
]
_JINJA = [
    "{% for i in range(2) %}\n",
    "{% endfor %}\n",
    "{% if n %}\n",
    "{% endif %}\n",
    "{% set v = '${{ n }}' %}\n",
    "{% macro m(x) %}{{ x }}{% endmacro %}\n",
    "{{ undefined_name }}\n",
    "{% for i in range(steps) %}{% endfor %}\n",
    "{{ ''.__class__.__mro__ }}\n",
    "{{ cycler.__init__.__globals__ }}\n",
    "{{ range(10**9) }}\n",
    "{{ 'a'.center(10**9) }}\n",
    "{{ 10**(10**7) }}\n",
    "{% include 'missing.yml' %}\n",
    "{{ environ.FUZZ_PLANTED_VALUE | int(base=99) }}\n",
    "{{ environ.FUZZ_PLANTED_VALUE ~ 1 + 1 }}\n",
    "{% raw %}\n",
    "{{\n",
    "}}\n",
    "{#\n",
]
_ARGUMENTS = [
    "n=3",
    "n=1.10",
    "n=on",
    "x=0x",
    "d=2020-13-01",
    "f=.abc",
    "v=1e3",
    "m=0755",
    "t=[a, 1.10, 3]",
    "x=" + "[" * 3000,
    "x=[&a [1], *a]",
    "x={a: !!python/object:os.system [ls]}",
    "bad",
    "1x=2",
    "e=",
    "steps=2",
    "n=" + "9" * 5000,
]


def yields_items(context: dict[str, Any]) -> Any:
    """A sync generator callback: its items are the task's result."""
    yield from range(3)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise _Unprintable()


class _UnprintableResult:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def raises_unprintable(context: dict[str, Any]) -> None:
    """A callback raising an exception whose ``__str__`` raises its own type."""
    raise _Unprintable()


def returns_unprintable(context: dict[str, Any]) -> Any:
    """A callback returning a result whose ``repr`` raises."""
    return [_UnprintableResult()]


@dataclass
class Case:
    """One generated flow file and the arguments it is run with."""

    number: int
    content: bytes
    arguments: list[str] = field(default_factory=list)


def generate(seed: int, count: int) -> list[Case]:
    """``count`` cases, the same for the same seed."""
    rng = random.Random(seed)
    return [_case(rng, number) for number in range(count)]


def _case(rng: random.Random, number: int) -> Case:
    lines: list[str] = []
    _node(rng, lines, 0, rng.randint(0, 3))
    if rng.random() < 0.3:
        for _ in range(rng.randint(1, 3)):
            lines.insert(rng.randint(0, len(lines)), rng.choice(_JINJA))
    if rng.random() < 0.1:
        lines = [_alias_bomb(rng), *lines]
    if rng.random() < 0.05:
        depth = rng.choice([50, 600, 10_000])
        lines = ["{plugin: serial, tasks: [" * depth + "]}" * depth + "\n"]
    text = "".join(lines)
    if rng.random() < 0.1:
        position = rng.randint(0, len(text))
        text = text[:position] + "\t" + text[position:]
    if rng.random() < 0.05:
        text = text[: rng.randint(0, len(text))]
    content = text.encode("utf-8")
    if rng.random() < 0.05:
        content = b"\xef\xbb\xbf" + content
    if rng.random() < 0.05:
        position = rng.randint(0, len(content))
        content = (
            content[:position]
            + rng.choice([b"\xff", b"\xc3", b"\x00", b"\x80"])
            + content[position:]
        )
    arguments = [rng.choice(_ARGUMENTS) for _ in range(rng.choice([0, 0, 1, 2]))]
    return Case(number, content, arguments)


def _node(rng: random.Random, lines: list[str], depth: int, children: int) -> None:
    indent = "  " * depth
    first = f"{indent}- " if depth else ""
    rest = f"{indent}  " if depth else ""
    plugin = rng.choice(_PLUGINS)
    entries: list[str] = []
    if rng.random() < 0.95:
        entries.append(f"plugin: {plugin}")
    if rng.random() < 0.6:
        entries.append(
            f"name: {rng.choice(['Build', 'Test x', 'HTTPResponse', 'A' * 50, '{{ n }}', ''])}"
            f"{rng.randint(0, 9)}"
        )
    if plugin in ("shell", "Shell") and rng.random() < 0.9:
        if rng.random() < 0.25:
            # Evaluated when the task starts (or at load time, without the $).
            marker = rng.choice(["$", "$", ""])
            entries.append(f"cmd: {_quoted(f'echo {marker}{{{{ {expression(rng)} }}}}')}")
        else:
            entries.append(f"cmd: {rng.choice(_COMMANDS)}")
    if rng.random() < 0.05:
        entries.append(f"if: {_quoted(f'${{{{ {expression(rng)} }}}}')}")
    if plugin == "callback" and rng.random() < 0.9:
        entries.append(f"callback: {rng.choice(_CALLBACKS)}")
    for _ in range(rng.choice([0, 0, 1, 2])):
        key = rng.choice(_KEYS)
        if key == "retry_delay":
            entries.append(f"retry_delay: {rng.choice(['0', '0.001', 'x', '-1'])}")
        elif key == "timeout":
            entries.append(f"timeout: {rng.choice(['5', '-1', 'x', '~', '1e400', '9' * 30])}")
        else:
            entries.append(f"{key}: {rng.choice(_SCALARS)}")
    if rng.random() < 0.1 and entries:
        entries[0] = f"&n{depth} " + entries[0] if rng.random() < 0.5 else entries[0]
    if not entries:
        entries.append("{}")
    lines.append(f"{first}{entries[0]}\n")
    lines.extend(f"{rest}{entry}\n" for entry in entries[1:])
    if plugin in ("serial", "parallel") and depth < 3:
        if children:
            lines.append(f"{rest}tasks:\n")
            for _ in range(children):
                if rng.random() < 0.05:
                    lines.append(f"{rest}  - *n{rng.randint(0, 3)}\n")
                else:
                    _node(rng, lines, depth + 1, rng.randint(0, 2))
        elif rng.random() < 0.5:
            lines.append(f"{rest}tasks: {rng.choice(['[]', '~', 'x', '{a: 1}'])}\n")


# Expressions, for ``{{ }}`` at load time and ``${{ }}`` when a task starts --------

#: Values an expression starts from. The texts are harmless in a shell command.
_ATOMS = [
    "0",
    "1",
    "-7",
    "2.5",
    "10**5",
    "10**400",
    '"abc"',
    '""',
    '"x y"',
    '"a,b,c"',
    "[1, 2, 3]",
    "[]",
    '{"a": 1}',
    "none",
    "true",
    "n",
    "context",
    "missing",
    "range(3)",
    "range(10**9)",
]
#: Jinja's filters, with the arguments that make them fail or grow as well as work.
_FILTERS = [
    "truncate({})",
    "center({})",
    "indent({})",
    "wordwrap({})",
    "batch({})",
    "slice({})",
    "round({})",
    "int",
    "float",
    "string",
    "list",
    "length",
    "first",
    "last",
    "sum",
    "join({})",
    "replace({}, {})",
    "format({})",
    "default({})",
    "abs",
    "upper",
    "trim",
    "unique",
    "sort",
    "reverse",
    "max",
    "min",
    "map({})",
    "select({})",
    "tojson",
    "dictsort",
    "items",
    "attr({})",
    "nosuchfilter",
]
_ARGUMENTS_OF_FILTERS = ["-1", "0", "1", "3", "10**9", '"x"', '"%s%s"', '"-"', "none", "[1]"]
_SUBSCRIPTS = ["0", "-1", "1:", '"a"', "n"]
_OPERATORS = ["+", "-", "*", "/", "//", "%", "**", "~", "and", "or", "==", "<", "in"]


def expression(rng: random.Random, depth: int = 0) -> str:
    """A random Jinja expression: atoms, operators, filters, calls, subscripts, nesting.

    Now and then (one in fifty) it is nested hundreds of levels deep.
    """
    if depth == 0 and rng.random() < 0.02:
        levels = rng.choice([60, 150, 1200])
        return rng.choice(["(" * levels + "1" + ")" * levels, "-" * levels + "1"])
    choice = rng.random() if depth < 4 else 0.0
    if choice < 0.35:
        return rng.choice(_ATOMS)
    if choice < 0.6:
        operator = rng.choice(_OPERATORS)
        return f"({expression(rng, depth + 1)} {operator} {expression(rng, depth + 1)})"
    if choice < 0.85:
        template = rng.choice(_FILTERS)
        arguments = [rng.choice(_ARGUMENTS_OF_FILTERS) for _ in range(template.count("{}"))]
        return f"{expression(rng, depth + 1)} | {template.format(*arguments)}"
    if choice < 0.95:
        return f"{expression(rng, depth + 1)}[{rng.choice(_SUBSCRIPTS)}]"
    return f"not {expression(rng, depth + 1)}"


def expression_cases(seed: int, count: int) -> list[Case]:
    """``count`` flow files of one shell task echoing a random expression, from ``seed``.

    Half evaluate it when the task starts (``${{ }}``), a quarter when the
    file loads (``{{ }}``), a quarter in the task's ``if:``; ``n`` is given
    on the command line half of the time.
    """
    rng = random.Random(seed)
    cases = []
    for number in range(count):
        text = expression(rng)
        where = rng.choice(["run", "run", "load", "if"])
        lines = ["plugin: shell\n", "name: Expression\n"]
        if where == "if":
            lines += [f"if: {_quoted(f'${{{{ {text} }}}}')}\n", "cmd: echo ran\n"]
        else:
            marker = "$" if where == "run" else ""
            lines.append(f"cmd: {_quoted(f'echo {marker}{{{{ {text} }}}}')}\n")
        arguments = ["n=3"] if rng.random() < 0.5 else []
        cases.append(Case(number, "".join(lines).encode(), arguments))
    return cases


def _quoted(text: str) -> str:
    """``text`` as a single-quoted YAML scalar."""
    return "'" + text.replace("'", "''") + "'"


def _alias_bomb(rng: random.Random) -> str:
    levels = rng.randint(3, 9)
    text = "x0: &a0 [x, x, x, x, x, x, x, x, x]\n"
    for level in range(1, levels):
        text += f"x{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]\n"
    return text


@dataclass
class Outcome:
    """What one command did with one case."""

    case: Case
    command: str
    exit_code: int
    problem: str | None


def check(case: Case, folder: Path, commands: tuple[str, ...] = COMMANDS) -> list[Outcome]:
    """Run ``commands`` on ``case`` in-process; ``problem`` says what broke the contract."""
    from click.testing import CliRunner

    path = folder / f"case{case.number}.yml"
    path.write_bytes(case.content)
    runner = CliRunner()
    outcomes = []
    # In ``folder``: what a run writes in its working directory (the run
    # store) stays out of the repository.
    previous = os.getcwd()
    os.chdir(folder)
    try:
        for command in commands:
            outcomes.append(_invoke(runner, case, path, command))
    finally:
        os.chdir(previous)
    return outcomes


def _invoke(runner: Any, case: Case, path: Path, command: str) -> Outcome:
    from flow2._cli._app import cli

    extra = ["--display", "plain"] if command == "run" else []
    result = runner.invoke(
        cli, [command, *extra, str(path), *case.arguments], env={PLANTED_NAME: PLANTED_VALUE}
    )
    problem = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        problem = f"raised {type(result.exception).__name__}: {result.exception!r}"[:300]
    elif result.exit_code not in (0, 1, 2):
        problem = f"exit code {result.exit_code}"
    elif "Traceback (most recent call last)" in result.stderr:
        problem = "a traceback on stderr"
    elif result.exit_code == 2 and PLANTED_VALUE in result.stderr:
        problem = "an error message quotes an environment value"
    return Outcome(case, command, result.exit_code, problem)


def describe(outcome: Outcome) -> str:
    """One line naming a failed case, to reproduce it."""
    content = outcome.case.content[:200]
    return (
        f"case {outcome.case.number}, {outcome.command} {' '.join(outcome.case.arguments)[:80]}: "
        f"{outcome.problem}\n  {content!r}"
    )
