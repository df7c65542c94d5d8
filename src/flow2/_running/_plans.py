"""What a run takes from the run store: its recorder, the plan of a resume, ``--from``'s results.

Opening the store and reading a recorded run touch the disk: the runner
calls these in a worker thread, never on the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

    from .._engine._state import Decision, Plan, TaskRun
    from .._engine._task import Context, Task
    from .._store._database import Store
    from .._store._recorder import StoreRecorder
    from .._store._resume import ResumePlan
    from ._settings import RunSettings


def open_recorder(
    settings: RunSettings, task: Task, context: Context | None
) -> tuple[StoreRecorder, ResumePlan | None]:
    """The recorder of the run, and the plan when it resumes one.

    :raises flow2.StoreError: the store cannot be written, or the run to resume is not in it
    """
    from .._listeners._secrets import SecretMasker, is_secret_name
    from .._store._database import Store
    from .._store._recorder import StoreRecorder

    assert settings.store is not None
    store = Store(settings.store)
    # Secret-named variables are secrets too: their values are masked
    # wherever they appear in what is stored.
    masker = SecretMasker.from_environment(
        [
            *settings.secrets,
            *(
                str(value)
                for name, value in (context if isinstance(context, dict) else {}).items()
                if is_secret_name(name) and isinstance(value, str | int | float)
            ),
        ],
        settings.environ,
    )
    # Not writable: fails before the run. The recorder's writer thread
    # goes on with this connection.
    connection = store.connect(create=True, shared=True)
    try:
        plan = resume_plan(settings, store, connection, task, context)
    except BaseException:
        connection.close()
        raise
    recorder = StoreRecorder(
        store,
        flow_file=settings.flow_file,
        pickle_results=settings.pickle_results,
        masker=masker,
        plan=plan,
        keep=settings.store_keep,
        connection=connection,
    )
    return recorder, plan


def resume_plan(
    settings: RunSettings,
    store: Store,
    connection: sqlite3.Connection,
    task: Task,
    context: Context | None,
) -> ResumePlan | None:
    """The plan of the resume asked for; None when there is nothing to resume."""
    from .._store._resume import ResumePlan

    previous = None
    if settings.resume == "last":
        # Nothing to resume yet: the run runs every task, as a first run.
        previous = store.latest_run(connection, flow=settings.flow_file, name=task.name)
    elif settings.resume is not None:
        previous = store.find_run(connection, settings.resume)
    if previous is None:
        return None
    return ResumePlan(
        previous,
        task,
        context if context is not None else {},
        pickle_results=settings.pickle_results,
    )


def planned_resume(settings: RunSettings, task: Task, context: Context | None) -> ResumePlan | None:
    """For a dry run: the plan a resume would follow, reading the store without writing it."""
    from .._store._database import Store

    if settings.resume is None:
        return None
    assert settings.store is not None
    store = Store(settings.store)
    if not store.path.is_file() and settings.resume == "last":
        return None
    connection = store.connect()
    try:
        return resume_plan(settings, store, connection, task, context)
    finally:
        connection.close()


def stored_results(settings: RunSettings, task: Task) -> tuple[str, dict[str, Any]]:
    """The results ``start_from`` takes: those of the latest recorded run of this flow,
    with the name of that run.

    :raises flow2.StoreError: no store, or no run of this flow in it
    """
    from .._store._database import Store, StoreError
    from .._store._values import decode_result

    assert settings.store is not None
    store = Store(settings.store)
    of = settings.flow_file if settings.flow_file is not None else repr(task.name)
    if not store.path.is_file():
        raise StoreError(
            f"--from {settings.start_from!r} takes the results of the tasks before it from the "
            f"latest recorded run of {of}, and there is no run store in {store.directory}; "
            f"run the whole flow first, or choose the store with --store or FLOW2_STORE",
            path=str(store.path),
        )
    connection = store.connect()
    try:
        previous = store.latest_run(connection, flow=settings.flow_file, name=task.name)
    finally:
        connection.close()
    if previous is None:
        raise StoreError(
            f"--from {settings.start_from!r}: no run of {of} is recorded in {store.directory} "
            f"to take the results before it from; run the whole flow first",
            path=str(store.path),
        )
    results: dict[str, Any] = {}
    for stored in previous.tasks:
        if stored.is_group or stored.status not in ("succeeded", "reused"):
            continue
        usable, value, _ = decode_result(
            stored.result_format, stored.result, pickle_results=settings.pickle_results
        )
        if usable:
            results[stored.key] = value
    return f"run {previous.id}", results


class BothPlans:
    """A partial run's plan first (what it leaves out stays out), then a resume's."""

    def __init__(self, first: Plan, second: Plan) -> None:
        self.first = first
        self.second = second

    def decide(self, record: TaskRun, context: Context) -> Decision | None:
        decision = self.first.decide(record, context)
        return decision if decision is not None else self.second.decide(record, context)
