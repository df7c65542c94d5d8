"""What a task is: a named piece of work with a lifecycle.

:class:`Task.process` drives one task through its lifecycle — ``start``,
``run`` (again on failure, as ``retries`` allows, within ``timeout``), then
``success`` or ``exception`` — storing the outcome in the context under the
task's key. Each hook emits one event to the current run; printing and
logging are done by the run's listeners, never here.
"""

from __future__ import annotations

import asyncio
import math
import typing
from collections.abc import Callable, Coroutine, Iterable, Mapping
from time import perf_counter, time
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, overload

from ._caching import Cache
from ._context import current_record, current_run
from ._events import Status, TaskEvent
from ._exceptions import (
    DefinitionError,
    StrayCancellationError,
    TaskExitError,
    TaskTimeoutError,
    TaskTypeError,
)
from ._executor import Executor, keyword_only_parameters
from ._frames import user_frames
from ._logger import TaskLogger
from ._naming import snake_case
from ._state import Reuse

if TYPE_CHECKING:
    from ._slots import JobSlots
    from ._state import Cleanup, Decision, TaskRun

#: The context of a run: each task's result under its key, read by the tasks after it.
#: (``typing.Dict`` rather than ``dict[...]``: an alias object that can say ``flow2.Context``.)
Context = typing.Dict[str, Any]  # noqa: UP006
Context.__doc__ = """The context dict of a run: each task's result under its key.

A ``dict[str, Any]``.

Every task reads the results of the tasks before it there; ``await tree.run()``
returns it, and :attr:`flow2.RunResult.context` is it.
"""

#: Options in a definition only when a task has them.
_GIVEN_ONLY = frozenset({"when", "needs", "runtime_options"})

_RUNNING = Status.RUNNING
_SUCCEEDED = Status.SUCCEEDED
_PARTIAL = Status.PARTIAL


class _SetByInit:
    """A task attribute that ``Task.__init__`` sets on the instance (``name``, ``key``).

    Only read when the instance lacks it: a subclass whose ``__init__`` skipped
    ``super().__init__`` (see test_subclass_without_super_init_runs). Being a
    descriptor without ``__set__``, it leaves every other attribute read on a
    task to Python's fast path, which a ``__getattr__`` would turn off.
    """

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.attribute = attribute

    @overload
    def __get__(self, task: None, owner: type | None = None) -> _SetByInit: ...

    @overload
    def __get__(self, task: Task, owner: type | None = None) -> str: ...

    def __get__(self, task: Task | None, owner: type | None = None) -> str | _SetByInit:
        if task is None:
            return self
        name = vars(task).get("name")
        if self.attribute == "key" and isinstance(name, str):
            key = snake_case(name)
            task.key = key
            return key
        raise DefinitionError(
            f"{type(task).__name__} object has no name: its __init__ neither called "
            f"super().__init__(name, ...) nor set self.name; call super().__init__(name)",
            task_definition=task,
            option="name",
        )


class StandIn(Protocol):
    """Does a task's work in its place when it starts (see :attr:`Task.stand_in`)."""

    async def run(self, task: Task, context: Context) -> Any:
        """Do ``task``'s work with ``context`` and return its result."""
        ...


class Task:
    """Base task class; subclass it and override :meth:`run`.

    :param name: task name in human readable format
    :param description: optional longer text, shown by displays that have room
    :param register: the key the result is stored under; defaults to the
        snake_case of ``name`` (``'Task 4'`` → ``'task_4'``)
    :param output: print the result after SUCCESS (when it is not None)
    :param timeout: seconds an attempt may take; past it the work is cancelled
        and the task fails with :class:`flow2.TaskTimeoutError`
    :param retries: how many times a failed task runs again
    :param retry_delay: seconds before the first retry, doubled for each next one
    :param executor: where sync work runs: ``"thread"`` (default), another
        registered name, or an :class:`flow2.Executor`; a group passes its
        own to the children that set none
    :param needs: a result key or a list of them that this task waits for:
        inside a parallel group it starts once the tasks storing them have
        finished, and it is SKIPPED when one of them failed, was skipped or
        was cancelled. The required keyword-only parameters of a
        :class:`CallbackTask`'s callback and of ``when`` are needs as well.
    :param when: a condition: True, False, or a sync or async callable taking
        the context (and, as keyword-only parameters, the keys it reads);
        when false the task is SKIPPED with the reason "condition is false"
    :param sources: the files it reads (paths, globs, directories, relative to
        the working directory): part of its reuse key, by content
    :param outputs: the files it writes: a stored result is reused only while
        they are there as recorded
    :param env_inputs: the environment variables it reads: part of its reuse
        key, as salted digests
    :param cache: reuse a stored result with an equal reuse key from any
        earlier run of the same flow (a recorded run; see docs/store.md); on
        a group, for its tasks that say nothing; None: as its group says. A
        :class:`flow2.Cache` turns it on with options
        (``flow2.Cache(restore_outputs=True)``)
    :raises flow2.DefinitionError: on an empty name or key, or a bad option value

    Example::

        class Tag(flow2.Task):
            async def run(self, context):
                return f"v{context['version']}"
    """

    #: Leaf tasks store their outcome in the context; groups do not.
    stores_result: ClassVar[bool] = True
    #: A group that stores its tasks' results, gathered, under its own key
    #: (:class:`flow2.ForEach`): a producer of that key, as a leaf is.
    gathers_results: ClassVar[bool] = False
    #: Whether the class's :meth:`run` may read any key of the context. A class
    #: whose ``run`` reads none (:class:`flow2.ShellTask`) says False: its reuse
    #: key then covers no run variable but those its ``${{ … }}`` use (the
    #: results of the tasks ordered before it still count: a command may read
    #: the files they wrote). A subclass overriding ``run`` may read again,
    #: unless it says False itself.
    reads_context: ClassVar[bool] = True

    #: The task's name, shown everywhere and made into its key.
    name = _SetByInit()
    #: Where the result goes in the context: ``register``, else the snake_case of the name.
    key = _SetByInit()
    # The options' defaults, also on the class, so that a subclass whose
    # __init__ does not call ``super().__init__`` (and sets only ``name``)
    # still runs; ``key`` then comes from the name (see _SetByInit).
    description: str | None = None
    register: str | None = None
    output: bool = True
    timeout: float | None = None
    retries: int = 0
    retry_delay: float = 1.0
    executor: str | Executor | None = None
    #: The result keys this task waits for: declared with ``needs=``, then inferred.
    needs: tuple[str, ...] = ()
    when: bool | Callable[..., Any] | None = None
    #: What does the work when the task starts, instead of :meth:`run`: a flow
    #: task whose options hold ``${{ … }}`` expressions gets one that builds
    #: the task from the evaluated options. A definition, set before any run.
    stand_in: StandIn | None = None
    _starting_context: Mapping[str, Any] = MappingProxyType({})
    #: Options given as expressions evaluated when the task runs (set by flow
    #: templates), by name, as written.
    runtime_options: dict[str, Any] | None = None
    #: The files the task reads (paths, globs, directories, relative to the
    #: working directory): part of its reuse key, by content (``sources:``).
    sources: tuple[str, ...] = ()
    #: The files the task writes: a stored result is reused only while they
    #: are there as they were recorded (``outputs:``).
    outputs: tuple[str, ...] = ()
    #: The environment variables the task reads: their values are part of its
    #: reuse key, as salted digests (``env_inputs:``).
    env_inputs: tuple[str, ...] = ()
    #: Reuse a stored result with an equal key from any run of the same flow
    #: (``cache: true``; a :class:`flow2.Cache` with options); None: as the
    #: enclosing group says.
    cache: bool | Cache | None = None
    #: The attributes that define a task of this class (see :meth:`definition`).
    definition_options: ClassVar[tuple[str, ...]] = (
        "description",
        "register",
        "output",
        "timeout",
        "retries",
        "retry_delay",
        "executor",
        "when",
        "needs",
        "runtime_options",
    )
    _default_start: ClassVar[bool] = True
    _default_success: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        description: str | None = None,
        register: str | None = None,
        output: bool = True,
        *,
        timeout: float | None = None,
        retries: int = 0,
        retry_delay: float = 1.0,
        executor: str | Executor | None = None,
        needs: str | Iterable[str] | None = None,
        when: bool | Callable[..., Any] | None = None,
        sources: Iterable[str] | None = None,
        outputs: Iterable[str] | None = None,
        env_inputs: Iterable[str] | None = None,
        cache: bool | Cache | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise DefinitionError(
                f"a task needs a non-empty name, got {name!r}; pass a string such as 'Build'",
                option="name",
                value=name,
            )
        if register is not None and (not isinstance(register, str) or not register.strip()):
            raise DefinitionError(
                f"task {name!r}: register={register!r} is not a result key; "
                f"give a non-empty string, e.g. register='wheel'",
                task=name,
                option="register",
                value=register,
            )
        self.name = name
        if description is not None and not isinstance(description, str):
            raise DefinitionError(
                f"task {name!r}: description={description!r} is not text; give a string",
                task=name,
                option="description",
                value=description,
            )
        if not isinstance(output, bool):
            raise DefinitionError(
                f"task {name!r}: output={output!r} is not true or false; "
                f"use output=False to hide the result, output=True to show it",
                task=name,
                option="output",
                value=output,
            )
        self.description = description
        self.register = register
        self.output = output
        self.key = register if register is not None else snake_case(name)
        if not self.key:
            raise DefinitionError(
                f"task {name!r} has no letters or digits to build its result key from; "
                f"give it register='some_key'",
                task=name,
                option="register",
                value=register,
            )
        self.timeout = _check_timeout(name, timeout)
        self.retries = _check_retries(name, retries)
        self.retry_delay = _check_retry_delay(name, retry_delay)
        if executor is not None and not isinstance(executor, str | Executor):
            raise DefinitionError(
                f"task {name!r}: executor={executor!r} is neither an executor name such as "
                f"'thread' nor a flow2.Executor object",
                task=name,
                option="executor",
                value=executor,
            )
        self.executor = executor
        # Set on the instance only when given: the class defaults serve the
        # rest, so a tree without needs keeps its tasks as small as before.
        if when is not None:
            self.when = check_condition(name, when)
        if needs is not None or when is not None:
            self.needs = merge_needs(check_needs(name, needs), parameter_needs(when))
        if sources is not None:
            self.sources = _check_names(name, "sources", sources)
        if outputs is not None:
            self.outputs = _check_names(name, "outputs", outputs)
        if env_inputs is not None:
            self.env_inputs = _check_names(name, "env_inputs", env_inputs)
        if cache is not None:
            if not isinstance(cache, bool | Cache):
                raise DefinitionError(
                    f"task {name!r}: cache={cache!r} is not true, false or a flow2.Cache; "
                    f"write e.g. cache=flow2.Cache(restore_outputs=True)",
                    task=name,
                    option="cache",
                    value=cache,
                )
            self.cache = cache

    def definition(self) -> dict[str, Any]:
        """The options that define this task, by name: what it does and how.

        The run store fingerprints a task by these (see ``docs/store.md``): a
        stored result is reused only while they are unchanged. They are the
        attributes :attr:`definition_options` names, less ``when``, ``needs``
        and ``runtime_options`` where the task has none. The name and the
        result key identify the task and are not part of it; neither are the
        children of a group (each is compared on its own), nor any state an
        object keeps for itself: an attribute that is not declared does not count.

        A subclass with options of its own names them in its
        ``definition_options``; one whose definition must be computed
        overrides this method and extends ``super().definition()``.

        Example::

            class Upload(flow2.Task):
                definition_options = (*flow2.Task.definition_options, "bucket")

                def __init__(self, name, bucket, **options):
                    super().__init__(name, **options)
                    self.bucket = bucket
                    self._client = None  # a cache: not part of the definition
        """
        options = {}
        for name in self.definition_options:
            value = getattr(self, name)
            # Only when given: a task without them keeps the fingerprint it
            # had before they existed.
            if name not in _GIVEN_ONLY or (value is not None and value != ()):
                options[name] = value
        return options

    @property
    def starting_context(self) -> Mapping[str, Any]:
        """Entries a run whose root is this task starts with, where the caller's
        context holds none: a loaded flow's variables (see :func:`flow2.load`).

        Not part of the definition the run store compares: the store records
        a run's variables apart.
        """
        return self._starting_context

    @starting_context.setter
    def starting_context(self, entries: Mapping[str, Any]) -> None:
        self._starting_context = MappingProxyType(dict(entries))

    @property
    def logger(self) -> TaskLogger:
        """A logger bound to this task: its records carry the task's name, key and path."""
        return TaskLogger(self)

    def __repr__(self) -> str:
        name = vars(self).get("name", "?")
        return f"<{type(self).__name__} {name!r}>"

    @property
    def children(self) -> tuple[Task, ...]:
        """The tasks directly inside this one: none for a leaf task."""
        return ()

    def cleanup_role_of(self, child: Task) -> Cleanup | None:
        """Which cleanup of this task ``child`` is (None: not a cleanup, or not a child)."""
        return None

    async def run(self, context: Context) -> Any:
        """Do the work and return the result; override this in your own Task subclasses.

        :param context: the results of the tasks that ran before, by key
        :raises NotImplementedError: always, on the base class
        """
        raise NotImplementedError(
            f"task {self.name!r}: {type(self).__name__}.run(context) is not implemented; "
            f"override run() in your Task subclass, or use flow2.CallbackTask"
        )

    async def start(self, context: Context) -> None:
        """Called when the task begins; emits the RUNNING event (printing and logging).

        :param context: context dict
        """
        record = _current_record_of(self)
        if record is not None:
            record.emit(Status.RUNNING)

    async def success(self, result: Any, context: Context) -> None:
        """Called when the task ends successfully; emits the SUCCEEDED event.

        A group whose children failed without failing it emits PARTIAL instead.

        :param result: result of the task's run method
        :param context: context dict
        """
        record = _current_record_of(self)
        if record is not None:
            _emit_succeeded(record, result)

    async def exception(
        self, exception: BaseException, context: Context, raises: bool = True
    ) -> None:
        """Called when the task raises an exception; emits the FAILED event.

        :param exception: raised exception
        :param context: context dict
        :param raises: whether to raise the exception (unchanged) afterwards
        """
        record = _current_record_of(self)
        if record is not None:
            record.emit(Status.FAILED, duration=record.elapsed, error=exception)
        if raises:
            raise exception

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Calling a hook costs a coroutine; skip the call where the class
        # keeps the base behaviour, which is only to emit the event.
        cls._default_start = cls.start is Task.start
        cls._default_success = cls.success is Task.success

    async def process(self, context: Context | None = None, raises: bool = True) -> Context:
        """Orchestrate the call to the :meth:`run` method.

        Called on the root of a tree, it starts a run (see :class:`flow2.Runner`);
        inside a run, it takes this task through its lifecycle.

        :param context: context dict; a new one when None
        :param raises: whether to raise the task's exception, unchanged, when it fails
        :returns: the context, with this task's result (or exception) under its key
        """
        run = current_run.get()
        if run is None:
            # The root of a tree: start a run, which checks the tree and
            # comes back here with itself as the current run.
            from ._run import run_root

            try:
                return await run_root(self, context, raises)
            except Exception as failure:
                # See test_a_failure_raised_to_the_caller_shows_the_users_frames.
                raise user_frames(failure)  # noqa: B904  (the same exception, not a new one)
        if context is None:
            context = run.context
        # The hot path of every task: attribute lookups and calls are kept
        # few here (see benchmarks/bench_engine.py).
        record = run._records.get(id(self))
        if record is None or record.task is not self:
            record = run.record_for(self)
        gate = run.gate  # None unless the tree has needs or conditions, or a plan
        if gate is not None:
            try:
                decision = await gate.check(record, context)
            except asyncio.CancelledError:
                # Cancelled while waiting for its needs: it never started.
                # See test_cancelled_waiter_is_reported_cancelled.
                run.mark_not_started((self,), Status.CANCELLED, parent=record.parent)
                raise
            except Exception as failure:  # its condition raised: the task fails
                if type(failure) is KeyError:
                    from ._missing import explained_key_error

                    failure = explained_key_error(record, failure, context)
                return await self._fail_before_start(record, failure, context, raises)
            if decision is not None:
                return _follow(record, decision, context)
        slots = run.slots  # None unless the run has job slots (jobs=N)
        if slots is not None:
            slots = _slots_held_by(record)
            if slots is not None:
                # Taken after the gate: a task waiting for its needs holds no
                # slot. See test_tasks_waiting_for_needs_hold_no_slot.
                try:
                    await slots.acquire()
                except asyncio.CancelledError:
                    run.mark_not_started((self,), Status.CANCELLED, parent=record.parent)
                    raise
        token = current_record.set(record)
        record.status = _RUNNING
        record.attempt = 1
        record.started_at = perf_counter()
        record.start_time = now = time()
        run.started.append(record)
        try:
            if self._default_start:
                if run.listening[_RUNNING]:
                    run.emit(TaskEvent(_RUNNING, record, now))
            else:
                await self.start(context)
            if self.retries or self.timeout is not None:
                result = await self._run_with_policies(record, context)
            elif self.stand_in is None:
                result = await self.run(context)
            else:
                result = await self.stand_in.run(self, context)
        except asyncio.CancelledError as cancelled:
            if not _is_being_cancelled():
                # Nothing cancelled this task: its work raised CancelledError
                # itself (it awaited something cancelled elsewhere). Reporting
                # that as a cancellation would let a parallel group succeed.
                # See test_work_raising_cancelled_error_unasked_is_a_failure_not_a_cancellation.
                error = StrayCancellationError(
                    f"task {self.name!r}: its work raised CancelledError although nothing "
                    f"cancelled the task; did it await a future or task cancelled elsewhere?",
                    task_definition=self,
                )
                error.__cause__ = cancelled
                await self._fail(record, error, context, raises)
                return context
            record.status = Status.CANCELLED
            record.count_failures(False)
            record.emit(Status.CANCELLED, duration=record.elapsed, error=cancelled)
            raise
        except Exception as error:
            if type(error) is KeyError:
                # A result read before its task stored it: say so, and the fix.
                # See test_a_parallel_siblings_result_read_without_needs_names_the_fix.
                from ._missing import explained_key_error

                error = explained_key_error(record, error, context)
            await self._fail(record, error, context, raises)
        except BaseException as error:
            # SystemExit, KeyboardInterrupt or GeneratorExit raised by the
            # task's own code: a real Ctrl-C reaches a task as a cancellation,
            # so this is the task failing, not the run being interrupted.
            # Raised as is, asyncio would stop the whole loop.
            # See test_task_raising_system_exit_or_keyboard_interrupt_fails_it.
            wrapped = TaskExitError(self.name, error, task_definition=self)
            wrapped.__cause__ = error
            await self._fail(record, wrapped, context, raises)
        else:
            stores_result = self.stores_result
            if stores_result:
                context[self.key] = result
            if record.children and record.count_failures(False):
                record.status = status = _PARTIAL
            else:
                record.status = status = _SUCCEEDED
            if self._default_success:
                if run.listening[status]:
                    run.emit(
                        TaskEvent(
                            status,
                            record,
                            time(),
                            perf_counter() - record.started_at,
                            result if stores_result else None,
                        )
                    )
            else:
                await self.success(result, context)
        finally:
            current_record.reset(token)
            if slots is not None:
                slots.release()
        return context

    async def _fail_before_start(
        self, record: TaskRun, error: Exception, context: Context, raises: bool
    ) -> Context:
        token = current_record.set(record)
        try:
            record.begin()
            record.emit(Status.RUNNING)
            await self._fail(record, error, context, raises)
        finally:
            current_record.reset(token)
        return context

    async def _fail(
        self, record: TaskRun, error: Exception, context: Context, raises: bool
    ) -> None:
        record.status = Status.FAILED
        record.error = error
        record.count_failures(True)
        if self.stores_result:
            context[self.key] = error
        await self.exception(error, context, raises)

    def _work(self, context: Context) -> Coroutine[Any, Any, Any]:
        """One attempt: :meth:`run`, or the :attr:`stand_in`'s run."""
        if self.stand_in is None:
            return self.run(context)
        return self.stand_in.run(self, context)

    async def _run_with_policies(self, record: TaskRun, context: Context) -> Any:
        """Run, applying ``timeout`` to each attempt and ``retries`` with backoff."""
        while True:
            try:
                if self.timeout is None:
                    return await self._work(context)
                return await self._attempt_in_time(record, context, self.timeout)
            except Exception as error:
                if record.attempt > self.retries:
                    raise
                delay = self.retry_delay * 2 ** (record.attempt - 1)
                record.status = Status.RETRYING
                record.emit(
                    Status.RETRYING, duration=record.elapsed, error=error, retry_delay=delay
                )
                slots = _slots_held_by(record)
                if slots is None:
                    await asyncio.sleep(delay)
                else:
                    # The delay holds no slot: another task works meanwhile.
                    # See test_a_retry_delay_holds_no_slot.
                    slots.release()
                    try:
                        await asyncio.sleep(delay)
                        await slots.acquire()
                    except asyncio.CancelledError:
                        slots.hold_again()  # process() gives it back
                        raise
                record.attempt += 1
                record.status = Status.RUNNING

    async def _attempt_in_time(self, record: TaskRun, context: Context, seconds: float) -> Any:
        """One attempt within ``seconds``, its work in an asyncio task of its own.

        The work runs apart so that the timeout fails the task when it fires,
        whatever the work does with the cancellation it is then sent: work
        that catches it and goes on (even in a loop) cannot hold the task,
        nor end it as a success. See test_work_that_swallows_every_cancellation_fails_in_time.
        """
        work = asyncio.ensure_future(self._work(context))
        try:
            await asyncio.wait((work,), timeout=seconds)
        except asyncio.CancelledError:
            # The task itself is cancelled (its group failed, the run is
            # stopping): pass that on to the work, as a direct await would.
            await _stop_work(work, record)
            raise
        if work.done():
            # Whatever it raised on its own, a TimeoutError included, is its failure.
            return work.result()
        stopped = await _stop_work(work, record)
        # Whatever the work did once cancelled (returned, raised its own
        # error, kept going), its result came too late: no false success.
        # See test_a_timeout_the_work_swallows_still_fails_the_task.
        cause: BaseException | None = None
        if stopped:
            try:
                work.result()
            except BaseException as ended:
                # The cancellation carries the frames where the work waited:
                # the summary shows them (see
                # test_a_timeout_shows_its_message_without_a_traceback_of_internals).
                cause = ended
        raise TaskTimeoutError(
            self.name, seconds, task_definition=self, left_running=not stopped
        ) from cause


def _slots_held_by(record: TaskRun) -> JobSlots | None:
    """The run's job slots, when the task of ``record`` takes one of them to work.

    Leaf tasks do; groups do not, nor a task that a working task's code runs
    (the working task holds the slot: with one slot, a second would wait forever).
    """
    parent = record.parent
    if not record.task.stores_result or (parent is not None and parent.task.stores_result):
        return None
    return record.run.slots


def _current_record_of(task: Task) -> TaskRun | None:
    """The record of ``task`` in the current run, for the lifecycle hooks."""
    record = current_record.get()
    if record is not None and record.task is task:
        return record
    run = current_run.get()
    return run.find_record(task) if run is not None else None


def _emit_succeeded(record: TaskRun, result: Any) -> None:
    record.emit(
        record.status,
        duration=record.elapsed,
        result=result if record.task.stores_result else None,
    )


def _follow(record: TaskRun, decision: Decision, context: Context) -> Context:
    """Carry out a plan's decision instead of running the task."""
    if isinstance(decision, Reuse):
        task = record.task
        if task.stores_result:
            context[task.key] = decision.result
        status = Status.CACHED if decision.cached else Status.REUSED
        record.status = status
        record.reason = decision.reason
        record.emit(status, duration=0.0, result=decision.result, reason=decision.reason)
    else:
        record.run.mark_not_started([record.task], Status.SKIPPED, decision.reason, record.parent)
    return context


async def _stop_work(work: asyncio.Future[Any], record: TaskRun) -> bool:
    """Cancel ``work`` and wait for it to end, for the run's grace period at most.

    :returns: whether it ended; work that did not is handed to the run, which
        stops it when it ends (see ``Run.leave_running``)
    """
    work.cancel()
    run = record.run
    try:
        await asyncio.wait((work,), timeout=run.settings.grace)
    finally:
        # Also when a second cancellation interrupts the wait.
        if not work.done():
            run.leave_running(work, record)
    if work.done() and not work.cancelled():
        work.exception()  # retrieved: asyncio does not log it as lost
    return work.done()


def _is_being_cancelled() -> bool:
    """True when the running asyncio task has a cancellation request pending."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _check_timeout(name: str, timeout: object) -> float | None:
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise DefinitionError(
            f"task {name!r}: timeout={timeout!r} is not a positive number of seconds; "
            f"use e.g. timeout=30, or None for no timeout",
            task=name,
            option="timeout",
            value=timeout,
        )
    return float(timeout)


def _check_names(name: str, option: str, values: object) -> tuple[str, ...]:
    """``sources``, ``outputs`` or ``env_inputs`` as a tuple of non-empty strings."""
    if isinstance(values, str):
        values = (values,)
    checked = tuple(values) if isinstance(values, list | tuple) else None
    if checked is None or not all(isinstance(item, str) and item.strip() for item in checked):
        example = "['MODE']" if option == "env_inputs" else "['src/**/*.py']"
        raise DefinitionError(
            f"task {name!r}: {option}={values!r} is not a list of "
            f"{'variable names' if option == 'env_inputs' else 'paths or globs'}; "
            f"use e.g. {option}={example}",
            task=name,
            option=option,
            value=values,
        )
    return checked


def _check_retries(name: str, retries: object) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise DefinitionError(
            f"task {name!r}: retries={retries!r} is not a whole number >= 0; use e.g. retries=3",
            task=name,
            option="retries",
            value=retries,
        )
    return retries


def _check_retry_delay(name: str, delay: object) -> float:
    if (
        isinstance(delay, bool)
        or not isinstance(delay, int | float)
        or not math.isfinite(delay)
        or delay < 0
    ):
        raise DefinitionError(
            f"task {name!r}: retry_delay={delay!r} is not a number of seconds >= 0; "
            f"use e.g. retry_delay=0.5",
            task=name,
            option="retry_delay",
            value=delay,
        )
    return float(delay)


def check_is_task(
    owner: str, position: int, candidate: object, *, group: Task | None = None
) -> None:
    """Raise TaskTypeError unless ``candidate`` (child ``position`` of ``owner``) is a Task.

    :param group: the group itself, when it exists already
    """
    if not isinstance(candidate, Task):
        raise TaskTypeError(
            f"group {owner!r}: child {position} is {candidate!r} "
            f"({type(candidate).__name__}), not a flow2.Task; wrap a function as "
            f"flow2.CallbackTask('Name', function)",
            task=owner,
            task_definition=group,
            key=str(position),
            value=candidate,
        )


def check_needs(name: str, needs: object) -> tuple[str, ...]:
    """``needs=`` as a tuple of keys: one key, or a list of them.

    :raises flow2.DefinitionError: when it is neither, or a key is empty
    """
    if needs is None:
        return ()
    keys = [needs] if isinstance(needs, str) else needs
    if isinstance(keys, Iterable) and not isinstance(keys, dict | bytes):
        keys = list(keys)
        if all(isinstance(key, str) and key.strip() for key in keys):
            return tuple(dict.fromkeys(keys))
    raise DefinitionError(
        f"task {name!r}: needs={needs!r} is not a result key or a list of them; "
        f"write e.g. needs='wheel' or needs=['wheel', 'docs']",
        task=name,
        option="needs",
        value=needs,
    )


def check_condition(name: str, when: object) -> bool | Callable[..., Any] | None:
    """``when=`` unchanged: None, True, False or a callable.

    :raises flow2.DefinitionError: on anything else
    """
    if when is None or isinstance(when, bool) or callable(when):
        return when
    raise DefinitionError(
        f"task {name!r}: when={when!r} is neither True, False nor a callable taking the "
        f"context; write e.g. when=lambda context: context['env'] == 'prod' "
        f"(in a flow file: if: ${{{{ env == 'prod' }}}})",
        task=name,
        option="when",
        value=when,
    )


def parameter_needs(function: object) -> tuple[str, ...]:
    """The required keyword-only parameters of ``function``: the keys it reads."""
    if function is None or isinstance(function, bool) or not callable(function):
        return ()
    return tuple(name for name, required in keyword_only_parameters(function) if required)


def merge_needs(*groups: Iterable[str]) -> tuple[str, ...]:
    """The keys of ``groups`` in order, each once."""
    return tuple(dict.fromkeys(key for group in groups for key in group))
