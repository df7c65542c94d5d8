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
from .._listeners._summary import user_traceback
from ._database import RUNNING
from ._values import declared_reads, definition_of, encode_result, encode_variables

if TYPE_CHECKING:
    import sqlite3

    from .._engine._events import Event
    from .._engine._state import TaskRun
    from .._listeners._secrets import SecretMasker
    from ._database import Store
    from ._resume import ResumePlan

#: Seconds between two commits of the writer thread.
FLUSH_INTERVAL = 0.5
#: Lines of a task's log output kept in the store (the last ones).
OUTPUT_LINES = 200

_RUNNING, _RETRYING = Status.RUNNING, Status.RETRYING
_SUCCEEDED, _REUSED = Status.SUCCEEDED, Status.REUSED
_WITH_ERROR = (Status.FAILED, Status.CANCELLED)
_COUNTED = ("succeeded", "failed", "skipped", "cancelled", "reused")

# The columns of the tasks table, in order (see _database._SCHEMA).
_COLUMNS = 21
(
    _RUN_ID,
    _NUMBER,
    _PARENT,
    _PATH,
    _KEY,
    _IS_GROUP,
    _STATUS,
    _ATTEMPTS,
    _STARTED_AT,
    _ENDED_AT,
    _DURATION,
    _ERROR_TYPE,
    _ERROR_MESSAGE,
    _ERROR_TRACEBACK,
    _RESULT_FORMAT,
    _RESULT,
    _RESULT_NOTE,
    _DEFINITION,
    _READS,
    _REASON,
    _OUTPUT,
) = range(_COLUMNS)


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
                        str(failure),
                        "\n".join(user_traceback(failure)),
                    )
            output = self._outputs.pop(record, None)
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
        queue = self._queue
        while queue:
            item = queue.popleft()
            record = item[0]
            if record is None:
                self._end = item
                continue
            number, row = self._row_of(record)
            self._apply(row, item)
            changed[number] = row
        if not changed and self._end is None and not self._stop.is_set():
            return
        rows = list(changed.values())
        end = self._end
        counts = json.dumps(self._counts)

        def commit(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                if rows:
                    connection.executemany(
                        f"INSERT OR REPLACE INTO tasks VALUES ({', '.join('?' * _COLUMNS)})", rows
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

    def _row_of(self, record: TaskRun) -> tuple[int, list[Any]]:
        number = self._numbers.get(record)
        if number is not None:
            return number, self._rows[number]
        parent = record.parent
        parent_number = None
        if parent is not None:
            parent_number = self._numbers.get(parent)
            if parent_number is None:
                parent_number = self._row_of(parent)[0]
        number = len(self._numbers)
        self._numbers[record] = number
        task = record.task
        row: list[Any] = [None] * _COLUMNS
        row[_RUN_ID] = self.run_id
        row[_NUMBER] = number
        row[_PARENT] = parent_number
        row[_PATH] = json.dumps([self._mask(name) for name in record.path])
        row[_KEY] = task.key
        row[_IS_GROUP] = 0 if task.stores_result else 1
        row[_STATUS] = Status.PENDING.value
        row[_ATTEMPTS] = 1
        if self.plan is not None and task.stores_result:
            row[_REASON] = self.plan.rerun_reason(record.path, task.key)
        self._rows[number] = row
        return number, row

    def _apply(self, row: list[Any], item: tuple[Any, ...]) -> None:
        record, status, when = item[0], item[1], item[2]
        self._last_seen = max(self._last_seen, when)
        if status is _RUNNING:
            row[_STATUS] = status.value
            row[_STARTED_AT] = when
            return
        _, _, _, attempt, duration, encoded, error, reason, output = item
        if not row[_IS_GROUP]:
            previous = self._leaf_statuses.get(row[_NUMBER])
            if previous in self._counts:
                self._counts[previous] -= 1
            if status.value in self._counts:
                self._counts[status.value] += 1
            self._leaf_statuses[row[_NUMBER]] = status.value
        row[_STATUS] = status.value
        row[_ATTEMPTS] = attempt
        row[_ENDED_AT] = when
        row[_DURATION] = duration
        if row[_STARTED_AT] is None:
            start = record.start_time
            row[_STARTED_AT] = start if start and status is not _REUSED else when
        if reason is not None:
            row[_REASON] = self._mask(reason)
        if error is not None:
            row[_ERROR_TYPE] = error[0]
            row[_ERROR_MESSAGE] = self._mask(error[1])
            row[_ERROR_TRACEBACK] = self._mask(error[2])
        if encoded is not None:
            row[_RESULT_FORMAT], row[_RESULT], row[_RESULT_NOTE] = encoded
            task = record.task
            row[_DEFINITION] = json.dumps(definition_of(task))
            reads = declared_reads(task)
            row[_READS] = json.dumps(reads) if reads is not None else None
        if output:
            row[_OUTPUT] = self._mask("\n".join(output))

    def _mask(self, text: str) -> str:
        masker = self.masker
        return masker.mask(text) if masker else text
