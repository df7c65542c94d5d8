"""How groups schedule their children: one after another, or all at once."""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING, Any

from ._context import current_run
from ._events import Status
from ._exceptions import DefinitionError
from ._task import Context, Task, check_is_task

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from ._run import Run


class OnError(enum.Enum):
    """What a :class:`ParallelTaskGroup` does when a child fails."""

    #: Run every child; the group itself does not fail (the documented default).
    CONTINUE = "continue"
    #: Run every child, then fail with an ExceptionGroup of the failures.
    RAISE = "raise"
    #: Cancel the running siblings at the first failure, then fail the same way.
    CANCEL = "cancel"


class TaskGroup(Task):
    """Base TaskGroup, don't use this directly.

    Instead, use :class:`ParallelTaskGroup` or :class:`SerialTaskGroup`.
    A group stores no result of its own, so two groups may share a name.

    :param name: group name
    :param tasks: the child tasks
    :param kwargs: the options of :class:`Task`
    :raises flow2.TaskTypeError: when a child is not a Task
    """

    stores_result = False

    def __init__(self, name: str, *tasks: Task, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        for position, task in enumerate(tasks, 1):
            check_is_task(name, position, task)
        #: Task objects.
        self.tasks: list[Task] = list(tasks)

    @property
    def children(self) -> tuple[Task, ...]:
        return tuple(self.tasks)

    def _enter(self, context: Context | None) -> tuple[Run | None, Context]:
        """Return the current run and the context to fill (None: no run yet)."""
        run = current_run.get()
        if run is None:
            return None, context if context is not None else {}
        return run, context if context is not None else run.context

    def _count_failures(self) -> None:
        self._failed_count = sum(child._failed_count for child in self.tasks)


async def _process_apart(child: Task, context: Context) -> None:
    # A child group runs in an asyncio task of its own: awaiting it directly
    # would chain one Python frame per nesting level into every resume and
    # hit the recursion limit about 300 groups deep. Awaiting a task still
    # propagates cancellation into it.
    await asyncio.get_running_loop().create_task(child.process(context))


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
        run, context = self._enter(context)
        if run is None:
            return await self.process(context)
        tasks = self.tasks
        try:
            for index, child in enumerate(tasks):
                try:
                    if isinstance(child, TaskGroup):
                        await _process_apart(child, context)
                    else:
                        await child.process(context)
                except asyncio.CancelledError:
                    run.mark_not_started(tasks[index + 1 :], Status.CANCELLED)
                    raise
                except BaseException:
                    run.mark_not_started(tasks[index + 1 :], Status.SKIPPED)
                    raise
        finally:
            self._count_failures()
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

    def __init__(
        self,
        name: str,
        *tasks: Task,
        max_parallel: int | None = None,
        on_error: OnError | str = OnError.CONTINUE,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, *tasks, **kwargs)
        if max_parallel is not None and (
            isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
        ):
            raise DefinitionError(
                f"group {name!r}: max_parallel={max_parallel!r} is not a whole number >= 1; "
                f"use e.g. max_parallel=4, or None for no limit"
            )
        try:
            on_error = OnError(on_error)
        except ValueError:
            accepted = ", ".join(repr(policy.value) for policy in OnError)
            raise DefinitionError(
                f"group {name!r}: on_error={on_error!r} is not one of {accepted}"
            ) from None
        self.max_parallel = max_parallel
        self.on_error = on_error

    async def run(self, context: Context | None = None) -> Context:
        """Run the children concurrently; without a current run, run the whole tree.

        :param context: context dict
        :returns: the context, filled
        :raises ExceptionGroup: with ``on_error`` "raise" or "cancel", of the failures
        """
        run, context = self._enter(context)
        if run is None:
            return await self.process(context)
        try:
            if self.max_parallel is None or self.max_parallel >= len(self.tasks):
                failures = await self._run_all(context)
            else:
                failures = await self._run_bounded(run, context, self.max_parallel)
        finally:
            self._count_failures()
        if failures and self.on_error is not OnError.CONTINUE:
            raise ExceptionGroup(
                f"{len(failures)} of {len(self.tasks)} tasks in group {self.name!r} failed",
                failures,
            )
        return context

    async def _run_all(self, context: Context) -> list[Exception]:
        loop = asyncio.get_running_loop()
        children = [loop.create_task(child.process(context)) for child in self.tasks]
        if self.on_error is OnError.CANCEL:
            cancelled_siblings = False

            def cancel_siblings(done: asyncio.Task[Context]) -> None:
                nonlocal cancelled_siblings
                if cancelled_siblings or done.cancelled() or done.exception() is None:
                    return
                cancelled_siblings = True
                for sibling in children:
                    sibling.cancel()  # no-op on the finished ones

            for child in children:
                child.add_done_callback(cancel_siblings)
        # gather, when cancelled itself, cancels every child and waits for
        # them before raising: nothing keeps running behind the caller.
        outcomes = await asyncio.gather(*children, return_exceptions=True)
        return _failures(outcomes)

    async def _run_bounded(self, run: Run, context: Context, limit: int) -> list[Exception]:
        # ``limit`` workers share one iterator over the children, so at most
        # ``limit`` children exist as running coroutines at any time.
        waiting: Iterator[Task] = iter(self.tasks)
        failures: list[Exception] = []
        workers: list[asyncio.Task[None]] = []
        stop_on_failure = self.on_error is OnError.CANCEL

        async def work() -> None:
            for child in waiting:
                try:
                    await child.process(context)
                except Exception as error:
                    failures.append(error)
                    if stop_on_failure:
                        for worker in workers:
                            if worker is not asyncio.current_task():
                                worker.cancel()
                        return

        loop = asyncio.get_running_loop()
        workers.extend(loop.create_task(work()) for _ in range(limit))
        try:
            outcomes = await asyncio.gather(*workers, return_exceptions=True)
        except asyncio.CancelledError:
            run.mark_not_started(list(waiting), Status.CANCELLED)
            raise
        run.mark_not_started(list(waiting), Status.SKIPPED)
        _failures(outcomes)  # re-raises a KeyboardInterrupt or SystemExit
        return failures


def _failures(outcomes: Iterable[object]) -> list[Exception]:
    """The children's exceptions; a KeyboardInterrupt or SystemExit is re-raised."""
    failures = []
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            failures.append(outcome)
        elif isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
            raise outcome
    return failures
