"""A group's cleanup: the tasks that run after its own tasks, however they ended.

A group's ``on_failure`` tasks run when a task inside it failed, its
``finally_tasks`` every time: after success, after a failure, after a
cancellation (a signal, a timeout, a sibling's failure). They run one after
another, on_failure first, each whatever the one before it did, and read
what failed under :data:`FAILURES_KEY`. Their own failures are reported
like any task's; they never replace the group's failure, and fail the group
only when its own tasks succeeded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._events import Status

if TYPE_CHECKING:
    from ._state import TaskRun
    from ._task import Context, Task

#: The context key under which a group's cleanup tasks read what failed inside it.
FAILURES_KEY = "failures"


def failures_inside(record: TaskRun) -> list[dict[str, str]]:
    """What failed inside the group of ``record``, in tree order.

    One entry per task that failed on its own (not a group passing a failure
    inside it on): ``{"task": "CI/Build/Wheel", "error": "RuntimeError: boom"}``.
    """
    found: list[dict[str, str]] = []
    stack = list(reversed(record.children))
    while stack:
        child = stack.pop()
        error = child.error
        if (
            child.status is Status.FAILED
            and error is not None
            and not any(inner.status is Status.FAILED for inner in child.children)
        ):
            found.append(describe_failure(child.path, error))
        stack.extend(reversed(child.children))
    return found


def describe_failure(path: tuple[str, ...], error: BaseException) -> dict[str, str]:
    """One entry of :data:`FAILURES_KEY`: the task's path and ``"Type: message"``."""
    return {"task": "/".join(path), "error": f"{type(error).__name__}: {error}"}


async def run_guarded(
    group: Task,
    record: TaskRun,
    context: Context,
    on_failure: list[Task],
    finally_tasks: list[Task],
    body: Callable[[], Awaitable[Any]],
) -> None:
    """Run ``body`` (the group's own tasks), then the group's cleanup, whatever happened.

    :raises BaseException: what ``body`` raised, unchanged; else the first
        cleanup task's failure
    """
    try:
        await body()
    except asyncio.CancelledError:
        # The group's tasks are stopped (Ctrl-C, a timeout, a sibling's
        # failure): clean up, then go on being cancelled. A second
        # cancellation (a second signal) cancels the cleanup as well.
        # See test_sigint_runs_finally_within_the_grace_and_exits_130.
        await _clean_up(group, record, context, on_failure, finally_tasks, None)
        raise
    except BaseException as error:
        # The original failure stays the group's, whatever the cleanup does.
        # See test_a_failing_cleanup_does_not_hide_the_original_failure.
        await _clean_up(group, record, context, on_failure, finally_tasks, error)
        raise
    cleanup_failure = await _clean_up(group, record, context, on_failure, finally_tasks, None)
    if cleanup_failure is not None:
        # The tasks succeeded, the cleanup did not: the group fails with it.
        # See test_a_failing_finally_fails_a_successful_run.
        raise cleanup_failure


async def _clean_up(
    group: Task,
    record: TaskRun,
    context: Context,
    on_failure: list[Task],
    finally_tasks: list[Task],
    raised: BaseException | None,
) -> Exception | None:
    """Run the cleanup tasks that apply; the first one's failure, if any."""
    failures = failures_inside(record)
    if raised is not None and not failures:
        failures = [describe_failure(record.path, raised)]
    tasks = [*on_failure, *finally_tasks] if failures else list(finally_tasks)
    if on_failure and not failures:
        record.run.mark_not_started(
            on_failure, Status.SKIPPED, f"nothing in group {group.name!r} failed", parent=record
        )
    if not tasks:
        return None
    run = record.run
    if run.cleanups_stopped:
        # The run stopped waiting for cleanups (a second signal): this one
        # never starts. See test_a_cleanup_killed_by_a_second_signal_is_cancelled.
        run.mark_not_started(tasks, Status.CANCELLED, parent=record)
        return None
    # The cleanup reads what failed in a view of the context of its own,
    # so that two groups cleaning up at once each see their own failures;
    # the cleanup tasks' results are copied back.
    view = {**context, FAILURES_KEY: failures}
    # An asyncio task of its own: the group's has a cancellation pending
    # after Ctrl-C, which a task starting in it would take for its own.
    # Awaiting it passes a second cancellation on.
    cleanup = asyncio.get_running_loop().create_task(_run_in_order(record, tasks, view))
    # Known to the run, which cancels it when it stops waiting (Run.stop_cleanups).
    run.cleanups.add(cleanup)
    cleanup.add_done_callback(run.cleanups.discard)
    try:
        return await cleanup
    finally:
        for key in _result_keys(tasks):
            if key in view:
                context[key] = view[key]


async def _run_in_order(record: TaskRun, tasks: list[Task], context: Context) -> Exception | None:
    """Run each cleanup task, whatever the one before did; the first failure."""
    first: Exception | None = None
    for index, task in enumerate(tasks):
        try:
            if task.children:
                # A group in an asyncio task of its own, as a serial group runs it.
                await asyncio.get_running_loop().create_task(task.process(context))
            else:
                await task.process(context)
        except asyncio.CancelledError:
            record.run.mark_not_started(tasks[index + 1 :], Status.CANCELLED, parent=record)
            raise
        except Exception as error:
            if first is None:
                first = error
    return first


def _result_keys(tasks: list[Task]) -> list[str]:
    """The result keys of ``tasks`` and of every task inside them."""
    keys = []
    stack = list(tasks)
    while stack:
        task = stack.pop()
        if task.stores_result:
            keys.append(task.key)
        stack.extend(task.children)
    return keys
