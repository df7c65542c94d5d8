"""A run: one execution of a task tree, and the one way into it.

:func:`execute` checks the whole tree before anything runs, creates the
:class:`Run` (the per-run state every task reaches through a context
variable: the context dict, each task's :class:`~flow2.TaskRun` record, the
event listeners, the executors, the plan), processes the root, and closes
everything when the root ends, however it ends. ``task.run()``,
``task.process()`` on a root and ``Runner(...).run()`` all arrive here.
"""

from __future__ import annotations

import asyncio
import os
import sys
from itertools import repeat
from time import perf_counter, time
from types import FunctionType
from typing import TYPE_CHECKING, Protocol, cast

from ._collector import freeze_for, thaw
from ._context import current_record, current_run
from ._events import OutputEvent, RunEvent, Status, TaskEvent
from ._exceptions import (
    DefinitionError,
    DuplicateKeyError,
    DuplicateTaskError,
    TaskTypeError,
)
from ._executor import EXECUTOR_FACTORIES, Executor
from ._gate import Gate
from ._logger import logger
from ._needs import NeedsError, analyse_needs
from ._output import OutputTail
from ._state import TaskRun
from ._task import Context, Task, check_is_task

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._events import Event, EventListener
    from ._executor import RunOptions
    from ._needs import Needs
    from ._slots import JobSlots
    from ._state import Plan, Reuser


class Run:
    """The state of one run: its context, its task records, listeners and executors.

    :ivar id: a short unique id, in every event
    :ivar root: the root task
    :ivar context: the context dict being filled
    :ivar settings: the settings the run was started with (a :class:`flow2.Runner`)
    :ivar plan: what decides to reuse or leave out tasks (None: run everything)
    :ivar started_at: wall-clock start, seconds since the epoch
    :ivar loop: the event loop the run goes on (what a worker thread hands output to)
    :ivar started: the records of the tasks that started, in the order they
        started (a listener that polls, such as the run store, reads what
        runs from it instead of asking for an event per start)
    :ivar status: how the run ended (RUNNING until it has)
    :ivar duration: seconds the run took (0 until it ended)
    """

    def __init__(
        self,
        root: Task,
        context: Context,
        listeners: list[EventListener],
        settings: RunOptions,
        plan: Plan | None = None,
    ) -> None:
        self.id = os.urandom(6).hex()
        self.root = root
        self.context = context
        self.settings = settings
        #: The listeners of each task status (see :attr:`listeners`).
        self.listening: dict[Status, tuple[EventListener, ...]] = {}
        self.listeners = listeners
        self.plan = plan
        #: What decides reuse by key just before each task starts (the run store).
        self.reuser: Reuser | None = None
        #: What the tree's needs analysis found (None: no task has needs or a condition).
        self.needs: Needs | None = None
        #: What each task passes before it starts (None: nothing to check).
        self.gate: Gate | None = None
        #: The run-wide job slots leaf tasks take to work (None: no limit).
        self.slots: JobSlots | None = None
        self.started_at = time()
        self.status = Status.RUNNING
        self.duration = 0.0
        self.loop = asyncio.get_running_loop()
        self._output_listening: tuple[Callable[[OutputEvent], None], ...] = ()
        self._started_counter = perf_counter()
        self._records: dict[int, TaskRun] = {}
        self.started: list[TaskRun] = []
        self._executors: dict[str, Executor] = {}
        #: The executors the tree names, started before the first task runs.
        self.executor_choices: list[str | Executor] = []
        self._started_executors: list[Executor] = []
        self._started_ids: set[int] = set()
        #: Work that ignored its cancellation after a timeout, stopped at the run's end.
        self._left_running: list[asyncio.Future[object]] = []
        #: The groups' cleanups running now (see ``_cleanup``), each an asyncio task.
        self.cleanups: set[asyncio.Task[object]] = set()
        #: True once :meth:`stop_cleanups` was called: no cleanup starts any more.
        self.cleanups_stopped = False

    @property
    def root_record(self) -> TaskRun:
        """The root task's record."""
        return self._records[id(self.root)]

    def record_of(self, task: Task) -> TaskRun:
        """The record of ``task`` in this run.

        :raises KeyError: when the task is not part of this run (yet)
        """
        record = self._records.get(id(task))
        if record is None or record.task is not task:
            raise KeyError(f"task {task.name!r} is not part of run {self.id}")
        return record

    def find_record(self, task: Task) -> TaskRun | None:
        """The record of ``task`` in this run, or None when it has none."""
        record = self._records.get(id(task))
        return record if record is not None and record.task is task else None

    def record_for(self, task: Task, parent: TaskRun | None = None) -> TaskRun:
        """The record of ``task``, created for a task made on the fly.

        A task created while another one runs belongs to this run only: its
        parent is ``parent``, else the record of the task whose code is running.
        """
        record = self._records.get(id(task))
        if record is not None and record.task is task:
            return record
        if parent is None:
            parent = current_record.get()
        record = TaskRun(task, self, parent, len(self._records))
        self._records[id(task)] = record
        if parent is not None:
            parent.add_child(record)
        return record

    def record_list(self) -> list[TaskRun]:
        """Every task record of the run, in the order they were made (cheaper than
        :meth:`records`, which walks the tree)."""
        return list(self._records.values())

    def records(self) -> list[TaskRun]:
        """Every task record of the run, parents before their children."""
        ordered: list[TaskRun] = []
        stack = [self.root_record]
        while stack:
            record = stack.pop()
            ordered.append(record)
            stack.extend(reversed(record.children))
        return ordered

    @property
    def listeners(self) -> list[EventListener]:
        """The run's event listeners, in the order they are called."""
        return self._listeners

    @listeners.setter
    def listeners(self, listeners: list[EventListener]) -> None:
        self._listeners = listeners
        # Who receives each task status, decided once: a task event goes
        # only to the listeners that ask for its status (``listens_to``; all
        # of them without it), and is not built when nobody does.
        # See test_a_listener_receives_only_the_statuses_it_listens_to.
        # What is called is the listener's bound ``__call__`` when it has
        # one: calling that is several times quicker than calling the object.
        calls = [_call_of(listener) for listener in listeners]
        self._listener_of = {
            id(call): listener for call, listener in zip(calls, listeners, strict=True)
        }
        wanted = [_listens_to(listener) for listener in listeners]
        self.listening = {
            status: tuple(
                call
                for call, statuses in zip(calls, wanted, strict=True)
                if statuses is None or status in statuses
            )
            for status in Status
        }
        self._run_listening = tuple(calls)
        # Output events go only to the listeners that ask for them.
        # See test_output_events_carry_what_each_task_wrote_to_the_listeners_asking_for_them.
        self._output_listening = tuple(
            cast("Callable[[OutputEvent], None]", call)
            for call, listener in zip(calls, listeners, strict=True)
            if _takes_output(listener)
        )

    @property
    def takes_output(self) -> bool:
        """True when a listener of the run takes :class:`~flow2.OutputEvent` s."""
        return bool(self._output_listening)

    def emit_output(self, record: TaskRun, stream: str, text: str, *, final: bool = False) -> bool:
        """Keep what the task of ``record`` wrote and hand it to the listeners that take output.

        Call it on the loop's thread. The last lines are kept on the record
        (:attr:`TaskRun.output`), so the task's next events carry them.

        :returns: False when no listener takes output events
        """
        tail = record.output
        if tail is None:
            tail = record.output = OutputTail()
        tail.add(stream, text, final)
        calls = self._output_listening
        if not calls:
            return False
        event = OutputEvent(record, stream, text, final)
        for call in calls:
            try:
                call(event)
            except Exception as error:
                self._drop_listener(self._listener_of[id(call)], error)
        return True

    def emit(self, event: Event) -> None:
        """Hand ``event`` to each listener that wants it, in order."""
        calls = self.listening[event.status] if type(event) is TaskEvent else self._run_listening
        for call in calls:
            try:
                call(event)
            except Exception as error:
                self._drop_listener(self._listener_of[id(call)], error)

    def _drop_listener(self, listener: EventListener, error: Exception) -> None:
        # A broken listener must not fail the work it reports on. A new list,
        # not remove(): the loop over the old one must not skip the next
        # listener. See test_a_failing_listener_is_removed_and_the_next_still_runs.
        self.listeners = [other for other in self.listeners if other is not listener]
        logger.exception("event listener %s failed and was removed", _describe(listener))
        # What it was for (an event file, a display) is lost from here on:
        # say so where a person sees it, not only on the logger; not as
        # the output of the task whose event it was handed.
        token = current_record.set(None)
        try:
            print(
                f"flow2: {_describe(listener)} failed and stopped receiving events "
                f"({type(error).__name__}: {_safe_str(error)}); the run goes on without it",
                file=sys.stderr,
            )
        except (OSError, ValueError):  # stderr itself is closed
            pass
        finally:
            current_record.reset(token)

    def path_of(self, task: Task) -> tuple[str, ...]:
        """Names from the root down to ``task`` in this run."""
        record = self.find_record(task)
        return record.path if record is not None else (task.name,)

    async def executor_for(self, task: Task) -> Executor:
        """The executor of ``task``: its own, else its nearest group's, else the thread pool.

        One that a task created on the fly names for the first time is started here.
        """
        # A task without a record of its own (a helper task whose run() a
        # running task calls directly) inherits from the task running now.
        record: TaskRun | None = self.find_record(task) or current_record.get()
        choice: str | Executor = task.executor if task.executor is not None else "thread"
        while record is not None:
            if record.task.executor is not None:
                choice = record.task.executor
                break
            record = record.parent
        if isinstance(choice, str):
            executor = self._executors.get(choice)
            if executor is not None:
                return executor
            if choice not in EXECUTOR_FACTORIES:
                raise DefinitionError(
                    _unknown_executor_message(task, choice),
                    task_definition=task,
                    option="executor",
                    value=choice,
                )
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

    def mark_not_started(
        self,
        tasks: Iterable[Task],
        status: Status,
        reason: str | None = None,
        parent: TaskRun | None = None,
    ) -> None:
        """Report every task under ``tasks`` as never started: SKIPPED or CANCELLED.

        :param reason: why, carried by each event and record
        :param parent: the record the tasks are inside (for tasks made on the fly)
        """
        stack = [(task, parent) for task in tasks]
        stack.reverse()
        while stack:
            task, above = stack.pop()
            record = self.record_for(task, above)
            record.status = status
            record.reason = reason
            record.emit(status, reason=reason)
            stack.extend((child, record) for child in reversed(task.children))

    def stop_cleanups(self) -> None:
        """Cancel the cleanups running now, and let none start from here on.

        What an interrupted run does when it stops waiting (a second signal,
        the end of the grace period): the cleanup tasks that run are
        cancelled, as every other task was by the first signal, so they are
        reported CANCELLED, not failed by the kill of their command; the
        ones not started yet, an outer group's included, are CANCELLED
        without starting. See
        tests/test_signal_records.py::test_a_cleanup_killed_by_a_second_signal_is_cancelled.
        """
        self.cleanups_stopped = True
        for cleanup in list(self.cleanups):
            cleanup.cancel()

    def leave_running(self, work: asyncio.Future[object], record: TaskRun) -> None:
        """Keep ``work``, which ignored its cancellation for the grace period, until the run ends.

        Its task has failed already; :meth:`close` stops it.
        """
        self._left_running.append(work)
        # Its outcome, when it comes, is nobody's: asyncio must not log it as lost.
        work.add_done_callback(_forget_outcome)
        logger.warning(
            "task %r: its work ignored the cancellation %gs after its timeout; it is "
            "left running and stopped when the run ends",
            record.task.name,
            self.settings.grace,
        )

    async def _stop_left_running(self) -> None:
        """Stop the work :meth:`leave_running` kept, without waiting on it for ever."""
        pending = [work for work in self._left_running if not work.done()]
        if not pending:
            return
        for work in pending:
            # It ignored one cancellation already, and may ignore every one:
            # close its coroutine, which raises GeneratorExit where it waits
            # (an await: a safe point), then wake its task. Left alone, it
            # would keep asyncio.run() from returning, as that cancels every
            # task and waits for each. See test_work_that_swallows_every_cancellation_fails_in_time.
            coroutine = getattr(work, "get_coro", lambda: None)()
            if coroutine is not None:
                try:
                    coroutine.close()
                except RuntimeError:
                    logger.warning("work left running after a timeout refused to stop")
            work.cancel()
        await asyncio.wait(pending, timeout=self.settings.grace)

    async def close(self, status: Status, error: BaseException | None) -> None:
        """Close every executor the run started, then emit the run's end.

        Each ``start()`` is paired with one ``aclose()``: an executor object
        started by its owner too (``async with``) stays open for them.
        """
        cancelled: asyncio.CancelledError | None = None
        if self._left_running:
            try:
                await self._stop_left_running()
            except asyncio.CancelledError as cancellation:
                cancelled = cancellation  # the run's end is emitted all the same (below)
        for executor in reversed(self._started_executors):
            try:
                await executor.aclose()
            except asyncio.CancelledError as cancellation:
                # Cancelled while closing (a signal as the last task ended):
                # the other executors are closed and the run's end is emitted
                # all the same, then the cancellation goes on. Without its
                # end, the event file and the store would keep a run that
                # never finished. See test_cancelled_while_closing_still_ends_the_run.
                cancelled = cancellation
            except Exception:
                logger.exception("closing executor %r failed", executor)
        self.status = status
        self.duration = perf_counter() - self._started_counter
        self.emit(RunEvent(status, self, time(), self.duration, error))
        if cancelled is not None:
            raise cancelled


def _forget_outcome(work: asyncio.Future[object]) -> None:
    if not work.cancelled():
        work.exception()


def _call_of(listener: EventListener) -> Callable[[Event], None]:
    """What to call to hand ``listener`` an event: its bound ``__call__``, or itself."""
    # Not a test of callability: is the class's __call__ written in Python?
    method = getattr(type(listener), "__call__", None)  # noqa: B004
    if isinstance(method, FunctionType):
        call: Callable[[Event], None] = listener.__call__
        return call
    return listener


def _listens_to(listener: object) -> frozenset[Status] | None:
    """The task statuses ``listener`` asks for; None: every one.

    Only a collection of statuses (and :class:`OutputEvent`) counts: a
    listener whose ``listens_to`` means something else (a method, say)
    still receives every task event.
    """
    statuses = getattr(listener, "listens_to", None)
    if isinstance(statuses, frozenset | set | tuple | list) and all(
        isinstance(status, Status) or status is OutputEvent for status in statuses
    ):
        return frozenset(status for status in statuses if status is not OutputEvent)
    return None


def _takes_output(listener: object) -> bool:
    """True when ``listener`` asks for output events (``OutputEvent`` in its ``listens_to``)."""
    statuses = getattr(listener, "listens_to", None)
    return isinstance(statuses, frozenset | set | tuple | list) and OutputEvent in statuses


def _describe(listener: object) -> str:
    """A listener's name for a person: its class, never a repr with an address."""
    name = getattr(listener, "__qualname__", None) or type(listener).__qualname__
    return f"event listener {name!r}"


def _safe_str(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:
        return "(its message cannot be shown)"


def _unknown_executor_message(task: Task, name: str) -> str:
    known = ", ".join(repr(known) for known in sorted(EXECUTOR_FACTORIES))
    return (
        f"task {task.name!r}: executor={name!r} is not a known executor; "
        f"use one of {known} or a flow2.Executor object"
    )


def validate_tree(
    root: Task, run: Run | None = None, *, context: Context | None = None
) -> tuple[list[str | Executor], Needs | None]:
    """Check the whole tree before anything runs; with ``run``, create its task records.

    :param context: the starting context, whose keys satisfy needs (``run``'s when given)
    :returns: the executors the tree names ("thread" first, then each name or
        object in the order the tree first names it), and what the needs
        analysis found (None when no task has needs or a condition)

    :raises flow2.DuplicateKeyError: two leaf tasks store under one key
    :raises flow2.DuplicateTaskError: one task object appears twice
    :raises flow2.TaskTypeError: a group's child is not a Task
    :raises flow2.DefinitionError: a task names an executor that does not exist
    :raises flow2.NeedsError: a need no task produces (and, with ``run``, that
        its context lacks), a cycle of needs, a need that cannot finish first
    """
    # Iterative, not recursive: trees thousands of levels deep are fine.
    # This walks every task of every run, so it is kept tight.
    # The ids seen: the run's records themselves when there is a run.
    seen: dict[int, TaskRun | None] = run._records if run is not None else {}  # type: ignore[assignment]
    record: TaskRun | None
    owners: dict[str, Task] = {}
    stack: list[tuple[Task, TaskRun | None]] = [(root, None)]
    pop, extend = stack.pop, stack.extend
    executors: dict[int | str, str | Executor] = {"thread": "thread"}
    parent_task: Task | None
    has_needs = False
    while stack:
        task, parent = pop()
        identity = id(task)
        if identity in seen:
            parent_task = _parent_task_of(root, task)
            where = f"group {parent_task.name!r}" if parent_task is not None else "the tree"
            raise DuplicateTaskError(
                f"task {task.name!r} ({task!r}) appears twice in {where}; "
                f"a task object runs once per tree, so create a second task instead",
                task_definition=task,
            )
        if run is not None:
            record = seen[identity] = TaskRun(task, run, parent, len(seen))
            if parent is not None:
                parent.children.append(record)  # a list of its own: see below
        else:
            record = seen[identity] = None
        executor = task.executor
        if executor is not None:
            if type(executor) is str:
                if executor not in EXECUTOR_FACTORIES:
                    raise DefinitionError(
                        _unknown_executor_message(task, executor),
                        task_definition=task,
                        option="executor",
                        value=executor,
                    )
                executors.setdefault(executor, executor)
            else:
                executors.setdefault(id(executor), executor)
        if task.stores_result or task.gathers_results:
            key = task.key
            other = owners.setdefault(key, task)
            if other is not task:
                raise DuplicateKeyError(
                    f"task {other.name!r} and task {task.name!r} both store their result "
                    f"under {key!r}; give one of them register='…'",
                    task_definition=task,
                    key=key,
                )
        if task.needs or task.when is not None:
            has_needs = True
        children = task.children
        if children:
            for position, child in enumerate(children, 1):
                if not isinstance(child, Task):
                    check_is_task(task.name, position, child, group=task)
            if record is not None:
                record.children = []
            extend(zip(reversed(children), repeat(record)))
    needs = None
    if has_needs:
        # Only a tree with needs or conditions pays for this second walk.
        needs = analyse_needs(root, run.context if run is not None else context)
        if needs.problems:
            raise NeedsError(problems=needs.problems)
        if run is not None:
            run.needs = needs
    return list(executors.values()), needs


def _parent_task_of(root: Task, wanted: Task) -> Task | None:
    """The first group holding ``wanted`` (for an error message only)."""
    stack = [root]
    while stack:
        task = stack.pop()
        for child in task.children:
            if child is wanted:
                return task
            stack.append(child)
    return None


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


def create_run(task: Task, context: Context | None, settings: RunOptions) -> Run:
    """Check the tree under ``task`` and create its run, with a record for every task.

    Nothing is emitted yet: the caller gives the run its listeners and its
    plan (what decides to reuse or leave out tasks), then :func:`drive` runs it.

    :param context: the dict to start from; a new one when None
    :param settings: the run's settings (what executor factories read)
    :raises flow2.DefinitionError: when the tree is wrong; nothing ran
    :raises flow2.TaskTypeError: when something in the tree is not a Task
    """
    if not isinstance(task, Task):
        raise TaskTypeError(
            f"a run needs a flow2.Task, got {task!r} ({type(task).__name__})", value=task
        )
    if context is None:
        context = {}
    elif not isinstance(context, dict):
        raise TaskTypeError(
            f"task {task.name!r}: the context must be a dict, got {type(context).__name__}",
            task_definition=task,
            value=context,
        )
    for key, value in task.starting_context.items():
        context.setdefault(key, value)
    # The run exists before the check so that the one walk over the tree
    # both checks it and creates each task's record; nothing is emitted
    # until the check has passed.
    run = Run(task, context, [], settings)
    run.executor_choices = validate_tree(task, run)[0]
    return run


async def drive(run: Run, *, raises: bool) -> Run:
    """Run a created run: start its executors, process the root, close everything.

    :param raises: raise the failed task's exception, unchanged (else store it and go on)
    :returns: the run, ended: its context filled, its status and every task's record
    """
    plan = run.plan
    if plan is not None or run.needs is not None or run.reuser is not None:
        run.gate = gate = Gate(run, plan, run.needs, run.reuser)
        if run.needs is not None and run.needs.waits:
            run.listeners = [gate, *run.listeners]
    task, context = run.root, run.context
    run_token = current_run.set(run)
    # A run started from inside a task's code is a run of its own: its root
    # has no parent record.
    record_token = current_record.set(None)
    run.emit(RunEvent(Status.RUNNING, run, time()))
    status, error = Status.FAILED, None
    frozen = freeze_for(len(run._records))  # a big run: see _collector
    try:
        await run.start_executors(run.executor_choices)
        await task.process(context, raises)
        status = run.root_record.status
    except asyncio.CancelledError:
        status = Status.CANCELLED
        root = run.root_record
        if root.status is Status.PENDING:
            # Cancelled before the root started (a signal as executors
            # started): every task is reported CANCELLED, so the record
            # counts them all. See test_a_signal_before_the_first_task_cancels_every_task.
            run.mark_not_started((task,), Status.CANCELLED)
        raise
    except BaseException as exception:
        error = exception
        raise
    finally:
        current_record.reset(record_token)
        current_run.reset(run_token)
        try:
            await run.close(status, error)
        finally:
            if frozen:
                thaw()
    return run
