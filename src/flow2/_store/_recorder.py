"""The event listener that records a run in the store, through a writer thread.

Listeners run on the event loop's thread and must not block it, so the
listener only turns each event into a tuple of the facts of that moment
(the result is encoded now, while it is what the task returned) and
appends it to a queue. A writer thread of the run's own drains the queue
and commits what it found in one short transaction every
:data:`FLUSH_INTERVAL` seconds, and once more at the run's end: a
``kill -9`` loses at most the last interval, and a run whose end was never
written is shown as ``interrupted``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from .._engine._events import RunEvent, Status, TaskEvent
from .._listeners._console import error_message
from .._listeners._summary import user_traceback
from ._database import RUNNING
from ._values import declared_reads, definition_parts, digest, encode_result, encode_variables

if TYPE_CHECKING:
    import sqlite3

    from .._engine._events import Event
    from .._engine._state import TaskRun
    from .._engine._task import Task
    from .._listeners._secrets import SecretMasker
    from ._database import Store
    from ._resume import ResumePlan

#: Seconds between two commits of the writer thread.
FLUSH_INTERVAL = 0.5
#: Lines of a task's log output kept in the store (the last ones).
OUTPUT_LINES = 200

_SCALARS = frozenset({type(None), bool, int, float, str})
_RUNNING, _RETRYING = Status.RUNNING, Status.RETRYING
_SUCCEEDED, _REUSED = Status.SUCCEEDED, Status.REUSED
_WITH_ERROR = (Status.FAILED, Status.CANCELLED)
_COUNTED = ("succeeded", "failed", "skipped", "cancelled", "reused")

# The columns of the tasks and task_notes tables, in order (see _database._SCHEMA).
_COLUMNS = 14
(
    _RUN_ID,
    _NUMBER,
    _PARENT,
    _NAME,
    _KEY,
    _IS_GROUP,
    _STATUS,
    _ATTEMPTS,
    _STARTED_AT,
    _ENDED_AT,
    _DURATION,
    _RESULT_FORMAT,
    _RESULT,
    _DEFINITION,
) = range(_COLUMNS)
_NOTE_COLUMNS = 9
(
    _NOTE_RUN_ID,
    _NOTE_NUMBER,
    _READS,
    _REASON,
    _ERROR_TYPE,
    _ERROR_MESSAGE,
    _ERROR_TRACEBACK,
    _RESULT_NOTE,
    _OUTPUT,
) = range(_NOTE_COLUMNS)


class StoreRecorder:
    """An event listener recording its run in ``store``.

    :param store: the store (checked writable before the run)
    :param flow_file: the flow file the tree was loaded from, when there is one
    :param pickle_results: store results JSON cannot hold exactly as pickles
    :param masker: the secrets to mask in what is stored
    :param plan: the resume plan, whose reasons are stored for tasks that run again
    :param keep: runs kept after this one ends (None: all)
    """

    def __init__(
        self,
        store: Store,
        *,
        flow_file: str | None = None,
        pickle_results: bool = False,
        masker: SecretMasker | None = None,
        plan: ResumePlan | None = None,
        keep: int | None = None,
    ) -> None:
        self.store = store
        self.flow_file = flow_file
        self.pickle_results = pickle_results
        self.masker = masker
        self.plan = plan
        self.keep = keep
        self.run_id: str | None = None
        #: What went wrong in the writer thread, reported when the run ends.
        self.failure: BaseException | None = None
        self._queue: deque[tuple[Any, ...]] = deque()
        self._append = self._queue.append
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outputs: dict[TaskRun, deque[str]] = {}
        # Writer thread state.
        self._numbers: dict[TaskRun, int] = {}
        self._rows: dict[int, list[Any]] = {}
        self._notes: dict[int, list[Any]] = {}
        self._definition_ids: dict[tuple[tuple[str, str], ...], str] = {}
        self._new_definitions: list[tuple[str, str]] = []
        self._values_seen: dict[int, tuple[Any, str]] = {}
        self._shapes: dict[tuple[Any, ...], tuple[str, str | None]] = {}
        self._started: dict[TaskRun, float] = {}
        self._leaf_statuses: dict[int, str] = {}
        self._counts = dict.fromkeys(_COUNTED, 0)
        self._start: tuple[Any, ...] | None = None
        self._end: tuple[Any, ...] | None = None
        self._last_seen = 0.0

    # On the event loop's thread -------------------------------------------

    def __call__(self, event: Event) -> None:
        if type(event) is TaskEvent:
            status = event.status
            if status is _RUNNING:
                self._append((event.record, status, event.time))
                return
            if status is _RETRYING:
                return
            record = event.record
            encoded = None
            if (status is _SUCCEEDED or status is _REUSED) and record.task.stores_result:
                encoded = encode_result(
                    event.result, pickle_results=self.pickle_results, masker=self.masker
                )
            error = None
            failure = event.error
            if failure is not None and status in _WITH_ERROR:
                if record.task.stores_result or not event.failed_count:
                    # Formatted now: the traceback is the one of this moment.
                    error = (
                        type(failure).__name__,
                        error_message(failure),
                        "\n".join(user_traceback(failure)),
                    )
            output = self._outputs.pop(record, None)
            if event.output:
                # What the task printed and logged, as the run's output listener kept it.
                output = deque(event.output.splitlines())
            self._append(
                (
                    record,
                    status,
                    event.time,
                    event.attempt,
                    event.duration,
                    encoded,
                    error,
                    event.reason,
                    output,
                )
            )
        elif isinstance(event, RunEvent):
            if event.status is _RUNNING:
                run = event.run
                self.run_id = run.id
                self._start = (run.id, run.root.name, dict(run.context), event.time)
                self._thread = threading.Thread(
                    target=self._write, name=f"flow2-store-{run.id}", daemon=False
                )
                self._thread.start()
            else:
                self._append((None, event.status, event.time, event.duration))
                self._stop.set()

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

    async def wait_closed(self) -> None:
        """Wait, off the event loop, until everything is committed; report a failure."""
        thread = self._thread
        if thread is not None:
            self._stop.set()
            try:
                await asyncio.to_thread(thread.join)
            except asyncio.CancelledError:
                thread.join()
                raise
            finally:
                self._report_failure()

    def close(self) -> None:
        """Like :meth:`wait_closed`, blocking: for a run that ended without a loop."""
        thread = self._thread
        if thread is not None:
            self._stop.set()
            thread.join()
            self._report_failure()

    def _report_failure(self) -> None:
        failure, self.failure = self.failure, None
        if failure is not None:
            print(
                f"flow2: the run store {self.store.directory} did not record run "
                f"{self.run_id} completely: {failure}",
                file=sys.stderr,
            )

    # On the writer thread --------------------------------------------------

    def _write(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            connection = self.store.connect(create=True)
            self.store.retry(connection, self._insert_run)
            while True:
                stopping = self._stop.wait(FLUSH_INTERVAL)
                self._flush(connection)
                if stopping and not self._queue:
                    break
            if self.keep is not None:
                self.store.prune(connection, keep=self.keep)
        except Exception as error:
            self.failure = error
        finally:
            if connection is not None:
                connection.close()

    def _insert_run(self, connection: sqlite3.Connection) -> None:
        assert self._start is not None
        run_id, name, variables, started_at = self._start
        plan = self.plan
        connection.execute(
            "INSERT INTO runs (id, name, flow, variables, started_at, last_seen, status, pid, "
            "host, resumed_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                plan.previous.id if plan is not None else None,
            ),
        )

    def _flush(self, connection: sqlite3.Connection) -> None:
        changed: dict[int, list[Any]] = {}
        changed_notes: dict[int, list[Any]] = {}
        queue = self._queue
        numbers, rows_by_number, notes_by_number = self._numbers, self._rows, self._notes
        started = self._started
        row_of, apply = self._row_of, self._apply
        # The hot loop of the writer: a leaf's start is only remembered, its
        # row is made when it finishes (or at the end of this batch when it
        # is still running), so most tasks cost one row, not two.
        while queue:
            item = queue.popleft()
            record = item[0]
            if record is None:
                self._end = item
                continue
            if item[1] is _RUNNING and record.task.stores_result:
                started[record] = item[2]
                continue
            number = numbers.get(record)
            row = rows_by_number[number] if number is not None else row_of(record)
            number = row[_NUMBER]
            changed[number] = row
            apply(row, item)
            if number in notes_by_number:
                changed_notes[number] = notes_by_number[number]
        for record, when in started.items():
            row = row_of(record)
            if row[_STATUS] == "pending":
                row[_STATUS] = "running"
                row[_STARTED_AT] = when
                changed[row[_NUMBER]] = row
        self._started = {}
        if not changed and self._end is None and not self._stop.is_set():
            return
        rows = list(changed.values())
        notes = list(changed_notes.values())
        definitions, self._new_definitions = self._new_definitions, []
        end = self._end
        counts = json.dumps(self._counts)

        def commit(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                if definitions:
                    connection.executemany(
                        "INSERT OR IGNORE INTO definitions VALUES (?, ?)", definitions
                    )
                if rows:
                    connection.executemany(
                        f"INSERT OR REPLACE INTO tasks VALUES ({', '.join('?' * _COLUMNS)})", rows
                    )
                if notes:
                    connection.executemany(
                        f"INSERT OR REPLACE INTO task_notes VALUES "
                        f"({', '.join('?' * _NOTE_COLUMNS)})",
                        notes,
                    )
                if end is not None:
                    _, status, ended_at, _duration = end
                    connection.execute(
                        "UPDATE runs SET ended_at = ?, last_seen = ?, status = ?, counts = ? "
                        "WHERE id = ?",
                        (ended_at, ended_at, status.value, counts, self.run_id),
                    )
                else:
                    connection.execute(
                        "UPDATE runs SET last_seen = ?, counts = ? WHERE id = ?",
                        (self._last_seen, counts, self.run_id),
                    )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

        self.store.retry(connection, commit)

    def _row_of(self, record: TaskRun) -> list[Any]:
        number = self._numbers.get(record)
        if number is not None:
            return self._rows[number]
        parent = record.parent
        parent_number = None
        if parent is not None:
            parent_number = self._numbers.get(parent)
            if parent_number is None:
                parent_number = self._row_of(parent)[_NUMBER]
        number = len(self._numbers)
        self._numbers[record] = number
        task = record.task
        name = task.name
        row = [
            self.run_id,
            number,
            parent_number,
            self.masker.mask(name) if self.masker else name,
            task.key,
            0 if task.stores_result else 1,
            "pending",
            1,
            None,
            None,
            None,
            None,
            None,
            None,
        ]
        self._rows[number] = row
        if self.plan is not None and task.stores_result:
            reason = self.plan.rerun_reason(record.path, task.key)
            if reason is not None:
                self._note_of(number)[_REASON] = self._mask(reason)
        return row

    def _note_of(self, number: int) -> list[Any]:
        note = self._notes.get(number)
        if note is None:
            note = self._notes[number] = [self.run_id, number] + [None] * (_NOTE_COLUMNS - 2)
        return note

    def _apply(self, row: list[Any], item: tuple[Any, ...]) -> None:
        """Update ``row`` (and its notes) with the event ``item``."""
        record, status, when = item[0], item[1], item[2]
        if when > self._last_seen:
            self._last_seen = when
        if status is _RUNNING:  # a group
            row[_STATUS] = "running"
            row[_STARTED_AT] = when
            return
        _, _, _, attempt, duration, encoded, error, reason, output = item
        value = status.value
        number = row[_NUMBER]
        if not row[_IS_GROUP]:
            counts = self._counts
            previous = self._leaf_statuses.get(number)
            if previous is not None:
                counts[previous] -= 1
            if value in counts:
                counts[value] += 1
                self._leaf_statuses[number] = value
        row[_STATUS] = value
        row[_ATTEMPTS] = attempt
        row[_ENDED_AT] = when
        row[_DURATION] = duration
        if row[_STARTED_AT] is None:
            start = self._started.pop(record, None) or record.start_time
            row[_STARTED_AT] = start if start and status is not _REUSED else when
        if encoded is not None:
            row[_RESULT_FORMAT], row[_RESULT], result_note = encoded
            row[_DEFINITION], reads = self._definition_of(record.task)
            if reads is not None or result_note is not None:
                note = self._note_of(number)
                note[_READS] = reads
                note[_RESULT_NOTE] = result_note
        if reason is not None or error is not None or output:
            note = self._note_of(number)
            if reason is not None:
                note[_REASON] = self._mask(reason)
            if error is not None:
                note[_ERROR_TYPE] = error[0]
                note[_ERROR_MESSAGE] = self._mask(error[1])
                note[_ERROR_TRACEBACK] = self._mask(error[2])
            if output:
                note[_OUTPUT] = self._mask("\n".join(output))

    def _definition_of(self, task: Task) -> tuple[str, str | None]:
        """The id of ``task``'s definition, and the JSON list of what it declares it reads."""
        # Tasks of one class whose attributes (all but name and key) are the
        # same objects share a definition: computed once, not per task. The
        # types are part of the key, as 1 == 1.0 == True.
        attributes = vars(task)
        # Scalars by value (with their types), other objects by identity,
        # whose text _values_seen keeps (an enum's hash is slow Python code).
        values = [
            value if type(value) in _SCALARS else id(value)
            for name, value in attributes.items()
            if name != "name" and name != "key"
        ]
        shape = (type(task), tuple(attributes), *values, *map(type, attributes.values()))
        try:
            known = self._shapes.get(shape)
        except TypeError:  # pragma: no cover - every part is hashable
            known = None
        if known is not None:
            return known
        parts = definition_parts(task, self._values_seen)
        identity = self._definition_ids.get(parts)
        if identity is None:
            text = json.dumps(dict(parts), sort_keys=True)
            identity = self._definition_ids[parts] = digest(text)
            self._new_definitions.append((identity, text))
        reads = declared_reads(task)
        known = (identity, json.dumps(reads) if reads is not None else None)
        self._shapes[shape] = known
        return known

    def _mask(self, text: str) -> str:
        masker = self.masker
        return masker.mask(text) if masker else text
