"""Odd inputs found by fuzzing: each signature kept fixed, and random flow files from a seed."""

from __future__ import annotations

import io
import json
import os
import random
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import flow2
from flow2._cli._app import cli

from .conftest import run, write_flow
from .fuzzing import (
    PLANTED_NAME,
    PLANTED_VALUE,
    Case,
    check,
    describe,
    expression_cases,
    generate,
)

#: The seed of the fuzzing test; benchmarks/bench_fuzz.py takes its own.
SEED = 20261203


@pytest.fixture(autouse=True)
def _in_a_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What a run writes in its working directory (the run store) stays out
    # of the repository.
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)


def invoke(*arguments: str | Path, **environment: str) -> Result:
    """Run the flow2 command in-process."""
    return CliRunner().invoke(cli, [str(argument) for argument in arguments], env=environment)


def assert_one_message(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# Random flow files ---------------------------------------------------------------


# About 40 ms a file on a 2-core machine: the per-test timeout does not fit
# a thousand of them.
@pytest.mark.timeout(900)
def test_random_flow_files_exit_0_1_or_2_and_never_a_traceback(
    tmp_path: Path, request: pytest.FixtureRequest, python_first_on_path: None
) -> None:
    count = request.config.getoption("--fuzz-files")
    problems = [
        describe(outcome)
        for case in generate(SEED, count)
        for outcome in check(case, tmp_path)
        if outcome.problem is not None
    ]
    assert not problems, "\n".join(problems[:10])


@pytest.mark.timeout(600)
def test_random_expressions_and_filters_exit_0_1_or_2_and_never_a_traceback(
    tmp_path: Path, python_first_on_path: None
) -> None:
    # Operators, Jinja's filters with odd arguments, nesting hundreds deep;
    # evaluated when the task starts, in its if:, or when the file loads.
    problems = [
        describe(outcome)
        for case in expression_cases(SEED, 150)
        for outcome in check(case, tmp_path, ("validate", "run"))
        if outcome.problem is not None
    ]
    assert not problems, "\n".join(problems[:10])


def test_the_fuzzing_check_can_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A loader that raises a raw exception is reported as a problem.
    from flow2._flows import _loader

    def broken(*arguments: Any, **options: Any) -> Any:
        raise ValueError("raw")

    monkeypatch.setattr(_loader, "read_flow", broken)
    monkeypatch.setattr("flow2._cli._arguments.read_flow", broken)
    (outcome,) = check(Case(0, b"plugin: shell\ncmd: echo\n"), tmp_path, ("validate",))
    assert outcome.problem is not None and "ValueError" in outcome.problem


# key=value -----------------------------------------------------------------------

TYPES = "{{ x }}|{{ x is string }}|{{ x is number }}|{{ x is boolean }}\n"


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("x=3", "3|False|True|False"),
        ("x=-3", "-3|False|True|False"),
        ("x=0.5", "0.5|False|True|False"),
        # Jinja counts a bool as a number.
        ("x=true", "True|False|True|True"),
        ("x=1.10", "1.10|True|False|False"),
        ("x=on", "on|True|False|False"),
        ("x=no", "no|True|False|False"),
        ("x=0755", "0755|True|False|False"),
        ("x=1e3", "1e3|True|False|False"),
        ("x=0x", "0x|True|False|False"),
        ("x=2020-13-01", "2020-13-01|True|False|False"),
        ("x=2020-01-01", "2020-01-01|True|False|False"),
        ("x=.abc", ".abc|True|False|False"),
        ("x=.5", ".5|True|False|False"),
        ("x=null", "null|True|False|False"),
        ("x=!!python/object:os.system", "!!python/object:os.system|True|False|False"),
    ],
)
def test_command_line_values_keep_their_text(
    tmp_path: Path, assignment: str, expected: str
) -> None:
    path = write_flow(tmp_path, TYPES)
    result = invoke("render", path, assignment)
    assert result.exit_code == 0, result.output
    assert result.stdout == expected + "\n"


def test_list_items_follow_the_same_rule(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "{% for item in x %}{{ item }}:{{ item is number }} {% endfor %}\n")
    result = invoke("render", path, "x=[1.10, 3, on, '4']")
    assert result.stdout == "1.10:False 3:True on:False 4:False \n"


def test_thousands_of_brackets_and_an_undefined_alias_answer_at_once(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "plugin: callback\ncallback: *a0\n")
    result = invoke("validate", path, "x=" + "[" * 20_000)
    assert_one_message(result, "nests deeper than 50 levels")


def test_aliases_in_a_command_line_value_are_refused(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "plugin: shell\ncmd: echo\n")
    assert_one_message(invoke("validate", path, "x=[&a [1, 2], *a]"), "aliases")


def test_load_then_run_gives_the_context_of_flow2_run(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - {plugin: shell, name: Echo, cmd: "echo ${{ version }}"}
        """,
    )
    task = flow2.load(path, version="1.10")
    context = run(task.run())
    assert context["version"] == "1.10" and context["echo"]["stdout"] == "1.10"
    result = invoke("run", "--display", "plain", path, "version=1.10")
    assert result.exit_code == 0 and "[Echo] 1.10\n" in result.stdout, result.output


def test_a_callers_context_wins_over_the_load_variables(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "plugin: shell\nname: Echo\ncmd: echo ${{ version }}\n")
    task = flow2.load(path, version="1.10")
    context = run(flow2.Runner(display="none").run(task, {"version": "2.0"}))
    assert context["echo"]["stdout"] == "2.0"


# YAML ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["!!int abc", "!!float a", "!!bool ''", "!!int {a: 1}", "!!int 0.5", "2020-13-01"],
)
def test_yaml_tags_that_cannot_be_read_are_one_message(tmp_path: Path, value: str) -> None:
    path = write_flow(tmp_path, f"plugin: shell\nname: T\ncmd: {value}\n")
    assert_one_message(invoke("validate", path), f"{path}:3:")


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    path = write_flow(tmp_path, "\n".join(lines) + "\nplugin: shell\ncmd: *a9\n")
    result = invoke("show", path)
    assert_one_message(result, "alias bomb")
    assert result.stderr.count("\n") == 1


def test_ten_thousand_deep_nesting_is_one_message(tmp_path: Path) -> None:
    depth = 10_000
    path = write_flow(tmp_path, "{plugin: serial, tasks: [" * depth + "]}" * depth + "\n")
    result = invoke("validate", path)
    assert_one_message(result, "nest")
    assert result.stderr.count("\n") == 1


def test_a_list_that_contains_itself_is_refused(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "plugin: shell\ncmd: &a [echo, *a]\n")
    assert_one_message(invoke("validate", path), "contains itself")


# Templates -----------------------------------------------------------------------


def test_an_undefined_variable_in_an_expression_is_named(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
        {% for i in range(steps) %}
          - {plugin: shell, cmd: echo {{ i }}}
        {% endfor %}
        """,
    )
    assert_one_message(invoke("validate", path), "'steps' is undefined", "steps=")


@pytest.mark.parametrize(
    "expression",
    [
        "'a' * 10**9",
        "'a'.center(10**9)",
        "'a' | center(10**9)",
        "10**(10**7)",
        "'%0999999999d' % 1",
        "'{:>999999999}'.format(1)",
        "[0] * 10**9",
    ],
)
def test_templates_that_would_grow_without_bound_are_refused(
    tmp_path: Path, expression: str
) -> None:
    path = write_flow(tmp_path, f"plugin: shell\ncmd: echo {{{{ {expression} }}}}\n")
    assert_one_message(invoke("render", path), "template limits")


def test_a_template_loop_that_never_ends_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flow2._flows._limits.TEMPLATE_SECONDS", 0.3)
    path = write_flow(
        tmp_path,
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}\n",
    )
    assert_one_message(invoke("render", path), "longer than 0.3 s")
    # The deadline is gone with the template: nothing is raised later.
    assert invoke("render", write_flow(tmp_path, "x\n", "ok.yml")).exit_code == 0


def test_a_huge_number_in_a_run_time_expression_fails_its_task(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "plugin: shell\nname: Big\ncmd: echo ${{ 2 ** 20000 }}\n")
    result = invoke("run", "--display", "plain", path)
    assert result.exit_code == 1 and "template limits" in result.stdout, result.output


@pytest.mark.parametrize(
    "text",
    [
        "cmd: echo {{ ''.__class__.__mro__ }}",
        "cmd: echo {{ cycler.__init__.__globals__ }}",
        "cmd: echo {{ range(10**9) }}",
        "cmd: echo ${{ ''.__class__.__mro__ }}",
        "cmd: echo ${{ cycler.__init__.__globals__ }}",
        "cmd: echo ${{ context['__class__'] }}",
    ],
)
def test_sandbox_escapes_are_refused_at_load(tmp_path: Path, text: str) -> None:
    path = write_flow(tmp_path, f"plugin: shell\n{text}\n")
    result = invoke("validate", path)
    assert_one_message(result)
    assert re.search(r"sandbox|MAX_RANGE|unsafe", result.stderr), result.stderr


@pytest.mark.parametrize("command", ["validate", "show", "graph", "run"])
@pytest.mark.parametrize(
    "expression",
    ["(" * 100 + "1" + ")" * 100, "[" * 1000 + "]" * 1000, "+".join(["1"] * 3000), "-" * 500 + "1"],
    ids=["parentheses", "lists", "operators", "unary"],
)
def test_a_deeply_nested_run_time_expression_is_one_message(
    tmp_path: Path, command: str, expression: str
) -> None:
    path = write_flow(
        tmp_path,
        "plugin: serial\ntasks:\n"
        f"  - {{plugin: shell, name: Deep, cmd: 'echo ${{{{ {expression} }}}}'}}\n",
    )
    result = invoke(command, path)
    assert_one_message(result, f"{path}:3:", "task 'Deep'", "nested too deeply")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "expression",
    ['(1["a"] or 2)', '({"a": 1} | attr("b") and range(3)) / 10'],
    ids=["item", "attr"],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_an_expression_failing_on_constants_is_refused_at_load(
    tmp_path: Path, command: str, expression: str
) -> None:
    path = write_flow(
        tmp_path,
        f"plugin: serial\ntasks:\n  - {{plugin: shell, name: E, if: '${{{{ {expression} }}}}',"
        " cmd: echo ran}\n",
    )
    result = invoke(command, path)
    assert_one_message(result, f"{path}:3:", "task 'E'", "fails whatever the results")


def test_a_deeply_nested_expression_that_fails_when_the_task_starts_fails_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read at load time, then too deep to compile when the task starts (a
    # lower recursion limit in the thread that evaluates stands in for a
    # deeper expression on a smaller stack).
    path = write_flow(
        tmp_path, "plugin: shell\nname: Deep\ncmd: echo ${{ " + "(" * 40 + "1" + ")" * 40 + " }}\n"
    )
    loaded = flow2.load(path)
    monkeypatch.setattr("flow2._flows._templates._compiled_expression", _too_deep)
    monkeypatch.setattr("flow2._flows._templates._compiled_template", _too_deep)
    result = run(flow2.Runner(display="none").execute(loaded))
    (failure,) = result.failures
    assert isinstance(failure.error, flow2.ExpressionError)
    assert "nested too deeply" in str(failure.error) and failure.error.line == 3


def _too_deep(source: str) -> Any:
    raise RecursionError("maximum recursion depth exceeded")


@pytest.mark.parametrize(
    "expression",
    ["'abc' | truncate(-1)", "'abc' | truncate(2)", "'abc' | wordwrap(0)"],
)
def test_a_filter_refusing_its_argument_is_one_message(tmp_path: Path, expression: str) -> None:
    path = write_flow(
        tmp_path,
        "plugin: serial\ntasks:\n"
        f"  - {{plugin: shell, name: F, cmd: 'echo {{{{ {expression} }}}}'}}\n",
    )
    result = invoke("validate", path)
    assert_one_message(result, f"{path}:3:", "template error")
    assert result.stderr.count("\n") == 1


def test_a_filter_refusing_its_argument_at_run_time_fails_its_task(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "plugin: shell\nname: F\ncmd: echo ${{ 'abc' | truncate(-1) }}\n")
    result = invoke("run", "--display", "plain", "--no-store", path)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "task 'F', cmd: FilterArgumentError: the truncate filter refuses its arguments" in (
        result.stdout
    )


def test_a_huge_range_in_a_run_time_expression_fails_its_task(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "plugin: shell\nname: R\ncmd: echo ${{ range(10**9) | list }}\n")
    result = invoke("run", "--display", "plain", path)
    assert result.exit_code == 1 and "MAX_RANGE" in result.stdout, result.output


@pytest.mark.parametrize(
    "text",
    [
        "{% set v = '${{ version }}' %}\nplugin: shell\nname: Echo\ncmd: echo v{{ v }}\n",
        "{% macro m(x) %}echo v{{ x }}{% endmacro %}\n"
        "plugin: shell\nname: Echo\ncmd: {{ m('${{ version }}') }}\n",
    ],
)
def test_run_time_expressions_work_inside_set_and_macro_arguments(
    tmp_path: Path, text: str
) -> None:
    path = write_flow(tmp_path, text)
    context = run(flow2.Runner(display="none").run(flow2.load(path, version="3.44.0")))
    assert context["echo"]["stdout"] == "v3.44.0"


def test_a_run_time_expression_changed_by_a_filter_is_refused_with_its_line(
    tmp_path: Path,
) -> None:
    path = write_flow(tmp_path, "plugin: shell\nname: Echo\ncmd: echo {{ '${{ v }}'[1:] }}\n")
    assert_one_message(invoke("validate", path, "v=1"), f"{path}:3:", "${{ … }}")


def test_includes_are_read_next_to_the_flow_file(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    write_flow(folder, "- {plugin: shell, name: Inner, cmd: 'echo ${{ version }}'}\n", "inner.yml")
    path = write_flow(folder, "plugin: serial\ntasks:\n{% include 'inner.yml' %}\n")
    context = run(flow2.Runner(display="none").run(flow2.load(path, version="2")))
    assert context["inner"]["stdout"] == "2"
    missing = write_flow(folder, "{% include 'nothere.yml' %}\n", "missing.yml")
    assert_one_message(invoke("validate", missing), "cannot include 'nothere.yml'")


def test_error_messages_never_quote_an_environment_value(tmp_path: Path) -> None:
    for text in (
        "plugin: shell\ncmd: echo\ntimeout: {{ environ.%s }}\n",
        "plugin: shell\nname: '{{ environ.%s }}'\ncmd: echo\ntiemout: 1\n",
        "plugin: shell\ncmd: echo\nretries: '{{ environ.%s }}'\n",
        "plugin: '{{ environ.%s }}'\n",
    ):
        path = write_flow(tmp_path, text % PLANTED_NAME)
        result = invoke("validate", path, **{PLANTED_NAME: PLANTED_VALUE})
        assert_one_message(result)
        assert PLANTED_VALUE not in result.stderr and "***" in result.stderr, result.stderr


# Run-time expressions off the event loop ----------------------------------------


class Probe:
    """A context value whose attribute blocks until a sibling task releases it."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.threads: list[int] = []

    @property
    def value(self) -> str:
        self.threads.append(threading.get_ident())
        assert self.released.wait(30), "the sibling never ran: the loop was blocked"
        return "ok"


def release(context: dict[str, Any]) -> str:
    context["probe"].released.set()
    return "released"


def test_a_slow_expression_does_not_block_a_sibling(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: parallel
        tasks:
          - {plugin: shell, name: Slow, cmd: "echo ${{ probe.value }}"}
          - {plugin: callback, name: Release, callback: "tests.test_fuzz:release"}
        """,
    )
    probe = Probe()
    context = run(flow2.Runner(display="none").run(flow2.load(path, probe=probe)))
    assert context["slow"]["stdout"] == "ok" and context["release"] == "released"
    assert probe.threads and threading.main_thread().ident not in probe.threads


def test_a_slow_expression_counts_against_the_task_timeout(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path, "plugin: shell\nname: Slow\ntimeout: 0.2\ncmd: echo ${{ probe.value }}\n"
    )
    probe = Probe()

    def release_when_failed(event: flow2.Event) -> None:
        # The blocked thread is let go once the task is reported: asyncio.run
        # waits for its worker threads before returning.
        if isinstance(event, flow2.TaskEvent) and event.status is flow2.Status.FAILED:
            probe.released.set()

    runner = flow2.Runner(display="none", listeners=[release_when_failed])
    try:
        context = run(runner.run(flow2.load(path, probe=probe), raises=False))
    finally:
        probe.released.set()
    assert isinstance(context["slow"], TimeoutError)


# Callbacks and results -----------------------------------------------------------


def test_a_sync_generator_callback_is_collected_like_an_async_one(tmp_path: Path) -> None:
    def returns_generator(context: dict[str, Any]) -> Any:
        return (number * 2 for number in range(3))

    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.CallbackTask("Yields", _yields),
        flow2.CallbackTask("Returns", returns_generator),
    )
    context = run(flow2.Runner(display="none").run(tree))
    assert context["yields"] == [0, 1, 2] and context["returns"] == [0, 2, 4]


def _yields(context: dict[str, Any]) -> Any:
    yield from range(3)


def test_a_generator_callback_in_a_flow_file(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path, "plugin: callback\nname: Items\ncallback: tests.fuzzing:yields_items\n"
    )
    context = run(flow2.Runner(display="none").run(flow2.load(path)))
    assert context["items"] == [0, 1, 2]


class Unprintable(Exception):
    def __str__(self) -> str:
        raise Unprintable()


class UnshowableResult:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_errors_and_results_that_cannot_be_shown_keep_every_listener(
    recorder: Any,
) -> None:
    def fails(context: dict[str, Any]) -> None:
        raise Unprintable()

    stream = io.StringIO()
    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.CallbackTask("Shown", lambda context: [UnshowableResult()]),
        flow2.ParallelTaskGroup("Checks", flow2.CallbackTask("Fails", fails)),
        flow2.CallbackTask("After", lambda context: "still here"),
    )
    context = run(
        flow2.Runner(display="plain", stream=stream, listeners=[recorder]).run(tree, raises=False)
    )
    assert isinstance(context["fails"], Unprintable) and context["after"] == "still here"
    text = stream.getvalue()
    assert "FAILED    Fails" in text and "its message cannot be shown" in text
    assert "cannot be shown: showing it raised RuntimeError" in text
    assert "SUCCESS   After" in text and "Failed: Root › Checks › Fails" in text
    assert "failed and stopped receiving events" not in text
    assert recorder.final("After") is flow2.Status.SUCCEEDED


def test_an_error_that_cannot_be_shown_keeps_the_event_file(tmp_path: Path) -> None:
    def fails(context: dict[str, Any]) -> None:
        raise Unprintable()

    events = tmp_path / "events.jsonl"
    tree = flow2.SerialTaskGroup(
        "Root",
        flow2.ParallelTaskGroup("Checks", flow2.CallbackTask("Fails", fails)),
        flow2.CallbackTask("After", lambda context: "still here"),
    )
    run(flow2.Runner(display="none", events=str(events)).run(tree, raises=False))
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    failed = [line for line in lines if line.get("task") == "Fails" and line["status"] == "failed"]
    assert "cannot be shown" in failed[0]["error"]["message"]
    assert any(line.get("task") == "After" and line["status"] == "succeeded" for line in lines)


# Names, commands -----------------------------------------------------------------


def test_name_to_key_is_linear_on_long_upper_case_names() -> None:
    # The former pattern took 88 s on 40,000 characters and grows with the
    # square: 400,000 would outlast the test timeout by far.
    assert flow2.Task("A" * 400_000).key == "a" * 400_000
    assert flow2.Task("A" * 10 + "Bc").key == "aaaaaaaaaa_bc"


def test_name_to_key_matches_the_documented_rules() -> None:
    old_acronym = re.compile(r"([A-Z]+)([A-Z][a-z])")
    old_camel = re.compile(r"([a-z0-9])([A-Z])")

    def former(name: str) -> str:
        spaced = old_camel.sub(r"\1_\2", old_acronym.sub(r"\1_\2", name))
        return re.sub(r"[\W_]+", "_", spaced).strip("_").lower()

    rng = random.Random(SEED)
    for _ in range(20_000):
        name = "".join(rng.choice("aAbBzZ09_ -é") for _ in range(rng.randint(1, 12)))
        if former(name):
            assert flow2.Task(name).key == former(name), name


def test_the_console_script_imports_callbacks_from_the_working_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "local_steps.py").write_text("def answer(context):\n    return 42\n")
    write_flow(tmp_path, "plugin: callback\nname: Answer\ncallback: local_steps:answer\n")
    script = Path(sys.executable).parent / "flow2"
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for command in ([str(script)], [sys.executable, "-m", "flow2"]):
        result = subprocess.run(
            [*command, "run", "--display", "plain", "flow.yml"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env=environment,
        )
        assert result.returncode == 0, result.stderr
        assert "\n  42\n" in result.stdout


def test_a_callback_raising_an_unprintable_error_exits_1_without_a_traceback(
    tmp_path: Path,
) -> None:
    path = write_flow(
        tmp_path, "plugin: callback\nname: Bad\ncallback: tests.fuzzing:raises_unprintable\n"
    )
    result = invoke("run", "--display", "plain", path)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "its message cannot be shown" in result.stdout


def test_run_time_expressions_in_a_thread_see_the_results_before_them(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - {plugin: shell, name: First, cmd: echo one}
          - {plugin: shell, name: Second, cmd: "echo ${{ first.stdout }} two"}
        """,
    )
    context = run(flow2.Runner(display="none").run(flow2.load(path)))
    assert context["second"]["stdout"] == "one two"
