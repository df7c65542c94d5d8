"""Flow files into task trees: the format, templating, run-time expressions, bad input."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import pytest

import flow2
from flow2._cli._arguments import find_flow, user_flows_folder
from flow2._flows._loader import read_flow

from .conftest import run, write_flow

pytestmark = pytest.mark.usefixtures("python_first_on_path")


def load_error(tmp_path: Path, text: str, **variables: Any) -> flow2.FlowFileError:
    path = write_flow(tmp_path, text)
    with pytest.raises(flow2.FlowFileError) as caught:
        flow2.load(path, **variables)
    assert str(caught.value).startswith(f"{path}:")
    return caught.value


def quiet() -> flow2.Runner:
    return flow2.Runner(display="none", stream=io.StringIO())


# The format ---------------------------------------------------------------


def test_nodes_become_the_plugins_tasks_with_their_options(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        name: Release
        tasks:
          - plugin: parallel
            name: Checks
            max_parallel: 2
            on_error: cancel
            tasks:
              - plugin: shell
                name: Lint
                cmd: [python, -c, "print(1)"]
                timeout: 30
                retries: 2
              - plugin: callback
                callback: os.path:join
                register: joined
        """,
    )
    root = flow2.load(path)
    assert isinstance(root, flow2.SerialTaskGroup) and root.name == "Release"
    (checks,) = root.tasks
    assert isinstance(checks, flow2.ParallelTaskGroup)
    assert checks.max_parallel == 2 and checks.on_error is flow2.OnError.CANCEL
    lint, joined = checks.tasks
    assert (lint.name, lint.timeout, lint.retries) == ("Lint", 30.0, 2)
    assert lint.cmd == ["python", "-c", "print(1)"]  # type: ignore[attr-defined]
    assert isinstance(joined, flow2.CallbackTask) and joined.key == "joined"


def test_unnamed_nodes_are_numbered_in_file_order_like_the_original(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - {plugin: shell, cmd: "true"}
          - {plugin: shell, name: Named, cmd: "true"}
          - {plugin: shell, cmd: "true"}
        """,
    )
    root = flow2.load(path)
    assert [root.name, *(task.name for task in root.children)] == [
        "Task 1",
        "Task 2",
        "Named",
        "Task 3",
    ]


def test_a_loaded_flow_runs_and_fills_the_context(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - plugin: shell
            name: Version
            cmd: [python, -c, "print('1.2.3')"]
          - plugin: shell
            name: Tag
            cmd: [python, -c, "import sys; print('v' + sys.argv[1])", "${{ version.stdout }}"]
        """,
    )
    context = run(quiet().run(flow2.load(path)))
    assert context["version"]["stdout"] == "1.2.3"
    assert context["tag"] == {"returncode": 0, "stdout": "v1.2.3", "stderr": ""}


def test_flow_class_renders_loads_and_runs_with_variables(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: shell
        name: Echo {{ word }}
        cmd: [python, -c, "print('{{ word }}', end='')"]
        """,
    )
    flow = flow2.Flow(path, word="hello")
    assert "Echo hello" in flow.render()
    assert flow.load(word="bye").name == "Echo bye"
    assert repr(flow) == f"<Flow {str(path)!r}>"
    context = run(flow.run(word="again"))
    assert context["word"] == "again"  # the variables start the context
    assert context["echo_again"]["stdout"] == "again"


# Templating ---------------------------------------------------------------


def test_templates_generate_tasks_from_variables_and_read_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW2_TEST_TARGET", "staging")
    path = write_flow(
        tmp_path,
        """
        plugin: parallel
        name: Deploy to {{ environ.FLOW2_TEST_TARGET }}
        tasks:
        {% for region in regions %}
          - plugin: shell
            name: Deploy {{ region }}
            cmd: echo {{ region }}
        {% endfor %}
        {% if smoke %}
          - plugin: shell
            name: Smoke
            cmd: echo smoke
        {% endif %}
        """,
    )
    root = flow2.load(path, regions=["eu", "us"], smoke=False)
    assert root.name == "Deploy to staging"
    assert [task.name for task in root.children] == ["Deploy eu", "Deploy us"]


def test_load_time_and_run_time_templates_do_not_mix(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: shell
        cmd: |
            echo {{ greeting }}
            ${{ later }}
        """,
    )
    text = flow2.Flow(path).render(greeting="hi")
    assert "echo hi\n    ${{ later }}\n" in text


@pytest.mark.parametrize(
    "text",
    [
        "plugin: shell\r\ncmd: echo windows\r\n",
        "plugin: shell\rcmd: echo 'old mac'\r",
        "plugin: shell\ncmd: echo no end",
        "plugin: shell\n\n\ncmd: echo blank lines\n\n",
        "plugin: shell\ncmd: echo '{ } {x} %} #} $HOME \ue000'\n",
    ],
    ids=["crlf", "cr", "no-final-newline", "blank-lines", "braces-and-private-use"],
)
def test_a_flow_without_templates_is_read_as_jinja_would_render_it(
    tmp_path: Path, text: str
) -> None:
    # A file without {{ }}, {% %} or {# #} is not given to Jinja; a comment
    # sends the same text through Jinja.
    plain = tmp_path / "plain.yml"
    plain.write_bytes(text.encode())
    templated = tmp_path / "templated.yml"
    templated.write_bytes(("{# through Jinja #}" + text).encode())
    assert flow2.Flow(plain).render() == flow2.Flow(templated).render()
    assert flow2.load(plain).name == flow2.load(templated).name


def test_undefined_variable_names_the_variable_and_line(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """
        plugin: shell

        cmd: echo {{ versoin }}
        """,
    )
    assert error.line == 3 and "'versoin' is undefined" in str(error)
    assert "default(" in str(error)  # the fix


def test_template_syntax_error_names_the_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, "plugin: shell\ncmd: echo {{ oops\n")
    assert error.line == 2 and "template syntax error" in str(error)


def test_templates_are_sandboxed(tmp_path: Path) -> None:
    error = load_error(tmp_path, "plugin: shell\ncmd: {{ ''.__class__.__mro__ }}\n")
    assert "sandbox" in str(error) or "unsafe" in str(error)
    assert error.line == 2


def test_error_raised_inside_a_template_is_reported_with_its_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, "plugin: shell\n\ncmd: echo {{ 1 // 0 }}\n")
    assert error.line == 3 and "ZeroDivisionError" in str(error)


# Run-time expressions ----------------------------------------------------------


def test_whole_expression_keeps_the_value_type_and_context_is_reachable(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - plugin: callback
            name: Numbers
            callback: builtins:dict
          - plugin: shell
            name: Show
            env: '${{ {"COUNT": count * 2, "KEYS": context | length} }}'
            cmd: [python, -c, "import os; print(os.environ['COUNT'], os.environ['KEYS'])"]
        """,
    )
    context = run(quiet().run(flow2.load(path, count=21), {"count": 21}))
    assert context["show"]["stdout"] == "42 2"


def test_runtime_expression_with_an_unknown_name_is_caught_at_load(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """
        plugin: serial
        tasks:
          - {plugin: shell, name: Version, cmd: echo 1}
          - plugin: shell
            cmd: echo ${{ versoin.stdout }}
        """,
    )
    assert (
        error.key == "cmd" and "'versoin'" in str(error) and "did you mean 'version'" in str(error)
    )


def test_runtime_expression_syntax_error_is_caught_at_load(tmp_path: Path) -> None:
    error = load_error(tmp_path, "plugin: shell\ncmd: echo ${{ 1 + }}\n")
    assert error.key == "cmd" and "malformed" in str(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plugin: shell\ncmd: echo 1\ntimeout: ${{ t }}\n", "plugin's own options only"),
        ("plugin: parallel\non_error: ${{ policy }}\ntasks: []\n", "not of groups"),
    ],
)
def test_runtime_expressions_are_refused_where_they_cannot_work(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in str(load_error(tmp_path, text, t=1, policy="raise"))


def test_runtime_value_that_the_plugin_refuses_fails_the_task(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - {plugin: callback, name: Empty, callback: "builtins:list"}
          - plugin: shell
            name: Run
            cmd: ${{ empty }}
        """,
    )
    with pytest.raises(
        flow2.ExpressionError, match=r"flow.yml:6: task 'Run', cmd: evaluated to an invalid value"
    ):
        run(quiet().run(flow2.load(path)))


def test_runtime_expression_failing_at_run_time_names_file_line_and_key(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - {plugin: callback, name: Data, callback: "builtins:dict"}
          - plugin: shell
            name: Use
            cmd: echo ${{ data.missing.deeper }}
        """,
    )
    with pytest.raises(flow2.ExpressionError) as caught:
        run(quiet().run(flow2.load(path)))
    assert "flow.yml:6: task 'Use', cmd" in str(caught.value)
    assert "has no attribute 'missing'" in str(caught.value)


# Bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "fragments"),
    [
        ("plugin: serial\ntasks:\n  - plugin: shell\n   cmd: x\n", 4, None, ["invalid YAML"]),
        ("", 1, None, ["empty", "plugin:"]),
        ("# only a comment\n", 1, None, ["empty"]),
        ("- plugin: shell\n  cmd: x\n", 1, None, ["not a list", "plugin: serial"]),
        ("just text\n", 1, None, ["must be a task", "the string 'just text'"]),
        ("plugin: serial\ntasks:\n  - name: Build\n", 3, "plugin", ["no plugin: key", "shell"]),
        (
            "plugin: serial\ntasks:\n  - plugin: shell\n    cmd: x\n  - 42\n",
            5,
            None,
            ["item 2", "the number 42"],
        ),
        ("plugin: serial\ntasks: nothing\n", 2, "tasks", ["must be a list"]),
        ("plugin: [serial]\n", 1, "plugin", ["plugin name"]),
        ("plugin: shel\ncmd: x\n", 1, "plugin", ["did you mean 'shell'", "installed plugins"]),
        ("plugin: shell\ncmd: x\ntimeout: soon\n", 3, "timeout", ["timeout='soon'"]),
        ("plugin: shell\ncmd: x\nretries: -1\n", 3, "retries", ["retries=-1"]),
        ("plugin: shell\ncmd: {a: 1}\n", 2, "cmd", ["not a command"]),
        ("plugin: parallel\non_error: explode\ntasks: []\n", 2, "on_error", ["on_error='explode'"]),
        (
            "plugin: shell\ncmd: x\ntiemout: 3\n",
            3,
            "tiemout",
            ["unknown key 'tiemout'", "did you mean 'timeout'", "accepted keys", "retries"],
        ),
        ("plugin: shell\ncmd: x\ntasks: []\n", 3, "tasks", ["unknown key 'tasks'"]),
        ("plugin: shell\nname: Build\n", 1, "cmd", ["needs the key cmd"]),
        ("plugin: shell\nname: ''\ncmd: x\n", 2, "name", ["non-empty string"]),
        ("plugin: shell\n1: x\ncmd: x\n", 2, None, ["the key 1"]),
        ("plugin: shell\ncmd: a\ncmd: b\n", 3, None, ["appears twice", "line 2"]),
        (
            "plugin: parallel\ntasks:\n  - {plugin: shell, name: Build, cmd: x}\n"
            "  - {plugin: shell, name: build, cmd: y}\n",
            4,
            "name",
            ["under 'build'", "line 3", "register"],
        ),
        ("plugin: shell\ncmd: x\nexecutor: warp\n", 1, "executor", ["executor='warp'"]),
        (
            "plugin: callback\ncallback: no_such_module_x:run\n",
            2,
            "callback",
            ["cannot be imported"],
        ),
        ("plugin: callback\ncallback: os.path\n", 2, "callback", ["package.module:function"]),
        ("plugin: callback\ncallback: os:no_such_thing\n", 2, "callback", ["no attribute"]),
        ("plugin: callback\ncallback: os:sep\n", 2, "callback", ["not a function"]),
        ("a: &a [*a]\nplugin: serial\ntasks: *a\n", 1, None, ["recursive"]),
    ],
)
def test_bad_input_is_one_clear_error_with_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str | None, fragments: list[str]
) -> None:
    path = tmp_path / "flow.yml"
    path.write_text(text)
    with pytest.raises(flow2.FlowFileError) as caught:
        flow2.load(path)
    error = caught.value
    assert isinstance(error, flow2.DefinitionError)
    assert (error.file, error.line) == (str(path), line), str(error)
    assert error.key == key
    assert str(error).startswith(f"{path}:{line}: ")
    for fragment in fragments:
        assert fragment in str(error)


def test_self_containing_alias_is_an_error_not_a_hang(tmp_path: Path) -> None:
    error = load_error(tmp_path, "&node\nplugin: serial\ntasks:\n  - *node\n")
    assert "contains itself" in str(error)


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(flow2.FlowFileError, match="cannot read"):
        flow2.load(tmp_path / "missing.yml")
    path = tmp_path / "latin.yml"
    path.write_bytes(b"plugin: shell\ncmd: echo \xe9\n")
    with pytest.raises(flow2.FlowFileError, match="not UTF-8"):
        flow2.load(path)


def test_only_safe_yaml_is_read(tmp_path: Path) -> None:
    error = load_error(tmp_path, "plugin: !!python/object/apply:os.system ['true']\n")
    assert "invalid YAML" in str(error)


def test_errors_after_templating_point_at_flow2_render(tmp_path: Path) -> None:
    error = load_error(tmp_path, "plugin: shell\ncmd: {{ '[' }}\n")
    assert "flow2 render" in str(error)


# Finding flows by name ---------------------------------------------------------


def test_flow_names_are_looked_up_locally_then_in_the_user_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    user = user_flows_folder()
    assert user == tmp_path / "config" / "flow2" / "flows"
    user.mkdir(parents=True)
    (user / "deploy.yaml").write_text("plugin: shell\ncmd: x\n")
    (user / "release.yml").write_text("plugin: shell\ncmd: x\n")
    local = tmp_path / ".flow2" / "flows"
    local.mkdir(parents=True)
    (local / "release.yml").write_text("plugin: shell\ncmd: x\n")
    assert find_flow("deploy").resolve() == (user / "deploy.yaml").resolve()
    assert find_flow("release").resolve() == (local / "release.yml").resolve()
    with pytest.raises(flow2.DefinitionError, match="flows there: deploy, release"):
        find_flow("relase")
    with pytest.raises(flow2.DefinitionError, match="no such flow file"):
        find_flow("sub/missing.yml")


def test_user_folder_defaults_to_dot_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert user_flows_folder() == Path.home() / ".config" / "flow2" / "flows"


def test_read_flow_keeps_plugin_names_and_lines_for_show_and_graph(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - plugin: shell
            cmd: x
        """,
    )
    loaded = read_flow(path, {})
    assert [(node.plugin, node.line) for node in loaded.nodes()] == [("serial", 1), ("shell", 3)]


def test_whole_expression_that_is_undefined_fails_the_task(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - {plugin: callback, name: Data, callback: "builtins:dict"}
          - plugin: shell
            name: Use
            cwd: ${{ data.folder }}
            cmd: echo
        """,
    )
    with pytest.raises(flow2.ExpressionError, match="has no attribute 'folder'"):
        run(quiet().run(flow2.load(path)))


def test_expression_raising_an_error_names_it(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "plugin: shell\nname: Divide\ncmd: echo ${{ 1 // n }}\n")
    with pytest.raises(flow2.ExpressionError, match=r"flow.yml:3: task 'Divide', cmd: Zero"):
        run(quiet().run(flow2.load(path, n=0), {"n": 0}))


def test_expressions_inside_mappings_and_lists_are_evaluated(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: shell
        name: Env
        env: {WHO: "${{ who | upper }}", N: 3}
        cmd: [python, -c, "import os, sys; print(os.environ['WHO'], os.environ['N'], sys.argv[1])",
              "${{ who }}!"]
        """,
    )
    context = run(quiet().run(flow2.load(path, who="ann"), {"who": "ann"}))
    assert context["env"]["stdout"] == "ANN 3 ann!"


@pytest.mark.parametrize("depth", [900, 3000])
def test_deeply_nested_documents_are_a_clean_error(tmp_path: Path, depth: int) -> None:
    text = "{plugin: serial, tasks: [" * depth + "]}" * depth + "\n"
    error = load_error(tmp_path, text)
    assert "nested too deeply" in str(error) or "maximum nesting depth" in str(error)


def test_errors_in_generated_lines_say_the_line_is_of_the_rendered_text(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """
        plugin: parallel
        tasks:
        {% for region in ["eu", "us"] %}
          - plugin: shell
            name: Deploy {{ region }}
            cmd: ./deploy {{ region }}
            {% if region == "us" %}
            tiemout: 3
            {% endif %}
        {% endfor %}
        """,
    )
    assert error.line == 9 and error.key == "tiemout"
    assert "line 9 of the text after templating" in str(error) and "flow2 render" in str(error)
    rendered = flow2.Flow(error.file).render().splitlines()
    assert rendered[error.line - 1].strip() == "tiemout: 3"


def test_executor_key_is_passed_to_the_task_like_any_option(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        executor: thread
        tasks:
          - {plugin: callback, callback: "os.path:join", executor: process}
        """,
    )
    root = flow2.load(path)
    assert root.executor == "thread" and root.children[0].executor == "process"


def test_run_time_expressions_are_compiled_once_and_evaluated_each_time() -> None:
    from flow2._flows._templates import _compiled_expression, _compiled_template, render_runtime

    _compiled_expression.cache_clear()
    _compiled_template.cache_clear()
    where = {"file": "f.yml", "line": 1, "option": "cmd"}
    for number in range(3):
        context = {"build": {"stdout": f"wheel-{number}"}}
        assert render_runtime("${{ build.stdout }}", context, where) == f"wheel-{number}"
        text = render_runtime("upload ${{ build.stdout }}", context, where)
        assert text == f"upload wheel-{number}"
    assert _compiled_expression.cache_info().misses == 1
    assert _compiled_template.cache_info().misses == 1


def test_a_register_that_is_not_a_string_names_the_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, "plugin: shell\ncmd: echo\nregister: [a]\n")
    assert error.line == 3 and "register=['a'] is not a result key" in str(error)


# Two tasks with one name ---------------------------------------------------

TWO_DEPLOYS = """
plugin: serial
tasks:
  - plugin: serial
    name: Europe
    tasks:
      - {{plugin: shell, name: Deploy, register: deploy_eu, cmd: "true"}}
  - plugin: serial
    name: America
    tasks:
      - plugin: shell
        name: Deploy
        register: {register}
        cmd: {cmd}
{extra}"""


def two_deploys(
    tmp_path: Path, *, register: str = "deploy_us", cmd: str = '"true"', extra: str = ""
):
    extra = textwrap.indent(extra, " " * 8) if extra else ""
    return write_flow(tmp_path, TWO_DEPLOYS.format(register=register, cmd=cmd, extra=extra))


@pytest.mark.parametrize(
    ("change", "line", "fragment"),
    [
        ({"extra": "executor: warp\n"}, 10, "executor='warp'"),
        ({"register": "deploy_eu"}, 10, "under 'deploy_eu'"),
        ({"extra": "timeout: soon\n"}, 14, "timeout='soon'"),
        ({"extra": "retries: -1\n"}, 14, "retries=-1"),
    ],
)
def test_two_tasks_named_alike_errors_name_the_wrong_one(
    tmp_path: Path, change: dict[str, str], line: int, fragment: str
) -> None:
    # The second Deploy is wrong: the error names its line, not the first's (6).
    path = two_deploys(tmp_path, **change)
    with pytest.raises(flow2.FlowFileError) as caught:
        flow2.load(path)
    assert (caught.value.file, caught.value.line) == (str(path), line), str(caught.value)
    assert fragment in str(caught.value)
    assert caught.value.task == "Deploy"


def test_two_tasks_named_alike_run_time_errors_name_the_wrong_one(tmp_path: Path) -> None:
    path = two_deploys(tmp_path, cmd="echo ${{ deploy_eu.missing.deeper }}")
    tree = flow2.load(path)
    second = tree.children[1].children[0]
    with pytest.raises(flow2.ExpressionError) as caught:
        run(quiet().run(tree))
    error = caught.value
    assert (error.file, error.line, error.option) == (str(path), 13, "cmd")
    assert error.task == "Deploy" and error.task_definition is second
    assert error.expression == "echo ${{ deploy_eu.missing.deeper }}"
    assert str(error).startswith(f"{path}:13: task 'Deploy', cmd: ")


def test_a_flow_file_error_from_the_engine_keeps_the_task_and_option(tmp_path: Path) -> None:
    tree_error = load_error(tmp_path, "plugin: shell\ncmd: x\nexecutor: warp\n")
    assert (tree_error.option, tree_error.value) == ("executor", "warp")
    assert tree_error.task_definition is not None and tree_error.task_definition.name == "Task 1"
    option_error = load_error(tmp_path, "plugin: shell\nname: B\ncmd: x\ntimeout: soon\n")
    assert (option_error.task, option_error.option, option_error.value) == ("B", "timeout", "soon")
    assert (option_error.key, option_error.line) == ("timeout", 4)


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        # {{ }} for a task's result: the fix is ${{ }}, not a command-line variable.
        (
            "plugin: serial\ntasks:\n  - {plugin: shell, name: build, cmd: x}\n"
            "  - {plugin: shell, name: Use, cmd: 'echo {{ build.stdout }}'}\n",
            {},
            ["'build' is a task's result", "${{ build.… }} instead of {{ build.… }}"],
        ),
        ("plugin: shell\ncmd: echo {{ verison }}\n", {"version": "1"}, ["did you mean 'version'?"]),
        ("plugin: shell\ncmd: echo {{ name | uper }}\n", {"name": "a"}, ["did you mean 'upper'?"]),
        ("plugin: shell\ncmd: echo {{ 1 is odd_ }}\n", {}, ["did you mean 'odd'?"]),
        ("plugin: shell\ncmd: x\niff: true\n", {}, ["did you mean 'if'?", "needs, when, if"]),
    ],
)
def test_first_mistakes_name_the_fix(
    tmp_path: Path, text: str, variables: dict[str, Any], expected: list[str]
) -> None:
    message = str(load_error(tmp_path, text, **variables))
    for part in expected:
        assert part in message, message
