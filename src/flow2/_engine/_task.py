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
from time import perf_counter, time
from typing import TYPE_CHECKING, Any, ClassVar

from ._context import current_run, current_task
from ._events import Status, TaskEvent
from ._exceptions import (
    DefinitionError,
    StrayCancellationError,
    TaskTimeoutError,
    TaskTypeError,
)
from ._executor import Executor
from ._logger import TaskLogger
from ._naming import snake_case

if TYPE_CHECKING:
    from ._run import Run

Context = dict[str, Any]


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
    :raises flow2.DefinitionError: on an empty name or key, or a bad option value

    Example::

        class Tag(flow2.Task):
            async def run(self, context):
                return f"v{context['version']}"
    """

    #: Leaf tasks store their outcome in the context; groups do not.
    stores_result: ClassVar[bool] = True

    # Run-time state. Class-level defaults keep subclasses that skip
    # ``super().__init__`` working; a run resets them before it starts.
    _parent: Task | None = None
    _status: Status = Status.PENDING
    _attempt: int = 1
    _started_at: float = 0.0
    _failed_count: int = 0
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
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise DefinitionError(
                f"a task needs a non-empty name, got {name!r}; pass a string such as 'Build'"
            )
        if register is not None and (not isinstance(register, str) or not register.strip()):
            raise DefinitionError(
                f"task {name!r}: register={register!r} is not a result key; "
                f"give a non-empty string, e.g. register='wheel'"
            )
        self.name = name
        if description is not None and not isinstance(description, str):
            raise DefinitionError(
                f"task {name!r}: description={description!r} is not text; give a string"
            )
        if not isinstance(output, bool):
            raise DefinitionError(
                f"task {name!r}: output={output!r} is not true or false; "
                f"use output=False to hide the result, output=True to show it"
            )
        self.description = description
        self.register = register
        self.output = output
        self.key = register if register is not None else snake_case(name)
        if not self.key:
            raise DefinitionError(
                f"task {name!r} has no letters or digits to build its result key from; "
                f"give it register='some_key'"
            )
        self.timeout = _check_timeout(name, timeout)
        self.retries = _check_retries(name, retries)
        self.retry_delay = _check_retry_delay(name, retry_delay)
        if executor is not None and not isinstance(executor, str | Executor):
            raise DefinitionError(
                f"task {name!r}: executor={executor!r} is neither an executor name such as "
                f"'thread' nor a flow2.Executor object"
            )
        self.executor = executor

    @property
    def logger(self) -> TaskLogger:
        """A logger bound to this task: its records carry the task's name, key and path."""
        return TaskLogger(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @property
    def children(self) -> tuple[Task, ...]:
        """The tasks directly inside this one: none for a leaf task."""
        return ()

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
        run = current_run.get()
        if run is not None:
            self._emit_started(run)

    async def success(self, result: Any, context: Context) -> None:
        """Called when the task ends successfully; emits the SUCCEEDED event.

        A group whose children failed without failing it emits PARTIAL instead.

        :param result: result of the task's run method
        :param context: context dict
        """
        run = current_run.get()
        if run is not None:
            self._emit_succeeded(run, result)

    async def exception(
        self, exception: BaseException, context: Context, raises: bool = True
    ) -> None:
        """Called when the task raises an exception; emits the FAILED event.

        :param exception: raised exception
        :param context: context dict
        :param raises: whether to raise the exception (unchanged) afterwards
        """
        run = current_run.get()
        if run is not None:
            run.emit(
                TaskEvent(
                    Status.FAILED,
                    self,
                    run,
                    time(),
                    self._attempt,
                    perf_counter() - self._started_at,
                    error=exception,
                    failed_count=self._failed_count,
                )
            )
        if raises:
            raise exception

    def _emit_started(self, run: Run) -> None:
        run.emit(TaskEvent(Status.RUNNING, self, run, time(), self._attempt))

    def _emit_succeeded(self, run: Run, result: Any) -> None:
        run.emit(
            TaskEvent(
                self._status,
                self,
                run,
                time(),
                self._attempt,
                perf_counter() - self._started_at,
                result if self.stores_result else None,
                None,
                self._failed_count,
            )
        )

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

            return await run_root(self, context, raises)
        if context is None:
            context = run.context
        parent = current_task.get()
        if self._parent is None and parent is not None:
            self._parent = parent  # created on the fly by a running task
        token = current_task.set(self)
        self._attempt = 1
        self._started_at = perf_counter()
        self._status = Status.RUNNING
        try:
            if self._default_start:
                self._emit_started(run)
            else:
                await self.start(context)
            if self.retries or self.timeout is not None:
                result = await self._run_with_policies(run, context)
            else:
                result = await self.run(context)
        except asyncio.CancelledError as cancelled:
            if not _is_being_cancelled():
                # Nothing cancelled this task: its work raised CancelledError
                # itself (it awaited something cancelled elsewhere). Reporting
                # that as a cancellation would let a parallel group succeed.
                error = StrayCancellationError(
                    f"task {self.name!r}: its work raised CancelledError although nothing "
                    f"cancelled the task; did it await a future or task cancelled elsewhere?"
                )
                error.__cause__ = cancelled
                self._status = Status.FAILED
                if self.stores_result:
                    context[self.key] = error
                    self._failed_count = 1
                await self.exception(error, context, raises)
                return context
            self._status = Status.CANCELLED
            run.emit(
                TaskEvent(
                    Status.CANCELLED,
                    self,
                    run,
                    time(),
                    self._attempt,
                    perf_counter() - self._started_at,
                    error=cancelled,
                )
            )
            raise
        except Exception as error:
            self._status = Status.FAILED
            if self.stores_result:
                context[self.key] = error
                self._failed_count = 1
            await self.exception(error, context, raises)
        else:
            if self.stores_result:
                context[self.key] = result
            self._status = Status.PARTIAL if self._failed_count else Status.SUCCEEDED
            if self._default_success:
                self._emit_succeeded(run, result)
            else:
                await self.success(result, context)
        finally:
            current_task.reset(token)
        return context

    async def _run_with_policies(self, run: Run, context: Context) -> Any:
        """Run, applying ``timeout`` to each attempt and ``retries`` with backoff."""
        while True:
            try:
                if self.timeout is None:
                    return await self.run(context)
                deadline = asyncio.timeout(self.timeout)
                try:
                    async with deadline:
                        return await self.run(context)
                except TimeoutError as error:
                    if deadline.expired():
                        raise TaskTimeoutError(self.name, self.timeout) from error
                    raise
            except Exception as error:
                if self._attempt > self.retries:
                    raise
                delay = self.retry_delay * 2 ** (self._attempt - 1)
                self._status = Status.RETRYING
                run.emit(
                    TaskEvent(
                        Status.RETRYING,
                        self,
                        run,
                        time(),
                        self._attempt,
                        perf_counter() - self._started_at,
                        error=error,
                        retry_delay=delay,
                    )
                )
                await asyncio.sleep(delay)
                self._attempt += 1
                self._status = Status.RUNNING


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
            f"use e.g. timeout=30, or None for no timeout"
        )
    return float(timeout)


def _check_retries(name: str, retries: object) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise DefinitionError(
            f"task {name!r}: retries={retries!r} is not a whole number >= 0; use e.g. retries=3"
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
            f"use e.g. retry_delay=0.5"
        )
    return float(delay)


def check_is_task(owner: str, position: int, candidate: object) -> None:
    """Raise TaskTypeError unless ``candidate`` (child ``position`` of ``owner``) is a Task."""
    if not isinstance(candidate, Task):
        raise TaskTypeError(
            f"group {owner!r}: child {position} is {candidate!r} "
            f"({type(candidate).__name__}), not a flow2.Task; wrap a function as "
            f"flow2.CallbackTask('Name', function)"
        )
