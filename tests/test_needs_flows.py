"""needs:, if:, partial runs, --dry-run and graph edges in flow files and on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import flow2
from flow2._cli._app import cli

from .conftest import run, write_flow

# Each task appends its name to a log file: the side effects show what ran.
RELEASE = """
name: Release
plugin: serial
tasks:
  - name: wheel
    plugin: shell
    cmd: echo wheel >> {log}
  - name: checks
    plugin: parallel
    tasks:
      - name: deploy
        plugin: shell
        cmd: echo deploy-${{{{ tests.stdout | trim }}}} >> {log}
      - name: tests
        plugin: shell
        cmd: sleep 0.2; echo tests >> {log}; echo ok
      - name: docs
        plugin: shell
        if: ${{{{ env == 'prod' }}}}
        cmd: echo docs >> {log}
      - name: notify
        plugin: shell
        needs: [deploy]
        if: tests.returncode == 0
        cmd: echo notify >> {log}
"""


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "log.txt"
    return write_flow(tmp_path, RELEASE.format(log=log)), log


def invoke(*arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(arguments))
    return result.exit_code, result.output


def ran(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_expression_reading_a_parallel_sibling_waits_for_it(
    release: tuple[Path, Path],
) -> None:
    flow, log = release
    code, output = invoke("run", str(flow), "env=dev", "--display", "plain")
    assert code == 0, output
    assert ran(log) == ["wheel", "tests", "deploy-ok", "notify"]
    assert "SKIPPED   docs: condition is false" in output


def test_if_true_runs(release: tuple[Path, Path]) -> None:
    flow, log = release
    code, output = invoke("run", str(flow), "env=prod", "--display", "none")
    assert code == 0, output
    assert "docs" in ran(log)


def test_only_skip_until_on_the_command_line(release: tuple[Path, Path]) -> None:
    flow, log = release
    code, output = invoke("run", str(flow), "env=prod", "--only", "deploy", "--display", "plain")
    assert code == 0, output
    assert ran(log) == ["tests", "deploy-ok"]
    assert "SKIPPED   wheel: left out by --only" in output
    log.unlink()
    code, output = invoke("run", str(flow), "env=prod", "--skip", "tests", "--display", "plain")
    assert code == 0, output
    assert ran(log) == ["wheel", "docs"]
    assert "SKIPPED   deploy: needs 'tests', which was skipped" in output
    log.unlink()
    code, output = invoke("run", str(flow), "env=prod", "--until", "wheel", "--display", "none")
    assert code == 0, output
    assert ran(log) == ["wheel"]
    log.unlink()
    code, output = invoke("run", str(flow), "env=prod", "--only", "release/checks")
    assert code == 0, output
    assert "wheel" not in ran(log) and "notify" in ran(log)


def test_an_unknown_task_on_the_command_line_is_a_usage_error(
    release: tuple[Path, Path],
) -> None:
    flow, log = release
    code, output = invoke("run", str(flow), "env=prod", "--only", "deplyo")
    assert code == 2
    assert "--only 'deplyo' names no task" in output and "did you mean 'deploy'?" in output
    assert ran(log) == []


def test_from_takes_the_results_before_it_from_the_run_store(release: tuple[Path, Path]) -> None:
    flow, log = release
    code, output = invoke("run", str(flow), "env=prod", "--from", "deploy")
    assert code == 2 and "no run store" in output
    assert ran(log) == []
    code, output = invoke("run", str(flow), "env=prod", "--display", "none")
    assert code == 0, output
    log.unlink()
    code, output = invoke("run", str(flow), "env=prod", "--from", "deploy", "--display", "none")
    assert code == 0, output
    assert sorted(ran(log)) == ["deploy-ok", "docs", "notify", "tests"]  # not wheel


def test_dry_run_prints_the_plan_and_runs_nothing(release: tuple[Path, Path]) -> None:
    flow, log = release
    code, output = invoke("run", str(flow), "env=dev", "--skip", "wheel", "--dry-run")
    assert code == 0, output
    assert ran(log) == []
    assert "wheel → wheel  SKIP (left out by --skip)" in output
    assert "docs → docs  SKIP (condition is false)" in output
    assert "deploy → deploy  RUN  needs: tests" in output
    assert "notify → notify  RUN (if its condition holds)  needs: deploy, tests" in output


def test_graph_draws_needs_in_mermaid_and_dot(release: tuple[Path, Path]) -> None:
    flow, _ = release
    code, mermaid = invoke("graph", str(flow), "env=dev")
    assert code == 0, mermaid
    ids = {line.split("[")[0].strip(): line for line in mermaid.splitlines() if '["' in line}
    by_name = {line.split('"')[1]: identifier for identifier, line in ids.items()}
    assert f"  {by_name['tests']} -. needs .-> {by_name['deploy']}" in mermaid
    assert f"  {by_name['deploy']} -. needs .-> {by_name['notify']}" in mermaid
    code, dot = invoke("graph", "--dot", str(flow), "env=dev")
    assert code == 0, dot
    assert f'{by_name["tests"]} -> {by_name["deploy"]} [style=dashed, label="needs"];' in dot


BAD = """
name: Release
plugin: serial
tasks:
  - name: deploy
    plugin: shell
    needs: [wheel]
    cmd: echo
  - name: wheel
    plugin: shell
    needs: whel
    cmd: echo
  - name: loop
    plugin: parallel
    tasks:
      - name: b
        plugin: shell
        needs: c
        cmd: echo
      - name: c
        plugin: shell
        cmd: echo ${{ b.stdout }}
"""


def test_validate_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, BAD)
    code, output = invoke("validate", str(flow))
    assert code == 2
    assert f"{flow}:6: task 'deploy' needs 'wheel', but task 'wheel'" in output
    assert f"{flow}:10: task 'wheel' needs 'whel'" in output and "did you mean 'wheel'" in output
    assert f"{flow}:17: tasks need each other in a cycle: b → c → b" in output


def test_bad_needs_and_if_values_name_the_line(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, "plugin: shell\ncmd: echo\nneeds: {a: 1}\n")
    with pytest.raises(flow2.FlowFileError, match="needs=") as caught:
        flow2.load(flow)
    assert caught.value.line == 3
    flow = write_flow(tmp_path, "plugin: shell\ncmd: echo\nif: [1]\n")
    with pytest.raises(flow2.FlowFileError, match="if: must be an expression") as caught:
        flow2.load(flow)
    assert caught.value.line == 3


def test_if_false_and_a_failing_expression(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - {name: a, plugin: shell, cmd: echo a, if: false}
          - {name: b, plugin: shell, cmd: echo b, if: "${{ 1 / 0 }}"}
        """,
    )
    context = run(flow2.Runner(display="none").run(flow2.load(flow), raises=False))
    assert "a" not in context
    assert isinstance(context["b"], flow2.ExpressionError)


@pytest.mark.parametrize(
    "deploy",
    [
        "plugin: callback\n            callback: 'reader:deploy'",
        "plugin: shell\n            cmd: echo \"${{ context['build'] }}\"",
    ],
    ids=["callback", "expression"],
)
def test_a_parallel_siblings_result_read_without_needs_names_the_fix_in_a_flow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deploy: str
) -> None:
    (tmp_path / "reader.py").write_text(
        "import asyncio\n\n"
        "async def build(context):\n    await asyncio.sleep(60)\n\n"
        "def deploy(context):\n    return context['build']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    flow = write_flow(
        tmp_path,
        f"""
        name: Release
        plugin: parallel
        on_error: cancel
        tasks:
          - name: Build
            plugin: callback
            callback: 'reader:build'
          - name: Deploy
            {deploy}
        """,
    )
    result = run(flow2.Runner(display="none").execute(flow2.load(flow)))
    (failure,) = result.failures
    assert failure.path == ("Release", "Deploy")
    assert (
        "task 'Deploy' read context['build'] before task 'Build' stored it: they run in "
        "parallel; add needs: [build] (flow files)"
    ) in str(failure.error)
