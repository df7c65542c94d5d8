"""A task made from a bare function, sync or async."""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import types
from typing import Any

from ._context import current_run
from ._exceptions import TaskTypeError
from ._executor import arguments_for, keyword_only_parameters
from ._task import Context, Task, merge_needs, parameter_needs


class CallbackKind(enum.Enum):
    """How a callback is called."""

    #: ``async def``: awaited on the event loop.
    COROUTINE = "coroutine"
    #: ``async def`` with ``yield``: its items are collected into a list.
    ASYNC_GENERATOR = "async generator"
    #: ``def`` with ``yield``: run in the task's executor, its items collected into a list.
    GENERATOR = "generator"
    #: Anything else: called in the task's executor, never on the event loop.
    SYNC = "sync"


def kind_of(callback: Any) -> CallbackKind:
    """Tell how ``callback`` must be called."""
    if type(callback) is types.FunctionType and not hasattr(callback, "_is_coroutine_marker"):
        # A plain function says it in its code's flags: read them, as
        # inspect does, without inspect's layers of calls (a service may
        # build a tree per request). See test_callback_kinds_are_told_apart.
        flags = callback.__code__.co_flags
        if flags & inspect.CO_COROUTINE:
            return CallbackKind.COROUTINE
        if flags & inspect.CO_ASYNC_GENERATOR:
            return CallbackKind.ASYNC_GENERATOR
        if flags & inspect.CO_GENERATOR:
            return CallbackKind.GENERATOR
        return CallbackKind.SYNC
    for candidate in (callback, getattr(callback, "__call__", None)):  # noqa: B004
        if inspect.iscoroutinefunction(candidate):
            return CallbackKind.COROUTINE
        if inspect.isasyncgenfunction(candidate):
            return CallbackKind.ASYNC_GENERATOR
        if inspect.isgeneratorfunction(candidate):
            return CallbackKind.GENERATOR
    return CallbackKind.SYNC


_COROUTINE = CallbackKind.COROUTINE


class SyncCall:
    """A sync callback as its executor calls it: in a worker thread, another process, Dask.

    A generator function's items are collected into a list where it runs, so
    a generator never travels between processes and never runs on the event
    loop. ``StopIteration`` raised by the callback leaves as a
    :class:`RuntimeError`, as Python does for generators and coroutines
    (PEP 479): an asyncio future refuses a ``StopIteration``, and the run would
    wait for ever for a call whose outcome never arrives. Pickles when the
    function does.

    :param function: the callback
    :param task_name: its task's name, for the message
    :param collect: whether ``function`` is a generator function
    """

    def __init__(self, function: Any, task_name: str, *, collect: bool = False) -> None:
        functools.update_wrapper(self, function)
        self.function = function
        self.task_name = task_name
        self.collect = collect

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            if self.collect:
                return list(self.function(*args, **kwargs))
            return self.function(*args, **kwargs)
        except StopIteration as error:
            # See test_a_sync_callback_raising_stop_iteration_fails_its_task.
            raise RuntimeError(
                f"task {self.task_name!r}: its callback raised StopIteration, which cannot "
                f"leave a call (Python turns it into this error in generators and coroutines "
                f"too); raise another exception to fail the task, or return a value"
            ) from error


class CallbackTask(Task):
    """Task decorating a callback.

    The callback receives the context dict, and each of its keyword-only
    parameters the context key of that name (``async def deploy(context, *,
    version)``); its return value is the task's result. A task fails by
    raising: an exception object it returns is a result like any other, and
    the task succeeds. A required keyword-only
    parameter is also a need: the task waits for the task storing that key. An async callback is
    awaited on the event loop; a sync one runs in the task's executor (a
    worker thread by default) so it never blocks the loop. A returned
    awaitable is awaited and an async iterator's items are collected into a
    list.

    :param name: task name
    :param callback: sync or async callable taking the context dict
    :param kwargs: the options of :class:`Task` (``register``, ``timeout``, ...)
    :raises flow2.TaskTypeError: when ``callback`` is not callable

    Example::

        async def fetch_version(context):
            return "1.2.0"

        flow2.CallbackTask("Version", fetch_version)
    """

    #: The options of :class:`Task` and the callback (compared by its name and source).
    definition_options = (*Task.definition_options, "callback")

    def __init__(self, name: str, callback: Any, **kwargs: Any) -> None:
        if not callable(callback):
            raise TaskTypeError(
                f"task {name!r}: callback {callback!r} ({type(callback).__name__}) is not "
                f"callable; pass a function taking the context dict, "
                f"e.g. CallbackTask({name!r}, my_function)",
                task=name,
                option="callback",
                value=callback,
            )
        super().__init__(name, **kwargs)
        #: Sync or async task callback.
        self.callback = callback
        self.callback_kind = kind_of(callback)
        # What the executor calls: a generator function's items are collected
        # there, and StopIteration does not hang the run. Made for sync
        # callbacks only: an async one is awaited on the loop (and building a
        # tree of them stays cheap).
        self._sync_call: SyncCall | None = None
        if self.callback_kind in (CallbackKind.SYNC, CallbackKind.GENERATOR):
            self._sync_call = SyncCall(
                callback, name, collect=self.callback_kind is CallbackKind.GENERATOR
            )
        # Keyword-only parameters receive context keys, on every executor
        # and on the loop alike (see flow2._executors.arguments_for).
        self._takes_keywords = bool(keyword_only_parameters(callback))
        # A required keyword-only parameter is a result the task waits for.
        # See test_callback_keyword_parameter_is_a_need.
        if self._takes_keywords:
            self.needs = merge_needs(self.needs, parameter_needs(callback))

    async def run(self, context: Context) -> Any:
        """Call the callback with the context and return its resolved result."""
        kind = self.callback_kind
        if kind is _COROUTINE:  # a module constant: Enum attribute lookups are slow
            if self._takes_keywords:
                positional, keywords = arguments_for(self, self.callback, context, remote=False)
                result = await self.callback(positional, **keywords)
            else:
                result = await self.callback(context)
        elif kind is CallbackKind.ASYNC_GENERATOR:
            positional, keywords = arguments_for(self, self.callback, context, remote=False)
            return [item async for item in self.callback(positional, **keywords)]
        else:
            sync_call = self._sync_call
            assert sync_call is not None  # made for every sync kind
            run = current_run.get()
            if run is None:
                result = sync_call(context)
            else:
                executor = await run.executor_for(self)
                result = await executor.call(self, sync_call, context)
        if result is None:
            return None
        return await resolve(result)


async def resolve(value: Any) -> Any:
    """Await an awaitable and collect an async iterator or a generator into a list.

    Anything else is returned unchanged. A generator's items are collected
    in a worker thread: its code may block.
    """
    while inspect.isawaitable(value):
        value = await value
    if hasattr(value, "__aiter__"):
        return [item async for item in value]
    if inspect.isgenerator(value):
        return await asyncio.to_thread(list, value)
    return value
