"""What a recorded run writes, built from its events on the store's writer thread.

The recorder's listener (see ``_recorder``) hands the writer a flat list
of ``record, time, attempt, duration`` for each task that succeeded with
``None`` and printed nothing (nearly every task), and the facts of any
other event; the run's ``started`` list tells it what started.
:class:`TaskRows` turns them into what one commit writes (a
:class:`Batch`): the plain successes packed together, the other tasks as
rows of ``tasks`` and ``task_notes``, the definitions not seen before.
A group's cleanup task (``finally``, ``on_failure``) has a row of its own
in ``tasks``, which says its ``role``; a task's description is kept with
its definition, secrets masked.

A task is known by its record's ``number`` (its place among the run's
records: parents first), and everything else about it is read from its
record and its definition, so what the listener queues stays small.

On a machine with few cores the writer thread's work is the event loop's
time too. The plain successes are therefore taken in bulk, with C-level
operations (slices of the flat list, ``map``, ``operator.attrgetter``)
rather than Python code per task, and written as one row of ``task_batches``
per commit: each column packed whole (numbers and times as arrays of
machine values, names and keys as JSON arrays; see :func:`pack_numbers`).
SQLite then writes a few blobs instead of a row and an index entry per
task. Only the other events are taken one by one.
"""

from __future__ import annotations

import json
from itertools import compress, count, repeat
from operator import attrgetter, eq, not_
from typing import TYPE_CHECKING, Any

from .._engine._events import FINISHED_STATUSES, Status
from .._engine._naming import snake_case
from .._engine._task import Task
from .._listeners._secrets import SecretMasker
from ._schema import COUNTED, NO_PARENT, NOTE_COLUMNS, TASK_COLUMNS, pack_numbers, pack_texts
from ._values import JSON, declared_reads, definition_parts, digest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from .._engine._state import TaskRun
    from ._reuse import ReusePlan

#: The length of a plain success in the flat list: record, time, attempt, duration.
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

#: Rows of ``tasks``, by kind: the run id (?1) and the values all rows of a
#: kind share are written in the SQL, the others are parameters.
RUNNING_ROW = "(?1, ?, ?, ?, ?, ?, 'running', 1, ?, NULL, NULL, NULL, NULL, ?, NULL, ?)"
TASK_ROW = "(?1" + ", ?" * (len(TASK_COLUMNS) - 1) + ")"
NOTE_ROW = "(?1" + ", ?" * (len(NOTE_COLUMNS) - 1) + ")"


_RETRYING, _REUSED, _CACHED = Status.RETRYING, Status.REUSED, Status.CACHED
#: What the facts of any other event add to a plain success's (see ``_recorder``):
#: its status, its result ``None`` as stored, and no error, reason, output or delay.
_PLAIN_SUCCESS = (Status.SUCCEEDED, (JSON, "null", None), None, None, None, None)
_SCALARS = frozenset({type(None), bool, int, float, str})

_TASK = attrgetter("task")
_NAME = attrgetter("name")
_KEY = attrgetter("key")
_STATUS = attrgetter("status")
_NUMBER = attrgetter("number")
_PARENT = attrgetter("parent")
_START_TIME = attrgetter("start_time")
_STORES_RESULT = attrgetter("stores_result")
_IS_FINISHED = FINISHED_STATUSES.__contains__


class Successes:
    """The plain successes of one commit, column by column (one row of ``task_batches``)."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.parents: list[int] = []
        self.names: list[str] = []
        self.keys: list[str] = []
        self.attempts: list[int] = []
        self.started_at: list[float] = []
        self.ended_at: list[float] = []
        self.durations: list[float] = []
        #: Each task's definition, as a place in :attr:`definitions`.
        self.definition_of: list[int] = []
        #: ``[definition id, JSON list of the keys it reads or None]`` of these tasks.
        self.definitions: list[tuple[str, str | None]] = []

    def __len__(self) -> int:
        return len(self.numbers)

    def packed(self) -> tuple[Any, ...]:
        """The values of the row after ``run_id`` and ``batch``, in the table's order."""
        return (
            len(self.numbers),
            pack_numbers("q", self.numbers),
            pack_numbers("q", self.parents),
            pack_texts(self.names),
            pack_texts(self.keys),
            pack_numbers("q", self.attempts),
            pack_numbers("d", self.started_at),
            pack_numbers("d", self.ended_at),
            pack_numbers("d", self.durations),
            json.dumps(self.definitions),
            pack_numbers("q", self.definition_of),
        )


class Batch:
    """What one commit writes."""

    def __init__(self) -> None:
        self.successes = Successes()
        #: Columns of the ``tasks`` rows of tasks still running.
        self.running: list[list[Any]] = [[] for _ in range(RUNNING_ROW.count("?") - 1)]
        #: Columns of the other ``tasks`` rows.
        self.other: list[list[Any]] = [[] for _ in range(TASK_ROW.count("?") - 1)]
        self.notes: list[list[Any]] = []
        #: ``(id, parts, description)`` of the definitions not written before.
        self.definitions: list[tuple[str, str, str | None]] = []
        #: Tasks written as running before, whose row the successes replace.
        self.stale: list[int] = []

    def __bool__(self) -> bool:
        return bool(self.successes.numbers or self.running[0] or self.other[0] or self.notes)


class TaskRows:
    """What one run writes, batch by batch. Used by the writer thread only.

    :param run_id: the run's id
    :param masker: the secrets to mask in names, keys, messages and output
    :param plan: the run's reuser, whose reasons are kept for the tasks that run again
    :param tree_has_needs: whether a task of the tree has needs or a condition
    """

    def __init__(
        self,
        run_id: str,
        masker: SecretMasker | None,
        plan: ReusePlan | None,
        *,
        tree_has_needs: bool = True,
    ) -> None:
        self.run_id = run_id
        # Without needs or conditions in the tree (the run found none), no
        # task of it has ``needs`` or ``when``: they are not compared task by
        # task. A task made on the fly might; it is never reused on resume.
        self._not_compared = frozenset() if tree_has_needs else frozenset({"needs", "when"})
        self.masker = masker
        # A key is made from a name: a secret in the name is in the key in
        # its snake_case form.
        self._key_masker = (
            SecretMasker([*masker.values, *map(snake_case, masker.values)]) if masker else None
        )
        self.plan = plan
        #: What the run's leaf tasks ended in so far.
        self.counts = dict.fromkeys(COUNTED, 0)
        #: The latest time an event carried.
        self.last_seen = 0.0
        #: The facts of the run's end, once it came.
        self.end: tuple[Any, ...] | None = None
        self._batch = Batch()
        self._notes: dict[int, list[Any]] = {}
        self._written_running: set[int] = set()
        self._retries: dict[int, list[list[Any]]] = {}
        self._all_notes: dict[int, list[Any]] = {}
        self._definition_ids: dict[tuple[tuple[tuple[str, str], ...], str | None], str] = {}
        # The cleanup tasks of each group met, by group number: id(task) -> role.
        self._roles: dict[int, dict[int, str]] = {}
        self._values_seen: dict[int, tuple[Any, str]] = {}
        self._shapes: dict[tuple[Any, ...], tuple[str, str | None]] = {}
        self._last: dict[type, tuple[Any, ...]] = {}
        self._comparers: dict[type, tuple[Callable[[Task], Any] | None]] = {}
        self._readers: dict[type, Callable[[Task], tuple[Any, ...]]] = {}

    def take(self, started: list[TaskRun] | None) -> Batch:
        """What to write since the last call.

        :param started: the records of the tasks that started since the last
            call, while the run goes on (None once it ended): a task among
            them that has not ended has a ``running`` row, written once, so
            that a run killed meanwhile shows it
        """
        # The batch is replaced last: a running row's definition goes with it.
        batch = self._batch
        running = (
            list(compress(started, map(not_, map(_IS_FINISHED, map(_STATUS, started)))))
            if started
            else None
        )
        if running:
            numbers = list(map(_NUMBER, running))
            tasks = list(map(_TASK, running))
            started_at = list(map(_START_TIME, running))
            _extend(
                batch.running,
                numbers,
                map(_parent_number, running),
                self._masked(map(_NAME, tasks)),
                self._masked_keys(map(_KEY, tasks)),
                map(not_, map(_STORES_RESULT, tasks)),
                started_at,
                map(self._described_definition, tasks),
                map(self._role_of, running),
            )
            self._written_running.update(numbers)
            self.last_seen = max(self.last_seen, *started_at)
            if self.plan is not None:
                for record in running:
                    self._note_rerun(record)
        batch.notes = list(self._notes.values())
        self._notes = {}
        self._batch = Batch()
        return batch

    # Plain successes, in bulk -------------------------------------------------

    def add_successes(self, ends: list[Any]) -> None:
        """Take in the flat list of plain successes: ``record, time, attempt, duration`` each."""
        if not ends:
            return
        records = ends[0::END_STRIDE]
        tasks: list[Task] = list(map(_TASK, records))
        kinds: list[type[Task]] = list(map(type, tasks))
        if kinds.count(kinds[0]) == len(kinds):
            stores = [kinds[0].stores_result] * len(kinds)
        else:  # a group or two among the tasks: asked once per class
            stored = {kind: kind.stores_result for kind in set(kinds)}
            stores = list(map(stored.__getitem__, kinds))
        if not all(stores):
            # Groups, a few among many tasks: one by one, and out of the lists
            # (from the last, so that the places of the others hold).
            groups = list(compress(count(), map(not_, stores)))
            for position in reversed(groups):
                start = END_STRIDE * position
                self.add_other(tuple(ends[start : start + END_STRIDE]))
                del ends[start : start + END_STRIDE], records[position], tasks[position]
                del kinds[position]
            if not records:
                return
        parents = list(map(_PARENT, records))
        if any(map(self._cleanup_in, dict.fromkeys(parents))):
            # A group's cleanup task, a few among many: a row of its own,
            # which says its role (taken out as the groups are).
            for position in reversed(
                [place for place, record in enumerate(records) if self._role_of(record)]
            ):
                start = END_STRIDE * position
                self.add_other((*ends[start : start + END_STRIDE], *_PLAIN_SUCCESS))
                del ends[start : start + END_STRIDE], records[position], tasks[position]
                del kinds[position], parents[position]
            if not records:
                return
        times = ends[1::END_STRIDE]
        numbers = list(map(_NUMBER, records))
        successes = self._batch.successes
        if parents.count(parents[0]) == len(parents):  # one group's tasks: its number once
            successes.parents.extend(repeat(_packed_parent(records[0]), len(parents)))
        else:
            successes.parents.extend(map(_packed_parent, records))
        successes.numbers.extend(numbers)
        successes.names.extend(self._masked(map(_NAME, tasks)))
        successes.keys.extend(self._masked_keys(map(_KEY, tasks)))
        successes.attempts.extend(ends[2::END_STRIDE])
        successes.started_at.extend(map(_START_TIME, records))
        successes.ended_at.extend(times)
        successes.durations.extend(ends[3::END_STRIDE])
        self._add_definitions(successes, tasks, kinds)
        written = self._written_running
        if written and not written.isdisjoint(numbers):
            stale = written.intersection(numbers)
            written.difference_update(stale)
            self._batch.stale.extend(stale)
        if self.plan is not None:
            for record in records:
                self._note_rerun(record)
        self.counts["succeeded"] += len(numbers)
        latest = max(times)
        if latest > self.last_seen:
            self.last_seen = latest

    def _add_definitions(
        self, successes: Successes, tasks: list[Task], kinds: list[type[Task]]
    ) -> None:
        """Add each task's definition to ``successes``: once per definition, a place per task."""
        places = {known: place for place, known in enumerate(successes.definitions)}
        shared = self._shared_definition(tasks, kinds)
        if shared is not None:
            place = places.get(shared)
            if place is None:
                place = len(successes.definitions)
                successes.definitions.append(shared)
            successes.definition_of.extend(repeat(place, len(tasks)))
            return
        known = list(map(self._definition_of, tasks))
        for definition in dict.fromkeys(known):
            if definition not in places:
                places[definition] = len(successes.definitions)
                successes.definitions.append(definition)
        successes.definition_of.extend(map(places.__getitem__, known))

    def _shared_definition(
        self, tasks: list[Task], kinds: list[type[Task]]
    ) -> tuple[str, str | None] | None:
        """The definition of every one of ``tasks`` when they all share one, else None.

        Most trees repeat one kind of task: one class and equal options. That
        is checked in C over the whole batch, reading each task's declared
        options as attributes (a tuple comparison tests identity before equality).
        """
        size = len(tasks)
        if kinds.count(kinds[0]) != size:
            return None
        kind = kinds[0]
        if kind.definition is not Task.definition:  # a definition computed: one by one
            return None
        first = tasks[0]
        compared = self._compared_options(kind)
        if compared is not None and not all(map(eq, map(compared, tasks), repeat(compared(first)))):
            return None
        return self._definition_of(first)

    def _compared_options(self, kind: type[Task]) -> Callable[[Task], Any] | None:
        """What tells tasks of ``kind`` apart: its declared options, read in C (None: nothing)."""
        known = self._comparers.get(kind)
        if known is None:
            names = [name for name in _options_of(kind) if name not in self._not_compared]
            known = self._comparers[kind] = (_reader(names) if names else None,)
        return known[0]

    # Everything else, one by one ---------------------------------------------

    def add_other(self, item: tuple[Any, ...]) -> None:
        """Take in the facts of any other event (see ``_recorder``)."""
        record = item[0]
        if record is None:
            self.end = item
            return
        when = item[1]
        if when > self.last_seen:
            self.last_seen = when
        task = record.task
        start = record.start_time or when
        if len(item) == END_STRIDE:  # a group that succeeded
            self._add_row(record, "succeeded", item[2], start, when, item[3])
            return
        number = record.number
        _, _, attempt, duration, status, encoded, error, reason, output, delay = item
        if status is _RETRYING:
            assert error is not None
            retries = self._retries.setdefault(number, [])
            retries.append(
                [when, delay or 0.0, error[0], self._mask(error[1]), self._mask(error[2])]
            )
            self._note(number)[_ATTEMPTS] = json.dumps(retries)
            return
        value = status.value
        if task.stores_result and value in self.counts:
            self.counts[value] += 1
        if status is _REUSED or status is _CACHED:
            start = when
        elif self.plan is not None and record.start_time:
            self._note_rerun(record)
        result_format = result = definition = None
        if encoded is not None:
            result_format, result, result_note = encoded
            definition, reads = self._definition_of(task)
            if reads is not None or result_note is not None:
                note = self._note(number)
                note[_READS] = reads
                note[_RESULT_NOTE] = result_note
        self._add_row(
            record, value, attempt, start, when, duration, result_format, result, definition
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

    def _add_row(
        self,
        record: TaskRun,
        status: str,
        attempt: int,
        start: float,
        end: float,
        duration: float | None,
        result_format: str | None = None,
        result: Any = None,
        definition: str | None = None,
    ) -> None:
        """Queue the ``tasks`` row of one task that ended (replacing its running row)."""
        task = record.task
        number = record.number
        self._written_running.discard(number)
        if definition is None:
            definition = self._described_definition(task)
        _append(
            self._batch.other,
            number,
            _parent_number(record),
            self._mask(task.name),
            self._mask_key(task.key),
            0 if task.stores_result else 1,
            status,
            attempt,
            start,
            end,
            duration,
            result_format,
            result,
            definition,
            record.queued or None,
            self._role_of(record),
        )

    def _note_rerun(self, record: TaskRun) -> None:
        """Keep why a task of a resumed run runs again."""
        assert self.plan is not None
        task = record.task
        if task.stores_result:
            reason = self.plan.rerun_reason(record)
            if reason is not None:
                self._note(record.number)[_REASON] = self._mask(reason)

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

    # Cleanup tasks -------------------------------------------------------------

    def _cleanup_in(self, group: TaskRun | None) -> bool:
        """Whether ``group`` (a record, or None for the root's parent) has cleanup tasks."""
        return group is not None and bool(self._roles_in(group))

    def _role_of(self, record: TaskRun) -> str | None:
        """``"finally"`` or ``"on_failure"`` for a group's cleanup task, else None."""
        parent = record.parent
        if parent is None:
            return None
        roles = self._roles_in(parent)
        return roles.get(id(record.task)) if roles else None

    def _roles_in(self, group: TaskRun) -> dict[int, str]:
        """The cleanup tasks of ``group``, by id, with their roles: asked once per group."""
        roles = self._roles.get(group.number)
        if roles is None:
            task = group.task
            roles = self._roles[group.number] = {}
            if type(task).cleanup_role_of is not Task.cleanup_role_of:
                for child in task.children:
                    role = task.cleanup_role_of(child)
                    if role is not None:
                        roles[id(child)] = role.value
        return roles

    # Definitions ---------------------------------------------------------------

    def _definition_of(self, task: Task) -> tuple[str, str | None]:
        """The id of ``task``'s definition, and the JSON list of what it declares it reads."""
        # Tasks of one class with equal declared options share a definition:
        # the last one seen of each class is compared first, in C. Equal
        # options of other types (1 and True) could share a digest: they
        # also behave alike.
        kind = type(task)
        reader = self._readers.get(kind)
        if reader is None:
            if kind.definition is not Task.definition:
                # A definition the class computes: built anew for each task.
                return self._definition_by_parts(task)
            reader = self._readers[kind] = _reader(_options_of(kind))
        values = reader(task)
        last = self._last.get(kind)
        if last is not None and last[0] == values:
            known: tuple[str, str | None] = last[1]
            return known
        known = self._definition_by_value(task, values)
        self._last[kind] = (values, known)
        return known

    def _definition_by_value(self, task: Task, options: tuple[Any, ...]) -> tuple[str, str | None]:
        # Scalars by value (with their types, as 1 == 1.0 == True), other
        # objects by identity, whose text _values_seen keeps (an enum's hash
        # is slow Python code).
        values = [value if type(value) in _SCALARS else id(value) for value in options]
        shape = (type(task), *values, *map(type, options))
        known = self._shapes.get(shape)
        if known is None:
            known = self._shapes[shape] = self._definition_by_parts(task)
        return known

    def _definition_by_parts(self, task: Task) -> tuple[str, str | None]:
        parts = definition_parts(task, self._values_seen)
        description = self._mask(task.description) if task.description else None
        identity = self._definition_ids.get((parts, description))
        if identity is None:
            text = json.dumps(dict(parts), sort_keys=True)
            # The description as stored (masked) is part of the id: a
            # definition described otherwise, or masked otherwise by a run
            # that declared other secrets, is another row.
            identity = digest(text if description is None else f"{text}\0{description}")
            self._definition_ids[parts, description] = identity
            self._batch.definitions.append((identity, text, description))
        reads = declared_reads(task)
        return (identity, json.dumps(reads) if reads is not None else None)

    def _described_definition(self, task: Task) -> str | None:
        """The definition of a task that has a description (its description is kept there);
        None for the others, whose row needs none."""
        return self._definition_of(task)[0] if task.description else None

    def _masked(self, texts: Iterable[str]) -> Iterable[str]:
        masker = self.masker
        return masker.mask_lines(texts) if masker else texts

    def _masked_keys(self, keys: Iterable[str]) -> Iterable[str]:
        masker = self._key_masker
        return masker.mask_lines(keys) if masker else keys

    def _mask_key(self, key: str) -> str:
        masker = self._key_masker
        return masker.mask(key) if masker else key

    def _mask(self, text: str) -> str:
        masker = self.masker
        return masker.mask(text) if masker else text


def _parent_number(record: TaskRun) -> int | None:
    parent = record.parent
    return None if parent is None else parent.number


def _packed_parent(record: TaskRun) -> int:
    parent = record.parent
    return NO_PARENT if parent is None else parent.number


def _extend(columns: list[list[Any]], *values: Iterable[Any]) -> None:
    for column, more in zip(columns, values, strict=True):
        column.extend(more)


def _append(columns: list[list[Any]], *row: Any) -> None:
    for column, value in zip(columns, row, strict=True):
        column.append(value)


def _options_of(kind: type[Task]) -> tuple[str, ...]:
    """The options that tell two tasks of ``kind`` apart in the store: those its class
    declares, and its description, which is stored with the definition."""
    options = kind.definition_options
    return options if "description" in options else (*options, "description")


def _reader(names: Sequence[str]) -> Callable[[Task], tuple[Any, ...]]:
    """A function reading the attributes ``names`` of a task, as a tuple, in C."""
    if len(names) >= 2:
        return attrgetter(*names)
    return lambda task: tuple(getattr(task, name) for name in names)
