"""The Dask executor, on a real LocalCluster whose workers are separate processes."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flow2
from tests.conftest import Recorder, run

distributed = pytest.importorskip("distributed")
import dask  # noqa: E402 - only once distributed is known to be there

S = flow2.Status
#: Bound on anything a test or a worker waits for.
PATIENCE = 60.0


# Callbacks live at module level: the workers import this module by name.


def where(context: dict[str, Any]) -> tuple[int, str]:
    return os.getpid(), distributed.get_worker().address


def meet(folder: str, name: str, other: str) -> tuple[int, str]:
    """Announce ourselves, then wait for the other task: both must run at once."""
    (Path(folder) / name).touch()
    wait_for_file(Path(folder) / other)
    return where({})


def left(context: dict[str, Any], *, folder: str) -> tuple[int, str]:
    return meet(folder, "left", "right")


def right(context: dict[str, Any], *, folder: str) -> tuple[int, str]:
    return meet(folder, "right", "left")


def wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + PATIENCE
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def hang_once(context: dict[str, Any], *, folder: str) -> str:
    """Say which worker process runs it and hang, the first time; return at once after."""
    marker = Path(folder) / "hanging"
    if marker.exists():
        return "second attempt"
    (Path(folder) / "hanging.tmp").write_text(str(os.getpid()))
    os.replace(Path(folder) / "hanging.tmp", marker)
    time.sleep(PATIENCE)
    return "the first attempt was not stopped"


def block(context: dict[str, Any], *, folder: str) -> None:
    """Mark that this call started, wait to be released, mark that it finished."""
    name = f"{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
    (Path(folder) / f"started-{name}").touch()
    wait_for_file(Path(folder) / "release")
    (Path(folder) / f"finished-{name}").touch()


def total(context: dict[str, Any], *, numbers: list[int], scale: int = 2) -> tuple[Any, ...]:
    return sorted(context), sum(numbers) * scale


def fail(context: dict[str, Any]) -> None:
    raise ValueError("bad input 42")


def chatter(context: dict[str, Any]) -> str:
    import sys

    print("to stdout")
    print("to stderr", file=sys.stderr)
    return "done"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two single-threaded worker processes, shared by the module (starting them is slow).

    Dask itself re-runs a task whose worker died up to allowed-failures
    times; 0 hands the first death to flow2, whose ``retries`` then apply.
    """
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as local_cluster,
    ):
        yield local_cluster


@pytest.fixture
def client(cluster: Any) -> Iterator[Any]:
    """A synchronous client, with both workers up (a test may have killed one)."""
    with distributed.Client(cluster, set_as_default=False) as sync_client:
        sync_client.wait_for_workers(2, timeout=PATIENCE)
        yield sync_client


def keys_on_scheduler(client: Any, prefix: str) -> list[str]:
    keys: list[str] = client.run_on_scheduler(
        lambda dask_scheduler: [str(key) for key in dask_scheduler.tasks]
    )
    return [key for key in keys if key.startswith(prefix)]


async def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"never true: {what}"
        await asyncio.sleep(0.02)


def files(folder: Path, prefix: str) -> list[Path]:
    return sorted(folder.glob(f"{prefix}-*"))


def test_tasks_run_at_once_on_the_workers(client: Any, tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        # An executor object is its owner's to close; the run leaves it open.
        async with flow2.DaskExecutor(client.scheduler.address) as executor:
            tree = flow2.ParallelTaskGroup(
                "Meet",
                flow2.CallbackTask("Left", left),
                flow2.CallbackTask("Right", right),
                executor=executor,
            )
            return await flow2.Runner(display="none").run(tree, {"folder": str(tmp_path)})

    # Each task waits for the other: they can only finish by running at once.
    context = run(scenario())
    workers = set(client.scheduler_info()["workers"])
    (left_pid, left_worker), (right_pid, right_worker) = context["left"], context["right"]
    assert {left_worker, right_worker} == workers
    assert os.getpid() not in (left_pid, right_pid)


def test_executor_dask_reads_the_address_from_the_environment(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW2_DASK_ADDRESS", client.scheduler.address)
    task = flow2.CallbackTask("Where", where, executor="dask")
    context = run(flow2.Runner(display="none").run(task))
    assert context["where"][1] in client.scheduler_info()["workers"]


def test_a_client_can_be_given_synchronous_or_asynchronous(client: Any) -> None:
    async def scenario() -> tuple[Any, Any]:
        on_sync = flow2.CallbackTask("Sync", where, executor=flow2.DaskExecutor(client))
        first = await flow2.Runner(display="none").run(on_sync)
        async with distributed.Client(
            client.scheduler.address, asynchronous=True, set_as_default=False
        ) as async_client:
            executor = flow2.DaskExecutor(async_client)
            on_async = flow2.CallbackTask("Async", where, executor=executor)
            second = await flow2.Runner(display="none").run(on_async)
            await executor.aclose()  # leaves the client it was given open
            assert async_client.status == "running"
        return first["sync"], second["async"]

    workers = client.scheduler_info()["workers"]
    assert all(address in workers for _, address in run(scenario()))


def test_only_declared_keys_travel_and_lambdas_are_fine(client: Any) -> None:
    executor = flow2.DaskExecutor(client)
    tree = flow2.SerialTaskGroup(
        "Copy",
        flow2.CallbackTask("Total", total),
        flow2.CallbackTask("Lambda", lambda context: len(context)),
        executor=executor,
    )
    # The lock cannot be pickled: it is only sent to the lambda, which fails.
    context = {"numbers": [1, 2, 3], "lock": threading.Lock()}
    context = run(flow2.Runner(display="none").run(tree, context, raises=False))
    assert context["total"] == (["numbers"], 12)
    assert isinstance(context["lambda"], flow2.ExecutorError)
    assert "task 'Lambda': context key 'lock' (lock) cannot be pickled" in str(context["lambda"])


def test_the_callbacks_exception_comes_back_unchanged(client: Any) -> None:
    task = flow2.CallbackTask("Fail", fail, executor=flow2.DaskExecutor(client))
    with pytest.raises(ValueError, match="bad input 42") as raised:
        run(flow2.Runner(display="none").run(task))
    # The worker's traceback comes along, as with process workers.
    assert 'raise ValueError("bad input 42")' in str(raised.value.__cause__)


def test_an_unpicklable_callback_is_named(client: Any) -> None:
    lock = threading.Lock()
    task = flow2.CallbackTask("Locked", lambda context: lock, executor=flow2.DaskExecutor(client))
    with pytest.raises(flow2.ExecutorError, match=r"task 'Locked': its callback lambda cannot"):
        run(flow2.Runner(display="none").run(task))


def make_lock(context: dict[str, Any]) -> Any:
    return threading.Lock()


def test_an_unpicklable_result_is_named_with_its_task(client: Any) -> None:
    task = flow2.CallbackTask("Locked", make_lock, executor=flow2.DaskExecutor(client))
    with pytest.raises(flow2.ExecutorError, match=r"task 'Locked': its result cannot be pickled"):
        run(flow2.Runner(display="none").run(task))


def test_a_timeout_cancels_the_future(client: Any, tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        task = flow2.CallbackTask("Block", block, timeout=1, executor=flow2.DaskExecutor(client))
        context = await flow2.Runner(display="none").run(
            task, {"folder": str(tmp_path)}, raises=False
        )
        # The scheduler forgets the future while its client is still open:
        # the cancel reached the cluster.
        await wait_until(lambda: not keys_on_scheduler(client, "block-"), "the key is gone")
        return context

    try:
        context = run(scenario())
    finally:
        (tmp_path / "release").touch()
    assert isinstance(context["block"], flow2.TaskTimeoutError)


def test_cancelling_the_run_cancels_running_and_queued_futures(client: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with distributed.Client(
            client.scheduler.address, asynchronous=True, set_as_default=False
        ) as async_client:
            # Three calls, two workers of one thread: one call waits in the queue.
            tree = flow2.ParallelTaskGroup(
                "Blocks",
                *(flow2.CallbackTask(f"Block {number}", block) for number in range(3)),
                executor=flow2.DaskExecutor(async_client),
            )
            running = asyncio.create_task(
                flow2.Runner(display="none").run(tree, {"folder": str(tmp_path)})
            )
            await wait_until(lambda: len(files(tmp_path, "started")) == 2, "two calls started")
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
            await wait_until(lambda: not keys_on_scheduler(client, "block-"), "the keys are gone")
            # Let the two running calls end (Dask cannot stop a running
            # thread): the queued one must never start, even with free workers.
            (tmp_path / "release").touch()
            await wait_until(lambda: len(files(tmp_path, "finished")) == 2, "two calls ended")

    try:
        run(scenario())
    finally:
        (tmp_path / "release").touch()
    assert len(files(tmp_path, "started")) == 2


def test_a_future_cancelled_by_the_cluster_fails_the_task(client: Any, tmp_path: Path) -> None:
    async def cancel_from_another_client() -> None:
        await wait_until(lambda: files(tmp_path, "started"), "the call started")
        (key,) = keys_on_scheduler(client, "block-")
        await asyncio.to_thread(client.cancel, [distributed.Future(key, client)], force=True)

    async def scenario() -> dict[str, Any]:
        task = flow2.CallbackTask("Block", block, executor=flow2.DaskExecutor(client))
        runner = flow2.Runner(display="none")
        context, _ = await asyncio.gather(
            runner.run(task, {"folder": str(tmp_path)}, raises=False),
            cancel_from_another_client(),
        )
        return context

    try:
        context = run(scenario())
    finally:
        (tmp_path / "release").touch()
    # Not reported as a cancelled task: nobody cancelled the run.
    assert isinstance(context["block"], flow2.ExecutorError)
    assert "task 'Block': the Dask cluster cancelled its future" in str(context["block"])


def test_an_executor_object_is_closed_by_the_run_that_opened_it(client: Any) -> None:
    executor = flow2.DaskExecutor(client.scheduler.address)
    task = flow2.CallbackTask("Where", where, executor=executor)

    async def use() -> Any:
        context = await flow2.Runner(display="none").run(task)
        return context["where"]

    # Used inline, each run connects and closes: nothing leaks, and the next
    # asyncio.run() may connect again.
    assert run(use())
    assert executor._client is None
    assert run(use())
    assert executor._client is None


def test_an_executor_object_opened_by_its_owner_stays_connected_across_runs(
    client: Any,
) -> None:
    executor = flow2.DaskExecutor(client.scheduler.address)
    task = flow2.CallbackTask("Where", where, executor=executor)

    async def two_runs() -> tuple[Any, Any]:
        async with executor:
            await flow2.Runner(display="none").run(task)
            connection = executor._client
            await flow2.Runner(display="none").run(task)
            assert executor._client is connection
        return connection, executor._client

    connection, after = run(two_runs())
    assert connection is not None and after is None


def test_an_executor_object_serves_one_loop_at_a_time(client: Any) -> None:
    executor = flow2.DaskExecutor(client.scheduler.address)
    task = flow2.CallbackTask("Where", where, executor=executor)
    first_loop = asyncio.new_event_loop()
    try:
        first_loop.run_until_complete(executor.start())  # left open on the first loop
        with pytest.raises(flow2.ExecutorError, match="still connected from another event loop"):
            run(flow2.Runner(display="none").run(task))
        first_loop.run_until_complete(executor.aclose())
    finally:
        first_loop.close()
    assert run(flow2.Runner(display="none").run(task))["where"]


async def kill_when_hanging(folder: Path) -> int:
    deadline = time.monotonic() + PATIENCE
    while not (folder / "hanging").exists():
        assert time.monotonic() < deadline, "the task never started"
        await asyncio.sleep(0.02)
    pid = int((folder / "hanging").read_text())
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.parametrize("retries", [0, 1])
def test_a_worker_killed_mid_task_fails_or_retries_the_task(
    client: Any, tmp_path: Path, recorder: Recorder, retries: int
) -> None:
    async def scenario() -> dict[str, Any]:
        task = flow2.CallbackTask(
            "Hang", hang_once, retries=retries, retry_delay=0, executor=flow2.DaskExecutor(client)
        )
        runner = flow2.Runner(display="none", listeners=[recorder])
        context, _ = await asyncio.gather(
            runner.run(task, {"folder": str(tmp_path)}, raises=False), kill_when_hanging(tmp_path)
        )
        return context

    context = run(scenario())
    failures = [event.error for event in recorder.events if event.status in (S.FAILED, S.RETRYING)]
    assert isinstance(failures[0], flow2.ExecutorError)
    assert "task 'Hang': the Dask worker running it died" in str(failures[0])
    if retries:
        assert recorder.statuses("Hang") == [S.RUNNING, S.RETRYING, S.SUCCEEDED]
        assert context["hang"] == "second attempt"
    else:
        assert recorder.statuses("Hang") == [S.RUNNING, S.FAILED]


def test_an_unreachable_scheduler_fails_before_any_task_runs(recorder: Recorder) -> None:
    # Nothing listens on port 1 of this machine.
    executor = flow2.DaskExecutor("tcp://127.0.0.1:1", connect_timeout=0.5)
    tree = flow2.SerialTaskGroup(
        "Flow",
        flow2.CallbackTask("Local", lambda context: 1),
        flow2.CallbackTask("Remote", where, executor=executor),
    )
    runner = flow2.Runner(display="none", listeners=[recorder])
    with pytest.raises(flow2.ExecutorError) as caught:
        run(runner.run(tree))
    message = str(caught.value)
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'" in message
    assert "`dask scheduler`" in message
    assert not [event for event in recorder.events if isinstance(event, flow2.TaskEvent)]


def test_an_asynchronous_client_of_another_loop_is_refused(client: Any) -> None:
    async def make_client() -> Any:
        return await distributed.Client(
            client.scheduler.address, asynchronous=True, set_as_default=False
        )

    loop = asyncio.new_event_loop()
    try:
        other = loop.run_until_complete(make_client())
        task = flow2.CallbackTask("Where", where, executor=flow2.DaskExecutor(other))
        with pytest.raises(flow2.ExecutorError, match=r"the event loop of .* is not running"):
            run(flow2.Runner(display="none").run(task))
        loop.run_until_complete(other.close())
    finally:
        loop.close()


def hold(context: dict[str, Any], *, folder: str) -> str:
    """Say that this call began on a worker, then wait to be released."""
    (Path(folder) / f"holding-{os.getpid()}").touch()
    wait_for_file(Path(folder) / "release")
    return "held"


def ended(recorder: Recorder, name: str) -> flow2.TaskEvent:
    return next(
        event
        for event in recorder.events
        if isinstance(event, flow2.TaskEvent)
        and event.task.name == name
        and event.status in (S.SUCCEEDED, S.FAILED)
    )


@pytest.mark.parametrize("callback", [where, fail])
def test_queue_time_is_not_work_time(
    client: Any, tmp_path: Path, recorder: Recorder, callback: Any
) -> None:
    # Both single-threaded workers hold a task until released; "Queued"
    # waits at least a second for one, and that second is not its work.
    tree = flow2.ParallelTaskGroup(
        "Busy",
        flow2.CallbackTask("Hold 1", hold),
        flow2.CallbackTask("Hold 2", hold),
        flow2.CallbackTask("Queued", callback),
        executor=flow2.DaskExecutor(client),
    )

    async def scenario() -> None:
        running = asyncio.create_task(
            flow2.Runner(display="none", listeners=[recorder]).run(
                tree, {"folder": str(tmp_path)}, raises=False
            )
        )
        await wait_until(lambda: len(files(tmp_path, "holding")) == 2, "two holds began")
        await asyncio.sleep(1.0)  # the queue time to measure, not a race
        (tmp_path / "release").touch()
        await running

    try:
        run(scenario())
    finally:
        (tmp_path / "release").touch()
    queued = ended(recorder, "Queued")
    assert queued.queued >= 1.0
    assert queued.duration is not None and queued.duration < queued.queued
    assert ended(recorder, "Hold 1").queued < 1.0


def test_a_run_dask_repeats_after_a_worker_died_is_an_attempt(
    client: Any, tmp_path: Path, recorder: Recorder
) -> None:
    def allow_failures(count: int) -> None:
        def set_allowed(dask_scheduler: Any) -> None:
            dask_scheduler.allowed_failures = count

        client.run_on_scheduler(set_allowed)

    async def scenario() -> dict[str, Any]:
        task = flow2.CallbackTask("Hang", hang_once, executor=flow2.DaskExecutor(client))
        runner = flow2.Runner(display="none", listeners=[recorder])
        context, _ = await asyncio.gather(
            runner.run(task, {"folder": str(tmp_path)}, raises=False), kill_when_hanging(tmp_path)
        )
        return context

    # Dask itself runs the task again once its worker died; no flow2 retries.
    allow_failures(1)
    try:
        context = run(scenario())
    finally:
        allow_failures(0)
    assert context["hang"] == "second attempt"
    assert recorder.statuses("Hang") == [S.RUNNING, S.RETRYING, S.SUCCEEDED]
    retrying = next(event for event in recorder.events if event.status is S.RETRYING)
    assert isinstance(retrying.error, flow2.ExecutorError)
    assert "the Dask worker running it died, and Dask ran it again" in str(retrying.error)
    assert ended(recorder, "Hang").attempt == 2


def test_what_a_callback_prints_on_a_worker_is_its_task_s_output(client: Any) -> None:
    pieces: list[tuple[str, str, str]] = []

    def collect(event: Any) -> None:
        if isinstance(event, flow2.OutputEvent):
            pieces.append((event.task.name, event.stream, event.text))

    collect.listens_to = frozenset({flow2.OutputEvent})  # type: ignore[attr-defined]

    async def scenario() -> dict[str, Any]:
        async with flow2.DaskExecutor(client.scheduler.address) as executor:
            task = flow2.CallbackTask("Chatter", chatter, executor=executor)
            return await flow2.Runner(display="none", listeners=[collect]).run(task)

    assert run(scenario())["chatter"] == "done"
    assert pieces == [("Chatter", "stdout", "to stdout\n"), ("Chatter", "stderr", "to stderr\n")]
