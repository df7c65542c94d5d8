"""How groups schedule their children: one after another, or all at once."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._cleanup import run_guarded
from ._context import current_run
from ._events import Status
from ._exceptions import DefinitionError
from ._frames import user_frames
from ._state import Cleanup
from ._task import Context, Task, check_is_task

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ._state import TaskRun


#: How many children a parallel group starts before it lets them run.
_START_BATCH = 512


class OnError(enum.Enum):
    """What a :class:`ParallelTaskGroup` does when a child fails."""

    #: Run every child; the group itself does not fail (the documented default).
    CONTINUE = "continue"
    #: Run every child, then fail with an ExceptionGroup of the failures.
    RAISE = "raise"
    #: Cancel the running siblings at the first failure, then fail the same way.
    CANCEL = "cancel"


def check_max_parallel(name: str, max_parallel: object) -> int | None:
    """``max_parallel=`` of group ``name``: None, or a whole number >= 1."""
    if max_parallel is not None and (
        isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
    ):
        raise DefinitionError(
            f"group {name!r}: max_parallel={max_parallel!r} is not a whole number >= 1; "
            f"use e.g. max_parallel=4, or None for no limit",
            task=name,
            option="max_parallel",
            value=max_parallel,
        )
    return max_parallel


def check_on_error(name: str, on_error: object) -> OnError:
    """``on_error=`` of group ``name`` as an :class:`OnError`."""
    try:
        return OnError(on_error)
    except ValueError:
        accepted = ", ".join(repr(policy.value) for policy in OnError)
        raise DefinitionError(
            f"group {name!r}: on_error={on_error!r} is not one of {accepted}",
            task=name,
            option="on_error",
            value=on_error,
        ) from None


class TaskGroup(Task):
    """Base TaskGroup, don't use this directly.

    Instead, use :class:`ParallelTaskGroup` or :class:`SerialTaskGroup`.
    A group stores no result of its own, so two groups may share a name.

    A group may clean up after its tasks: its ``on_failure`` tasks run when
    a task inside it failed, its ``finally_tasks`` whatever happened (success,
    failure, cancellation, a signal interrupting the run). They run one
    after another, on_failure first, each whatever the one before did, and
    read what failed in the context under ``failures``: a list of
    ``{"task": "CI/Build", "error": "RuntimeError: boom"}``. Their failures
    are reported without replacing the group's own; they fail the group
    only when its tasks succeeded. They are never reused by a resumed run.

    :param name: group name
    :param tasks: the child tasks
    :param on_failure: tasks to run after the group's tasks when one of them failed
    :param finally_tasks: tasks to run after the group's tasks, whatever happened
    :param kwargs: the options of :class:`Task`
    :raises flow2.TaskTypeError: when a child or a cleanup task is not a Task

    Example::

        flow2.SerialTaskGroup(
            "CI",
            build,
            test,
            on_failure=[flow2.CallbackTask("Report", report)],
            finally_tasks=[flow2.CallbackTask("Stop database", stop_database)],
        )
    """

    stores_result = False

    def __init__(
        self,
        name: str,
        *tasks: Task,
        on_failure: Iterable[Task] | None = None,
        finally_tasks: Iterable[Task] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        for position, task in enumerate(tasks, 1):
            check_is_task(name, position, task)
        #: Task objects.
        self.tasks: list[Task] = list(tasks)
        #: The tasks that run after :attr:`tasks` when one of them failed.
        self.on_failure: list[Task] = _cleanup_tasks(name, "on_failure", on_failure)
        #: The tasks that run after :attr:`tasks` (and :attr:`on_failure`), whatever happened.
        self.finally_tasks: list[Task] = _cleanup_tasks(name, "finally_tasks", finally_tasks)

    @property
    def children(self) -> tuple[Task, ...]:
        if self.on_failure or self.finally_tasks:
            return (*self.tasks, *self.on_failure, *self.finally_tasks)
        return tuple(self.tasks)

    def cleanup_role_of(self, child: Task) -> Cleanup | None:
        if not (self.on_failure or self.finally_tasks):
            return None
        if any(task is child for task in self.on_failure):
            return Cleanup.ON_FAILURE
        if any(task is child for task in self.finally_tasks):
            return Cleanup.FINALLY
        return None

    async def _run_with_cleanup(
        self, record: TaskRun, context: Context, body: Callable[[], Awaitable[Any]]
    ) -> None:
        """Run ``body`` (the group's own tasks), then its cleanup tasks if it has any."""
        if self.on_failure or self.finally_tasks:
            await run_guarded(self, record, context, self.on_failure, self.finally_tasks, body)
        else:
            await body()

    def _enter(self, context: Context | None) -> tuple[TaskRun | None, Context]:
        """This group's record in the current run and the context to fill (None: no run yet)."""
        run = current_run.get()
        if run is None:
            return None, context if context is not None else {}
        return run.record_for(self), context if context is not None else run.context


def _cleanup_tasks(name: str, option: str, tasks: Iterable[Task] | None) -> list[Task]:
    """The cleanup tasks given as ``option``, checked: a list of Tasks."""
    if tasks is None:
        return []
    if isinstance(tasks, Task) or not isinstance(tasks, Iterable):
        raise DefinitionError(
            f"group {name!r}: {option}={tasks!r} is not a list of tasks; "
            f"write e.g. {option}=[flow2.CallbackTask('Name', function)]",
            task=name,
            option=option,
            value=tasks,
        )
    checked = list(tasks)
    for position, task in enumerate(checked, 1):
        check_is_task(name, position, task)
    return checked


async def _process_apart(child: Task, context: Context) -> None:
    # A child group runs in an asyncio task of its own: awaiting it directly
    # would chain one Python frame per nesting level into every resume and
    # hit the recursion limit about 300 groups deep. Awaiting a task still
    # propagates cancellation into it.
    await asyncio.get_running_loop().create_task(child.process(context))


async def run_serially(record: TaskRun, context: Context, tasks: Sequence[Task]) -> None:
    """Run ``tasks`` (the children of ``record``'s group) one after another.

    At the first failure the rest are SKIPPED and the failure is raised,
    unchanged; when cancelled, the rest are CANCELLED.
    """
    for index, child in enumerate(tasks):
        try:
            if isinstance(child, TaskGroup):
                await _process_apart(child, context)
            else:
                await child.process(context)
        except asyncio.CancelledError:
            record.run.mark_not_started(tasks[index + 1 :], Status.CANCELLED, parent=record)
            raise
        except BaseException:
            record.run.mark_not_started(
                tasks[index + 1 :],
                Status.SKIPPED,
                f"task {child.name!r} before it failed",
                parent=record,
            )
            raise


class SerialTaskGroup(TaskGroup):
    """Run tasks one after another, stop and fail if one fails.

    The tasks after a failed one do not run and are reported as SKIPPED;
    the failed task's exception, unchanged, is the group's.
    """

    async def run(self, context: Context | None = None) -> Context:
        """Run the children in order; without a current run, run the whole tree.

        :param context: context dict
        :returns: the context, filled
        """
        record, context = self._enter(context)
        if record is None:
            try:
                return await self.process(context)
            except Exception as error:
                # The caller sees its own frames, not flow2's and asyncio's.
                # See test_a_failure_raised_to_the_caller_shows_the_users_frames.
                raise user_frames(error)  # noqa: B904  (the same exception, not a new one)
        await self._run_with_cleanup(
            record, context, lambda: run_serially(record, context, self.tasks)
        )
        return context


class ParallelTaskGroup(TaskGroup):
    """Run tasks in parallel without caring about success or failures.

    :param name: group name
    :param tasks: the child tasks
    :param max_parallel: how many children may run at once (None: all)
    :param on_error: ``"continue"`` (default: run all, never fail), ``"raise"``
        (run all, then fail with an ExceptionGroup of the failures) or
        ``"cancel"`` (cancel the running siblings at the first failure, then
        fail the same way)
    :param kwargs: the options of :class:`Task`
    """

    #: The options of :class:`Task`, ``max_parallel`` and ``on_error``.
    definition_options = (*TaskGroup.definition_options, "max_parallel", "on_error")

    def __init__(
        self,
        name: str,
        *tasks: Task,
        max_parallel: int | None = None,
        on_error: OnError | str = OnError.CONTINUE,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, *tasks, **kwargs)
        self.max_parallel = check_max_parallel(name, max_parallel)
        self.on_error = check_on_error(name, on_error)

    async def run(self, context: Context | None = None) -> Context:
        """Run the children concurrently; without a current run, run the whole tree.

        :param context: context dict
        :returns: the context, filled
        :raises ExceptionGroup: with ``on_error`` "raise" or "cancel", of the failures
        """
        record, context = self._enter(context)
        if record is None:
            try:
                return await self.process(context)
            except Exception as error:
                # The caller sees its own frames, not flow2's and asyncio's.
                # See test_a_failure_raised_to_the_caller_shows_the_users_frames.
                raise user_frames(error)  # noqa: B904  (the same exception, not a new one)
        await self._run_with_cleanup(record, context, lambda: self._run_tasks(record, context))
        return context

    async def _run_tasks(self, record: TaskRun, context: Context) -> None:
        """Run the group's own tasks; fail as ``on_error`` says."""
        failures = await self._run_children(record, context)
        if failures and self.on_error is not OnError.CONTINUE:
            raise ExceptionGroup(
                f"{len(failures)} of {len(self.tasks)} tasks in group {self.name!r} failed",
                failures,
            )

    async def _run_children(self, record: TaskRun, context: Context) -> list[Exception]:
        """Run the children, at most ``max_parallel`` at once; return their failures in order."""
        tasks: Sequence[Task] = self.tasks
        needs = record.run.needs
        if needs is not None and self.max_parallel is not None:
            order = needs.start_orders.get(id(self))
            if order is not None:
                # Children that wait for siblings start after them, so that a
                # waiting child never holds the slot its need must run in.
                # See test_bounded_group_starts_needed_children_first.
                # (The order counts the cleanup tasks, which run apart.)
                tasks = [tasks[index] for index in order if index < len(self.tasks)]
        return await run_concurrently(
            record, context, tasks, max_parallel=self.max_parallel, on_error=self.on_error
        )


async def run_concurrently(
    record: TaskRun,
    context: Context,
    tasks: Sequence[Task],
    *,
    max_parallel: int | None,
    on_error: OnError,
) -> list[Exception]:
    """Run ``tasks`` (the children of ``record``'s group), at most ``max_parallel``
    at once; return their failures in order.

    One scheduler serves every policy: a child that finishes starts the
    next waiting one, so at most ``max_parallel`` children exist as
    running coroutines; with ``on_error="cancel"`` the first failure
    cancels the running children and leaves the waiting ones SKIPPED.
    """
    count = len(tasks)
    if not count:
        return []
    loop = asyncio.get_running_loop()
    create_task = loop.create_task
    running: dict[asyncio.Task[Context], int] = {}
    failures: list[tuple[int, Exception]] = []
    all_done: asyncio.Future[None] = loop.create_future()
    cancel_on_failure = on_error is OnError.CANCEL
    limit = max_parallel or count
    next_index = min(limit, count)  # the first child not started yet
    stopping = False

    def finished(child_task: asyncio.Task[Context]) -> None:
        nonlocal stopping, next_index
        index = running.pop(child_task)
        if not child_task.cancelled():
            error = child_task.exception()
            # Only Exceptions arrive here: a task's process() turns its
            # code's other BaseExceptions into TaskExitError.
            if isinstance(error, Exception):
                failures.append((index, error))
                if cancel_on_failure and not stopping:
                    # Cancel the running siblings; the waiting ones never
                    # start. See test_max_parallel_with_cancel_skips_the_rest
                    # and test_parallel_on_error_cancel_cancels_running_siblings.
                    stopping = True
                    for sibling in running:
                        sibling.cancel()
        if next_index < count and not stopping:
            # A finished child makes room for the next waiting one, so at
            # most ``max_parallel`` children exist as coroutines at once.
            started = create_task(tasks[next_index].process(context))
            running[started] = next_index
            started.add_done_callback(finished)
            next_index += 1
        elif not running and not all_done.done():
            all_done.set_result(None)

    window = next_index  # how many start at once: all, or max_parallel
    next_index = 0
    try:
        # Children start in batches, the loop running the started ones
        # in between: every child still starts without waiting for any
        # other to finish, but quick children finish before the next
        # batch exists, so a million of them never all live at once.
        # (A child group runs in an asyncio task of its own as well:
        # nesting stays flat however deep the tree, see _process_apart.)
        while next_index < window and not stopping:
            batch_end = min(next_index + _START_BATCH, window)
            while next_index < batch_end:
                started = create_task(tasks[next_index].process(context))
                running[started] = next_index
                started.add_done_callback(finished)
                next_index += 1
            if next_index < window:
                await asyncio.sleep(0)
        if not running and not all_done.done():
            all_done.set_result(None)
        await all_done
    except asyncio.CancelledError:
        # The group itself is cancelled (Ctrl-C, a timeout, a sibling):
        # cancel every running child and wait for each to report, so
        # nothing keeps running behind the caller; the waiting children
        # are CANCELLED. See
        # test_cancelling_a_bounded_parallel_group_cancels_running_and_waiting.
        stopping = True
        children = list(running)
        for child_task in children:
            child_task.cancel()
        while children:
            try:
                await asyncio.wait(children)
                break
            except asyncio.CancelledError:
                # Cancelled again while waiting (an impatient caller, a
                # signal while the children clean up): cancel them again,
                # which stops their cleanup too (see
                # test_a_second_signal_during_cleanup_kills_it), and still
                # wait for every child to report, or the group would end
                # before its tasks, and the run too (see
                # test_a_group_cancelled_twice_still_waits_for_its_tasks).
                for child_task in children:
                    child_task.cancel()
                continue
        record.run.mark_not_started(tasks[next_index:], Status.CANCELLED, parent=record)
        raise
    if stopping:
        failed = tasks[min(failures)[0]].name
        record.run.mark_not_started(
            tasks[next_index:],
            Status.SKIPPED,
            f"task {failed!r} failed and the group cancels on error",
            parent=record,
        )
    failures.sort(key=lambda pair: pair[0])
    return [error for _, error in failures]
