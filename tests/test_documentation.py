"""The original documentation's example runs exactly as written."""

from __future__ import annotations

import ast
import asyncio
import io
import pathlib
import tomllib
from typing import Any

import flow2

# Verbatim from the documentation; it leaves your_callback2, your_callback4,
# YourTask, your and args to the reader, and awaits at the top level.
DOCUMENTED_EXAMPLE = """
import flow2

async def your_callback1(context):
    return 'something'

task = flow2.SerialTaskGroup(
    'Your workflow',
    flow2.ParallelTaskGroup(
        'Parallel task',
        flow2.CallbackTask('Task 1', your_callback1),
        flow2.CallbackTask('Task 2', your_callback2),
    ),
    flow2.ParallelTaskGroup(
        'Parallel task',
        YourTask('Task 3', your, args),
        flow2.CallbackTask('Task 4', your_callback4),
    ),
)

result = await task.run()
"""


def test_the_documented_example_runs_as_written(monkeypatch: Any) -> None:
    seen_by_callback4: list[dict[str, Any]] = []

    def your_callback2(context: dict[str, Any]) -> int:  # a sync one
        return 2

    async def your_callback4(context: dict[str, Any]) -> str:
        seen_by_callback4.append(dict(context))
        return "four"

    class YourTask(flow2.Task):
        def __init__(self, name: str, *arguments: Any, **kwargs: Any) -> None:
            super().__init__(name, **kwargs)
            self.arguments = arguments

        async def run(self, context: dict[str, Any]) -> Any:
            return list(self.arguments)

    namespace: dict[str, Any] = {
        "your_callback2": your_callback2,
        "your_callback4": your_callback4,
        "YourTask": YourTask,
        "your": "your",
        "args": "args",
    }
    code = compile(DOCUMENTED_EXAMPLE, "<documentation>", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    stdout = io.StringIO()
    monkeypatch.setattr("sys.stdout", stdout)
    # Run from a terminal, the example draws the run; here nobody watches
    # one, and a run embedded in a process without a terminal prints nothing.
    monkeypatch.setenv("FLOW2_DISPLAY", "plain")

    async def main() -> None:
        coroutine = eval(code, namespace)
        await coroutine

    asyncio.run(main())
    assert namespace["result"] == {
        "task_1": "something",
        "task_2": 2,
        "task_3": ["your", "args"],
        "task_4": "four",
    }
    # "you are sure that your_callback4 will have the 'task_3' key in the context"
    assert seen_by_callback4[0]["task_3"] == ["your", "args"]
    assert "SUCCESS   Your workflow" in stdout.getvalue()


def test_the_readme_example_runs_and_gives_the_result_it_shows(monkeypatch: Any) -> None:
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("## Example", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.setattr("sys.stdout", io.StringIO())
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["result"] == {
        "task_1": "something",
        "task_2": {"files": 3},
        "task_3": "hello after something",
        "task_4": "HELLO AFTER SOMETHING",
    }


def _yaml_examples() -> list[tuple[str, str]]:
    """Every flow in the README's yaml blocks and in examples/*.yml, with its source."""
    import re

    root = pathlib.Path(__file__).parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    found = [
        (f"README.md block {number}", block)
        for number, block in enumerate(re.findall(r"```yaml\n(.*?)```", readme, re.DOTALL), 1)
    ]
    found += [(path.name, path.read_text()) for path in sorted(root.glob("examples/*.yml"))]
    return found


def _steps_after_unguarded_checks(task: flow2.Task) -> list[str]:
    """Tasks a serial group runs after a parallel group that does not fail on a failure."""
    found = []
    if isinstance(task, flow2.SerialTaskGroup):
        for child, after in zip(task.tasks, task.tasks[1:], strict=False):
            if isinstance(child, flow2.ParallelTaskGroup) and child.on_error.value == "continue":
                found.append(f"{after.name!r} after {child.name!r}")
    for child in task.children:
        found += _steps_after_unguarded_checks(child)
    return found


def test_examples_never_go_on_after_a_failed_check(tmp_path: pathlib.Path) -> None:
    examples = _yaml_examples()
    assert any("Publish" in text for _, text in examples)
    for source, text in examples:
        path = tmp_path / "flow.yml"
        path.write_text(text)
        tree = flow2.load(path, version="1.0.0", regions=["eu"])
        assert _steps_after_unguarded_checks(tree) == [], source


def test_the_example_check_finds_an_unguarded_publish() -> None:
    checks = flow2.ParallelTaskGroup("Checks", flow2.CallbackTask("Test", len))
    tree = flow2.SerialTaskGroup("Release", checks, flow2.CallbackTask("Publish", len))
    assert _steps_after_unguarded_checks(tree) == ["'Publish' after 'Checks'"]


def test_ci_runs_the_readme_test_command_and_it_fails_below_the_stated_coverage() -> None:
    root = pathlib.Path(__file__).parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    quickstart = readme.split("## Quickstart", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line for line in quickstart.splitlines() if line and not line.startswith("#")]
    test_command = commands[1]
    assert test_command.endswith("pytest --cov=flow2 --cov-branch")
    ci = (root / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci[-1] == test_command
    settings = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    figure = settings["tool"]["coverage"]["report"]["fail_under"]
    assert settings["tool"]["coverage"]["run"]["branch"] is True
    assert figure >= 90
    assert f"fails below {figure}%" in " ".join(readme.split())
