"""Where the commands find the run store, a recorded RUN, and the task log files.

The run store is ``--store``, else ``$FLOW2_STORE``, else ``.flow2`` (the one
beside the nearest ``flow2.yml`` when the working directory has none); a RUN
is an id, a unique prefix of one, or ``last``. Every problem with them is a
:class:`~flow2._cli._arguments.UsageProblem`: one message, exit code 2.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._arguments import UsageProblem

if TYPE_CHECKING:
    from .._store._database import Store, StoredRun, StoredTask

#: Where ``flow2 run`` writes each task's log file (``{run_id}``: the run's id), in
#: the run store's directory: ``runs/<run id>/logs/`` beside its records.
LOG_FOLDER = os.path.join("runs", "{run_id}", "logs")


def chosen_store(option: str | None, *, nearest: bool = True) -> Path:
    """The run store's directory: ``--store``, else ``$FLOW2_STORE``, else ``.flow2``.

    :param nearest: when the default ``.flow2`` is not in the working directory,
        the one beside the nearest ``flow2.yml`` above it: where ``flow2 run``
        records a project's runs, whichever of its folders it was started in
        (a command that records says False: it records where it runs)
    """
    from .._store._database import store_directory

    directory = store_directory(option if option is not None else True, os.environ)
    assert directory is not None
    if nearest and option is None and not os.environ.get("FLOW2_STORE"):
        if not directory.exists():
            from ._words import find_default_flow

            flow = find_default_flow()
            if flow is not None and (flow.parent / directory).is_dir():
                return flow.parent / directory
    return directory


def open_store(directory: Path) -> tuple[Store, Any]:
    """The run store in ``directory`` and a connection to it.

    :raises UsageProblem: when the store cannot be opened (newer, damaged, not writable)
    """
    from .._store._database import Store, StoreError

    store = Store(directory)
    try:
        return store, store.connect()
    except StoreError as error:
        raise UsageProblem(str(error)) from None


def find_run(directory: Path, reference: str) -> StoredRun:
    """The run ``reference`` names (an id, a unique prefix of one, or ``last``).

    :raises UsageProblem: when the store has no such run, or several runs match
    """
    from .._store._database import StoreError

    store, connection = open_store(directory)
    try:
        return store.find_run(connection, reference)
    except StoreError as error:
        raise UsageProblem(str(error)) from None
    finally:
        connection.close()


def log_directory(option: str | None, no_log_files: bool, store: str | None) -> str | None:
    """Where ``flow2 run`` writes the task log files: ``--log-dir``, ``FLOW2_LOG_DIR``,
    else ``runs/{run_id}/logs`` in the run store's directory (``.flow2``)."""
    if no_log_files:
        return None
    if option is not None:
        return option
    from_environment = os.environ.get("FLOW2_LOG_DIR")
    if from_environment:
        return from_environment
    directory = chosen_store(store)
    # The logs go into the store's folder even when nothing is recorded
    # (--no-store): that folder never ends up in a commit either.
    from .._listeners._files import make_private_directory
    from .._store._database import ignore_in_version_control

    with contextlib.suppress(OSError):  # a log that cannot be written says so itself
        make_private_directory(directory)
        ignore_in_version_control(directory)
    return os.path.join(os.path.relpath(directory), LOG_FOLDER)


def find_recorded_task(
    directory: Path, run_reference: str, task: str
) -> tuple[StoredRun, StoredTask]:
    """The run ``run_reference`` names and its one task ``task`` names (a key, a path, a name).

    :raises UsageProblem: when the run has no such task, or several match
    """
    from .._store._history import find_task

    recorded = find_run(directory, run_reference)
    found = find_task(recorded, task)
    if isinstance(found, list):
        if not found:
            keys = ", ".join(item.key for item in recorded.tasks if not item.is_group)
            raise UsageProblem(
                f"run {recorded.id} has no task {task!r}; give a key or a path, one of: {keys}"
            )
        paths = "; ".join(" › ".join(item.path) for item in found)
        raise UsageProblem(
            f"{task!r} names {len(found)} tasks of run {recorded.id} ({paths}); give its path"
        )
    return recorded, found
