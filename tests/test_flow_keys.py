"""The short format (cmd:, tasks:, parallel: without plugin:) and the keys groups hand
down to their tasks: env:, dir:, dotenv:."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import flow2

from .conftest import run, write_flow


def load(folder: Path, text: str) -> flow2.Task:
    return flow2.load(write_flow(folder, text))


def leaves(task: flow2.Task) -> dict[str, flow2.Task]:
    found = {}
    pending = [task]
    while pending:
        current = pending.pop()
        if current.children:
            pending.extend(current.children)
        else:
            found[current.name] = current
    return found


# The short format ---------------------------------------------------------------------


def test_cmd_tasks_and_parallel_say_what_a_node_is(tmp_path: Path) -> None:
    root = load(
        tmp_path,
        """\
        tasks:
          - {name: one, cmd: 'true'}
          - name: both
            parallel:
              - {name: two, cmd: 'true'}
              - {name: three, plugin: callback, callback: 'os:getcwd'}
        """,
    )
    assert type(root) is flow2.SerialTaskGroup
    one, both = root.children
    assert type(one) is flow2.ShellTask
    assert type(both) is flow2.ParallelTaskGroup
    assert [type(child).__name__ for child in both.children] == ["ShellTask", "CallbackPlugin"]


def test_plugin_says_otherwise(tmp_path: Path) -> None:
    root = load(tmp_path, "plugin: parallel\ntasks:\n  - {cmd: 'true'}\n")
    assert type(root) is flow2.ParallelTaskGroup
    root = load(tmp_path, "plugin: parallel\nparallel:\n  - {cmd: 'true'}\n")
    assert type(root) is flow2.ParallelTaskGroup


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ("name: x\ncmd: 'true'\ntasks: []\n", 3, "tasks", "both cmd: and tasks:"),
        ("cmd: 'true'\nparallel: []\n", 2, "parallel", "both cmd: and parallel:"),
        ("tasks: []\nparallel: []\n", 2, "parallel", "under one key: tasks:"),
        ("plugin: serial\ntasks: []\nparallel: []\n", 3, "parallel", "both tasks: and parallel:"),
        ("plugin: serial\nparallel: []\n", 2, "parallel", "plugin: serial says otherwise"),
        ("tasks:\n  - name: x\n", 2, "plugin", "no plugin: key, nor cmd:, tasks: or parallel:"),
        ("parallel: {a: 1}\n", 1, "parallel", "parallel: of 'Task 1' must be a list"),
    ],
)
def test_a_node_that_is_unclear_is_an_error_with_line_and_fix(
    tmp_path: Path, text: str, line: int, key: str, fragment: str
) -> None:
    path = write_flow(tmp_path, text)
    with pytest.raises(flow2.FlowFileError) as caught:
        flow2.load(path)
    error = caught.value
    assert (error.file, error.line, error.key) == (str(path), line, key), str(error)
    assert fragment in error.reason


# env: and dir: on groups -------------------------------------------------------------


def test_env_merges_from_outer_groups_to_the_task(tmp_path: Path) -> None:
    root = load(
        tmp_path,
        """\
        env: {LEVEL: top, TOP: t}
        tasks:
          - {name: plain, cmd: 'true'}
          - name: inner
            env: {LEVEL: inner, INNER: i}
            tasks:
              - {name: own, cmd: 'true', env: {LEVEL: own}}
              - {name: inherits, cmd: 'true'}
              - {name: callback, plugin: callback, callback: 'os:getcwd'}
        """,
    )
    tasks = leaves(root)
    assert tasks["plain"].env == {"LEVEL": "top", "TOP": "t"}
    assert tasks["own"].env == {"LEVEL": "own", "TOP": "t", "INNER": "i"}
    assert tasks["inherits"].env == {"LEVEL": "inner", "TOP": "t", "INNER": "i"}
    assert not hasattr(tasks["callback"], "env")


def test_dir_nests_and_a_task_may_use_dir_or_cwd(tmp_path: Path) -> None:
    root = load(
        tmp_path,
        """\
        dir: project
        tasks:
          - {name: top, cmd: 'true'}
          - name: docs
            dir: docs
            tasks:
              - {name: html, cmd: 'true'}
              - {name: own, cmd: 'true', dir: api}
              - {name: absolute, cmd: 'true', cwd: /tmp}
        """,
    )
    tasks = leaves(root)
    assert tasks["top"].cwd == "project"
    assert tasks["html"].cwd == os.path.join("project", "docs")
    assert tasks["own"].cwd == os.path.join("project", "docs", "api")
    assert tasks["absolute"].cwd == "/tmp"


def test_group_env_and_dir_reach_the_command(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = write_flow(
        tmp_path,
        f"""\
        env: {{GREETING: hello}}
        dir: {tmp_path / "sub"}
        tasks:
          - name: say
            cmd: echo "$GREETING from $(pwd)"
        """,
    )
    context = run(flow2.load(path).run())
    assert context["say"]["stdout"] == f"hello from {tmp_path / 'sub'}"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("env: [A]\ntasks: []\n", "env", "env: must be a mapping"),
        ("dir: [a]\ntasks: []\n", "dir", "dir: must be a directory"),
        ("tasks:\n  - {cmd: x, dir: a, cwd: b}\n", "dir", "both dir: and cwd:"),
        ("tasks:\n  - {plugin: callback, callback: 'os:getcwd', dir: a}\n", "dir", "unknown key"),
    ],
)
def test_bad_group_keys_are_errors(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    with pytest.raises(flow2.FlowFileError) as caught:
        load(tmp_path, text)
    assert caught.value.key == key
    assert fragment in caught.value.reason


# dotenv: -----------------------------------------------------------------------------

DOTENV = """\
# a comment
export PLAIN=value # a trailing comment
SINGLE='kept $AS written # too'
DOUBLE="line one\\nline two"
MULTI="-----BEGIN KEY-----
abc
-----END KEY-----"
EMPTY=
SPACED =  padded
"""


def test_dotenv_files_are_read_relative_to_the_flow_file(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / ".env").write_text(DOTENV)
    (tmp_path / "config" / ".env.local").write_text("PLAIN=local\n")
    root = load(
        tmp_path,
        """\
        dotenv: [config/.env, {path: config/.env.local, optional: true},
                 {path: config/missing.env, optional: true}]
        tasks:
          - {name: one, cmd: 'true'}
          - name: group
            env: {EMPTY: from env}
            tasks:
              - {name: two, cmd: 'true', env: {SPACED: own}}
        """,
    )
    tasks = leaves(root)
    assert tasks["one"].env == {
        "PLAIN": "local",  # a later file wins
        "SINGLE": "kept $AS written # too",
        "DOUBLE": "line one\nline two",
        "MULTI": "-----BEGIN KEY-----\nabc\n-----END KEY-----",
        "EMPTY": "",
        "SPACED": "padded",
    }
    # env: beats dotenv: at the same level and below, a task's own env beats both.
    assert tasks["two"].env["EMPTY"] == "from env"
    assert tasks["two"].env["SPACED"] == "own"


def test_dotenv_on_a_group_reaches_only_its_tasks(tmp_path: Path) -> None:
    (tmp_path / "deploy.env").write_text("TARGET=prod\n")
    root = load(
        tmp_path,
        """\
        tasks:
          - {name: build, cmd: 'true'}
          - name: deploy
            dotenv: deploy.env
            tasks: [{name: push, cmd: 'true'}]
        """,
    )
    tasks = leaves(root)
    assert tasks["build"].env == {}
    assert tasks["push"].env == {"TARGET": "prod"}


def test_a_missing_dotenv_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "name: x\ndotenv: [.env.prod]\ncmd: 'true'\n")
    with pytest.raises(flow2.FlowFileError) as caught:
        flow2.load(path)
    error = caught.value
    assert (error.line, error.key, error.value) == (2, "dotenv", ".env.prod")
    assert "'.env.prod' does not exist" in error.reason
    assert "optional: true" in error.reason


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("A=1\nthis is secret-value-123\n", "line 2 is not NAME=value"),
        ('A="secret-value-123\n', "line 1: the value's \" quote is never closed"),
        ("A='secret-value-123' tail\n", "line 1: text after the closing quote"),
    ],
)
def test_a_malformed_dotenv_line_is_an_error_without_the_value(
    tmp_path: Path, text: str, fragment: str
) -> None:
    (tmp_path / ".env").write_text(text)
    path = write_flow(tmp_path, "dotenv: .env\ncmd: 'true'\n")
    with pytest.raises(flow2.FlowFileError) as caught:
        flow2.load(path)
    assert fragment in caught.value.reason
    assert "secret-value-123" not in str(caught.value)


@pytest.mark.parametrize(
    "value", ["[1]", "{path: .env, required: false}", "{path: .env, optional: 1}"]
)
def test_a_malformed_dotenv_key_is_an_error(tmp_path: Path, value: str) -> None:
    path = write_flow(tmp_path, f"dotenv: {value}\ncmd: 'true'\n")
    with pytest.raises(flow2.FlowFileError) as caught:
        flow2.load(path)
    assert caught.value.key == "dotenv"
    assert "optional: true" in caught.value.reason


def test_dotenv_values_with_secret_names_are_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flow2._cli._app import main

    monkeypatch.setenv("NO_COLOR", "1")
    (tmp_path / ".env").write_text("API_TOKEN=tok-0123456789\nREGION=eu-west-1\n")
    path = write_flow(tmp_path, "name: show\ndotenv: .env\ncmd: echo $API_TOKEN $REGION\n")
    for arguments in (["run", str(path), "--display", "plain"], ["show", str(path)]):
        with pytest.raises(SystemExit) as exited:
            main(arguments)
        output = capsys.readouterr()
        assert exited.value.code == 0, output
        assert "tok-0123456789" not in output.out + output.err
        assert "***" in output.out
        assert "eu-west-1" in output.out


# description: ------------------------------------------------------------------------


def test_descriptions_reach_the_event_file_and_the_html_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from flow2._cli._app import main

    path = write_flow(
        tmp_path,
        """\
        name: Release
        description: Ship it
        tasks:
          - {name: build, cmd: 'true', description: Build the wheel}
          - {name: plain, cmd: 'true'}
        """,
    )
    events, report = tmp_path / "events.jsonl", tmp_path / "run.html"
    arguments = ["run", str(path), "--display", "none", "--events", str(events)]
    with pytest.raises(SystemExit) as exited:
        main([*arguments, "--report", str(report), "--no-store"])
    assert exited.value.code == 0, capsys.readouterr()
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    described = {line["task"]: line.get("description") for line in lines if "task" in line}
    assert described == {"Release": "Ship it", "build": "Build the wheel", "plain": None}
    record = flow2.read_events(events)
    assert [task.description for task in record.tasks] == ["Ship it", "Build the wheel", ""]
    assert "Build the wheel" in report.read_text()
