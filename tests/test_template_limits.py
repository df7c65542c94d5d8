"""The limits of templates: a runaway stops at a safe point, never by an injected exception."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import run, write_flow

#: The limit every test here sets (flow2._flows._limits.TEMPLATE_SECONDS).
LIMIT = 0.3


@pytest.fixture(autouse=True)
def _short_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flow2._flows._limits.TEMPLATE_SECONDS", LIMIT)


class Stuck:
    """A variable whose method runs Python code, holding a lock, until released.

    An exception injected into the rendering thread would land inside
    ``value``, between two of its bytecodes: ``interrupted`` records it.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.finished = threading.Event()
        self.interrupted: list[BaseException] = []
        self.turns = 0

    def value(self) -> str:
        try:
            while not self.released.wait(0.01):
                with self.lock:
                    self.turns += 1
        except BaseException as error:
            self.interrupted.append(error)
            raise
        finally:
            self.finished.set()
        return "done"

    def assert_never_interrupted(self) -> None:
        self.released.set()
        assert self.finished.wait(60), "the call left behind never ended"
        assert self.interrupted == []
        assert self.turns > 0
        assert self.lock.acquire(timeout=5), "the lock was left held"
        self.lock.release()


@pytest.fixture
def stuck() -> Any:
    stuck = Stuck()
    yield stuck
    stuck.released.set()


def load_error(path: Path, **variables: Any) -> flow2.FlowFileError:
    with pytest.raises(flow2.FlowFileError) as caught:
        flow2.load(path, **variables)
    return caught.value


# Stopped by the template itself -------------------------------------------------


def test_a_loop_of_loops_stops_at_its_line(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        "plugin: shell\n"
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}\n"
        "cmd: echo\n",
    )
    error = load_error(path)
    assert (error.file, error.line) == (str(path), 2)
    assert f"longer than {LIMIT:g} s" in error.reason and "loops that never end" in error.reason


def test_a_macro_that_calls_itself_twice_stops(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        "{% macro grow(n) %}{% if n %}{{ grow(n - 1) }}{{ grow(n - 1) }}{% endif %}{% endmacro %}\n"
        "plugin: shell\n"
        "cmd: echo {{ grow(60) }}\n",
    )
    error = load_error(path)
    assert f"longer than {LIMIT:g} s" in error.reason and error.line is not None


def test_a_filtered_loop_over_an_endless_iterable_stops(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path, "{% for i in endless if i < 0 %}{% endfor %}\nplugin: shell\ncmd: echo\n"
    )
    error = load_error(path, endless=itertools.count())
    assert "loops that never end" in error.reason and error.line == 1


def test_each_level_of_a_recursive_loop_stops(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        "{% for x in [endless] recursive %}"
        "{% if x is iterable %}{{ loop(x) }}{% endif %}"
        "{% endfor %}\n"
        "plugin: shell\ncmd: echo\n",
    )
    error = load_error(path, endless=itertools.count())
    assert "loops that never end" in error.reason


def test_a_loop_in_an_included_file_is_named_with_that_file(tmp_path: Path) -> None:
    included = write_flow(
        tmp_path,
        "# loops\n{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}\n",
        "loops.yml",
    )
    path = write_flow(tmp_path, "plugin: shell\ncmd: echo\n{% include 'loops.yml' %}\n")
    error = load_error(path)
    assert (error.file, error.line) == (str(included), 2)


def test_loops_keep_their_loop_variable(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: shell
        name: Echo
        cmd: echo {% for x in 'abc' %}{{ loop.index }}/{{ loop.length }}{% endfor %}
          {%- for x in [[1, [2]], 3] recursive %}
          {%- if x is iterable %}{{ loop(x) }}{% else %} {{ x }}{% endif %}
          {%- endfor %}
        """,
    )
    context = run(flow2.Runner(display="none").run(flow2.load(path)))
    assert context["echo"]["stdout"] == "1/32/33/3 1 2 3"


def test_the_limit_is_gone_with_the_template(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}\n",
    )
    load_error(path)
    ok = write_flow(tmp_path, "plugin: shell\nname: Ok\ncmd: echo {{ 1 }}\n", "ok.yml")
    assert run(flow2.Runner(display="none").run(flow2.load(ok)))["ok"]["stdout"] == "1"


# Sizes: refused before they are built -------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "('a' * 6000000).replace('a', 'aa')",
        "(10 ** 4000) * (10 ** 4000)",
        "3 * [1, 2, 3, 4, 5] * 1000000",
        "'ab' | indent(10 ** 9)",
        "'%0999999999d' | format(1)",
        "'{:>999999999}'.format_map({})",
        "lipsum(10 ** 6)",
        "'a'.zfill(10 ** 9)",
    ],
)
def test_operations_that_would_grow_without_bound_are_refused_quickly(
    tmp_path: Path, expression: str
) -> None:
    path = write_flow(tmp_path, f"plugin: shell\ncmd: echo {{{{ {expression} }}}}\n")
    error = load_error(path)
    assert "template limits" in error.reason and "loops that never end" not in error.reason


def test_a_rendered_text_too_long_is_refused(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        "{% for i in range(1200) %}{{ 'a' * 9000 }}{% endfor %}\nplugin: shell\ncmd: echo\n",
    )
    error = load_error(path)
    assert "the rendered text would exceed" in error.reason


def test_bounded_operators_filters_and_functions_work_within_the_limits(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: shell
        name: Echo
        cmd: >-
          echo {{ 'a' | center(5) | replace(' ', '.') }} {{ '%03d' | format(7) }}
          {{ lipsum(1, html=False) | wordcount > 0 }} {{ 2 ** 10 }} {{ '%s-%s' % (1, 2) }}
          {{ 'ab' * 2 }} ${{ 'c' | center(3) | replace(' ', '.') }}
        """,
    )
    context = run(flow2.Runner(display="none").run(flow2.load(path)))
    assert context["echo"]["stdout"] == "..a.. 007 True 1024 1-2 abab .c."


# Left behind where the template cannot stop ---------------------------------------


def test_a_stuck_call_is_left_behind_uninterrupted(tmp_path: Path, stuck: Stuck) -> None:
    path = write_flow(tmp_path, "plugin: shell\ncmd: echo {{ stuck.value() }}\n")
    error = load_error(path, stuck=stuck)
    assert (error.file, error.line) == (str(path), 2)
    assert f"longer than {LIMIT:g} s" in error.reason
    assert "left running in the background" in error.reason
    stuck.assert_never_interrupted()


def test_a_run_time_expression_that_does_not_return_fails_its_task(
    tmp_path: Path, stuck: Stuck
) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - {plugin: shell, name: Wait, cmd: "echo ${{ stuck.value() }}"}
        """,
    )
    context = run(flow2.Runner(display="none").run(flow2.load(path, stuck=stuck), raises=False))
    error = context["wait"]
    assert isinstance(error, flow2.ExpressionError)
    assert f"{path}:3" in str(error) and f"longer than {LIMIT:g} s" in str(error)
    assert "left running in the background" in str(error)
    stuck.assert_never_interrupted()


def test_a_condition_that_does_not_return_fails_its_task(tmp_path: Path, stuck: Stuck) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - {plugin: shell, name: Maybe, if: "${{ stuck.value() }}", cmd: echo}
        """,
    )
    context = run(flow2.Runner(display="none").run(flow2.load(path, stuck=stuck), raises=False))
    assert isinstance(context["maybe"], flow2.ExpressionError)
    assert f"longer than {LIMIT:g} s" in str(context["maybe"])
    stuck.assert_never_interrupted()


def test_nothing_in_flow2_injects_an_exception_into_a_thread() -> None:
    # PyThreadState_SetAsyncExc raises at an arbitrary bytecode: it can leave
    # a lock held (coverage's, the logging module's) and hang the process.
    source = Path(flow2.__file__).parent
    for path in source.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "SetAsyncExc" not in text and "pythonapi" not in text, path


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_renders_templates(tmp_path: Path) -> None:
    # The parent's idle template threads do not exist in the child.
    path = write_flow(tmp_path, "plugin: shell\ncmd: echo {{ 1 + 1 }}\n")
    flow2.load(path)
    with warnings.catch_warnings():
        # Python 3.12 warns about forking a process that has threads.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:  # pragma: no cover (the child process)
        try:
            signal.alarm(60)  # a child that hangs ends all the same
            flow2.load(path)
            os._exit(0)
        finally:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
