"""What tasks write travels in events: output events from the source, the tail on the task's events.

No listener changes an event for the others, and a shell task's output
reaches its own run's listeners, never a registry shared between runs.
"""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path
from typing import Any

import pytest

import flow2

from .conftest import run


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def attributes(event: object) -> dict[str, Any]:
    return {name: getattr(event, name) for name in type(event).__slots__}


class Snapshots:
    """A listener keeping each event with a copy of its attributes as it received it."""

    listens_to = frozenset(flow2.Status) | {flow2.OutputEvent}

    def __init__(self) -> None:
        self.seen: list[tuple[Any, dict[str, Any]]] = []

    def __call__(self, event: Any) -> None:
        self.seen.append((event, attributes(event)))

    def ends_of(self, name: str) -> list[flow2.TaskEvent]:
        return [
            event
            for event, _ in self.seen
            if type(event) is flow2.TaskEvent
            and event.task.name == name
            and event.status.is_finished
        ]

    def written_by(self, name: str, stream: str | None = None) -> str:
        return "".join(
            event.text
            for event, _ in self.seen
            if type(event) is flow2.OutputEvent
            and event.task.name == name
            and (stream is None or event.stream == stream)
        )


def first_listener_runner(
    monkeypatch: pytest.MonkeyPatch, first: Snapshots, **options: Any
) -> flow2.Runner:
    """A runner whose first listener is ``first``, before every built-in one."""
    from flow2._running._assembly import RunListeners

    built = RunListeners.__init__

    def with_first(assembly: RunListeners, *args: Any, **kwargs: Any) -> None:
        built(assembly, *args, **kwargs)
        assembly.listeners.insert(0, first)

    monkeypatch.setattr(RunListeners, "__init__", with_first)
    return flow2.Runner(**options)


def chatty_tree() -> flow2.Task:
    def prints(context: dict[str, Any]) -> str:
        print("printed in a thread")
        return "done"

    async def logs(context: dict[str, Any]) -> None:
        print("printed on the loop")
        flow2.logger.warning("careful")
        raise ValueError("broken on purpose")

    return flow2.ParallelTaskGroup(
        "Root",
        flow2.ShellTask("Echo", python("print('one'); print('two')")),
        flow2.CallbackTask("Prints", prints),
        flow2.CallbackTask("Logs", logs),
    )


def test_no_listener_changes_an_event_for_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Snapshots()
    runner = first_listener_runner(
        monkeypatch,
        first,
        display="plain",
        stream=io.StringIO(),
        events=tmp_path / "events.jsonl",
        log_dir=tmp_path / "logs",
        listeners=[Snapshots()],
    )
    run(runner.run(chatty_tree(), raises=False))
    assert first.seen
    for event, received in first.seen:
        assert attributes(event) == received, event


def test_the_first_listener_already_finds_a_task_s_last_lines_on_its_end_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = Snapshots()
    stream = io.StringIO()
    runner = first_listener_runner(monkeypatch, first, display="plain", stream=stream)
    run(runner.run(chatty_tree(), raises=False))
    (echo,) = first.ends_of("Echo")
    assert echo.output == "one\ntwo"
    (prints,) = first.ends_of("Prints")
    assert prints.output == "printed in a thread"
    (logs,) = first.ends_of("Logs")
    assert logs.output == "printed on the loop\nWARNING: careful"
    assert "[Echo] one" in stream.getvalue().splitlines()


def test_output_events_carry_what_each_task_wrote_to_the_listeners_asking_for_them() -> None:
    asking = Snapshots()
    others: list[Any] = []
    run(
        flow2.Runner(display="plain", stream=io.StringIO(), listeners=[asking, others.append]).run(
            chatty_tree(), raises=False
        )
    )
    assert asking.written_by("Echo", "stdout") == "one\ntwo\n"
    assert asking.written_by("Prints", "stdout") == "printed in a thread\n"
    assert asking.written_by("Logs", "log") == "WARNING: careful\n"
    # A listener that does not ask for them never receives one.
    assert not [event for event in others if type(event) is flow2.OutputEvent]


def test_a_run_without_a_display_still_hands_a_shell_task_s_output_to_its_listeners() -> None:
    asking = Snapshots()
    tree = flow2.SerialTaskGroup(
        "Root", flow2.ShellTask("Err", python("import sys; sys.stderr.write('oops')"))
    )
    run(flow2.Runner(display="none", listeners=[asking]).run(tree))
    assert asking.written_by("Err", "stderr") == "oops"
    (end,) = asking.ends_of("Err")
    assert end.output == "oops"


def test_concurrent_runs_of_one_tree_each_get_their_own_shell_output() -> None:
    # One tree object, two runs at once: each run's listeners receive the
    # lines of its own command only (each prints its process id three times).
    shell = flow2.ShellTask(
        "Echo",
        python(
            "import os, time\n"
            "for number in range(3):\n"
            "    print(os.getpid(), number, flush=True); time.sleep(0.05)"
        ),
    )
    tree = flow2.SerialTaskGroup("Root", shell)
    listeners = [Snapshots(), Snapshots()]

    async def both() -> None:
        await asyncio.gather(
            *(
                flow2.Runner(display="none", listeners=[listener]).run(tree)
                for listener in listeners
            )
        )

    run(both())
    pids = set()
    for listener in listeners:
        lines = listener.written_by("Echo").splitlines()
        assert [line.split()[1] for line in lines] == ["0", "1", "2"]
        (pid,) = {line.split()[0] for line in lines}
        pids.add(pid)
        (end,) = listener.ends_of("Echo")
        assert end.output == "\n".join(lines)
    assert len(pids) == 2


def test_the_end_event_carries_the_last_twenty_lines_a_progress_line_at_its_last_state() -> None:
    code = (
        "import sys\n"
        "for number in range(30):\n"
        "    print('line', number)\n"
        "sys.stdout.write('progress 1\\rprogress 2\\rdone')"
    )
    asking = Snapshots()
    tree = flow2.SerialTaskGroup("Root", flow2.ShellTask("Count", python(code)))
    run(flow2.Runner(display="none", listeners=[asking]).run(tree))
    (end,) = asking.ends_of("Count")
    assert end.output is not None
    assert end.output.splitlines() == [f"line {number}" for number in range(11, 30)] + ["done"]
