"""A project's default flow: ``flow2 run [NAME...] [-- ARGS]``, ``flow2 list``, ``flow2 init``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import stored_run, write_flow

ROOT = Path(__file__).resolve().parent.parent

PROJECT = """\
default: test
parallel:
  - name: build
    description: Build it
    cmd: echo built > built.txt
  - name: test
    description: Test what was built
    needs: build
    cmd: pwd > where.txt
  - name: release
    cmd: touch released.txt
"""


def cli(*arguments: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``flow2 ARGUMENTS`` in ``cwd``, in a subprocess (a run may change its directory)."""
    return subprocess.run(
        [sys.executable, "-m", "flow2", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=cwd,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with a flow2.yml and a subfolder ``src/pkg``."""
    root = tmp_path / "project"
    (root / "src" / "pkg").mkdir(parents=True)
    write_flow(root, PROJECT, "flow2.yml")
    return root


def test_a_named_task_runs_with_what_it_needs_from_a_subfolder(project: Path) -> None:
    result = cli("run", "test", "--display", "plain", cwd=project / "src" / "pkg")
    assert result.returncode == 0, result.stderr
    # Said where the flow is, as the user reaches it from where they are.
    assert "flow2: running ../../flow2.yml" in result.stderr
    # The run happens in the flow's folder, as if started there.
    assert (project / "where.txt").read_text().strip() == str(project.resolve())
    assert (project / "built.txt").exists()
    assert not (project / "released.txt").exists()
    assert not (project / "src" / "pkg" / "where.txt").exists()


def test_without_a_name_the_default_task_runs(project: Path) -> None:
    result = cli("run", "--display", "plain", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "running" not in result.stderr  # the flow is in the working directory
    assert (project / "where.txt").exists() and (project / "built.txt").exists()
    assert not (project / "released.txt").exists()


def test_without_a_default_everything_runs(tmp_path: Path) -> None:
    write_flow(tmp_path, PROJECT.replace("default: test\n", ""), "flow2.yaml")
    result = cli("run", "--display", "none", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "released.txt").exists()


def test_the_nearest_flow_wins(project: Path) -> None:
    write_flow(project / "src", "tasks:\n  - {name: inner, cmd: touch inner.txt}\n", "flow2.yml")
    result = cli("run", "--display", "none", cwd=project / "src" / "pkg")
    assert result.returncode == 0, result.stderr
    assert "running ../flow2.yml" in result.stderr
    assert (project / "src" / "inner.txt").exists()
    assert not (project / "built.txt").exists()


def test_paths_given_on_the_command_line_stay_where_they_were_typed(project: Path) -> None:
    result = cli(
        "run", "build", "--display", "none", "--events", "events.jsonl", cwd=project / "src"
    )
    assert result.returncode == 0, result.stderr
    assert (project / "src" / "events.jsonl").exists()


def test_no_flow_anywhere_is_an_error_naming_the_files_and_init(tmp_path: Path) -> None:
    result = cli("run", cwd=tmp_path)
    assert result.returncode == 2
    for fragment in ("flow2.yml", "flow2.yaml", "flow2 init"):
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_name_suggests_the_closest_and_flow2_list(project: Path) -> None:
    result = cli("run", "tset", cwd=project)
    assert result.returncode == 2
    assert "no task named 'tset'; did you mean 'test'?" in result.stderr
    assert "flow2 list" in result.stderr
    assert not (project / "built.txt").exists()


def test_a_name_naming_several_groups_lists_their_paths(tmp_path: Path) -> None:
    write_flow(
        tmp_path,
        """\
        tasks:
          - name: python
            tasks: [{name: checks, tasks: [{name: pytest, cmd: 'true'}]}]
          - name: docs
            tasks: [{name: checks, tasks: [{name: linkcheck, cmd: 'true'}]}]
        """,
        "flow2.yml",
    )
    result = cli("run", "checks", cwd=tmp_path)
    assert result.returncode == 2
    assert "'checks' names several tasks; run one of: python/checks, docs/checks" in result.stderr
    assert cli("run", "docs/checks", "--display", "none", cwd=tmp_path).returncode == 0


def test_words_after_double_dash_are_args_one_shell_word_each(tmp_path: Path) -> None:
    write_flow(
        tmp_path,
        """\
        tasks:
          - name: greet
            cmd: |
              printf '<%s>\\n' ${{ args }} "joined: ${{ args }}"
        """,
        "flow2.yml",
    )
    result = cli(
        "run",
        "greet",
        "--display",
        "plain",
        "--",
        "Ada",
        "Grace H",
        "$(touch pwned)",
        "-x",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("[greet]")]
    assert lines == [
        "[greet] <Ada>",
        "[greet] <Grace H>",
        "[greet] <$(touch pwned)>",
        "[greet] <-x>",
        "[greet] <joined: Ada Grace H $(touch pwned) -x>",
    ]
    assert not (tmp_path / "pwned").exists()
    # Without --, args is the empty list: no word at all.
    result = cli("run", "greet", "--display", "plain", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("[greet]")] == [
        "[greet] <joined: >"
    ]


def test_args_given_twice_is_an_error(tmp_path: Path) -> None:
    write_flow(tmp_path, "cmd: 'true'\n", "flow2.yml")
    result = cli("run", "args=[a]", "--", "b", cwd=tmp_path)
    assert result.returncode == 2
    assert "give one" in result.stderr


def test_a_flow_file_named_first_then_names_and_variables(tmp_path: Path) -> None:
    write_flow(
        tmp_path,
        """\
        parallel:
          - {name: one, cmd: 'echo ${{ greeting }} > one.txt'}
          - {name: two, cmd: 'touch two.txt'}
        """,
        "tasks.yml",
    )
    result = cli("run", "tasks.yml", "one", "greeting=hi", "--display", "none", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "one.txt").read_text() == "hi\n"
    assert not (tmp_path / "two.txt").exists()


def test_a_default_naming_no_task_is_a_flow_file_error(tmp_path: Path) -> None:
    write_flow(tmp_path, "default: buidl\ntasks:\n  - {name: build, cmd: 'true'}\n", "flow2.yml")
    result = cli("validate", cwd=tmp_path)
    assert result.returncode == 2
    assert "flow2.yml:1: default: no task named 'buidl'; did you mean 'build'?" in result.stderr


def test_flow2_list_shows_names_descriptions_and_the_default_in_tree_order(
    project: Path,
) -> None:
    write_flow(
        project,
        """\
        default: check
        tasks:
          - name: Build wheel
            description: |
              Build the wheel
              into dist/
            cmd: 'true'
          - name: check
            description: All the checks
            parallel:
              - {name: lint, cmd: 'true'}
              - {name: unit tests, cmd: 'true', description: The fast tests}
        """,
        "flow2.yml",
    )
    result = cli("list", cwd=project / "src")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "../flow2.yml: tasks of 'Task 1'",
        "  build_wheel   Build the wheel into dist/",
        "  check         All the checks [default]",
        "    lint",
        "    unit_tests  The fast tests",
    ]
    named = cli("list", project / "flow2.yml", cwd=project.parent)
    assert named.stdout.splitlines()[1:] == result.stdout.splitlines()[1:]


def test_flow2_init_writes_a_starter_that_runs_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = cli("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "flow2.yml").read_text()
    assert text.startswith("# ") and "default:" in text and "description:" in text
    run = cli("run", "--display", "plain", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "all tests passed" in run.stdout
    assert "[hello]" not in run.stdout  # not the default
    hello = cli("run", "hello", "--display", "plain", "--", "there", cwd=tmp_path)
    assert "[hello] hello there" in hello.stdout
    (tmp_path / "flow2.yml").write_text("cmd: echo mine\n")
    again = cli("init", cwd=tmp_path)
    assert again.returncode == 2
    assert "exists already" in again.stderr and "--force" in again.stderr
    assert (tmp_path / "flow2.yml").read_text() == "cmd: echo mine\n"
    assert cli("init", "--force", cwd=tmp_path).returncode == 0
    assert (tmp_path / "flow2.yml").read_text() == text


def test_show_prints_descriptions(project: Path) -> None:
    result = cli("show", cwd=project / "src")
    assert result.returncode == 0, result.stderr
    assert "├── build → build — Build it  [shell, cmd=echo built > built.txt]" in result.stdout


def test_args_is_known_without_double_dash_and_at_load_time(tmp_path: Path) -> None:
    write_flow(
        tmp_path,
        """\
        tasks:
        {% for word in args %}
          - {name: 'load {{ word }}', cmd: 'true'}
        {% endfor %}
          - {name: count, cmd: 'echo ${{ args | length }} > count.txt'}
        """,
        "flow2.yml",
    )
    assert cli("validate", cwd=tmp_path).returncode == 0
    result = cli("run", "--display", "none", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "count.txt").read_text() == "0\n"
    listing = cli("list", cwd=tmp_path).stdout.splitlines()
    assert listing[1:] == ["  count"]
    result = cli("run", "--display", "plain", "--", "a", "b", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "SUCCESS   load a" in result.stdout and "SUCCESS   load b" in result.stdout
    assert (tmp_path / "count.txt").read_text() == "2\n"


# A named run is of the tasks named and what they need, nothing else --------------

SEVERAL = """\
default: test
tasks:
  - name: build
    cmd: echo built
  - name: checks
    parallel:
      - name: lint
        cmd: echo linted
      - name: test
        needs: build
        cmd: echo "tested ${{ build.stdout }}"
    finally:
      - name: tidy
        cmd: echo tidied
  - name: release
    cmd: echo released
  - name: docs
    tasks:
      - name: html
        cmd: echo html
"""

#: The tasks (by path below the root) that `flow2 run test` includes.
NAMED_RUN = {"build", "checks", "checks/test", "checks/tidy"}


def _event_paths(events: Path) -> set[str]:
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    return {"/".join(line["path"][1:]) for line in lines if line["event"] == "task"} - {""}


@pytest.mark.parametrize("names", [("test",), ()], ids=["named", "default"])
def test_a_named_run_shows_only_what_it_runs(
    tmp_path: Path, names: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    monkeypatch.setenv("FLOW2_STORE", str(store))
    write_flow(tmp_path, SEVERAL, "flow2.yml")
    (tmp_path / "sub").mkdir()
    result = cli(
        "run", *names, "--display", "plain", "--events", "events.jsonl", cwd=tmp_path / "sub"
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout
    for ran in ("built", "tested built", "tidied"):
        assert ran in output
    for left_out in ("lint", "release", "docs", "html", "SKIPPED", "--only"):
        assert left_out not in output
    assert "3 succeeded, 0 failed, 0 skipped, 0 cancelled" in output  # build, test, tidy
    assert _event_paths(tmp_path / "sub" / "events.jsonl") == NAMED_RUN
    recorded = stored_run(store)
    assert {"/".join(task.path[1:]) for task in recorded.tasks} - {""} == NAMED_RUN
    assert {task.status for task in recorded.tasks} == {"succeeded"}


def test_a_dry_run_of_a_named_task_plans_only_what_it_runs(tmp_path: Path) -> None:
    write_flow(tmp_path, SEVERAL, "flow2.yml")
    result = cli("run", "test", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 to run, 0 to skip, 0 to reuse" in result.stdout  # build, test, tidy
    assert "lint" not in result.stdout and "release" not in result.stdout


REUSABLE = """\
tasks:
  - name: build
    cmd: echo built
  - name: lint
    cmd: echo linted
  - name: test
    cmd: echo "tested ${{ build.stdout }}"
  - name: release
    cmd: echo released
"""


def _outcomes(output: str) -> dict[str, str]:
    """Each leaf task's last status word on the console (SUCCESS, REUSED, …)."""
    found = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("SUCCESS", "REUSED", "SKIPPED", "FAILED"):
            found[words[1].rstrip(":")] = words[0]
    found.pop("Task", None)
    return found


def test_a_named_run_and_a_full_resume_reuse_each_other(tmp_path: Path) -> None:
    write_flow(tmp_path, REUSABLE, "flow2.yml")

    def flow2_run(*words: str) -> dict[str, str]:
        result = cli("run", *words, "--display", "plain", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return _outcomes(result.stdout)

    assert flow2_run("test") == {"build": "SUCCESS", "test": "SUCCESS"}
    # The whole flow resumed: what the named run did is reused, keyed as in a full run.
    assert flow2_run("--resume") == {
        "build": "REUSED",
        "lint": "SUCCESS",
        "test": "REUSED",
        "release": "SUCCESS",
    }
    # And the other way round, as --only does.
    assert flow2_run("test", "--resume") == {"build": "REUSED", "test": "REUSED"}
    assert flow2_run("--only", "test", "--resume") == {
        "build": "REUSED",
        "lint": "SKIPPED",
        "test": "REUSED",
        "release": "SKIPPED",
    }
    explained = cli("explain", "test", cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    assert "reused (succeeded in run" in explained.stdout


def test_an_option_naming_a_task_the_named_run_leaves_out_is_an_error(tmp_path: Path) -> None:
    write_flow(tmp_path, REUSABLE, "flow2.yml")
    result = cli("run", "test", "--skip", "release", cwd=tmp_path)
    assert result.returncode == 2
    assert "--skip 'release' names a task that the run of 'test' leaves out" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli("run", "test", "--skip", "build", "--display", "plain", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _outcomes(result.stdout) == {"build": "SKIPPED", "test": "SKIPPED"}
    # With --only, the names join its list, and what is left out is told, as before.
    result = cli("run", "test", "--only", "lint", "--display", "plain", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _outcomes(result.stdout) == {
        "build": "SUCCESS",
        "lint": "SUCCESS",
        "test": "SUCCESS",
        "release": "SKIPPED",
    }


def test_the_commands_read_the_projects_store_from_a_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOW2_STORE")  # the default store, .flow2
    write_flow(tmp_path, SEVERAL, "flow2.yml")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    below = tmp_path / "sub" / "deeper"
    assert cli("run", "test", "--display", "none", cwd=below).returncode == 0
    # flow2 run recorded beside flow2.yml; runs, explain and cache read it there.
    assert (tmp_path / ".flow2" / "runs.sqlite3").is_file()
    assert not (below / ".flow2").exists()
    listed = cli("runs", cwd=below)
    assert listed.returncode == 0 and "3 succeeded" in listed.stdout, listed.stderr
    explained = cli("explain", "build", cwd=below)
    assert explained.returncode == 0, explained.stderr
    assert "build in run" in explained.stdout
    # A store of its own in the working directory, or --store, still wins.
    (below / ".flow2").mkdir()
    assert "no runs.sqlite3" in cli("runs", cwd=below).stderr
