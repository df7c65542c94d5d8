"""What a read of a result that is not there yet means, and the fix to name.

A task reading ``context['build']`` before the task storing ``build`` has
finished gets a bare ``KeyError: 'build'`` from the dict. When the key is
another task's result key in the run, :func:`explain_missing_result` says
why it is missing (the two run in parallel, the other runs later, or it was
skipped) and what to write; :func:`explained_key_error` turns the KeyError
into a :class:`flow2.MissingResultError` (a KeyError too) saying so. Only a
failure pays for this: reading the context stays a plain dict lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._context import current_run
from ._events import Status
from ._exceptions import MissingResultError
from ._groups import ParallelTaskGroup

if TYPE_CHECKING:
    from ._state import TaskRun
    from ._task import Context, Task

#: Statuses of a task that has stored its result (or its error) in the context.
_STORED = frozenset({Status.SUCCEEDED, Status.PARTIAL, Status.FAILED, Status.REUSED})


def producer_of(reader: TaskRun, key: str) -> TaskRun | None:
    """The record of the task of ``reader``'s run that stores its result under ``key``."""
    for record in reader.run.record_list():
        task = record.task
        if record is not reader and task.stores_result and task.key == key:
            return record
    return None


def explain_missing_result(reader: TaskRun, key: str) -> tuple[str, TaskRun] | None:
    """Why ``reader`` found no ``key`` in the context, and the fix, when a task stores it.

    :returns: the message and the storing task's record; None when no task of
        the run stores ``key``, or it has stored it already
    """
    producer = producer_of(reader, key)
    if producer is None or producer.status in _STORED:
        return None
    name, other = reader.task.name, producer.task.name
    head = f"task {name!r} read context[{key!r}] before task {other!r} stored it"
    needs = f"needs: [{key}] (flow files) or needs=[{key!r}] (Python)"
    if producer.status in (Status.SKIPPED, Status.CANCELLED):
        why = f" ({producer.reason})" if producer.reason else ""
        word = "skipped" if producer.status is Status.SKIPPED else "cancelled"
        return (
            f"{head}: task {other!r} was {word}{why}; add {needs} so that this task "
            f"waits for it, and is skipped when it is",
            producer,
        )
    if _run_in_parallel(reader, producer):
        return f"{head}: they run in parallel; add {needs} to wait for it", producer
    return (
        f"{head}: it runs after task {name!r}; move it before task {name!r} in their serial group",
        producer,
    )


def explained_key_error(reader: TaskRun, error: KeyError, context: Context) -> Exception:
    """``error``, or a :class:`flow2.MissingResultError` caused by it when its key is
    the result key of a task of the run that has not stored it yet."""
    if len(error.args) != 1 or not isinstance(error.args[0], str):
        return error
    key = error.args[0]
    if key in context:
        return error
    explained = explain_missing_result(reader, key)
    if explained is None:
        return error
    message, producer = explained
    missing = MissingResultError(
        message, task_definition=reader.task, key=key, producer=producer.task.name
    )
    missing.__cause__ = error
    return missing


def missing_result_error(task: Task, key: str) -> MissingResultError | None:
    """The error for ``task``, running now, finding no ``key`` in the context, when
    a task of the run stores it and has not yet (None otherwise)."""
    run = current_run.get()
    reader = run.find_record(task) if run is not None else None
    explained = explain_missing_result(reader, key) if reader is not None else None
    if explained is None:
        return None
    message, producer = explained
    return MissingResultError(message, task_definition=task, key=key, producer=producer.task.name)


def _run_in_parallel(first: TaskRun, second: TaskRun) -> bool:
    """Whether the group the two records meet in runs its children in parallel."""
    above_second = set()
    record: TaskRun | None = second
    while record is not None:
        above_second.add(id(record))
        record = record.parent
    meeting: TaskRun | None = first
    while meeting is not None and id(meeting) not in above_second:
        meeting = meeting.parent
    return meeting is not None and isinstance(meeting.task, ParallelTaskGroup)
