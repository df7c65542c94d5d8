"""What a run takes from the run store: its recorder, the plan of a resume, ``--from``'s results.

Opening the store and reading a recorded run touch the disk: the runner
calls these in a worker thread, never on the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

    from .._engine._selection import Selection
    from .._engine._task import Context, Task
    from .._store._database import Store
    from .._store._dry import DryRun
    from .._store._recorder import StoreRecorder
    from .._store._reuse import ReusePlan
    from ._settings import RunSettings


def open_recorder(
    settings: RunSettings,
    task: Task,
    context: Context | None,
    selection: Selection | None = None,
) -> tuple[StoreRecorder, ReusePlan]:
    """The recorder of the run, and its reuser (which keys every task).

    :param selection: the tasks run by name, when ``task`` is a tree pruned to them

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
        plan = resume_plan(settings, store, connection, task, context, selection)
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
    selection: Selection | None = None,
) -> ReusePlan:
    """The run's reuser: keys for every task, and what a resume or the cache may reuse.

    :param selection: the tasks run by name, when ``task`` is a tree pruned to
        them: their keys are those a run of the whole tree computes

    :raises flow2.StoreError: the run to resume is not in the store
    """
    import flow2

    from .._store._cache import distrust
    from .._store._keys import KeyMaker
    from .._store._reuse import (
        ReusePlan,
        file_index,
        flow_identity,
        lineage_states,
        read_entries,
    )
    from ._settings import CacheMode

    _check_forced(settings.force, selection.original_root if selection is not None else task)

    previous = None
    if settings.resume == "last":
        # Nothing to resume yet: the run runs every task, as a first run.
        previous = store.latest_run(connection, flow=settings.flow_file, name=task.name)
    elif settings.resume is not None:
        previous = store.find_run(connection, settings.resume)
    # Checked by the run, after this: a context that is no dict has no variables here.
    variables = context if isinstance(context, dict) else {}
    flow = flow_identity(settings.flow_file, task.name)
    states = lineage_states(store, connection, previous) if previous is not None else None
    cached: dict[tuple[str, ...], list[Any]] = {}
    untrusted = distrust(store)
    reads = settings.cache_mode is not CacheMode.OFF
    if reads and untrusted is None and (settings.cache or _any_cache(task)):
        for entry in read_entries(connection, "flow = ?", (flow,)):
            cached.setdefault(entry.path, []).append(entry)
    keys = KeyMaker(
        task,
        {**task.starting_context, **variables},
        settings.environ,
        salt=settings.cache_salt,
        version=flow2.__version__,
        originals=selection.originals if selection is not None else None,
    )
    return ReusePlan(
        keys,
        flow=flow,
        previous=previous,
        states=states,
        cached=cached,
        cache_all=settings.cache,
        restore_all=settings.cache_restore,
        store=store,
        cache_reads=reads,
        cache_writes=settings.cache_mode is CacheMode.ON,
        force=settings.force,
        distrust=untrusted,
        pickle_results=settings.pickle_results,
        index=file_index(connection),
    )


def _check_forced(references: tuple[str, ...], root: Task) -> None:
    """Every ``force`` reference names a task or a group of the tree.

    :raises flow2.ConfigurationError: naming the one that names nothing
    """
    from .._engine._exceptions import ConfigurationError
    from .._engine._task import Task
    from .._store._reuse import names_task

    left = set(references)
    stack: list[tuple[Any, list[str]]] = [(root, [root.name])]
    while stack and left:
        task, names = stack.pop()
        if not isinstance(task, Task):
            continue
        left = {ref for ref in left if not names_task(ref, names, task.key)}
        stack.extend((child, [*names, getattr(child, "name", "")]) for child in task.children)
    if left:
        reference = sorted(left)[0]
        raise ConfigurationError(
            f"--force {reference!r} names no task or group of {root.name!r}; give a task's "
            f"key, its name or its path (e.g. {root.name}/build)",
            option="force",
            value=reference,
        )


def _any_cache(root: Task) -> bool:
    """Whether a task of the tree asks for the cache."""
    from .._engine._task import Task

    # The tree is checked by the run, after this: anything that is not a task is skipped.
    stack: list[Any] = [root]
    while stack:
        task = stack.pop()
        if not isinstance(task, Task):
            continue
        if task.cache:
            return True
        stack.extend(task.children)
    return False


def planned_resume(
    settings: RunSettings,
    task: Task,
    context: Context | None,
    selection: Selection | None = None,
) -> DryRun | None:
    """For a dry run: what a resume or the cache would do, reading the store without writing it."""
    from .._store._database import Store
    from .._store._dry import DryRun

    if settings.store is None or (
        settings.resume is None and not settings.cache and not _any_cache(task)
    ):
        return None
    store = Store(settings.store)
    if not store.path.is_file():
        return None
    connection = store.connect()
    try:
        plan = resume_plan(settings, store, connection, task, context, selection)
    finally:
        connection.close()
    return DryRun(plan, task, context if isinstance(context, dict) else {})


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
        if stored.is_group or stored.status not in ("succeeded", "reused", "cached"):
            continue
        usable, value, _ = decode_result(
            stored.result_format, stored.result, pickle_results=settings.pickle_results
        )
        if usable:
            results[stored.key] = value
    return f"run {previous.id}", results
