"""CallbackTask: sync and async callbacks, awaitables, async iterators, threads."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import flow2
from tests.conftest import run


def run_quietly(task: flow2.Task, **options: Any) -> dict[str, Any]:
    result: dict[str, Any] = run(flow2.Runner(display="none", **options).run(task))
    return result


def test_async_callback_gets_the_context_and_returns_the_result() -> None:
    async def double(context: dict[str, Any]) -> int:
        return int(context["n"]) * 2

    task = flow2.CallbackTask("Double", double)
    assert run(flow2.Runner(display="none").run(task, {"n": 21}))["double"] == 42


def test_sync_callback_runs_in_a_worker_thread() -> None:
    threads: list[str] = []

    def where(context: dict[str, Any]) -> str:
        threads.append(threading.current_thread().name)
        return "done"

    assert run_quietly(flow2.CallbackTask("Where", where)) == {"where": "done"}
    assert threads[0] != threading.main_thread().name
    assert threads[0].startswith("flow2")


def test_blocking_sync_callbacks_in_a_parallel_group_run_concurrently() -> None:
    def block(context: dict[str, Any]) -> float:
        time.sleep(0.3)
        return 0.3

    tree = flow2.ParallelTaskGroup(
        "P", *(flow2.CallbackTask(f"Block {index}", block) for index in range(4))
    )
    started = time.perf_counter()
    run_quietly(tree)
    elapsed = time.perf_counter() - started
    # Serially this takes 1.2 s; concurrently about 0.3 s.
    assert elapsed < 1.0, elapsed


def test_sync_callbacks_do_not_block_the_event_loop() -> None:
    ticks = 0

    async def ticker(context: dict[str, Any]) -> int:
        nonlocal ticks
        while not finished.is_set():
            ticks += 1
            await asyncio.sleep(0.01)
        return ticks

    def block(context: dict[str, Any]) -> None:
        time.sleep(0.3)
        finished.set()

    finished = threading.Event()
    tree = flow2.ParallelTaskGroup(
        "P", flow2.CallbackTask("Block", block), flow2.CallbackTask("Ticker", ticker)
    )
    assert run_quietly(tree)["ticker"] >= 5


def test_thread_pool_size_is_configurable() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()
    # Threads meet in pairs: two must run at once for any to go on (one
    # thread alone breaks the barrier at its timeout and fails the test).
    pairs = threading.Barrier(2, timeout=30)

    def work(context: dict[str, Any]) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        pairs.wait()
        with lock:
            running -= 1

    tree = flow2.ParallelTaskGroup("P", *(flow2.CallbackTask(f"W{i}", work) for i in range(8)))
    run_quietly(tree, max_threads=2)
    assert peak == 2


def test_max_threads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW2_MAX_THREADS", "3")
    assert flow2.Runner().settings.max_threads == 3
    monkeypatch.setenv("FLOW2_MAX_THREADS", "lots")
    with pytest.raises(flow2.ConfigurationError, match="FLOW2_MAX_THREADS='lots'"):
        flow2.Runner()
    with pytest.raises(flow2.ConfigurationError, match="max_threads=0"):
        flow2.Runner(max_threads=0)


def test_sync_callback_sees_the_current_task_through_context_variables() -> None:
    def name_of_current_task(context: dict[str, Any]) -> str | None:
        return flow2.logger.process("", {})[1]["extra"]["task"]  # type: ignore[no-any-return]

    assert run_quietly(flow2.CallbackTask("Mine", name_of_current_task)) == {"mine": "Mine"}


def test_a_returned_awaitable_is_awaited() -> None:
    async def later() -> str:
        return "awaited"

    def returns_coroutine(context: dict[str, Any]) -> Any:
        return later()

    assert run_quietly(flow2.CallbackTask("C", returns_coroutine)) == {"c": "awaited"}


def test_an_async_generator_is_collected_into_a_list() -> None:
    async def numbers(context: dict[str, Any]) -> AsyncIterator[int]:
        for number in range(3):
            await asyncio.sleep(0)
            yield number

    assert run_quietly(flow2.CallbackTask("N", numbers)) == {"n": [0, 1, 2]}


def test_a_returned_async_iterator_is_collected() -> None:
    async def numbers() -> AsyncIterator[str]:
        yield "a"
        yield "b"

    def make(context: dict[str, Any]) -> AsyncIterator[str]:
        return numbers()

    assert run_quietly(flow2.CallbackTask("N", make)) == {"n": ["a", "b"]}


def test_callable_objects_and_partials() -> None:
    class Async:
        async def __call__(self, context: dict[str, Any]) -> str:
            return "object"

    async def add(offset: int, context: dict[str, Any]) -> int:
        return offset + 1

    tree = flow2.SerialTaskGroup(
        "S",
        flow2.CallbackTask("Obj", Async()),
        flow2.CallbackTask("Partial", functools.partial(add, 41)),
        flow2.CallbackTask("Lambda", lambda context: "sync lambda"),
    )
    assert run_quietly(tree) == {"obj": "object", "partial": 42, "lambda": "sync lambda"}
    assert tree.tasks[0].callback_kind.value == "coroutine"  # type: ignore[attr-defined]


def test_non_callable_callback_is_a_type_error_naming_the_task() -> None:
    with pytest.raises(TypeError, match=r"task 'Build': callback 'make' \(str\) is not callable"):
        flow2.CallbackTask("Build", "make")


def test_callback_task_run_outside_a_run_calls_directly() -> None:
    def sync(context: dict[str, Any]) -> int:
        return len(context)

    assert run(flow2.CallbackTask("S", sync).run({"a": 1})) == 1


def test_keyword_only_parameters_receive_context_keys_on_the_loop_too() -> None:
    async def deploy(context: dict[str, Any], *, version: str, target: str = "test") -> str:
        return f"{version} to {target}"

    async def lines(context: dict[str, Any], *, count: int) -> AsyncIterator[int]:
        for number in range(count):
            yield number

    tree = flow2.SerialTaskGroup(
        "S", flow2.CallbackTask("Deploy", deploy), flow2.CallbackTask("Lines", lines)
    )
    context = run(flow2.Runner(display="none").run(tree, {"version": "1.2", "count": 2}))
    assert context["deploy"] == "1.2 to test"
    assert context["lines"] == [0, 1]


def test_a_missing_keyword_only_key_names_the_task_and_the_key() -> None:
    async def deploy(context: dict[str, Any], *, version: str) -> str:
        return version

    # A required keyword-only parameter is a need: checked before anything runs.
    with pytest.raises(flow2.NeedsError, match="task 'Deploy' needs 'version', which no task"):
        run(flow2.Runner(display="none").run(flow2.CallbackTask("Deploy", deploy)))


class _Unusual(BaseException):
    """A BaseException subclass flow2 does not document."""


def _stop(context: dict[str, Any]) -> None:
    raise StopIteration("no more")


def _unusual(context: dict[str, Any]) -> None:
    raise _Unusual("odd")


async def _stop_async(context: dict[str, Any]) -> None:
    raise StopIteration("no more")


@pytest.mark.parametrize("callback", [_stop, _stop_async], ids=["sync", "async"])
def test_a_sync_callback_raising_stop_iteration_fails_its_task(callback: Any) -> None:
    async def scenario() -> flow2.RunResult:
        # A StopIteration cannot be set on a future: unwrapped, the run
        # waited for ever. The bound turns that hang into a failure here.
        async with asyncio.timeout(60):
            return await flow2.Runner(display="none").execute(
                flow2.SerialTaskGroup(
                    "Root", flow2.CallbackTask("Stop", callback), flow2.CallbackTask("Next", _none)
                )
            )

    result = run(scenario())
    assert result.exit_code == 1
    (failure,) = result.failures
    assert failure.path == ("Root", "Stop")
    assert isinstance(failure.error, RuntimeError)
    assert "StopIteration" in str(failure.error)


def _none(context: dict[str, Any]) -> None:
    return None


def test_an_undocumented_base_exception_from_a_sync_callback_fails_its_task() -> None:
    task = flow2.ParallelTaskGroup(
        "Root", flow2.CallbackTask("Odd", _unusual), flow2.CallbackTask("Next", _none)
    )
    result = run(flow2.Runner(display="none").execute(task))
    assert result.exit_code == 1
    assert result.counts.succeeded == 1 and result.counts.failed == 1
    (failure,) = result.failures
    assert isinstance(failure.error, flow2.TaskExitError)
    assert isinstance(failure.error.__cause__, _Unusual)


def test_callback_kinds_are_told_apart() -> None:
    import functools
    import threading

    loop_thread = threading.get_ident()

    async def coroutine(context: dict[str, Any]) -> str:
        return "async" if threading.get_ident() == loop_thread else "thread"

    async def async_items(context: dict[str, Any]) -> Any:
        yield 1
        yield 2

    def items(context: dict[str, Any]) -> Any:
        # A sync generator is collected in a worker thread, never on the loop.
        yield "a" if threading.get_ident() != loop_thread else "on the loop"
        yield "b"

    def plain(context: dict[str, Any]) -> str:
        return "async" if threading.get_ident() == loop_thread else "thread"

    class Caller:
        async def __call__(self, context: dict[str, Any]) -> str:
            return "async call"

        async def method(self, context: dict[str, Any]) -> str:
            return "async method"

    tree = flow2.ParallelTaskGroup(
        "Kinds",
        flow2.CallbackTask("Coroutine", coroutine),
        flow2.CallbackTask("Async items", async_items),
        flow2.CallbackTask("Items", items),
        flow2.CallbackTask("Plain", plain),
        flow2.CallbackTask("Lambda", lambda context: "lambda"),
        flow2.CallbackTask("Partial", functools.partial(coroutine)),
        flow2.CallbackTask("Object", Caller()),
        flow2.CallbackTask("Method", Caller().method),
    )
    kinds = [task.callback_kind.value for task in tree.children]  # type: ignore[attr-defined]
    assert kinds == [
        "coroutine",
        "async generator",
        "generator",
        "sync",
        "sync",
        "coroutine",
        "coroutine",
        "coroutine",
    ]
    context = run(flow2.Runner(display="none").run(tree))
    assert context == {
        "coroutine": "async",
        "async_items": [1, 2],
        "items": ["a", "b"],
        "plain": "thread",
        "lambda": "lambda",
        "partial": "async",
        "object": "async call",
        "method": "async method",
    }
