"""Where sync work runs.

An async callback always runs on the event loop. A sync callback is handed
to its task's executor, chosen by the task's ``executor`` option (inherited
from the enclosing group, ``"thread"`` when nobody sets one). An executor is
anything with the coroutine methods of :class:`Executor`; a name such as
``"thread"`` is looked up in :data:`EXECUTOR_FACTORIES`. A run starts every
executor its tree names before the first task runs, and closes each one it
started when it ends: every ``start()`` is paired with one ``aclose()``, and
an executor releases what it holds when its last user closes it, so one
opened by its owner (``async with``) stays warm across runs.

What a callback receives is the same everywhere (see :func:`arguments_for`):
``callback(context)``, plus, when it declares keyword-only parameters, the
context keys of those names as keyword arguments. A callback running in
another process (:class:`~flow2.ProcessExecutor`, :class:`~flow2.DaskExecutor`)
gets a copy: only the keys it declares, or the whole context when it declares
none, and only its return value comes back.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._exceptions import ExecutorError

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable

    from ._task import Context, Task


@runtime_checkable
class Executor(Protocol):
    """Runs a sync callback somewhere and hands its result back to the event loop."""

    async def call(self, task: Task, function: Callable[[Context], Any], context: Context) -> Any:
        """Run ``function(context)`` for ``task`` and return its result.

        Cancelling the awaiting coroutine must stop the work where the
        executor can (a process, a cluster future), and at least stop
        waiting for it where it cannot (a thread).
        """
        ...

    async def start(self) -> None:
        """Get ready (connect, check the cluster) before any task of the run starts.

        Called once per run that uses the executor (and by ``async with``).
        Raise :class:`flow2.ExecutorError` here, naming what is wrong, so a
        run that cannot work fails before doing anything.
        """
        ...

    async def aclose(self) -> None:
        """Undo one ``start()``; release what the executor holds after the last one.

        Called when the run ends, however it ends.
        """
        ...


@functools.lru_cache(maxsize=1024)
def _keyword_only_parameters(function: Callable[..., Any]) -> tuple[tuple[str, bool], ...]:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return ()
    return tuple(
        (parameter.name, parameter.default is inspect.Parameter.empty)
        for parameter in parameters
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    )


def keyword_only_parameters(function: Callable[..., Any]) -> tuple[tuple[str, bool], ...]:
    """The keyword-only parameters of ``function``: (name, is required) pairs."""
    if hasattr(function, "__wrapped__"):
        # The signature is the wrapped function's (inspect follows __wrapped__
        # too): a wrapper made per task must not miss the cache on every call.
        function = inspect.unwrap(function)
    try:
        return _keyword_only_parameters(function)
    except TypeError:  # an unhashable callable object: not cached
        return _keyword_only_parameters.__wrapped__(function)


def arguments_for(
    task: Task, function: Callable[..., Any], context: Context, *, remote: bool
) -> tuple[Context, dict[str, Any]]:
    """What ``function`` is called with: ``function(context, **keywords)``.

    A callback declaring keyword-only parameters (``def crunch(context, *,
    numbers, scale=1)``) receives the context keys of those names as keyword
    arguments; a missing key leaves its default. A ``remote`` callback (run in
    another process) gets a copy holding only those keys, or the whole
    context when it declares none, so that only what it needs is pickled.

    :returns: the context to pass positionally and the keyword arguments
    :raises flow2.ExecutorError: when a required keyword-only parameter has no context key
    """
    declared = keyword_only_parameters(function)
    if not declared:
        return (dict(context) if remote else context), {}
    keywords: dict[str, Any] = {}
    for name, is_required in declared:
        if name in context:
            keywords[name] = context[name]
        elif is_required:
            from ._missing import missing_result_error

            missing = missing_result_error(task, name)
            if missing is not None:
                raise missing
            raise ExecutorError(
                f"task {task.name!r}: its callback {_name_of(function)} needs the context key "
                f"{name!r} (a keyword-only parameter) but the context has none; run the task "
                f"that stores {name!r} before it, or give the parameter a default",
                task_definition=task,
                key=name,
            )
    return (dict(keywords) if remote else context), keywords


def unpicklable_error(
    task: Task,
    function: Callable[..., Any],
    data: Context,
    keywords: dict[str, Any],
    dumps: Callable[[Any], object],
    destination: str,
) -> ExecutorError:
    """An error naming what of a callback and its data ``dumps`` cannot pickle."""
    try:
        dumps(function)
    except Exception as error:
        return ExecutorError(
            f"task {task.name!r}: its callback {_name_of(function)} cannot be pickled to send "
            f"it to {destination} ({type(error).__name__}: {error}); define it at module "
            f"level in an importable module (not a lambda or a nested function)",
            task_definition=task,
            option="callback",
            value=function,
        )
    for key, value in {**data, **keywords}.items():
        try:
            dumps(value)
        except Exception as error:
            return ExecutorError(
                f"task {task.name!r}: context key {key!r} ({type(value).__name__}) cannot be "
                f"pickled to send it to {destination} ({type(error).__name__}: {error}); keep "
                f"it out of what the callback receives by declaring the keys it needs as "
                f"keyword-only parameters, e.g. def {_name_of(function, bare=True)}(context, "
                f"*, needed_key)",
                task_definition=task,
                key=key,
                value=value,
            )
    return ExecutorError(  # pragma: no cover - each part pickles but not the whole
        f"task {task.name!r}: its callback and data cannot be pickled to send them to "
        f"{destination}",
        task_definition=task,
    )


def _name_of(function: Callable[..., Any], *, bare: bool = False) -> str:
    name = getattr(function, "__name__", None) or type(function).__name__
    if name == "<lambda>":
        return "callback" if bare else "lambda"
    return name if bare else f"{name}()"


class RunOptions(Protocol):
    """The run settings an executor factory may read."""

    @property
    def max_threads(self) -> int | None:
        """The size of a thread pool of the run's own (None: the shared pool)."""
        ...

    @property
    def executor(self) -> Executor | concurrent.futures.Executor | None:
        """Where the run's sync callbacks go by default (None: a thread pool)."""
        ...

    @property
    def dask_address(self) -> str | None:
        """The Dask scheduler of ``executor="dask"``."""
        ...

    @property
    def grace(self) -> float:
        """Seconds work that is stopped gets between SIGTERM and SIGKILL."""
        ...


#: Executor names usable as a task's ``executor`` option, each with the
#: function that creates that executor from the run's settings. The
#: executors layer (``flow2._executors``) fills it when flow2 is imported.
EXECUTOR_FACTORIES: dict[str, Callable[[RunOptions], Executor]] = {}
