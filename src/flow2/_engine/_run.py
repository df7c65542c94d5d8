"""A run: one execution of a task tree, and the runner that starts it.

:class:`Runner` checks the whole tree before anything runs, creates the
:class:`Run` (the per-run state every task reaches through a context
variable: the context dict, the event listeners, the executors), processes
the root, and closes everything when the root ends — however it ends.
"""

from __future__ import annotations

import asyncio
import os
import sys
from itertools import repeat
from time import perf_counter, time
from typing import TYPE_CHECKING, Protocol

from ._context import current_run
from ._events import RunEvent, Status, TaskEvent
from ._exceptions import (
    DefinitionError,
    DuplicateKeyError,
    DuplicateTaskError,
    TaskTypeError,
)
from ._executor import EXECUTOR_FACTORIES, Executor
from ._logger import logger
from ._task import Context, Task, check_is_task

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._events import Event, EventListener
    from ._executor import RunOptions


class Run:
    """The state of one run, shared by every task in it.

    :ivar id: a short unique id, in every event
    :ivar root: the root task
    :ivar context: the context dict being filled
    :ivar settings: the :class:`Runner` that started it
    """

    def __init__(
        self, root: Task, context: Context, listeners: list[EventListener], settings: RunOptions
    ) -> None:
        self.id = os.urandom(6).hex()
        self.root = root
        self.context = context
        self.settings = settings
        self.listeners = listeners
        self.started_at = time()
        self._started_counter = perf_counter()
        self._executors: dict[str, Executor] = {}
        self._started_executors: list[Executor] = []
        self._started_ids: set[int] = set()

    def emit(self, event: Event) -> None:
        """Hand ``event`` to every listener, in order."""
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as error:
                # A broken listener must not fail the work it reports on. A new
                # list, not remove(): the loop over the old one must not skip
                # the next listener.
                self.listeners = [other for other in self.listeners if other is not listener]
                logger.exception("event listener %r failed and was removed", listener)
                # What it was for (an event file, a display) is lost from here
                # on: say so where a person sees it, not only on the logger.
                print(
                    f"flow2: {listener!r} failed and stopped receiving events "
                    f"({type(error).__name__}: {error}); the run goes on without it",
                    file=sys.stderr,
                )

    def path_of(self, task: Task) -> tuple[str, ...]:
        """Names from the root down to ``task``."""
        names = []
        node: Task | None = task
        while node is not None:
            names.append(node.name)
            node = node._parent
        return tuple(reversed(names))

    async def executor_for(self, task: Task) -> Executor:
        """The executor of ``task``: its own, else its nearest group's, else the thread pool.

        One that a task created on the fly names for the first time is started here.
        """
        node: Task | None = task
        choice: str | Executor = "thread"
        while node is not None:
            if node.executor is not None:
                choice = node.executor
                break
            node = node._parent
        if isinstance(choice, str):
            executor = self._executors.get(choice)
            if executor is not None:
                return executor
            if choice not in EXECUTOR_FACTORIES:
                raise DefinitionError(_unknown_executor_message(task, choice))
        elif id(choice) in self._started_ids:
            return choice
        await self.start_executors([choice])
        return self._executors[choice] if isinstance(choice, str) else choice

    async def start_executors(self, choices: Iterable[str | Executor]) -> None:
        """Create (for a name) and start each executor; the run closes each at its end."""
        for choice in choices:
            if isinstance(choice, str):
                if choice in self._executors:
                    continue
                executor = EXECUTOR_FACTORIES[choice](self.settings)
            else:
                if id(choice) in self._started_ids:
                    continue
                executor = choice
            await executor.start()
            if isinstance(choice, str):
                self._executors[choice] = executor
            self._started_ids.add(id(executor))
            self._started_executors.append(executor)

    def mark_not_started(self, tasks: Iterable[Task], status: Status) -> None:
        """Report every task under ``tasks`` as never started: SKIPPED or CANCELLED."""
        stack = list(tasks)
        stack.reverse()
        now = time()
        while stack:
            task = stack.pop()
            task._status = status
            self.emit(TaskEvent(status, task, self, now))
            stack.extend(reversed(task.children))

    async def close(self, status: Status, error: BaseException | None) -> None:
        """Close every executor the run started, then emit the run's end.

        Each ``start()`` is paired with one ``aclose()``: an executor object
        started by its owner too (``async with``) stays open for them.
        """
        for executor in reversed(self._started_executors):
            try:
                await executor.aclose()
            except Exception:
                logger.exception("closing executor %r failed", executor)
        self.emit(RunEvent(status, self, time(), perf_counter() - self._started_counter, error))


def _unknown_executor_message(task: Task, name: str) -> str:
    known = ", ".join(repr(known) for known in sorted(EXECUTOR_FACTORIES))
    return (
        f"task {task.name!r}: executor={name!r} is not a known executor; "
        f"use one of {known} or a flow2.Executor object"
    )


def validate_tree(root: Task) -> list[str | Executor]:
    """Check the whole tree before anything runs, and reset its run-time state.

    :returns: the executors the tree names: "thread" first, then each name or
        object in the order the tree first names it

    :raises flow2.DuplicateKeyError: two leaf tasks store under one key
    :raises flow2.DuplicateTaskError: one task object appears twice
    :raises flow2.TaskTypeError: a group's child is not a Task
    :raises flow2.DefinitionError: a task names an executor that does not exist
    """
    # Iterative, not recursive: trees thousands of levels deep are fine.
    # This walks every task of every run, so it is kept tight.
    seen: set[int] = set()
    owners: dict[str, Task] = {}
    stack: list[tuple[Task, Task | None]] = [(root, None)]
    pop, extend, remember = stack.pop, stack.extend, seen.add
    pending = Status.PENDING
    executors: dict[int | str, str | Executor] = {"thread": "thread"}
    while stack:
        task, parent = pop()
        identity = id(task)
        if identity in seen:
            where = f"group {parent.name!r}" if parent is not None else "the tree"
            raise DuplicateTaskError(
                f"task {task.name!r} ({task!r}) appears twice in {where}; "
                f"a task object runs once per tree, so create a second task instead"
            )
        remember(identity)
        task._parent = parent
        task._status = pending
        task._failed_count = 0
        executor = task.executor
        if executor is not None:
            if type(executor) is str:
                if executor not in EXECUTOR_FACTORIES:
                    raise DefinitionError(_unknown_executor_message(task, executor))
                executors.setdefault(executor, executor)
            else:
                executors.setdefault(id(executor), executor)
        if task.stores_result:
            other = owners.setdefault(task.key, task)
            if other is not task:
                raise DuplicateKeyError(
                    f"task {other.name!r} and task {task.name!r} both store their result "
                    f"under {task.key!r}; give one of them register='…'"
                )
        children = task.children
        if children:
            for position, child in enumerate(children, 1):
                if not isinstance(child, Task):
                    check_is_task(task.name, position, child)
            extend(zip(reversed(children), repeat(task)))
    return list(executors.values())


#: What ``task.run()`` on a root uses: set by the runner layer when flow2 is imported.
_default_runner: Callable[[], DefaultRunner] | None = None


class DefaultRunner(Protocol):
    """What the engine needs of the runner that ``task.run()`` on a root uses."""

    async def run(
        self, task: Task, context: Context | None = None, *, raises: bool = True
    ) -> Context: ...


def set_default_runner(factory: Callable[[], DefaultRunner]) -> None:
    """Name the runner that ``task.run()`` and ``task.process()`` on a root start a run with."""
    global _default_runner
    _default_runner = factory


async def run_root(task: Task, context: Context | None, raises: bool) -> Context:
    """Start a run of the tree under ``task`` with the default runner's settings."""
    if _default_runner is None:  # pragma: no cover - flow2/__init__ always sets it
        raise RuntimeError("flow2's runner is not set up; import flow2")
    return await _default_runner().run(task, context, raises=raises)


async def execute(
    task: Task,
    context: Context | None,
    *,
    raises: bool,
    listeners: Callable[[], list[EventListener]],
    settings: RunOptions,
) -> Context:
    """The one way into a run: check the tree, create the run, drive the root, close everything.

    :param task: the root of the tree
    :param context: the dict to start from; a new one when None
    :param raises: raise the failed task's exception, unchanged (else store it and return)
    :param listeners: makes the run's listeners, called once the tree is known to be good
    :param settings: the run's settings (what executor factories read)
    :raises flow2.DefinitionError: when the tree is wrong; nothing ran
    :raises flow2.TaskTypeError: when something in the tree is not a Task
    """
    if not isinstance(task, Task):
        raise TaskTypeError(
            f"Runner.run() needs a flow2.Task, got {task!r} ({type(task).__name__})"
        )
    if context is None:
        context = {}
    elif not isinstance(context, dict):
        raise TaskTypeError(
            f"task {task.name!r}: the context must be a dict, got {type(context).__name__}"
        )
    executors = validate_tree(task)
    run = Run(task, context, listeners(), settings)
    token = current_run.set(run)
    run.emit(RunEvent(Status.RUNNING, run, time()))
    status, error = Status.FAILED, None
    try:
        await run.start_executors(executors)
        await task.process(context, raises)
        status = task._status
    except asyncio.CancelledError:
        status = Status.CANCELLED
        raise
    except BaseException as exception:
        error = exception
        raise
    finally:
        current_run.reset(token)
        await run.close(status, error)
    return context
