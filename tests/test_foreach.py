"""Fan-out at run time: flow2.ForEach and a flow file's ``for_each:``."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import Ran, Recorder, run, stored_run, write_flow
from .test_cli import flow2 as flow2_command


def packages(*names: str) -> flow2.CallbackTask:
    values = list(names)
    return flow2.CallbackTask("Packages", lambda context: values)


def upper(item: str) -> flow2.CallbackTask:
    return flow2.CallbackTask(f"Test[{item}]", lambda context: item.upper())


def finished(recorder: Recorder) -> dict[str, flow2.TaskEvent]:
    return {
        event.task.name: event
        for event in recorder.events
        if isinstance(event, flow2.TaskEvent) and event.status.is_finished
    }


def test_three_items_run_named_by_their_item_results_in_item_order(
    quiet_runner: flow2.Runner, recorder: Recorder
) -> None:
    tree = flow2.SerialTaskGroup(
        "CI", packages("core", "api", "cli"), flow2.ForEach("Test", items="packages", task=upper)
    )
    context = run(quiet_runner.run(tree))
    assert context["test"] == ["CORE", "API", "CLI"]
    assert context["test_core"] == "CORE"
    ends = finished(recorder)
    for name in ("Test[core]", "Test[api]", "Test[cli]"):
        assert ends[name].status is flow2.Status.SUCCEEDED
        assert ends[name].record.path == ("CI", "Test", name)
    assert ends["Test"].status is flow2.Status.SUCCEEDED
    group = ends["Test"].record
    assert [child.task.name for child in group.children] == ["Test[core]", "Test[api]", "Test[cli]"]


def test_an_empty_list_succeeds_with_no_children(
    quiet_runner: flow2.Runner, recorder: Recorder
) -> None:
    tree = flow2.SerialTaskGroup(
        "CI", packages(), flow2.ForEach("Test", items="packages", task=upper)
    )
    context = run(quiet_runner.run(tree))
    assert context["test"] == []
    ends = finished(recorder)
    assert ends["Test"].status is flow2.Status.SUCCEEDED
    assert ends["Test"].record.children == []
    assert set(ends) == {"CI", "Packages", "Test"}


def test_ten_thousand_items(recorder: Recorder) -> None:
    items = list(range(10_000))

    def make(item: int) -> flow2.CallbackTask:
        return flow2.CallbackTask(f"Item[{item}]", lambda context: item * 2)

    tree = flow2.ForEach("Items", items=lambda context: items, task=make, max_parallel=64)
    result = run(flow2.Runner(display="none", listeners=[recorder]).execute(tree))
    assert result.context["items"] == [item * 2 for item in items]
    assert result.counts.succeeded == 10_000


def test_max_parallel_bounds_the_running_items() -> None:
    running = 0
    most = 0

    async def work(context: dict[str, Any]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        for _ in range(5):
            await asyncio.sleep(0)
        running -= 1

    tree = flow2.ForEach(
        "Many",
        items=lambda context: list(range(20)),
        task=lambda item: flow2.CallbackTask(f"Many[{item}]", work),
        max_parallel=3,
    )
    run(flow2.Runner(display="none").run(tree))
    assert most == 3


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("eu", "a string is not iterated letter by letter"),
        ({"eu": 1}, "a mapping is not iterated"),
        (3, "not a list; give a list"),
    ],
)
def test_items_that_are_not_a_list_fail_the_group_naming_it(value: Any, words: str) -> None:
    made: list[Any] = []

    def make(item: Any) -> flow2.CallbackTask:
        made.append(item)
        return upper(str(item))

    tree = flow2.ForEach("Deploy", items="regions", task=make)
    with pytest.raises(flow2.TaskTypeError) as caught:
        run(flow2.Runner(display="none").run(tree, {"regions": value}))
    assert caught.value.task == "Deploy"
    assert caught.value.option == "items"
    assert words in str(caught.value)
    assert "'Deploy'" in str(caught.value)
    assert made == []


def test_two_items_of_one_name_are_an_error_naming_the_group_and_the_name() -> None:
    tree = flow2.ForEach("Test", items="names", task=upper)
    with pytest.raises(flow2.DuplicateKeyError) as caught:
        run(flow2.Runner(display="none").run(tree, {"names": ["api", "core", "api"]}))
    assert caught.value.key == "Test[api]"
    assert "for-each group 'Test'" in str(caught.value)


def test_two_items_storing_under_one_key_are_an_error() -> None:
    tree = flow2.ForEach("Test", items="names", task=upper)
    with pytest.raises(flow2.DuplicateKeyError) as caught:
        run(flow2.Runner(display="none").run(tree, {"names": ["a-b", "a_b"]}))
    assert caught.value.key == "test_a_b"


def test_an_item_needing_a_result_not_stored_yet_is_an_error() -> None:
    tree = flow2.ForEach(
        "Test",
        items="names",
        task=lambda item: flow2.CallbackTask(f"T[{item}]", lambda context: 1, needs="later"),
    )
    with pytest.raises(flow2.DefinitionError) as caught:
        run(flow2.Runner(display="none").run(tree, {"names": ["a"]}))
    assert caught.value.key == "later"
    assert "give the need to the group" in str(caught.value)


def test_on_error_raise_runs_every_item_then_fails_with_the_failures() -> None:
    def make(item: str) -> flow2.CallbackTask:
        def work(context: dict[str, Any]) -> str:
            if item == "b":
                raise ValueError("b broke")
            return item

        return flow2.CallbackTask(f"T[{item}]", work)

    tree = flow2.ForEach("T", items="names", task=make, on_error="raise")
    result = run(flow2.Runner(display="none").execute(tree, {"names": ["a", "b", "c"]}))
    assert result.status is flow2.Status.FAILED
    gathered = result.context["t"]
    assert gathered[0] == "a" and gathered[2] == "c"
    assert isinstance(gathered[1], ValueError)
    assert result.counts.failed == 1 and result.counts.succeeded == 2


def test_a_serial_for_each_stops_at_the_first_failure(recorder: Recorder) -> None:
    def make(item: str) -> flow2.CallbackTask:
        def work(context: dict[str, Any]) -> str:
            if item == "b":
                raise ValueError("b broke")
            return item

        return flow2.CallbackTask(f"T[{item}]", work)

    tree = flow2.ForEach("T", items="names", task=make, parallel=False)
    result = run(
        flow2.Runner(display="none", listeners=[recorder]).execute(tree, {"names": ["a", "b", "c"]})
    )
    assert recorder.final("T[c]") is flow2.Status.SKIPPED
    assert result.context["t"][0] == "a" and result.context["t"][2] is None


def test_definition_errors() -> None:
    with pytest.raises(flow2.DefinitionError, match="max_parallel applies to items run in"):
        flow2.ForEach("T", items="x", task=upper, parallel=False, max_parallel=2)
    with pytest.raises(flow2.DefinitionError, match="neither a context key nor a callable"):
        flow2.ForEach("T", items=3, task=upper)  # type: ignore[arg-type]
    with pytest.raises(flow2.DefinitionError, match="the key its items come from"):
        flow2.ForEach("Packages", items="packages", task=upper)
    with pytest.raises(flow2.DefinitionError, match="not a callable making one task"):
        flow2.ForEach("T", items="x", task=upper("x"))  # type: ignore[arg-type]


def test_items_from_an_async_callable_and_a_group_per_item() -> None:
    async def names(context: dict[str, Any]) -> tuple[str, ...]:
        return ("a", "b")

    def make(item: str) -> flow2.SerialTaskGroup:
        return flow2.SerialTaskGroup(
            f"Item[{item}]",
            flow2.CallbackTask(f"Build[{item}]", lambda context: f"built {item}"),
            flow2.CallbackTask(f"Check[{item}]", lambda context: f"checked {item}"),
        )

    context = run(flow2.Runner(display="none").run(flow2.ForEach("All", items=names, task=make)))
    assert context["all"] == [
        {"build_a": "built a", "check_a": "checked a"},
        {"build_b": "built b", "check_b": "checked b"},
    ]


# The run store: resume and cache, item by item ---------------------------------


def _tracked(ran: Ran) -> flow2.SerialTaskGroup:
    """A group over the ``packages`` variable; each item declares it reads ``version``."""

    def make(item: str) -> flow2.CallbackTask:
        # It declares what it reads (a keyword-only parameter): its key is
        # then its own, whatever the other items and the list.
        async def work(context: dict[str, Any], *, version: int) -> str:
            ran.append(item)
            if ran.fails(item):
                raise RuntimeError(f"{item} failed")
            return item.upper()

        work.__qualname__ = "make.work"
        return flow2.CallbackTask(f"Test[{item}]", work)

    return flow2.SerialTaskGroup("CI", flow2.ForEach("Test", items="packages", task=make))


def variables(*names: str) -> dict[str, Any]:
    return {"packages": list(names), "version": 1}


def test_resume_after_a_failed_item_reruns_only_that_item(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    ran.fail("b")
    store = tmp_path / "store"
    first = run(
        flow2.Runner(display="none", store=store).execute(_tracked(ran), variables("a", "b", "c"))
    )
    assert first.counts.failed == 1
    assert sorted(ran) == ["a", "b", "c"]
    ran.clear()
    ran.fail(None)
    recorder = Recorder()
    context = run(
        flow2.Runner(display="none", store=store, resume="last", listeners=[recorder]).run(
            _tracked(ran), variables("a", "b", "c")
        )
    )
    assert ran == ["b"]
    assert context["test"] == ["A", "B", "C"]
    assert recorder.final("Test[a]") is flow2.Status.REUSED
    assert recorder.final("Test[b]") is flow2.Status.SUCCEEDED
    paths = {task.path for task in stored_run(store).tasks}
    assert ("CI", "Test", "Test[b]") in paths


def test_the_cache_reuses_each_item_and_runs_a_new_one(tmp_path: Path) -> None:
    ran = Ran(tmp_path)
    store = tmp_path / "store"
    run(
        flow2.Runner(display="none", store=store, cache=True).run(
            _tracked(ran), variables("a", "b")
        )
    )
    assert sorted(ran) == ["a", "b"]
    ran.clear()
    recorder = Recorder()
    context = run(
        flow2.Runner(display="none", store=store, cache=True, listeners=[recorder]).run(
            _tracked(ran), variables("b", "a", "new")
        )
    )
    assert ran.names() == ["new"], [
        (e.task.name, e.status, e.reason)
        for e in recorder.events
        if isinstance(e, flow2.TaskEvent) and e.status.is_finished
    ]
    assert context["test"] == ["B", "A", "NEW"]
    assert recorder.final("Test[a]") is flow2.Status.CACHED
    assert recorder.final("Test[b]") is flow2.Status.CACHED


def test_items_are_in_the_console_summary_and_the_reports(tmp_path: Path) -> None:
    stream = io.StringIO()
    store = tmp_path / "store"
    run(
        flow2.Runner(display="plain", stream=stream, store=store).run(
            _tracked(Ran(tmp_path)), variables("a", "b")
        )
    )
    printed = stream.getvalue()
    assert "SUCCESS   Test[a]" in printed and "SUCCESS   Test[b]" in printed
    assert "2 succeeded" in printed
    report = flow2.markdown_report(flow2.read_store(store=store))
    assert "2 succeeded" in report
    page = flow2.html_report(flow2.read_store(store=store))
    assert "Test[a]" in page and "Test[b]" in page


def test_items_are_drawn_in_the_live_tree_under_their_group() -> None:
    tree = flow2.SerialTaskGroup("Root", flow2.ForEach("Test", items="names", task=upper))
    stream = io.StringIO()
    run(flow2.Runner(display="live", stream=stream, color=False).run(tree, {"names": ["a", "b"]}))
    output = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    final = output[output.rindex("✓ Root") :]
    assert "└─ ✓ Test" in final
    assert "├─ ✓ Test[a]" in final and "└─ ✓ Test[b]" in final


# Flow files ------------------------------------------------------------------------


def test_a_flow_fans_out_over_a_result_with_a_name_template(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: serial
        name: CI
        tasks:
          - name: Packages
            plugin: shell
            cmd: printf 'api\\ncore\\ncli\\n'
          - name: Test
            plugin: parallel
            for_each: ${{ packages.stdout.split() }}
            as: package
            max_parallel: 2
            tasks:
              - name: Test ${{ package }}
                plugin: shell
                cmd: echo testing ${{ package }}
          - name: Report
            plugin: shell
            cmd: echo ${{ test | length }} tested
        """,
    )
    result = flow2_command("run", flow, "--display", "plain", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for package in ("api", "core", "cli"):
        assert f"SUCCESS   Test {package}" in result.stdout
        assert f"testing {package}" in result.stdout
    assert "3 tested" in result.stdout


def test_a_flow_template_without_the_item_in_its_name_is_named_name_item(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: serial
        name: Deploy
        tasks:
          - name: All regions
            plugin: parallel
            for_each: ${{ regions }}
            tasks:
              - name: Deploy
                plugin: shell
                cmd: echo deploying to ${{ item }}
        """,
    )
    result = flow2_command("run", flow, "regions=eu", "--display", "plain", cwd=tmp_path)
    assert result.returncode == 1
    assert "letter by letter" in result.stdout + result.stderr
    listed = flow2_command("run", flow, 'regions=["eu", "us"]', "--display", "plain", cwd=tmp_path)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "SUCCESS   Deploy[eu]" in listed.stdout
    assert "deploying to us" in listed.stdout


def test_the_dry_run_says_the_group_expands_at_run_time(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: parallel
        name: Test
        for_each: ${{ packages }}
        as: package
        tasks:
          - name: Test ${{ package }}
            plugin: shell
            cmd: echo ${{ package }}
        """,
    )
    planned = flow2_command("run", flow, "packages=[1]", "--dry-run", cwd=tmp_path)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "expands at run time over ${{ packages }}" in planned.stdout
    shown = flow2_command("show", flow, "packages=[1]", cwd=tmp_path)
    assert "Test  [parallel, for_each=${{ packages }}]" in shown.stdout
    graph = flow2_command("graph", flow, "packages=[1]", cwd=tmp_path)
    assert "Test (parallel, for each of ${{ packages }})" in graph.stdout


def test_a_flow_expression_naming_an_unknown_item_variable_is_an_error(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: parallel
        name: Test
        for_each: ${{ packages }}
        as: package
        tasks:
          - name: Test ${{ package }}
            plugin: shell
            cmd: echo ${{ pakage }}
        """,
    )
    result = flow2_command("run", flow, "packages=[1]", cwd=tmp_path)
    assert result.returncode != 0
    assert "'pakage'" in result.stderr
    assert "did you mean 'package'" in result.stderr


def test_items_that_are_not_text_are_named_as_compact_json(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: serial
        name: Matrix
        tasks:
          - name: Jobs
            plugin: parallel
            for_each: '${{ [{"os": "linux", "py": 3}, {"os": "mac", "py": 3}] }}'
            as: job
            tasks:
              - name: Run
                plugin: shell
                cmd: echo on ${{ job.os }}
        """,
    )
    result = flow2_command("run", flow, "--display", "plain", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'SUCCESS   Run[{"os":"linux","py":3}]' in result.stdout
    assert "on mac" in result.stdout


@pytest.mark.parametrize(
    ("node", "words"),
    [
        ("plugin: shell\ncmd: echo\nfor_each: ${{ x }}", "works on a serial or parallel group"),
        ("plugin: parallel\nfor_each: [a, b]\ntasks: [{plugin: shell, cmd: echo}]", "must be a"),
        ("plugin: parallel\nas: x\ntasks: [{plugin: shell, cmd: echo}]", "add for_each:"),
        (
            "plugin: parallel\nfor_each: ${{ x }}\nas: 1x\ntasks: [{plugin: shell, cmd: echo}]",
            "as:",
        ),
        ("plugin: parallel\nfor_each: ${{ x }}\ntasks: []", "needs tasks:"),
        (
            "plugin: parallel\nname: X\nfor_each: ${{ x }}\ntasks: [{plugin: shell, cmd: echo}]",
            "stores its items' results under 'x', which its for_each: reads",
        ),
    ],
)
def test_for_each_mistakes_name_the_key_and_the_fix(tmp_path: Path, node: str, words: str) -> None:
    flow = write_flow(tmp_path, node)
    result = flow2_command("validate", flow, "x=[1]", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in result.stderr
    assert "flow.yml:" in result.stderr


def test_an_items_condition_is_checked_in_a_tree_without_any_other(recorder: Recorder) -> None:
    def make(item: int) -> flow2.CallbackTask:
        return flow2.CallbackTask(f"N[{item}]", lambda context: item, when=item % 2 == 0)

    tree = flow2.ForEach("N", items=lambda context: [0, 1, 2], task=make)
    # No store: nothing else gives the run a gate.
    runner = flow2.Runner(display="none", store=False, listeners=[recorder])
    context = run(runner.run(tree))
    assert recorder.final("N[1]") is flow2.Status.SKIPPED
    assert context["n"] == [0, None, 2]


def test_a_template_reading_a_parallel_siblings_result_makes_the_group_wait(
    tmp_path: Path,
) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: parallel
        name: All
        tasks:
          - name: Version
            plugin: shell
            cmd: sleep 0.3; echo 1.2
          - name: Test
            plugin: parallel
            for_each: ${{ names }}
            tasks:
              - name: Test ${{ item }}
                plugin: shell
                cmd: echo ${{ item }} at ${{ version.stdout }}
        """,
    )
    result = flow2_command("run", flow, "names=[a, b]", "--display", "plain", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a at 1.2" in result.stdout and "b at 1.2" in result.stdout


def test_a_flow_resumed_after_a_failed_item_runs_only_that_item(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: serial
        name: CI
        tasks:
          - name: Test
            plugin: parallel
            for_each: ${{ packages }}
            as: package
            tasks:
              - name: Test ${{ package }}
                plugin: shell
                cmd: echo ${{ package }} >> ran.log; test ! -e broken-${{ package }}
        """,
    )
    (tmp_path / "broken-b").touch()
    first = flow2_command("run", flow, "packages=[a, b, c]", cwd=tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr
    assert sorted((tmp_path / "ran.log").read_text().split()) == ["a", "b", "c"]
    (tmp_path / "broken-b").unlink()
    (tmp_path / "ran.log").unlink()
    resumed = flow2_command("resume", "last", "--display", "plain", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (tmp_path / "ran.log").read_text().split() == ["b"]
    assert "REUSED    Test a" in resumed.stdout and "REUSED    Test c" in resumed.stdout


def test_an_items_value_is_part_of_its_key(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: parallel
        name: Matrix
        cache: true
        for_each: ${{ jobs }}
        as: job
        tasks:
          - name: Run ${{ job.os }}
            plugin: shell
            cmd: echo ${{ job.os }} ${{ job.py }} >> ran.log
        """,
    )
    jobs = 'jobs=[{os: linux, py: "3"}, {os: mac, py: "3"}]'
    assert flow2_command("run", flow, jobs, cwd=tmp_path).returncode == 0
    (tmp_path / "ran.log").unlink()
    changed = 'jobs=[{os: linux, py: "4"}, {os: mac, py: "3"}]'
    again = flow2_command("run", flow, changed, "--display", "plain", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "ran.log").read_text().split() == ["linux", "4"]
    assert "CACHED    Run mac" in again.stdout


def test_a_need_naming_an_items_task_is_refused_before_the_run(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        plugin: parallel
        name: CI
        tasks:
          - name: Test
            plugin: parallel
            for_each: ${{ packages }}
            as: package
            tasks:
              - name: Test ${{ package }}
                plugin: shell
                cmd: echo ${{ package }} >> ran.log
          - name: Report
            plugin: shell
            needs: test_api
            cmd: echo done
        """,
    )
    result = flow2_command("run", flow, "packages=[api]", cwd=tmp_path)
    assert result.returncode == 2
    assert "needs 'test_api', which no task in the tree produces" in result.stderr
    assert "did you mean 'test'?" in result.stderr
    assert not (tmp_path / "ran.log").exists()


def test_a_factory_returning_no_task_or_one_task_twice_fails_the_group() -> None:
    not_a_task = flow2.ForEach("T", items="names", task=lambda item: print)
    with pytest.raises(flow2.TaskTypeError, match="not a flow2.Task"):
        run(flow2.Runner(display="none").run(not_a_task, {"names": ["a"]}))
    shared = flow2.SerialTaskGroup("Shared", upper("x"))
    counter = iter(range(10))

    def same_group(item: str) -> flow2.Task:
        # A new group each time, holding the one task made once.
        return flow2.SerialTaskGroup(f"G[{next(counter)}]", *shared.tasks)

    twice = flow2.ForEach("T", items="names", task=same_group)
    with pytest.raises(flow2.DuplicateKeyError, match="made for two items"):
        run(flow2.Runner(display="none").run(twice, {"names": ["a", "b"]}))


def test_run_on_a_for_each_alone_starts_a_run() -> None:
    context = run(flow2.ForEach("Test", items="names", task=upper).run({"names": ["a"]}))
    assert context["test"] == ["A"]
