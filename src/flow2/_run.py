"""A run: one execution of a task tree, and the runner that starts it.

:class:`Runner` checks the whole tree before anything runs, creates the
:class:`Run` (the per-run state every task reaches through a context
variable: the context dict, the event listeners, the executors), processes
the root, and closes everything when the root ends — however it ends.
"""

from __future__ import annotations

import asyncio
import enum
import importlib.util
import os
import sys
from itertools import repeat
from time import perf_counter, time
from typing import TYPE_CHECKING, Any, TextIO

from ._console import PlainConsole, Verbosity
from ._context import current_run
from ._events import RunEvent, Status, TaskEvent
from ._exceptions import (
    ConfigurationError,
    DefinitionError,
    DuplicateKeyError,
    DuplicateTaskError,
    TaskTypeError,
)
from ._executors import EXECUTOR_FACTORIES, Executor
from ._logging import LoggingListener, TaskRecordRouter, logger
from ._task import Context, Task, check_is_task

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ._event_file import EventTarget
    from ._events import Event, EventListener


class Display(enum.Enum):
    """How a run shows itself on stdout."""

    #: The live view on a terminal, plain lines otherwise.
    AUTO = "auto"
    #: The live tree (needs a terminal and the ``live`` extra).
    LIVE = "live"
    #: One line per event.
    PLAIN = "plain"
    #: Nothing on stdout (events still reach logging and other listeners).
    NONE = "none"


def _from_environment(
    variable: str, enum_type: type[enum.Enum], value: Any, default: Any = None
) -> Any:
    """``value`` as ``enum_type``, else the environment variable's, else ``default``.

    ``default`` is the enum's first member when None.
    """
    source = "argument"
    if value is None:
        if default is None:
            default = next(iter(enum_type))
        value = os.environ.get(variable) or default.value
        source = f"environment variable {variable}"
    try:
        return enum_type(value.lower() if isinstance(value, str) else value)
    except ValueError:
        accepted = ", ".join(member.value for member in enum_type)
        raise ConfigurationError(
            f"{source} {variable.removeprefix('FLOW2_').lower()}={value!r} is not one of: "
            f"{accepted}"
        ) from None


def _max_threads_from_environment(value: int | None) -> int | None:
    if value is None:
        raw = os.environ.get("FLOW2_MAX_THREADS")
        if not raw:
            return None
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 1:
            raise ConfigurationError(
                f"environment variable FLOW2_MAX_THREADS={raw!r} is not a whole number >= 1"
            )
    elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"max_threads={value!r} is not a whole number >= 1")
    return value


class Runner:
    """Runs a task tree with chosen settings; ``task.run()`` uses the defaults.

    Every argument left None takes its environment variable, then the default.

    :param display: :class:`Display` or its value; ``FLOW2_DISPLAY``, else "auto"
        (the live view when ``stream`` is a terminal and rich is installed,
        plain lines otherwise)
    :param verbosity: :class:`Verbosity` or its value; ``FLOW2_VERBOSITY``, else "normal"
    :param events: a file path or text stream receiving every event as a JSON
        line; ``FLOW2_EVENTS`` (a path), else none
    :param listeners: more event listeners, called after the built-in ones
    :param max_threads: size of the thread pool for sync callbacks;
        ``FLOW2_MAX_THREADS``, else Python's default
    :param stream: where the console writes; ``sys.stdout`` when None
    :param color: force color on or off; decided from the stream, ``NO_COLOR``
        and ``FORCE_COLOR`` when None

    Example::

        context = await flow2.Runner(display="none").run(workflow, {"env": "prod"})
    """

    def __init__(
        self,
        *,
        display: Display | str | None = None,
        listeners: Sequence[EventListener] = (),
        max_threads: int | None = None,
        stream: TextIO | None = None,
        color: bool | None = None,
        verbosity: Verbosity | str | None = None,
        events: EventTarget | None = None,
    ) -> None:
        self.display: Display = _from_environment("FLOW2_DISPLAY", Display, display)
        self.verbosity: Verbosity = _from_environment(
            "FLOW2_VERBOSITY", Verbosity, verbosity, Verbosity.NORMAL
        )
        from ._event_file import events_target_from_environment  # json: only when used

        self.events = events_target_from_environment(events)
        self.listeners = list(listeners)
        self.max_threads = _max_threads_from_environment(max_threads)
        self.stream = stream
        self.color = color

    async def run(
        self, task: Task, context: Context | None = None, *, raises: bool = True
    ) -> Context:
        """Validate the tree under ``task``, run it, and return the filled context.

        :param task: the root of the tree
        :param context: the dict to start from; a new one when None
        :param raises: raise the failed task's exception, unchanged (else store it and return)
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
        run = Run(task, context, self._make_listeners(), self)
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

    def _make_listeners(self) -> list[EventListener]:
        listeners: list[EventListener] = []
        display = self._choose_display()
        verbosity = self.verbosity
        if display is Display.LIVE:
            from ._live import LiveView  # imports rich: only when used

            view = LiveView(
                self.stream,
                color=self.color,
                verbosity=verbosity,
                force_terminal=self.display is Display.LIVE,
            )
            listeners += [TaskRecordRouter(view.show_record, verbosity.log_level), view]
        elif display is Display.PLAIN:
            console = PlainConsole(self.stream, color=self.color, verbosity=verbosity)
            listeners += [TaskRecordRouter(console.show_record, verbosity.log_level), console]
        if display is not Display.NONE:
            from ._summary import SummaryListener

            listeners.append(SummaryListener(self.stream, color=self.color, verbosity=verbosity))
        listeners.append(LoggingListener())
        if self.events is not None:
            from ._event_file import EventFile

            event_file = EventFile(self.events)
            event_file.open()  # a path that cannot be written fails before the run
            listeners.append(event_file)
        listeners.extend(self.listeners)
        return listeners

    def _choose_display(self) -> Display:
        """The display to use: AUTO becomes LIVE on a terminal with rich, else PLAIN.

        :raises flow2.ConfigurationError: LIVE was asked for and rich is missing
        """
        has_rich = importlib.util.find_spec("rich") is not None
        if self.display is Display.LIVE:
            if not has_rich:
                raise ConfigurationError(
                    "display='live' needs rich, which is not installed; "
                    "install it with: pip install 'flow2[live]' (or use display='plain')"
                )
            return Display.LIVE
        if self.display is Display.AUTO:
            stream = self.stream if self.stream is not None else sys.stdout
            isatty = getattr(stream, "isatty", None)
            is_dumb = os.environ.get("TERM") == "dumb"  # cannot move the cursor
            if has_rich and isatty is not None and isatty() and not is_dumb:
                return Display.LIVE
            return Display.PLAIN
        return self.display


class Run:
    """The state of one run, shared by every task in it.

    :ivar id: a short unique id, in every event
    :ivar root: the root task
    :ivar context: the context dict being filled
    :ivar settings: the :class:`Runner` that started it
    """

    def __init__(
        self, root: Task, context: Context, listeners: list[EventListener], settings: Runner
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
