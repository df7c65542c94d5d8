"""Where the run store lives, its schema, and the queries on it.

One SQLite file, ``runs.sqlite3``, in the store directory (``.flow2/`` under
the working directory by default), in WAL mode so that readers never wait
for a writer and two ``flow2 run`` processes can record at once. Every
connection waits for a lock (``busy_timeout``) instead of failing, and
writes are short transactions, retried when SQLite still answers "locked".

The table ``flow2_store`` holds what the file is (``application``) and its
``schema_version``. A store written by a newer flow2 is refused; an older
one is migrated, step by step, by :data:`MIGRATIONS`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._engine._exceptions import ConfigurationError
from .._listeners._files import create_private_file, make_private_directory
from ._failures import RUN_ID, UntrustedValue, cause_of, cause_words, rollback
from ._kept import collect_garbage
from ._liveness import RUNNING, status_of
from ._schema import (
    _SCHEMA,
    APPLICATION,
    MIGRATIONS,
    NO_PARENT,
    SCHEMA_VERSION,
    unpack_numbers,
    unpack_texts,
)
from ._values import JSON

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

#: The store directory when neither ``--store`` nor ``FLOW2_STORE`` names one.
DEFAULT_DIRECTORY = ".flow2"
#: The database file inside the store directory.
DATABASE_NAME = "runs.sqlite3"
#: Runs kept after each recorded run unless ``FLOW2_STORE_KEEP`` says otherwise.
DEFAULT_KEEP = 100
#: Milliseconds a connection waits for another one's lock before SQLite gives up.
BUSY_TIMEOUT_MS = 30_000
#: Attempts of a transaction that SQLite still reports as locked.
ATTEMPTS = 20

#: The file in the store directory that keeps it out of version control.
GITIGNORE = ".gitignore"
_GITIGNORE_TEXT = "# Created by flow2: its run store is local to this machine.\n*\n"


class StoreError(ConfigurationError):
    """The run store cannot be used: not writable, full, damaged, not a flow2
    store, a newer schema, or a run reference that matches no run or several.

    :param message: what is wrong and how to fix it
    :param path: the store's database file (also :attr:`file`)
    :param cause: what kind of failure it is, when it is one of the disk's:
        ``"read-only"``, ``"disk full"``, ``"corrupt"``
    :ivar path: the store's database file
    :ivar cause: ``"read-only"``, ``"disk full"``, ``"corrupt"``, or None
    """

    def __init__(
        self, message: str, *, path: str | None = None, cause: str | None = None, **facts: Any
    ) -> None:
        facts.setdefault("file", path)
        super().__init__(message, **facts)
        self.path = path
        self.cause = cause


_Result = TypeVar("_Result")


def ignore_in_version_control(directory: Path) -> None:
    """Write ``.gitignore`` (``*``) into a store directory, as pytest and ruff do in
    their caches: ``git add --all`` never commits a store, nor the task logs in it."""
    ignore = directory / GITIGNORE
    if ignore.exists() or ignore.is_symlink():
        return
    with contextlib.suppress(FileExistsError):
        # Owner-only, as everything in the store.
        descriptor = os.open(ignore, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(descriptor, "w", encoding="utf-8") as file:
            file.write(_GITIGNORE_TEXT)


def store_directory(
    value: str | os.PathLike[str] | bool | None, environ: Mapping[str, str]
) -> Path | None:
    """The store directory a run records into, or None for no store.

    :param value: a directory; True for the default (``FLOW2_STORE``, else
        ``.flow2``); False for none; None for ``FLOW2_STORE`` when it is set
    :param environ: the environment ``FLOW2_STORE`` is read from
    """
    if value is False:
        return None
    if value is None or value is True:
        configured = environ.get("FLOW2_STORE")
        if configured:
            return Path(configured)
        return Path(DEFAULT_DIRECTORY) if value is True else None
    return Path(value)


@dataclass
class StoredTask:
    """One task of a recorded run, as the store has it."""

    number: int
    parent: int | None
    path: tuple[str, ...]
    key: str
    is_group: bool
    status: str
    attempts: int
    started_at: float | None
    ended_at: float | None
    duration: float | None
    error_type: str | None
    error_message: str | None
    error_traceback: str | None
    result_format: str | None
    result: bytes | str | None
    result_note: str | None
    definition: dict[str, str] | None
    reads: list[str] | None
    reason: str | None
    output: str | None
    #: Its attempts that failed and were retried, in order: ``[end, retry delay,
    #: error type, error message, traceback]`` each.
    retries: list[list[Any]] = field(default_factory=list)
    #: Seconds its work waited for a process or Dask worker; ``started_at`` is
    #: when the work began there.
    queued: float = 0.0
    #: Its ``description``, secrets masked (None: it has none, or it was
    #: recorded before schema 6).
    description: str | None = None
    #: ``"finally"`` or ``"on_failure"`` for a group's cleanup task; None for
    #: one of the group's own tasks (and for any task recorded before schema 6).
    role: str | None = None


@dataclass
class StoredRun:
    """A recorded run: what ``flow2 runs`` lists and a resume starts from."""

    id: str
    name: str
    flow: str | None
    variables: dict[str, Any]
    started_at: float
    ended_at: float | None
    last_seen: float | None
    status: str
    resumed_from: str | None
    counts: dict[str, int]
    tasks: list[StoredTask] = field(default_factory=list)
    #: The exception the run raised to its caller: ``type``, ``message``, ``traceback``.
    error: dict[str, str] | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or to the last thing recorded when it never ended."""
        end = self.ended_at if self.ended_at is not None else self.last_seen
        return None if end is None else max(0.0, end - self.started_at)


class Store:
    """The run store in ``directory``.

    :param directory: the store directory (created when a run records)
    :raises StoreError: see :meth:`check`
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DATABASE_NAME

    def __repr__(self) -> str:
        return f"<Store {str(self.directory)!r}>"

    def run_directory(self, run_id: str) -> Path:
        """The folder of run ``run_id``'s files: ``runs/<id>/``, built only from a valid id.

        :raises StoreError: when ``run_id`` is not a run id flow2 writes
        """
        if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
            raise self._untrusted(f"a run id {run_id!r}")
        return self.directory / "runs" / run_id

    def log_directory(self, run_id: str) -> Path:
        """Where the per-task log files of run ``run_id`` are: ``runs/<id>/logs/``."""
        return self.run_directory(run_id) / "logs"

    def is_inside(self, path: Path) -> bool:
        """True when ``path`` is in the store directory, no symlink leading out of it."""
        try:
            root = self.directory.resolve(strict=True)
            return path.resolve(strict=True).is_relative_to(root) and path.resolve() != root
        except (OSError, RuntimeError):
            return False

    def connect(self, *, create: bool = False, shared: bool = False) -> sqlite3.Connection:
        """A connection to the store, its schema checked (and created or migrated).

        :param create: create the directory and the database when missing
        :param shared: the connection may be handed to another thread (used
            by one thread at a time)
        :raises StoreError: when the store cannot be written or read, is not
            a flow2 store, or was written by a newer flow2
        """
        if self.directory.exists() and not self.directory.is_dir():
            raise self._error(
                f"{self.directory} is a file, not a store directory; "
                f"choose a directory with --store or FLOW2_STORE"
            )
        if self.path.is_symlink() and not self.is_inside(self.path):
            raise self._untrusted(f"a database file that is a symlink out of it ({self.path})")
        if not create and not self.path.is_file():
            raise self._error(
                f"no run store in {self.directory} (no {DATABASE_NAME}); runs are recorded "
                f"there by `flow2 run`, or choose another with --store or FLOW2_STORE"
            )
        try:
            if create:
                make_private_directory(self.directory)
                if not os.access(self.directory, os.W_OK | os.X_OK):
                    raise PermissionError(13, "Permission denied")
                # Results and output live in it: owner-only, as SQLite's
                # journal files then are too.
                create_private_file(self.path)
                self._ignore_in_version_control()
            connection = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=not shared,
            )
        except (OSError, sqlite3.Error) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise self._error(
                f"cannot {'write' if create else 'open'} the run store in {self.directory}: "
                f"{cause_words(error)}{reason}; make it writable, or choose another directory "
                f"with --store or FLOW2_STORE (or --no-store)",
                cause=cause_of(error),
            ) from None
        try:
            self._prepare(connection, create)
        except sqlite3.Error as error:
            connection.close()
            raise self.failed(error) from None
        except BaseException:
            connection.close()
            raise
        return connection

    def _ignore_in_version_control(self) -> None:
        ignore_in_version_control(self.directory)

    def failed(self, error: BaseException) -> StoreError:
        """``error``, met reading or writing the store, as one line naming the store, the
        cause and what to do."""
        if isinstance(error, StoreError):
            return error
        cause = cause_of(error)
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        if cause is None and self._is_disk_full():
            # SQLite reports some writes on a full disk as an I/O error.
            cause = "disk full"
        if cause == "corrupt":
            return self._error(
                f"the run store {self.path} is corrupt ({reason}); nothing in it was changed: "
                f"move the directory {self.directory} away (its runs are lost), or choose "
                f"another with --store or FLOW2_STORE",
                cause=cause,
            )
        if cause == "disk full":
            return self._error(
                f"the run store {self.path}: disk full ({reason}); free some space, or choose "
                f"another directory with --store or FLOW2_STORE (or --no-store)",
                cause=cause,
            )
        if cause == "read-only":
            return self._error(
                f"the run store {self.path} is read-only ({reason}); make it writable, or "
                f"choose another directory with --store or FLOW2_STORE (or --no-store)",
                cause=cause,
            )
        return self._error(f"the run store {self.path}: {reason}")

    def _is_disk_full(self) -> bool:
        try:
            stats = os.statvfs(self.directory)
        except (OSError, AttributeError):  # pragma: no cover - gone, or not POSIX
            return False
        return stats.f_bavail == 0 and stats.f_blocks > 0

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Whatever a damaged or planted store makes fail while it is read: one StoreError."""
        try:
            yield
        except StoreError:
            raise
        except UntrustedValue as error:
            raise self._untrusted(str(error)) from None
        except sqlite3.Error as error:
            raise self.failed(error) from None
        except (ValueError, KeyError, TypeError, IndexError, struct.error) as error:
            # A row flow2 did not write: bad JSON, a missing column, a short packed row.
            raise self.failed(UntrustedValue(f"a row it cannot read ({error})")) from None

    def _untrusted(self, what: str) -> StoreError:
        return self._error(
            f"the run store {self.path} holds {what} that flow2 never writes: it is not to "
            f"be trusted, and nothing in it was changed or deleted; move the directory "
            f"{self.directory} away, or choose another with --store or FLOW2_STORE",
            cause="corrupt",
        )

    def _prepare(self, connection: sqlite3.Connection, create: bool) -> None:
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # A store is data, never code: no schema-defined function runs.
            connection.execute("PRAGMA trusted_schema = OFF")
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as error:
            if cause_of(error) != "corrupt":
                raise  # read-only, a full disk: named as such by connect()
            raise self._not_a_store(str(error)) from None
        if "flow2_store" not in tables:
            if (
                tables - {"runs", "tasks", "task_notes", "definitions", "task_batches"}
                or not create
            ):
                raise self._not_a_store("it has no flow2_store table")
            self.retry(connection, self._create)
        version = self._version(connection)
        if version > SCHEMA_VERSION:
            raise self._error(
                f"the run store {self.path} was written by a newer flow2 (schema {version}; "
                f"this flow2 reads schema {SCHEMA_VERSION} and older); upgrade flow2, or "
                f"choose another directory with --store"
            )
        self._check_run_ids(connection)
        if version < SCHEMA_VERSION:
            self.retry(connection, self._migrate)
        if create:
            mode = self.retry(
                connection, lambda c: c.execute("PRAGMA journal_mode = WAL").fetchone()
            )
            if str(mode[0]).lower() != "wal":  # pragma: no cover - a file system without WAL
                self.retry(connection, lambda c: c.execute("PRAGMA journal_mode = DELETE"))
        connection.execute("PRAGMA synchronous = NORMAL")

    def _check_run_ids(self, connection: sqlite3.Connection) -> None:
        """Refuse a store holding a run id flow2 never writes (``../x``, an absolute path),
        before anything in it is used or changed."""
        for (run_id,) in connection.execute("SELECT id FROM runs"):
            if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
                raise self._untrusted(f"a run id {run_id!r}")

    def _version(self, connection: sqlite3.Connection) -> int:
        rows = dict(connection.execute("SELECT key, value FROM flow2_store").fetchall())
        if rows.get("application") != APPLICATION:
            raise self._not_a_store("its flow2_store table does not name flow2")
        try:
            return int(rows["schema_version"])
        except (KeyError, ValueError):
            raise self._not_a_store("it has no schema version") from None

    def _create(self, connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            exists = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'flow2_store'"
            ).fetchone()
            if not exists:  # another process may have created it meanwhile
                connection.execute(
                    "CREATE TABLE flow2_store (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                )
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.executemany(
                    "INSERT INTO flow2_store VALUES (?, ?)",
                    [("application", APPLICATION), ("schema_version", str(SCHEMA_VERSION))],
                )
            connection.execute("COMMIT")
        except BaseException:
            rollback(connection)
            raise

    def _migrate(self, connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = self._version(connection)  # another process may have migrated it
            while version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version]:
                    connection.execute(statement)
                version += 1
            connection.execute(
                "UPDATE flow2_store SET value = ? WHERE key = 'schema_version'", (str(version),)
            )
            connection.execute("COMMIT")
        except BaseException:
            rollback(connection)
            raise

    def retry(
        self,
        connection: sqlite3.Connection,
        work: Callable[[sqlite3.Connection], _Result],
    ) -> _Result:
        """Do ``work``, again when SQLite reports the database locked or busy.

        ``busy_timeout`` covers most waits; a few (a WAL checkpoint, two
        writers upgrading a read lock) fail at once instead, and are retried.
        """
        for attempt in range(ATTEMPTS):
            try:
                return work(connection)
            except sqlite3.DatabaseError as error:
                if not isinstance(error, sqlite3.OperationalError):
                    raise self.failed(error) from None
                message = str(error)
                if "locked" not in message and "busy" not in message:
                    raise self.failed(error) from None
                if attempt == ATTEMPTS - 1:
                    raise self._error(
                        f"the run store {self.path} stayed locked: {message}"
                    ) from None
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, message: str, *, cause: str | None = None) -> StoreError:
        return StoreError(message, path=str(self.path), cause=cause)

    def _not_a_store(self, why: str) -> StoreError:
        return self._error(
            f"{self.path} is not a flow2 run store, or a corrupt one ({why}); nothing in it "
            f"was changed: move it away, or choose another directory with --store or "
            f"FLOW2_STORE",
            cause="corrupt",
        )

    # Reading ------------------------------------------------------------------

    def runs(self, connection: sqlite3.Connection, limit: int | None = None) -> list[StoredRun]:
        """Recorded runs, newest first."""
        query = "SELECT * FROM runs ORDER BY started_at DESC, rowid DESC"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        connection.row_factory = sqlite3.Row
        try:
            with self._reading():
                return [_run_from(row) for row in connection.execute(query)]
        finally:
            connection.row_factory = None

    def latest_run(
        self, connection: sqlite3.Connection, *, flow: str | None, name: str | None
    ) -> StoredRun | None:
        """The newest run of the flow file ``flow``, else (no file) of a root called ``name``."""
        for run in self.runs(connection):
            if (flow is not None and run.flow == flow) or (
                flow is None and (name is None or run.name == name)
            ):
                return self._with_tasks(connection, run)
        return None

    def find_run(
        self,
        connection: sqlite3.Connection,
        reference: str,
        *,
        flow: str | None = None,
        name: str | None = None,
    ) -> StoredRun:
        """The run ``reference`` names: an id, a unique prefix of one, or ``last``.

        :param flow: with ``last``, the newest run of this flow file
        :param name: with ``last`` and no ``flow``, the newest run of a root of this name
        :raises StoreError: when it matches no run, or several
        """
        if reference == "last":
            latest = self.latest_run(connection, flow=flow, name=name)
            if latest is None:
                of = f" of {flow}" if flow is not None else f" of {name!r}" if name else ""
                raise self._error(f"no run{of} is recorded in {self.directory}")
            return latest
        runs = self.runs(connection)
        exact = [run for run in runs if run.id == reference]
        matches = exact or [run for run in runs if run.id.startswith(reference)]
        if not matches:
            raise self._error(
                f"no run {reference!r} in {self.directory}; `flow2 runs` lists the recorded "
                f"runs (give an id, a unique prefix of one, or last)"
            )
        if len(matches) > 1:
            shown = ", ".join(run.id for run in matches[:5])
            raise self._error(
                f"{reference!r} matches {len(matches)} runs ({shown}); give more characters "
                f"of the id"
            )
        return self._with_tasks(connection, matches[0])

    def _with_tasks(self, connection: sqlite3.Connection, run: StoredRun) -> StoredRun:
        with self._reading():
            return self._read_tasks(connection, run)

    def _read_tasks(self, connection: sqlite3.Connection, run: StoredRun) -> StoredRun:
        connection.row_factory = sqlite3.Row
        try:
            notes = {
                row["number"]: row
                for row in connection.execute(
                    "SELECT * FROM task_notes WHERE run_id = ?", (run.id,)
                )
            }
            rows = connection.execute("SELECT * FROM tasks WHERE run_id = ?", (run.id,)).fetchall()
            batches = connection.execute(
                "SELECT * FROM task_batches WHERE run_id = ? ORDER BY batch", (run.id,)
            ).fetchall()
            wanted = {row["definition"] for row in rows if row["definition"]}
            batch_definitions = [json.loads(batch["definitions"]) for batch in batches]
            wanted.update(
                identity for known in batch_definitions for identity, _ in known if identity
            )
            definitions = {
                row["id"]: (json.loads(row["parts"]), row["description"])
                for row in connection.execute("SELECT * FROM definitions")
                if row["id"] in wanted
            }
        finally:
            connection.row_factory = None
        tasks = {
            row["number"]: _task_from(row, notes.get(row["number"]), definitions) for row in rows
        }
        for batch, known in zip(batches, batch_definitions, strict=True):
            # A plain success is final: it replaces a row written while it ran.
            tasks.update(
                (task.number, task) for task in _tasks_from_batch(batch, known, notes, definitions)
            )
        run.tasks = [tasks[number] for number in sorted(tasks)]
        paths: dict[int, tuple[str, ...]] = {}
        for task in run.tasks:
            # Parents come first (their numbers are smaller): the path so far is theirs.
            parent_path = paths.get(task.parent, ()) if task.parent is not None else ()
            task.path = paths[task.number] = (*parent_path, *task.path)
        return run

    # Deleting -----------------------------------------------------------------

    def prune(
        self,
        connection: sqlite3.Connection,
        *,
        keep: int | None = None,
        older_than_days: float | None = None,
        spare: str | None = None,
    ) -> list[str]:
        """Delete the runs beyond the newest ``keep`` or older than ``older_than_days``.

        Runs still going on, and ``spare``, are never deleted; nor are their log files.

        :returns: the ids deleted
        """
        if older_than_days is None and keep is not None:
            with self._reading():
                (count,) = connection.execute("SELECT count(*) FROM runs").fetchone()
            if count <= keep:  # after most runs: nothing to read
                return []
        runs = self.runs(connection)
        cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
        doomed = []
        for position, run in enumerate(runs):
            if run.id == spare or run.status == RUNNING:
                continue
            if (keep is not None and position >= keep) or (
                cutoff is not None and run.started_at < cutoff
            ):
                doomed.append(run.id)
        if not doomed:
            return []
        # Every folder to delete is checked before anything is: a planted
        # store is refused whole (see test_prune_deletes_only_inside_the_store).
        folders = [self.run_directory(run_id) for run_id in doomed]
        for folder in folders:
            if (folder.exists() or folder.is_symlink()) and not self.is_inside(folder):
                raise self._untrusted(f"a run folder that leads out of it ({folder})")
            if folder.is_symlink():
                raise self._untrusted(f"a run folder that is a symlink ({folder})")

        def delete(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                # The definitions the deleted tasks referred to: once no task
                # refers to one, it goes too.
                dropped: set[str] = set()
                for start in range(0, len(doomed), 500):
                    chunk = doomed[start : start + 500]
                    marks = ", ".join("?" * len(chunk))
                    dropped.update(_definitions_used(connection, f"run_id IN ({marks})", chunk))
                    connection.execute(f"DELETE FROM tasks WHERE run_id IN ({marks})", chunk)
                    connection.execute(f"DELETE FROM task_batches WHERE run_id IN ({marks})", chunk)
                    connection.execute(f"DELETE FROM task_notes WHERE run_id IN ({marks})", chunk)
                    connection.execute(f"DELETE FROM task_keys WHERE run_id IN ({marks})", chunk)
                    connection.execute(
                        f"DELETE FROM cache_entries WHERE run_id IN ({marks})", chunk
                    )
                    connection.execute(f"DELETE FROM runs WHERE id IN ({marks})", chunk)
                self._delete_unused_definitions(connection, dropped)
                collect_garbage(connection)  # the outputs only those entries kept
                connection.execute("COMMIT")
            except BaseException:
                rollback(connection)
                raise

        with self._reading():
            self.retry(connection, delete)
        for folder in folders:
            # rmtree removes a symlink found inside, never what it points to.
            if not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)
        return doomed

    def _delete_unused_definitions(self, connection: sqlite3.Connection, dropped: set[str]) -> None:
        """Delete those of the ``dropped`` definitions that no task refers to any more.

        No index leads from a definition to its tasks, and a store at its
        retention limit holds a hundred runs' tasks: reading them all after
        each run would cost more than a run of quick tasks. A definition
        the oldest run left still uses is in use (the usual case: its
        tasks are those of the run just deleted); only the others are
        looked for among all tasks, in one pass.
        """
        oldest = connection.execute(
            "SELECT id FROM runs ORDER BY started_at, rowid LIMIT 1"
        ).fetchone()
        if oldest is not None and dropped:
            dropped -= _definitions_used(connection, "run_id = ?", oldest)
        if not dropped:
            return
        # The packed successes name their few definitions in one column each.
        dropped -= {
            identity
            for (known,) in connection.execute("SELECT definitions FROM task_batches")
            for identity, _ in json.loads(known)
        }
        unused = sorted(dropped)
        for start in range(0, len(unused), 500):
            chunk = unused[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            used = {
                row[0]
                for row in connection.execute(
                    f"SELECT DISTINCT definition FROM tasks WHERE definition IN ({marks})", chunk
                )
            }
            connection.executemany(
                "DELETE FROM definitions WHERE id = ?",
                [(identity,) for identity in chunk if identity not in used],
            )


def _definitions_used(
    connection: sqlite3.Connection, where: str, parameters: Sequence[Any]
) -> set[str]:
    """The definitions the tasks of the runs ``where`` selects refer to."""
    used = {
        row[0]
        for row in connection.execute(
            f"SELECT DISTINCT definition FROM tasks WHERE {where} AND definition IS NOT NULL",
            parameters,
        )
    }
    for (known,) in connection.execute(
        f"SELECT definitions FROM task_batches WHERE {where}", parameters
    ):
        used.update(identity for identity, _ in json.loads(known))
    return used


def _run_from(row: sqlite3.Row) -> StoredRun:
    run_id = row["id"]
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise UntrustedValue(f"a run id {run_id!r}")
    return StoredRun(
        id=run_id,
        name=row["name"],
        flow=row["flow"],
        variables=json.loads(row["variables"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        last_seen=row["last_seen"],
        status=status_of(
            row["status"],
            row["ended_at"],
            row["pid"],
            row["host"],
            process=row["process"],
            last_seen=row["last_seen"],
        ),
        resumed_from=row["resumed_from"],
        counts=json.loads(row["counts"]),
        error=json.loads(row["error"]) if row["error"] else None,
    )


#: What the store keeps of a definition: its parts (digests), and its description.
_Definition = tuple[dict[str, str], str | None]


def _task_from(
    row: sqlite3.Row, note: sqlite3.Row | None, definitions: dict[str, _Definition]
) -> StoredTask:
    """One row of ``tasks``, with its notes; its path is only its name until the parents'
    are known."""
    reads = note["reads"] if note is not None else None
    return StoredTask(
        number=row["number"],
        parent=row["parent"],
        path=(row["name"],),
        key=row["key"],
        is_group=bool(row["is_group"]),
        status=row["status"],
        attempts=row["attempts"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        duration=row["duration"],
        result_format=row["result_format"],
        result=row["result"],
        **_defined(definitions.get(row["definition"])),
        reads=json.loads(reads) if reads is not None else None,
        **_noted(note),
        queued=row["queued"] or 0.0,
        role=row["role"],
    )


def _tasks_from_batch(
    batch: sqlite3.Row,
    known: list[list[Any]],
    notes: dict[int, sqlite3.Row],
    definitions: dict[str, _Definition],
) -> Iterator[StoredTask]:
    """The plain successes a row of ``task_batches`` packs (see ``_TASK_BATCHES``)."""
    size = batch["size"]
    columns = zip(
        unpack_numbers("q", batch["numbers"], size),
        unpack_numbers("q", batch["parents"], size),
        unpack_texts(batch["names"]),
        unpack_texts(batch["keys"]),
        unpack_numbers("q", batch["attempts"], size),
        unpack_numbers("d", batch["started_at"], size),
        unpack_numbers("d", batch["ended_at"], size),
        unpack_numbers("d", batch["durations"], size),
        unpack_numbers("q", batch["definition_of"], size),
        strict=True,
    )
    reads_of = [json.loads(reads) if reads is not None else None for _, reads in known]
    defined = [_defined(definitions.get(identity)) for identity, _ in known]
    for number, parent, name, key, attempts, started, ended, duration, place in columns:
        yield StoredTask(
            number=number,
            parent=None if parent == NO_PARENT else parent,
            path=(name,),
            key=key,
            is_group=False,
            status="succeeded",
            attempts=attempts,
            started_at=started,
            ended_at=ended,
            duration=duration,
            result_format=JSON,
            result="null",
            **defined[place],
            reads=reads_of[place],
            **_noted(notes.get(number)),
        )


def _defined(definition: _Definition | None) -> dict[str, Any]:
    """The fields of a :class:`StoredTask` that its definition holds."""
    if definition is None:
        return {"definition": None, "description": None}
    return {"definition": definition[0], "description": definition[1]}


def _noted(note: sqlite3.Row | None) -> dict[str, Any]:
    """The fields of a :class:`StoredTask` that its ``task_notes`` row holds."""
    if note is None:
        return {
            "error_type": None,
            "error_message": None,
            "error_traceback": None,
            "result_note": None,
            "reason": None,
            "output": None,
        }
    return {
        "error_type": note["error_type"],
        "error_message": note["error_message"],
        "error_traceback": note["error_traceback"],
        "result_note": note["result_note"],
        "reason": note["reason"],
        "output": note["output"],
        "retries": json.loads(note["retries"]) if note["retries"] else [],
    }
