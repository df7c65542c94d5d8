"""The rows a recorded run writes, built from its events on the store's writer thread.

The recorder's listener (see ``_recorder``) hands the writer two flat
lists and a queue: *starts*, ``record, time`` for each task that started;
*ends*, ``record, time, attempt, duration`` for each task that succeeded
with ``None`` and printed nothing (most of the others); and the facts of
any other event, whose place among the starts a ``None, None`` pair keeps.
:class:`TaskRows` turns them into rows of ``tasks`` and ``task_notes``, and
keeps what later batches need: each task's row number (parents first),
when it started, its notes so far, the definitions seen.

On a machine with few cores the writer thread's work is the event loop's
time too, so starts and ends are taken in bulk, with C-level operations
(slices of the flat lists, ``map``, ``operator.attrgetter``) rather than
Python code per task; only the other events are taken one by one. Rows
are kept as columns, one list per column, and the values every row of a
kind shares are written in the SQL: a tuple per row would also be an
object per task for the garbage collector to count and traverse.
"""

from __future__ import annotations

import json
from collections import deque
from itertools import chain, compress, count, repeat
from operator import attrgetter, eq, is_, itemgetter, lt, not_
from typing import TYPE_CHECKING, Any

from .._engine._events import Status
from ._database import NOTE_COLUMNS, TASK_COLUMNS
from ._values import JSON, declared_reads, definition_parts, digest, is_option

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .._engine._state import TaskRun
    from .._engine._task import Task
    from .._listeners._secrets import SecretMasker
    from ._resume import ResumePlan

#: The lengths of a start and of an end in the flat lists.
START_STRIDE = 2
END_STRIDE = 4

# The columns of task_notes after (run_id, number), in order.
(
    _READS,
    _REASON,
    _ERROR_TYPE,
    _ERROR_MESSAGE,
    _ERROR_TRACEBACK,
    _RESULT_NOTE,
    _OUTPUT,
    _ATTEMPTS,
) = range(2, len(NOTE_COLUMNS))

#: Rows of ``tasks``, by kind: each kind's values, the run id (?1) and the
#: values all its rows share written in the SQL, the others as parameters.
SUCCEEDED_ROW = f"(?1, ?, ?, ?, ?, 0, 'succeeded', ?, ?, ?, ?, '{JSON}', 'null', ?)"
RUNNING_ROW = "(?1, ?, ?, ?, ?, ?, 'running', 1, ?, NULL, NULL, NULL, NULL, NULL)"
TASK_ROW = "(?1" + ", ?" * (len(TASK_COLUMNS) - 1) + ")"
NOTE_ROW = "(?1" + ", ?" * (len(NOTE_COLUMNS) - 1) + ")"

_RUNNING, _RETRYING, _REUSED = Status.RUNNING, Status.RETRYING, Status.REUSED
#: The keys of a run's ``counts``: what its leaf tasks ended in.
COUNTED = ("succeeded", "failed", "skipped", "cancelled", "reused")
_SCALARS = frozenset({type(None), bool, int, float, str})
#: Attributes that name a task rather than define it.
_IDENTITY = frozenset({"name", "key"})

_TASK = attrgetter("task")
_NAME = attrgetter("name")
_KEY = attrgetter("key")
_STORES_RESULT = attrgetter("stores_result")
_PARENT = attrgetter("parent")


class Batch:
    """What one commit writes: the columns of each kind of task row, notes, definitions."""

    def __init__(self) -> None:
        self.succeeded: list[list[Any]] = [[] for _ in range(SUCCEEDED_ROW.count("?") - 1)]
        self.running: list[list[Any]] = [[] for _ in range(RUNNING_ROW.count("?") - 1)]
        self.other: list[list[Any]] = [[] for _ in range(TASK_ROW.count("?") - 1)]
        self.notes: list[list[Any]] = []
        self.definitions: list[tuple[str, str]] = []

    def __bool__(self) -> bool:
        return bool(self.succeeded[0] or self.running[0] or self.other[0] or self.notes)


class TaskRows:
    """What one run writes to ``tasks``, ``task_notes`` and ``definitions``, batch by batch.

    Used by the writer thread only.

    :param run_id: the run's id
    :param masker: the secrets to mask in names, messages and output
    :param plan: the resume plan, whose reasons are kept for the tasks that run again
    """

    def __init__(self, run_id: str, masker: SecretMasker | None, plan: ResumePlan | None) -> None:
        self.run_id = run_id
        self.masker = masker
        self.plan = plan
        #: What the run's leaf tasks ended in so far.
        self.counts = dict.fromkeys(COUNTED, 0)
        #: The latest time an event carried.
        self.last_seen = 0.0
        #: The facts of the run's end, once it came.
        self.end: tuple[Any, ...] | None = None
        self._batch = Batch()
        self._notes: dict[int, list[Any]] = {}
        self._started: list[TaskRun] = []
        self._numbers: dict[TaskRun, int] = {}
        self._parents: list[int | None] = []
        self._starts: dict[TaskRun, float] = {}
        self._retries: dict[int, list[list[Any]]] = {}
        self._all_notes: dict[int, list[Any]] = {}
        self._definition_ids: dict[tuple[tuple[str, str], ...], str] = {}
        self._values_seen: dict[int, tuple[Any, str]] = {}
        self._shapes: dict[tuple[Any, ...], tuple[str, str | None]] = {}
        self._last: dict[type, tuple[Any, ...]] = {}

    def add(self, starts: list[Any], ends: list[Any], take_other: Callable[[], Any]) -> None:
        """Take in what the listener queued: starts and ends as the flat lists hold
        them, and each other event, in its place among the starts, from ``take_other``."""
        records = starts[0::START_STRIDE]
        times = starts[1::START_STRIDE]
        if None in records:
            # Runs of starts between the other events, each run in bulk.
            first = 0
            for position in compress(count(), map(is_, records, repeat(None))):
                if position > first:
                    self._add_starts(records[first:position], times[first:position])
                self._add_other(take_other())
                first = position + 1
            records, times = records[first:], times[first:]
        if records:
            self._add_starts(records, times)
        if ends:
            self._add_ends(ends)

    def take(self) -> Batch:
        """What to write since the last call.

        A task that started and has not ended has a ``running`` row, written
        once, so that a run killed meanwhile shows it.
        """
        started, self._started = self._started, []
        starts = self._starts
        running = list(filter(starts.__contains__, dict.fromkeys(started)))
        batch, self._batch = self._batch, Batch()
        if running:
            numbers = list(map(self._numbers.__getitem__, running))
            tasks = list(map(_TASK, running))
            _extend(
                batch.running,
                numbers,
                map(self._parents.__getitem__, numbers),
                self._masked(map(_NAME, tasks)),
                map(_KEY, tasks),
                map(not_, map(_STORES_RESULT, tasks)),
                map(starts.__getitem__, running),
            )
        batch.notes = list(self._notes.values())
        self._notes = {}
        return batch

    # Starts and ends, in bulk ------------------------------------------------

    def _add_starts(self, records: list[TaskRun], times: list[float]) -> None:
        self._starts.update(zip(records, times, strict=True))
        self._number_started(records)
        self._started.extend(records)
        self.last_seen = max(self.last_seen, max(times))

    def _number_started(self, records: list[TaskRun]) -> None:
        """Number the records that started, in order: a group starts before its tasks."""
        numbers = self._numbers
        first = len(self._parents)
        if numbers.keys().isdisjoint(records):
            numbers.update(zip(records, count(first), strict=False))
            if len(numbers) == first + len(records):  # each started once
                # -1 for the root and for a parent not numbered yet, which
                # never happens: a group starts before its tasks.
                parents = list(map(numbers.get, map(_PARENT, records), repeat(-1)))
                roots = 1 if first == 0 and records[0].parent is None else 0
                if parents.count(-1) == roots and all(map(lt, parents, count(first))):
                    self._parents.extend(parents)
                    if roots:
                        self._parents[0] = None
                    if self.plan is not None:
                        for record in records:
                            self._note_rerun(record, numbers[record])
                    return
            for record in records:
                numbers.pop(record, None)
        for record in records:
            self._number_of(record)

    def _add_ends(self, ends: list[Any]) -> None:
        records = ends[0::END_STRIDE]
        tasks: list[Task] = list(map(_TASK, records))
        kinds: list[type[Task]] = list(map(type, tasks))
        if kinds.count(kinds[0]) == len(kinds):
            stores = [kinds[0].stores_result] * len(kinds)
        else:
            stores = list(map(_STORES_RESULT, kinds))
        if not all(stores):
            # Groups, a few among many tasks: one by one.
            for position in compress(count(), map(not_, stores)):
                self._add_other(tuple(ends[END_STRIDE * position : END_STRIDE * (position + 1)]))
            selected = chain.from_iterable(map(repeat, stores, repeat(END_STRIDE)))
            ends = list(compress(ends, selected))
            if not ends:
                return
            records = ends[0::END_STRIDE]
            tasks = list(compress(tasks, stores))
            kinds = list(compress(kinds, stores))
        times = ends[1::END_STRIDE]
        try:
            numbers = list(map(self._numbers.__getitem__, records))
        except KeyError:  # an end without its start: numbered now, parents first
            numbers = list(map(self._number_of, records))
        _extend(
            self._batch.succeeded,
            numbers,
            map(self._parents.__getitem__, numbers),
            self._masked(map(_NAME, tasks)),
            map(_KEY, tasks),
            ends[2::END_STRIDE],
            map(self._starts.pop, records, times),
            times,
            ends[3::END_STRIDE],
            self._definitions_of(tasks, kinds, numbers),
        )
        self.counts["succeeded"] += len(numbers)
        self.last_seen = max(self.last_seen, max(times))

    def _definitions_of(
        self, tasks: list[Task], kinds: list[type[Task]], numbers: list[int]
    ) -> Iterable[str]:
        """The definition id of each task; what each declares it reads goes to its notes."""
        shared = self._shared_definition(tasks, kinds)
        if shared is not None:
            identity, reads = shared
            if reads is not None:
                for number in numbers:
                    self._note(number)[_READS] = reads
            return repeat(identity, len(tasks))
        known = list(map(self._definition_of, tasks))
        for number, (_, reads) in zip(numbers, known, strict=True):
            if reads is not None:
                self._note(number)[_READS] = reads
        return map(itemgetter(0), known)

    def _shared_definition(
        self, tasks: list[Task], kinds: list[type[Task]]
    ) -> tuple[str, str | None] | None:
        """The definition of every one of ``tasks`` when they all share one, else None.

        Most trees repeat one kind of task: one class, the same attributes,
        equal options. That is checked in C over the whole batch (a tuple
        comparison tests identity before equality).
        """
        size = len(tasks)
        if kinds.count(kinds[0]) != size:
            return None
        attributes = list(map(vars, tasks))
        first = attributes[0]
        if list(map(len, attributes)).count(len(first)) != size:
            return None
        options = [name for name in first if is_option(name)]
        others = [name for name in first if not is_option(name)]  # the name and key at least
        try:
            # As many attributes, and the first task's in every task: the same ones.
            deque(map(itemgetter(*others), attributes), maxlen=0)
            if options:
                values = itemgetter(*options)
                if not all(map(eq, map(values, attributes), repeat(values(first)))):
                    return None
        except KeyError:
            return None
        return self._definition_of(tasks[0])

    # Everything else, one by one ---------------------------------------------

    def _add_row(
        self,
        number: int,
        task: Task,
        status: str,
        attempt: int,
        start: float,
        end: float,
        duration: float | None,
        result_format: str | None = None,
        result: Any = None,
        definition: str | None = None,
    ) -> None:
        """Queue the row of one task that ended, in the columns of ``self._batch.other``."""
        _append(
            self._batch.other,
            number,
            self._parents[number],
            self._mask(task.name),
            task.key,
            0 if task.stores_result else 1,
            status,
            attempt,
            start,
            end,
            duration,
            result_format,
            result,
            definition,
        )

    def _add_other(self, item: tuple[Any, ...]) -> None:
        record = item[0]
        if record is None:
            self.end = item
            return
        when = item[1]
        if when > self.last_seen:
            self.last_seen = when
        number = self._number_of(record)
        task = record.task
        start = self._starts.pop(record, None)
        if len(item) == END_STRIDE:  # a group that succeeded
            started = when if start is None else start
            self._add_row(number, task, "succeeded", item[2], started, when, item[3])
            return
        _, _, attempt, duration, status, encoded, error, reason, output, delay = item
        if status is _RETRYING:
            assert error is not None
            retries = self._retries.setdefault(number, [])
            retries.append(
                [when, delay or 0.0, error[0], self._mask(error[1]), self._mask(error[2])]
            )
            self._note(number)[_ATTEMPTS] = json.dumps(retries)
            self._starts[record] = when if start is None else start
            return
        value = status.value
        is_group = not task.stores_result
        if not is_group and value in self.counts:
            self.counts[value] += 1
        if start is None or status is _REUSED:
            start = when
        result_format = result = definition = None
        if encoded is not None:
            result_format, result, result_note = encoded
            definition, reads = self._definition_of(task)
            if reads is not None or result_note is not None:
                note = self._note(number)
                note[_READS] = reads
                note[_RESULT_NOTE] = result_note
        self._add_row(
            number, task, value, attempt, start, when, duration, result_format, result, definition
        )
        if reason is not None or error is not None or output:
            note = self._note(number)
            if reason is not None:
                note[_REASON] = self._mask(reason)
            if error is not None:
                note[_ERROR_TYPE] = error[0]
                note[_ERROR_MESSAGE] = self._mask(error[1])
                note[_ERROR_TRACEBACK] = self._mask(error[2]) if error[2] else None
            if output:
                note[_OUTPUT] = self._mask("\n".join(output))

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
        if self.plan is not None:
            self._note_rerun(record, number)
        return number

    def _note_rerun(self, record: TaskRun, number: int) -> None:
        """Keep why a task of a resumed run runs again."""
        assert self.plan is not None
        task = record.task
        if task.stores_result:
            reason = self.plan.rerun_reason(record.path, task.key)
            if reason is not None:
                self._note(number)[_REASON] = self._mask(reason)

    def _note(self, number: int) -> list[Any]:
        """The task_notes row of task ``number`` in this batch, with what earlier ones wrote."""
        note = self._notes.get(number)
        if note is None:
            note = self._all_notes.get(number)
            if note is None:
                note = [self.run_id, number] + [None] * (len(NOTE_COLUMNS) - 2)
                self._all_notes[number] = note
            self._notes[number] = note
        return note

    # Definitions ---------------------------------------------------------------

    def _definition_of(self, task: Task) -> tuple[str, str | None]:
        """The id of ``task``'s definition, and the JSON list of what it declares it reads."""
        # Tasks of one class whose attributes other than name and key are
        # equal share a definition: the last one seen of each class is
        # compared first, in C. Equal options of other types (1 and True)
        # could share a digest: they also behave alike.
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
            self._batch.definitions.append((identity, text))
        reads = declared_reads(task)
        known = (identity, json.dumps(reads) if reads is not None else None)
        self._shapes[shape] = known
        return known

    def _masked(self, texts: Iterable[str]) -> Iterable[str]:
        masker = self.masker
        return masker.mask_lines(texts) if masker else texts

    def _mask(self, text: str) -> str:
        masker = self.masker
        return masker.mask(text) if masker else text


def _extend(columns: list[list[Any]], *values: Iterable[Any]) -> None:
    for column, more in zip(columns, values, strict=True):
        column.extend(more)


def _append(columns: list[list[Any]], *row: Any) -> None:
    for column, value in zip(columns, row, strict=True):
        column.append(value)


def _picker(positions: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A function taking the items at ``positions`` of a tuple, as a tuple."""
    if len(positions) >= 2:
        return itemgetter(*positions)
    return lambda values: tuple(values[position] for position in positions)
