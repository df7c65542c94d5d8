"""The event listener that records a run in the store, through a writer thread.

Listeners run on the event loop's thread and must not block it, so the
listener does the least it can, and asks for no event when a task starts
(the writer reads the run's ``started`` list instead). A task that
succeeded with ``None`` and printed nothing (nearly every task) adds
``record, time, attempt, duration`` to a flat list: no object per event is
kept that the garbage collector would have to track. For any other event
it queues a tuple of the facts of that moment (a result is encoded now,
while it is what the task returned; an error is formatted now, with the
traceback of this moment).

A writer thread of the run's own takes what was added, turns it into rows
in bulk (see ``_rows``) and commits them in one short transaction every
:data:`FLUSH_INTERVAL` seconds, and once more at the run's end: a
``kill -9`` loses at most the last interval, and a run whose end was never
written is shown as ``interrupted``.

A task is written once, when it ends; a task still running when the
writer commits is written as running, and written again when it ends.
While nothing happens the run's ``last_seen`` is written every
:data:`HEARTBEAT_INTERVAL` seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import threading
import time
from collections import deque
from itertools import repeat
from typing import TYPE_CHECKING, Any

from .._engine._events import FINISHED_STATUSES, RunEvent, Status, TaskEvent
from .._engine._output import KEPT_LINES
from .._listeners._text import error_message, user_traceback
from ._failures import cause_of, rollback
from ._kept import keep
from ._liveness import RUNNING, process_identity
from ._reuse import RAN, save_file_index
from ._rows import END_STRIDE, NOTE_ROW, RUNNING_ROW, TASK_ROW, TaskRows
from ._schema import BATCH_COLUMNS, NOTE_COLUMNS, TASK_COLUMNS, insert_rows, upsert
from ._values import encode_result, encode_variables

if TYPE_CHECKING:
    import sqlite3

    from .._engine._events import Event
    from .._engine._run import Run
    from .._engine._state import TaskRun
    from .._listeners._secrets import SecretMasker
    from ._database import Store
    from ._kept import Kept
    from ._reuse import Decided, ReusePlan

#: Seconds between two commits of the writer thread.
FLUSH_INTERVAL = 0.5
#: Seconds after which a run in which nothing happened has its ``last_seen``
#: written again: a run killed during a long task shows how long it lived.
HEARTBEAT_INTERVAL = 5.0
#: Lines of a task's output kept in the store (the last ones): all its run keeps.
OUTPUT_LINES = KEPT_LINES

_RUNNING, _RETRYING = Status.RUNNING, Status.RETRYING
_SUCCEEDED, _REUSED, _CACHED = Status.SUCCEEDED, Status.REUSED, Status.CACHED
_TRACEBACK = (Status.FAILED, Status.RETRYING)

# Upserts: a row written before (a task written as running, notes that
# grew) is replaced; on a new row SQLite does half the work of INSERT OR
# REPLACE, which seeks the key twice.
_INSERT_TASKS = "INSERT INTO tasks VALUES"
_INSERT_NOTES = "INSERT INTO task_notes VALUES"

_TASK_UPSERT = upsert("tasks", TASK_COLUMNS)
_NOTE_UPSERT = upsert("task_notes", NOTE_COLUMNS)
# Keys and entries go in multi-row statements too (see insert_rows): the
# run's id is their first parameter, shared by every row.
_INSERT_KEY = "INSERT OR REPLACE INTO task_keys VALUES"
_KEY_ROW = "(?1" + ", ?" * 9 + ")"
_INSERT_ENTRY = (
    "INSERT OR REPLACE INTO cache_entries (run_id, flow, path, key, parts, details, "
    "outputs, result_format, result, result_note, origin, created, kept_outputs) VALUES"
)
_ENTRY_ROW = "(?1" + ", ?" * 12 + ")"
_INSERT_SUCCESSES = "INSERT INTO task_batches VALUES (" + ", ".join("?" * len(BATCH_COLUMNS)) + ")"

# The other events' facts:
#   (record, time, attempt, duration, status, encoded, error, reason, output, delay)
#                                                anything a task did
#   (None, status, time, error)                  the run ended


class StoreRecorder:
    """An event listener recording its run in ``store``.

    :param store: the store (checked writable before the run)
    :param flow_file: the flow file the tree was loaded from, when there is one
    :param pickle_results: store results JSON cannot hold exactly as pickles
    :param masker: the secrets to mask in what is stored
    :param plan: the run's reuser: each task's key, what was decided, why
    :param keep: runs kept after this one ends (None: all)
    :param connection: an open connection to the store (made with ``shared=True``),
        which the recorder takes over and closes
    """

    #: Starts are read from the run's ``started`` list, not from events.
    listens_to = FINISHED_STATUSES | {Status.RETRYING}

    def __init__(
        self,
        store: Store,
        *,
        flow_file: str | None = None,
        pickle_results: bool = False,
        masker: SecretMasker | None = None,
        plan: ReusePlan | None = None,
        keep: int | None = None,
        connection: sqlite3.Connection | None = None,
    ) -> None:
        self.store = store
        self._connection = connection
        self.flow_file = flow_file
        self.pickle_results = pickle_results
        self.masker = masker
        self.plan = plan
        self.keep = keep
        self.run_id: str | None = None
        #: Lines for the person at the run's end (a source edited while its task ran).
        self.notices: list[str] = []
        #: What went wrong in the writer thread, reported when the run ends.
        self.failure: BaseException | None = None
        #: Why the runs beyond ``keep`` were not deleted (the run itself was recorded).
        self.prune_failure: BaseException | None = None
        # Only ever added to at its end by the loop's thread, and taken from
        # its start by the writer's: see _take.
        self._ends: list[Any] = []
        self._other: deque[tuple[Any, ...]] = deque()
        self._add_end = self._ends.extend
        self._run: Run | None = None
        self._started_taken = 0
        #: The digests of the shared parts of keys this recorder wrote.
        self._shared_kept: set[str] = set()
        self._committed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outputs: dict[TaskRun, deque[str]] = {}
        self._formatted: dict[int, tuple[BaseException, tuple[str, str, str]]] = {}
        self._start: tuple[Any, ...] | None = None

    # On the event loop's thread -------------------------------------------

    def __call__(self, event: Event) -> None:
        if type(event) is TaskEvent:
            if (
                event.status is _SUCCEEDED
                and event.result is None
                and not event.output
                and not self._outputs
                and event.duration is not None  # None: from a task's own success hook
                and not event.record.queued  # the wait has a column of tasks only
            ):
                self._add_end((event.record, event.time, event.attempt, event.duration))
            else:
                self._other.append(self._facts(event))
        elif isinstance(event, RunEvent):
            if event.status is _RUNNING:
                run = self._run = event.run
                self.run_id = run.id
                self._start = (run.id, run.root.name, dict(run.context), event.time)
                self._thread = threading.Thread(
                    target=self._write, name=f"flow2-store-{run.id}", daemon=False
                )
                self._thread.start()
            else:
                raised = event.error
                self._formatted.clear()
                self._other.append(
                    (None, event.status, event.time, _error_of(raised) if raised else None)
                )
                self._stop.set()

    def _facts(self, event: TaskEvent) -> tuple[Any, ...]:
        """What the writer needs of ``event`` that may not hold later: encoded, formatted."""
        status = event.status
        record = event.record
        encoded = None
        if (
            status is _SUCCEEDED or status is _REUSED or status is _CACHED
        ) and record.task.stores_result:
            encoded = encode_result(
                event.result, pickle_results=self.pickle_results, masker=self.masker
            )
        failure = event.error
        error = None
        if failure is not None:
            # Formatted now: the traceback is the one of this moment. A
            # group failing because of a task inside it carries that
            # task's exception: formatted once, not once per level (see
            # test_a_deep_failure_reaches_the_caller_and_every_level_fails).
            seen = self._formatted.get(id(failure))
            if seen is not None and seen[0] is failure and status is not _RETRYING:
                error = seen[1] if status in _TRACEBACK else (*seen[1][:2], "")
            else:
                error = _error_of(failure, status)
                if status in _TRACEBACK:
                    self._formatted[id(failure)] = (failure, error)
        output = self._outputs.pop(record, None) if self._outputs else None
        if event.output and record.output is not None:
            # What the task printed and logged, as its run kept it on its
            # record: the last OUTPUT_LINES (the event carries fewer).
            kept = record.output.text(OUTPUT_LINES)
            output = deque(kept.split("\n")) if kept is not None else None
        return (
            record,
            event.time,
            event.attempt,
            event.duration,
            status,
            encoded,
            error,
            event.reason,
            output,
            event.retry_delay,
        )

    def add_output(self, record: logging.LogRecord) -> None:
        """Keep the last lines a task logged (what ``flow2 runs logs`` shows without a log file)."""
        task_record = getattr(record, "task_record", None)
        if task_record is None:
            return
        lines = self._outputs.get(task_record)
        if lines is None:
            lines = self._outputs[task_record] = deque(maxlen=OUTPUT_LINES)
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f"\n{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        lines.extend(text.splitlines() or [""])

    async def wait_closed(self) -> str | None:
        """Wait, off the event loop, until everything is committed.

        :returns: why the run was not recorded completely, in one line; None when it was
        """
        thread = self._thread
        if thread is None:
            self._close_unused()
            return None
        self._stop.set()
        try:
            await asyncio.to_thread(thread.join)
        except asyncio.CancelledError:
            thread.join()
            raise
        return self._failure_message()

    def close(self) -> None:
        """Like :meth:`wait_closed`, blocking: for a run that ended without a loop."""
        thread = self._thread
        if thread is None:
            self._close_unused()
        else:
            self._stop.set()
            thread.join()
            message = self._failure_message()
            if message is not None:
                print(f"flow2: {message}", file=sys.stderr)

    def _close_unused(self) -> None:
        # The run never started: the connection handed over was not used.
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _failure_message(self) -> str | None:
        failure, self.failure = self.failure, None
        pruning, self.prune_failure = self.prune_failure, None
        if failure is None:
            if pruning is None:
                return None
            return f"the run store {self.store.directory} kept its old runs: {pruning}"
        cause = cause_of(failure)
        return (
            f"run {self.run_id} was not recorded completely in the run store "
            f"{self.store.directory}{f' ({cause})' if cause else ''}: {failure}"
        )

    # On the writer thread --------------------------------------------------

    def _write(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            assert self._start is not None
            assert self._run is not None
            rows = TaskRows(
                self._start[0],
                self.masker,
                self.plan,
                tree_has_needs=self._run.needs is not None,
            )
            connection, self._connection = self._connection, None
            if connection is None:
                connection = self.store.connect(create=True)
            self.store.retry(connection, self._insert_run)
            self._committed_at = time.time()
            sequence = 0
            while True:
                stopping = self._stop.wait(FLUSH_INTERVAL)
                if self._flush(connection, rows, sequence):
                    sequence += 1
                if stopping and not self._ends and not self._other:
                    break
            if self.keep is not None:
                try:
                    self.store.prune(connection, keep=self.keep)
                except Exception as error:
                    self.prune_failure = self.store.failed(error)
        except Exception as error:
            self.failure = self.store.failed(error)
        finally:
            if connection is not None:
                connection.close()

    def _insert_run(self, connection: sqlite3.Connection) -> None:
        assert self._start is not None
        run_id, name, variables, started_at = self._start
        plan = self.plan
        connection.execute(
            "INSERT INTO runs (id, name, flow, variables, started_at, last_seen, status, pid, "
            "host, resumed_from, process) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                self._mask(name),
                self.flow_file,
                json.dumps(encode_variables(variables, self.masker, run_id), default=repr),
                started_at,
                started_at,
                RUNNING,
                os.getpid(),
                socket.gethostname(),
                plan.previous_id if plan is not None else None,
                process_identity(os.getpid()),
            ),
        )

    def _flush(self, connection: sqlite3.Connection, rows: TaskRows, sequence: int) -> bool:
        """Write what was added since the last call; False when there was nothing."""
        started = None
        if not self._stop.is_set():  # the run goes on: what started since, for running rows
            assert self._run is not None
            # The loop's thread only appends to the list; a slice is taken in
            # one operation. A task that ends meanwhile is no running row
            # (see test_a_task_running_when_the_writer_commits_shows_running_then_has_one_row).
            started = self._run.started[self._started_taken :]
            self._started_taken += len(started)
        ends = _take(self._ends, END_STRIDE)
        other = self._other
        items = [other.popleft() for _ in range(len(other))]
        keyed = self._keyed(connection, ends, items) if self.plan is not None else None
        rows.add_successes(ends)
        for item in items:
            rows.add_other(item)
        batch = rows.take(started)
        end = rows.end
        if not batch and end is None and not self._stop.is_set():
            now = time.time()
            if now - self._committed_at < HEARTBEAT_INTERVAL:
                return False
            rows.last_seen = max(rows.last_seen, now)
        run_id = self.run_id
        last_seen = rows.last_seen
        counts_text = json.dumps(rows.counts)
        successes = batch.successes

        def commit(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                if batch.definitions:
                    connection.executemany(
                        "INSERT OR IGNORE INTO definitions VALUES (?, ?, ?)", batch.definitions
                    )
                if batch.stale:
                    connection.executemany(
                        "DELETE FROM tasks WHERE run_id = ? AND number = ?",
                        zip(repeat(run_id), batch.stale),
                    )
                if successes:
                    connection.execute(_INSERT_SUCCESSES, (run_id, sequence, *successes.packed()))
                for row, columns in ((RUNNING_ROW, batch.running), (TASK_ROW, batch.other)):
                    insert_rows(connection, _INSERT_TASKS, row, _TASK_UPSERT, run_id, columns)
                if batch.notes:
                    columns = [list(column) for column in zip(*batch.notes, strict=True)]
                    insert_rows(
                        connection, _INSERT_NOTES, NOTE_ROW, _NOTE_UPSERT, run_id, columns[1:]
                    )
                if keyed is not None:
                    keys, entries, shared = keyed
                    connection.executemany(
                        "INSERT OR IGNORE INTO key_parts VALUES (?, ?)", shared.items()
                    )
                    for insert, row, rows in (
                        (_INSERT_KEY, _KEY_ROW, keys),
                        (_INSERT_ENTRY, _ENTRY_ROW, entries),
                    ):
                        if rows:
                            columns = [list(column) for column in zip(*rows, strict=True)]
                            insert_rows(connection, insert, row, "", run_id, columns)
                    if end is not None and self.plan is not None:
                        # What the file index learnt: the next run reads
                        # unchanged files from their stat alone.
                        save_file_index(self.plan.index, connection)
                if end is not None:
                    _, status, ended_at, error = end
                    connection.execute(
                        "UPDATE runs SET ended_at = ?, last_seen = ?, status = ?, counts = ?, "
                        "error = ? WHERE id = ?",
                        (
                            ended_at,
                            ended_at,
                            status.value,
                            counts_text,
                            None if error is None else json.dumps(self._masked_error(error)),
                            run_id,
                        ),
                    )
                else:
                    connection.execute(
                        "UPDATE runs SET last_seen = ?, counts = ? WHERE id = ?",
                        (last_seen, counts_text, run_id),
                    )
                connection.execute("COMMIT")
            except BaseException:
                rollback(connection)
                raise

        self.store.retry(connection, commit)
        if keyed is not None:
            self._shared_kept.update(keyed[2])
        self._committed_at = time.time()
        return True

    def _keyed(
        self, connection: sqlite3.Connection, ends: list[Any], items: list[tuple[Any, ...]]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], dict[str, str]]:
        """The ``task_keys`` rows of the tasks that ended, the cache entries to write,
        and the shared parts of their keys not in the store yet (digest → parts).

        An entry is written only for a success, in the transaction that
        writes the success: a task killed or interrupted never looks up to
        date. Its declared sources are digested again first: one that
        changed while the task ran means its result may not match its key,
        and no entry is written (the run says so). With ``restore_outputs``
        the outputs' bytes are copied into the store first, in a transaction
        of their own (see ``_kept``).
        """
        plan = self.plan
        assert plan is not None
        keys: list[tuple[Any, ...]] = []
        entries: list[tuple[Any, ...]] = []
        ended = [(record, _SUCCEEDED, None) for record in ends[0::END_STRIDE]]
        ended += [
            (item[0], item[4], item[5])
            for item in items
            if item[0] is not None and len(item) != END_STRIDE and item[4] is not _RETRYING
        ]
        # The children of one group share their details (one object): encoded once.
        details_texts: dict[int, tuple[Any, str]] = {}
        # The shared parts of keys, each written once into the store (``key_parts``).
        written, fresh = self._shared_kept, {}
        for record, status, encoded in ended:
            decided = plan.decisions.get(record.number)
            if decided is None:
                continue
            held = len(entries)
            path_text = self._mask(json.dumps(list(decided.path)))
            known = details_texts.get(id(decided.details))
            if known is None or known[0] is not decided.details:
                known = (decided.details, self._mask(json.dumps(decided.details)))
                details_texts[id(decided.details)] = known
            details_text = known[1]
            if status is _SUCCEEDED and decided.outcome == RAN and decided.key is not None:
                entry = self._entry_of(
                    connection, record, decided, encoded, path_text, details_text
                )
                if entry is not None:
                    entries.append(entry)
            elif (status is _REUSED or status is _CACHED) and decided.entry is not None:
                old = decided.entry
                entries.append(
                    (
                        plan.entry_flow,
                        json.dumps(list(old.path)),
                        old.key,
                        json.dumps(old.parts),
                        json.dumps(old.details),
                        json.dumps(old.outputs),
                        old.result_format,
                        old.result,
                        old.result_note,
                        old.origin,
                        time.time(),
                        json.dumps(old.kept) if old.kept else None,
                    )
                )
            key_parts = decided.key_parts
            if key_parts is not None:
                shared = key_parts.shared
                if shared.digest not in written and shared.digest not in fresh:
                    fresh[shared.digest] = shared.text
            # The parts are written once: with the entry, when there is one
            # (flow2 explain reads them there). A task that ran with nothing
            # looked up has no row but its entry, which says all of it.
            alone = len(entries) == held
            if not alone and decided.outcome == RAN and decided.compared is None:
                if not decided.reason and not decided.differences:
                    continue
            keys.append(
                (
                    record.number,
                    path_text,
                    decided.key,
                    key_parts.stored() if alone and key_parts is not None else None,
                    details_text if alone else None,
                    decided.outcome,
                    self._mask(decided.reason) if decided.reason else None,
                    self._mask(json.dumps(decided.differences)) if decided.differences else None,
                    decided.compared,
                )
            )
        return keys, entries, fresh

    def _entry_of(
        self,
        connection: sqlite3.Connection,
        record: TaskRun,
        decided: Decided,
        encoded: tuple[Any, ...] | None,
        path_text: str,
        details_text: str,
    ) -> tuple[Any, ...] | None:
        plan = self.plan
        assert plan is not None
        task = record.task
        if task.sources:
            after = plan.index.digests(task.sources, plan.base)
            changed = [
                path
                for path in sorted(set(after) | set(decided.sources))
                if after.get(path) != decided.sources.get(path)
            ]
            if changed:
                decided.reason = f"not kept for reuse: sources: {changed[0]} changed while it ran"
                self.notices.append(
                    f"task {' › '.join(record.path)!r}: {changed[0]} changed while it ran; "
                    f"its result is not kept for reuse"
                )
                return None
        outputs = plan.index.digests(task.outputs, plan.base) if task.outputs else {}
        kept = self._keep(connection, record, outputs) if decided.keep_outputs else None
        result_format, result, note = encoded if encoded is not None else ("json", "null", None)
        return (
            plan.entry_flow,
            path_text,
            decided.key,
            decided.key_parts.stored() if decided.key_parts is not None else "{}",
            details_text,
            json.dumps(outputs) if outputs else "{}",
            result_format,
            result,
            note,
            self.run_id,
            time.time(),
            json.dumps(kept) if kept else None,
        )

    def _keep(
        self, connection: sqlite3.Connection, record: TaskRun, outputs: dict[str, str]
    ) -> dict[str, Kept] | None:
        """Copy the task's outputs into the store (``restore_outputs``); what is kept."""
        plan = self.plan
        assert plan is not None
        try:
            kept = self.store.retry(
                connection, lambda connection: keep(connection, plan.base, outputs)
            )
        except Exception as error:  # a full disk: the entry is written, without copies
            kept, why = None, f"they could not be stored ({self.store.failed(error)})"
        else:
            why = "one changed while it was stored"
        if kept is None:
            self.notices.append(
                f"task {' › '.join(record.path)!r}: its outputs are not kept for restoring: {why}"
            )
        return kept

    def _masked_error(self, error: tuple[str, str, str]) -> dict[str, str]:
        return {
            "type": error[0],
            "message": self._mask(error[1]),
            "traceback": self._mask(error[2]),
        }

    def _mask(self, text: str) -> str:
        masker = self.masker
        return masker.mask(text) if masker else text


def _take(added: list[Any], stride: int) -> list[Any]:
    """Take from the start of ``added`` what the loop's thread added to it, whole items only.

    The loop's thread only adds at the end, between two bytecodes; taking
    a slice and deleting it are one operation each on the writer's thread:
    nothing is taken twice or lost, without a lock.
    """
    size = len(added) // stride * stride
    taken = added[:size]
    del added[:size]
    return taken


def _error_of(failure: BaseException, status: Status | None = None) -> tuple[str, str, str]:
    """``(type, message, traceback)``; the traceback (the user's frames) only for a failure."""
    traceback = ""
    if status is None or status in _TRACEBACK:
        traceback = "\n".join(user_traceback(failure))
    return type(failure).__name__, error_message(failure), traceback
