"""The event listener that records a run in the store, through a writer thread.

Listeners run on the event loop's thread and must not block it, so the
listener does the least it can: it appends a short tuple of the facts of
that moment to a queue (the result is encoded now, while it is what the
task returned; a ``None`` result, the common case, needs no encoding). A
writer thread of the run's own drains the queue and commits what it found
in one short transaction every :data:`FLUSH_INTERVAL` seconds, and once
more at the run's end: a ``kill -9`` loses at most the last interval, and
a run whose end was never written is shown as ``interrupted``.

A task costs one row, written when it ends; a task still running when the
writer commits is written as running, and written again when it ends.
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
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from .._engine._events import RunEvent, Status, TaskEvent
from .._listeners._console import error_message
from .._listeners._summary import user_traceback
from ._database import RUNNING
from ._values import JSON, declared_reads, definition_parts, digest, encode_result, encode_variables

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

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
_TRACEBACK = (Status.FAILED, Status.RETRYING)
_COUNTED = ("succeeded", "failed", "skipped", "cancelled", "reused")

_TASK_ROW = f"INSERT OR REPLACE INTO tasks VALUES ({', '.join('?' * 14)})"
_NOTE_COLUMNS = 10
_NOTE_ROW = f"INSERT OR REPLACE INTO task_notes VALUES ({', '.join('?' * _NOTE_COLUMNS)})"
# The columns of task_notes after (run_id, number), in order (see _database._SCHEMA).
(
    _READS,
    _REASON,
    _ERROR_TYPE,
    _ERROR_MESSAGE,
    _ERROR_TRACEBACK,
    _RESULT_NOTE,
    _OUTPUT,
    _ATTEMPTS,
) = range(2, _NOTE_COLUMNS)

# The queue's items, told apart by their length (no field to test on the loop):
#   (record, time)                               a task started
#   (record, time, attempt, duration)            a task succeeded with None
#   (record, time, attempt, duration, status, encoded, error, reason, output, delay)
#                                                anything else a task did
#   (None, status, time, error)                  the run ended
_STARTED = 2
_PLAIN_SUCCESS = 4


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
        self._formatted: dict[int, tuple[BaseException, tuple[str, str, str]]] = {}
        # Writer thread state.
        self._numbers: dict[TaskRun, int] = {}
        self._parents: list[int | None] = []
        self._starts: dict[TaskRun, float] = {}
        self._retries: dict[int, list[list[Any]]] = {}
        self._all_notes: dict[int, list[Any]] = {}
        self._batch_notes: dict[int, list[Any]] = {}
        self._definition_ids: dict[tuple[tuple[str, str], ...], str] = {}
        self._new_definitions: list[tuple[str, str]] = []
        self._values_seen: dict[int, tuple[Any, str]] = {}
        self._shapes: dict[tuple[Any, ...], tuple[str, str | None]] = {}
        self._last: dict[type, tuple[Any, ...]] = {}
        self._counts = dict.fromkeys(_COUNTED, 0)
        self._start: tuple[Any, ...] | None = None
        self._end: tuple[Any, ...] | None = None
        self._last_seen = 0.0

    # On the event loop's thread -------------------------------------------

    def __call__(self, event: Event) -> None:
        if type(event) is TaskEvent:
            status = event.status
            if status is _RUNNING:
                self._append((event.record, event.time))
                return
            record = event.record
            if (
                status is _SUCCEEDED
                and event.result is None
                and not self._outputs
                and not event.output
            ):
                # Most tasks: nothing to encode, nothing printed or logged.
                self._append((record, event.time, event.attempt, event.duration))
                return
            encoded = None
            if (status is _SUCCEEDED or status is _REUSED) and record.task.stores_result:
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
            if event.output:
                # What the task printed and logged, as the run's output listener kept it.
                output = deque(event.output.splitlines())
            self._append(
                (
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
                raised = event.error
                self._formatted.clear()
                self._append(
                    (None, event.status, event.time, _error_of(raised) if raised else None)
                )
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
        rows: dict[int, tuple[Any, ...]] = {}
        notes: dict[int, list[Any]] = {}
        self._batch_notes = notes
        queue = self._queue
        numbers, starts, counts = self._numbers, self._starts, self._counts
        run_id = self.run_id
        number_of, definition_of = self._number_of, self._definition_of
        mask = self.masker.mask if self.masker else None
        started: list[TaskRun] = []
        last_seen = self._last_seen
        definition: str | None
        result_format: str | None
        result: str | bytes | None
        # The writer's hot loop: a task's start is only remembered; its row
        # is made once, when it ends (or at the end of this batch when it is
        # still running, and then again when it ends).
        while queue:
            item = queue.popleft()
            record = item[0]
            if record is None:
                self._end = item
                continue
            size = len(item)
            when = item[1]
            if when > last_seen:
                last_seen = when
            if size == _STARTED:
                if record not in numbers:
                    number_of(record)
                starts[record] = when
                started.append(record)
                continue
            number = numbers.get(record)
            if number is None:
                number = number_of(record)
            task = record.task
            name = mask(task.name) if mask is not None else task.name
            start = starts.pop(record, None)
            if size == _PLAIN_SUCCESS:
                if task.stores_result:
                    counts["succeeded"] += 1
                    definition, reads = definition_of(task)
                    rows[number] = (
                        run_id,
                        number,
                        self._parents[number],
                        name,
                        task.key,
                        0,
                        "succeeded",
                        item[2],
                        when if start is None else start,
                        when,
                        item[3],
                        JSON,
                        "null",
                        definition,
                    )
                    if reads is not None:
                        note = self._note(notes, number)
                        note[_READS] = reads
                else:
                    rows[number] = (
                        run_id,
                        number,
                        self._parents[number],
                        name,
                        task.key,
                        1,
                        "succeeded",
                        item[2],
                        when if start is None else start,
                        when,
                        item[3],
                        None,
                        None,
                        None,
                    )
                continue
            _, _, attempt, duration, status, encoded, error, reason, output, delay = item
            if status is _RETRYING:
                assert error is not None
                retries = self._retries.setdefault(number, [])
                retries.append([when, delay or 0.0, *error])
                self._note(notes, number)[_ATTEMPTS] = json.dumps(retries)
                starts[record] = when if start is None else start
                continue
            value = status.value
            is_group = not task.stores_result
            if not is_group and value in counts:
                counts[value] += 1
            if start is None or status is _REUSED:
                start = when
            result_format = result = definition = None
            if encoded is not None:
                result_format, result, result_note = encoded
                definition, reads = definition_of(task)
                if reads is not None or result_note is not None:
                    note = self._note(notes, number)
                    note[_READS] = reads
                    note[_RESULT_NOTE] = result_note
            rows[number] = (
                run_id,
                number,
                self._parents[number],
                name,
                task.key,
                1 if is_group else 0,
                value,
                attempt,
                start,
                when,
                duration,
                result_format,
                result,
                definition,
            )
            if reason is not None or error is not None or output:
                note = self._note(notes, number)
                if reason is not None:
                    note[_REASON] = mask(reason) if mask is not None else reason
                if error is not None:
                    note[_ERROR_TYPE] = error[0]
                    note[_ERROR_MESSAGE] = self._mask(error[1])
                    note[_ERROR_TRACEBACK] = self._mask(error[2]) if error[2] else None
                if output:
                    note[_OUTPUT] = self._mask("\n".join(output))
        self._last_seen = last_seen
        for record in started:
            number = numbers[record]
            if number not in rows and record in starts:
                # Still running: written now, so that a killed run shows it.
                task = record.task
                rows[number] = (
                    run_id,
                    number,
                    self._parents[number],
                    self._mask(task.name),
                    task.key,
                    0 if task.stores_result else 1,
                    "running",
                    1,
                    starts[record],
                    None,
                    None,
                    None,
                    None,
                    None,
                )
        if not rows and not notes and self._end is None and not self._stop.is_set():
            return
        definitions, self._new_definitions = self._new_definitions, []
        end = self._end
        counts_text = json.dumps(counts)
        task_rows = list(rows.values())
        note_rows = list(notes.values())

        def commit(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                if definitions:
                    connection.executemany(
                        "INSERT OR IGNORE INTO definitions VALUES (?, ?)", definitions
                    )
                if task_rows:
                    connection.executemany(_TASK_ROW, task_rows)
                if note_rows:
                    connection.executemany(_NOTE_ROW, note_rows)
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
                connection.execute("ROLLBACK")
                raise

        self.store.retry(connection, commit)

    def _number_of(self, record: TaskRun) -> int:
        """The row number of ``record``, given when the writer first meets it (parents first)."""
        number = self._numbers.get(record)
        if number is not None:
            return number
        parent = record.parent
        parent_number = None if parent is None else self._number_of(parent)
        number = len(self._parents)
        self._numbers[record] = number
        self._parents.append(parent_number)
        task = record.task
        if self.plan is not None and task.stores_result:
            reason = self.plan.rerun_reason(record.path, task.key)
            if reason is not None:
                self._note(self._batch_notes, number)[_REASON] = self._mask(reason)
        return number

    def _note(self, notes: dict[int, list[Any]], number: int) -> list[Any]:
        """The task_notes row of task ``number`` in this batch, with what earlier ones wrote."""
        note = notes.get(number)
        if note is None:
            note = self._all_notes.get(number)
            if note is None:
                note = [self.run_id, number] + [None] * (_NOTE_COLUMNS - 2)
                self._all_notes[number] = note
            notes[number] = note
        return note

    def _definition_of(self, task: Task) -> tuple[str, str | None]:
        """The id of ``task``'s definition, and the JSON list of what it declares it reads."""
        # Tasks of one class whose attributes other than name and key are
        # equal share a definition: most trees repeat one kind of task, so
        # the last one seen of each class is compared first, in C (a tuple
        # comparison tests identity before equality). Equal options of other
        # types (1 and True) could share a digest: they also behave alike.
        attributes = vars(task)
        kind = type(task)
        names = tuple(attributes)
        values = tuple(attributes.values())
        last = self._last.get(kind)
        if last is not None and last[0] == names:
            picked = last[1](values)
            if picked == last[2]:
                known: tuple[str, str | None] = last[3]
                return known
        else:
            picker = _picker(
                [position for position, name in enumerate(names) if name not in _IDENTITY]
            )
            picked = picker(values)
            last = (names, picker)
        known = self._definition_by_value(task, attributes)
        self._last[kind] = (last[0], last[1], picked, known)
        return known

    def _definition_by_value(
        self, task: Task, attributes: dict[str, Any]
    ) -> tuple[str, str | None]:
        # Scalars by value (with their types, as 1 == 1.0 == True), other
        # objects by identity, whose text _values_seen keeps (an enum's hash
        # is slow Python code).
        values = [
            value if type(value) in _SCALARS else id(value)
            for name, value in attributes.items()
            if name not in _IDENTITY
        ]
        shape = (type(task), tuple(attributes), *values, *map(type, attributes.values()))
        known = self._shapes.get(shape)
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

    def _masked_error(self, error: tuple[str, str, str]) -> dict[str, str]:
        return {
            "type": error[0],
            "message": self._mask(error[1]),
            "traceback": self._mask(error[2]),
        }

    def _mask(self, text: str) -> str:
        masker = self.masker
        return masker.mask(text) if masker else text


_IDENTITY = frozenset({"name", "key"})


def _picker(positions: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A function taking the items at ``positions`` of a tuple, as a tuple."""
    if len(positions) >= 2:
        return itemgetter(*positions)
    return lambda values: tuple(values[position] for position in positions)


def _error_of(failure: BaseException, status: Status | None = None) -> tuple[str, str, str]:
    """``(type, message, traceback)``; the traceback (the user's frames) only for a failure."""
    traceback = ""
    if status is None or status in _TRACEBACK:
        traceback = "\n".join(user_traceback(failure))
    return type(failure).__name__, error_message(failure), traceback
