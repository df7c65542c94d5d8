"""The ``flow2`` command, end to end in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import write_flow
from .test_plugins import make_distribution

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ)  # clean_environ has cleared FLOW2_* and the color variables
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1", **extra)
    return env


def flow2(
    *arguments: str | Path, cwd: Path | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flow2", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=cwd,
        env=environment(**extra),
    )


pytestmark = pytest.mark.usefixtures("python_first_on_path")


def assert_usage_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr


# Running -----------------------------------------------------------------------


def test_release_example_runs_and_passes_the_build_result_to_publish() -> None:
    result = flow2("run", EXAMPLES / "release.yml", "version=2.0.1", "--display", "plain")
    assert result.returncode == 0, result.stderr
    assert "SUCCESS   Release 2.0.1" in result.stdout
    assert "[Publish] uploading dist/demo-2.0.1-py3-none-any.whl" in result.stdout
    assert "[Test] test 3 passed" in result.stdout  # shell output, attributed to its task


def test_results_example_passes_a_version_between_tasks() -> None:
    result = flow2("run", EXAMPLES / "results.yml", "--display", "plain")
    assert result.returncode == 0, result.stderr
    assert "tagging v1.5.0" in result.stdout


def test_variables_are_yaml_scalars_and_start_the_context(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: shell
        name: Show
        cmd: >-
          python -c "print({{ n + 1 }}, '{{ tags | join('+') }}', '{{ empty }}' == '',
          ${{ n * 2 }}, '${{ label }}')"
        """,
    )
    result = flow2("run", path, "n=3", "tags=[a, b]", "empty=", "label=x y", "--display", "plain")
    assert result.returncode == 0, result.stderr
    assert "[Show] 4 a+b True 6 x y" in result.stdout


def test_failing_task_exits_1_with_its_stderr(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - plugin: shell
            name: Fail
            cmd: [python, -c, "import sys; sys.exit('disk full')"]
          - plugin: shell
            name: Never
            cmd: echo never
        """,
    )
    result = flow2("run", path, "--display", "plain")
    assert result.returncode == 1
    assert "exited with code 1" in result.stdout and "disk full" in result.stdout
    assert "SKIPPED   Never" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_failure_inside_a_parallel_group_that_continues_still_exits_1(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: parallel
        tasks:
          - {plugin: shell, name: Good, cmd: "python -c pass"}
          - {plugin: shell, name: Bad, cmd: [python, -c, "raise SystemExit(4)"]}
        """,
    )
    result = flow2("run", path, "--display", "plain")
    assert result.returncode == 1
    assert "PARTIAL" in result.stdout and "SUCCESS   Good" in result.stdout


def test_quiet_hides_task_output_and_events_go_to_a_file(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "plugin: shell\nname: Chat\ncmd: python -c \"print('chatter')\"\n")
    events = tmp_path / "events.jsonl"
    result = flow2("run", path, "--display", "plain", "--quiet", "--events", events)
    assert result.returncode == 0, result.stderr
    assert "chatter" not in result.stdout
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert any(line.get("task") == "Chat" and line.get("status") == "succeeded" for line in lines)
    loud = flow2("run", path, "--display", "plain", "--verbose")
    assert "[Chat] chatter" in loud.stdout
    assert_usage_error(flow2("run", path, "-q", "-v"), "contradict")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_ctrl_c_while_the_flow_loads_exits_130(tmp_path: Path) -> None:
    # The module of a callback is imported as the flow loads; Ctrl-C there
    # is simulated by the import raising KeyboardInterrupt itself.
    (tmp_path / "interrupted_module.py").write_text("raise KeyboardInterrupt\n")
    path = write_flow(tmp_path, "plugin: callback\ncallback: interrupted_module:f\n")
    result = flow2("run", path, cwd=tmp_path)
    assert result.returncode == 130, result.stdout + result.stderr
    assert "interrupted while loading the flow; nothing ran" in result.stderr
    assert "Traceback" not in result.stderr and "Aborted" not in result.stderr


def test_ctrl_c_cancels_running_tasks_reports_them_and_exits_130(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    path = write_flow(
        tmp_path,
        f"""
        plugin: parallel
        tasks:
          - plugin: shell
            name: Sleeper
            cmd:
              - python
              - -c
              - |
                import os, time
                open({str(pid_file) + ".tmp"!r}, "w").write(str(os.getpid()))
                os.rename({str(pid_file) + ".tmp"!r}, {str(pid_file)!r})
                time.sleep(600)
          - {{plugin: shell, name: Quick, cmd: "python -c pass"}}
        """,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "flow2", "run", str(path), "--display", "plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pid_file.exists(), "the command never started"
        child = int(pid_file.read_text())
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stdout + stderr
    assert "CANCELLED Sleeper" in stdout
    assert "Traceback" not in stderr
    assert not Path(f"/proc/{child}").exists() or (
        Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    )


# Checking and drawing ------------------------------------------------------------


def test_validate_render_show_and_graph(tmp_path: Path) -> None:
    release = EXAMPLES / "release.yml"
    result = flow2("validate", release, "version=1.0")
    assert result.returncode == 0
    assert "valid flow 'Release 1.0', 4 tasks in 2 groups" in result.stdout
    single = tmp_path / "single.yml"
    single.write_text("plugin: serial\ntasks:\n  - {plugin: shell, cmd: echo}\n")
    assert "1 task in 1 group\n" in flow2("validate", single).stdout

    rendered = flow2("render", release, "version=1.0", "dry_run=false")
    assert "name: Release 1.0" in rendered.stdout
    assert "${{ wheel.stdout }}" in rendered.stdout and "DRY_RUN" not in rendered.stdout

    shown = flow2("show", release).stdout.splitlines()
    assert shown[0].startswith("Release 0.0.0  [serial]")
    assert shown[1].startswith("├── Checks  [parallel, on_error=cancel]")
    assert shown[-1].startswith("└── Publish → publish  [shell,")

    mermaid = flow2("graph", release).stdout
    assert mermaid.startswith("flowchart LR\n")
    assert '  subgraph n1 ["Release 0.0.0 (serial)"]' in mermaid
    for leaf in ("n3", "n4", "n5"):  # lint, test and build all come before publish
        assert f"  {leaf} --> n6\n" in mermaid + "\n"

    dot = flow2("graph", "--dot", release).stdout
    assert dot.startswith("digraph flow {") and "n5 -> n6;" in dot
    assert 'subgraph cluster_n2 { label="Checks (parallel)";' in dot


def test_graph_of_nested_serial_groups_chains_their_ends(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        plugin: serial
        name: All
        tasks:
          - plugin: serial
            name: 'First "one"'
            tasks:
              - {plugin: shell, name: A, cmd: x}
              - {plugin: shell, name: B, cmd: x}
          - {plugin: parallel, name: Empty, tasks: []}
          - {plugin: shell, name: "C\\nD", cmd: x}
        """,
    )
    mermaid = flow2("graph", path).stdout
    assert 'subgraph n2 ["First #quot;one#quot; (serial)"]' in mermaid
    assert 'n6["C<br>D"]' in mermaid  # a line break would end the statement
    assert 'n5["Empty (empty parallel)"]' in mermaid
    assert mermaid.strip().splitlines()[-3:] == ["  n3 --> n4", "  n4 --> n5", "  n5 --> n6"]
    dot = flow2("graph", "--dot", path).stdout
    assert 'label="First \\"one\\" (serial)"' in dot
    assert 'n6 [label="C\\nD"];' in dot


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    from flow2._cli._app import main

    for command in ("run", "validate", "render", "show", "graph", "plugins"):
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0
        assert "Usage: flow2 " + command in capsys.readouterr().out
    assert "Exit codes" in flow2("--help").stdout  # and the real command


def test_plugins_lists_third_party_and_broken_ones(tmp_path: Path) -> None:
    site = make_distribution(tmp_path / "site")
    result = flow2("plugins", PYTHONPATH=str(site))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert any(line.startswith("greet ") and "(acme-flow2 1.0)" in line for line in lines)
    assert any(line.startswith("shell ") and "(flow2 " in line for line in lines)
    assert "BROKEN: No module named 'acme_dependency_that_is_missing'" in result.stdout
    path = write_flow(tmp_path, "plugin: greet\nname: Hi\nwho: you\noutput: true\n")
    ran = flow2("run", path, "--display", "plain", PYTHONPATH=str(site))
    assert ran.returncode == 0 and "hello you!" in ran.stdout
    broken = write_flow(tmp_path, "plugin: broken\n", "broken.yml")
    assert_usage_error(
        flow2("run", broken, PYTHONPATH=str(site)), "broken.yml:1", "acme-flow2 1.0", "failed to"
    )


def test_flows_are_found_by_name(tmp_path: Path) -> None:
    config = tmp_path / "config"
    (config / "flow2" / "flows").mkdir(parents=True)
    write_flow(config / "flow2" / "flows", "plugin: shell\nname: User flow\ncmd: x\n", "mine.yaml")
    local = tmp_path / "project" / ".flow2" / "flows"
    local.mkdir(parents=True)
    write_flow(local, "plugin: shell\nname: Local flow\ncmd: x\n", "mine.yml")
    in_project = flow2("validate", "mine", cwd=tmp_path / "project", XDG_CONFIG_HOME=str(config))
    assert "'Local flow'" in in_project.stdout
    elsewhere = flow2("validate", "mine", cwd=tmp_path, XDG_CONFIG_HOME=str(config))
    assert "'User flow'" in elsewhere.stdout
    assert_usage_error(
        flow2("validate", "nope", cwd=tmp_path, XDG_CONFIG_HOME=str(config)),
        "no flow named 'nope'",
        "flows there: mine",
    )


# Bad input: exit code 2, one message with file, line and the fix ------------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("plugin: serial\ntasks:\n  - plugin: shell\n   cmd: x\n", [":4: invalid YAML"]),
        ("", [":1: the flow is empty"]),
        ("plugin: serial\ntasks:\n  - name: Build\n", [":3: this task has no plugin: key"]),
        ("plugin: serial\ntasks:\n  - just a string\n", [":3: item 1", "must be a task"]),
        ("plugin: shell\ncmd: x\ntimeout: soon\n", [":3: task 'Task 1': timeout='soon'"]),
        ("plugin: shell\ncmd: x\ncolour: red\n", [":3:", "unknown key 'colour'", "accepted keys"]),
        ("plugin: shell\ncmd: echo {{ nope }}\n", [":2: template error", "'nope' is undefined"]),
        ("plugin: shel\n", [":1: no plugin named 'shel'; did you mean 'shell'?"]),
    ],
)
def test_bad_flow_files_exit_2_with_file_line_and_fix(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "flow.yml"
    path.write_text(text)
    result = flow2("run", path)
    assert_usage_error(result, str(path), *fragments)
    assert len(result.stderr.strip().splitlines()) <= 4  # one message, not a dump


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        # A word without "=" after FLOW is the name of a task to run.
        (["run", "flow.yml", "novalue"], "no task named 'novalue'"),
        (["run", "flow.yml", "1x=2"], "not a variable assignment"),
        (["run", "flow.yml", "n=["], "read as YAML"),
        (["run", "missing.yml"], "no such flow file"),
        (["run", "flow.yml", "--display", "fancy"], "Invalid value for '--display'"),
        (["frobnicate"], "No such command"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, arguments: list[str], fragment: str) -> None:
    write_flow(tmp_path, "plugin: shell\ncmd: x\n")
    result = flow2(*arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert fragment in result.stderr and "Traceback" not in result.stderr


def test_bad_environment_setting_is_a_usage_error(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "plugin: shell\ncmd: x\n")
    assert_usage_error(flow2("run", path, FLOW2_DISPLAY="fancy"), "fancy")


# The same commands in process: fast, and measured by coverage -------------------------


@pytest.mark.parametrize(
    ("arguments", "code", "fragment"),
    [
        (["validate", "{release}", "version=1"], 0, "valid flow 'Release 1'"),
        (["render", "{release}"], 0, "name: Release 0.0.0"),
        (["show", "{release}"], 0, "└── Publish → publish"),
        (["graph", "{release}"], 0, "n5 --> n6"),
        (["graph", "--dot", "{release}"], 0, "n5 -> n6;"),
        (["plugins"], 0, "shell     flow2._flows._shell:ShellTask"),
        (["run", "{results}", "--display", "none"], 0, ""),
        (["run", "{failing}", "--display", "plain", "-v"], 1, "exited with code 3"),
        (["run", "{failing}", "-q", "-v"], 2, "contradict"),
        (["render", "{missing}"], 2, "no such flow file"),
        (["validate", "{failing}", "x"], 2, "not a variable assignment"),
        (["validate", "{failing}", "x=[1,"], 2, "read as YAML"),
    ],
)
def test_commands_in_process(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    code: int,
    fragment: str,
) -> None:
    from flow2._cli._app import main

    monkeypatch.setenv("NO_COLOR", "1")
    failing = write_flow(tmp_path, "plugin: shell\nname: Fail\ncmd: [python, -c, 'exit(3)']\n")
    paths = {
        "release": EXAMPLES / "release.yml",
        "results": EXAMPLES / "results.yml",
        "failing": failing,
        "missing": tmp_path / "missing.yml",
    }
    with pytest.raises(SystemExit) as exited:
        main([argument.format(**paths) for argument in arguments])
    output = capsys.readouterr()
    assert exited.value.code == code, output
    assert fragment in output.out + output.err
    assert "Traceback" not in output.out + output.err
