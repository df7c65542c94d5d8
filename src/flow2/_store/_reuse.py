"""Reuse by key: the run store's decision, made as each task is about to start.

Every task of a recorded run gets a reuse key (see ``_keys``) once its
needs have finished and its condition held. A stored entry with an equal
key stands in for it:

- with ``--resume``, the entry of the task's *latest* state in the lineage
  (the run resumed, the run that one resumed, and so on), when that state
  is a success: a failure, a cancellation or an interrupted attempt there
  makes it run; a run that left it out (``--only``, a skip, a kill before
  it started) is looked through;
- with ``cache: true`` (a task, its group, the flow, ``Runner(cache=True)``),
  the newest entry with that key from any run of the same flow.

An entry is reused only while its recorded outputs are as they were and
its result can be loaded; with ``restore_outputs`` (a :class:`flow2.Cache`),
an output found missing or modified is put back from the copy the entry
kept (see ``_kept``), and the entry is reused. A task that runs keeps why,
and the field-by-field differences against the entry it could have used.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._engine._caching import restores_outputs
from .._engine._foreach import ForEach
from .._engine._state import Reuse
from ._files import MISSING, FileIndex
from ._kept import Kept, NotRestored, kept_of, restore
from ._keys import (
    KeyMaker,
    KeyParts,
    NotReusable,
    differences,
    expand_parts,
    is_code_part,
    outputs_changed,
)
from ._values import decode_result

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Mapping, Sequence

    from .._engine._state import TaskRun
    from .._engine._task import Context, Task
    from ._database import Store, StoredRun

Path = tuple[str, ...]

REUSED, CACHED, RAN = "reused", "cached", "ran"
ON_THE_FLY = "created while the run ran: only the tree's own tasks are reused"


@dataclass
class Entry:
    """A result kept for reuse, with the key it was computed under."""

    path: Path
    key: str
    parts: dict[str, str]
    details: dict[str, Any]
    outputs: dict[str, str]
    result_format: str | None
    result: str | bytes | None
    result_note: str | None
    run_id: str
    origin: str
    #: The outputs whose bytes the store keeps: path → (digest, mode, size).
    kept: dict[str, Kept] = field(default_factory=dict)


@dataclass
class State:
    """A task's latest state in a lineage: its entry, or why there is none."""

    run_id: str
    entry: Entry | None
    reason: str | None = None


class Decided:
    """What was decided for one task of this run, and from what.

    :param path: the task's path
    """

    __slots__ = (
        "compared",
        "details",
        "differences",
        "entry",
        "keep_outputs",
        "key",
        "key_parts",
        "outcome",
        "path",
        "reason",
        "restore",
        "sources",
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key: str | None = None
        #: The parts of its key (None: it has no key).
        self.key_parts: KeyParts | None = None
        self.details: dict[str, Any] = _NO_DETAILS
        self.sources: dict[str, str] = _NO_DETAILS
        self.outcome = RAN
        self.reason: str | None = None
        self.differences: list[str] = []
        self.entry: Entry | None = None
        self.compared: str | None = None
        #: Keep the outputs' bytes with the entry (``restore_outputs``).
        self.keep_outputs = False
        #: The outputs to put back before the entry is used: path → what is kept.
        self.restore: dict[str, Kept] | None = None

    @property
    def parts(self) -> dict[str, str]:
        """Every part of its key, by name (none when it has no key)."""
        return self.key_parts.merged() if self.key_parts is not None else {}


#: What a task without details has (never changed: a new dict is assigned instead).
_NO_DETAILS: dict[str, Any] = {}


class ReusePlan:
    """The run's reuser: keys every task, reuses what an equal key allows.

    :param keys: computes the keys
    :param flow: what names the flow across runs (its file, else its root's name)
    :param previous: the run resumed (None: no resume)
    :param states: each task's latest state in the lineage of ``previous``
    :param cached: the cache entries of this flow, by path, newest first
    :param cache_all: ``Runner(cache=True)``: every task caches unless it says no
    :param restore_all: ``Runner(cache=flow2.Cache(restore_outputs=True))``: every
        task keeps and restores its outputs unless it says no
    :param store: where kept outputs are read from to be restored
    :param base: the directory ``sources:`` and ``outputs:`` are relative to
    :param pickle_results: load results stored as pickles
    :param index: the file index to digest ``sources:`` and ``outputs:`` with
    :param cache_reads: the run takes results from the cache (not ``--no-cache``)
    :param cache_writes: the run writes cache entries (``--cache=on``); else the
        entries it writes are kept for its own lineage (a later resume) only
    :param force: the tasks that run even when reusable (result keys, paths, names;
        a group's tasks with it)
    :param distrust: why the store's entries are not to be trusted (another
        user's store, one others may write): nothing is reused from it
    """

    def __init__(
        self,
        keys: KeyMaker,
        *,
        flow: str,
        previous: StoredRun | None = None,
        states: Mapping[Path, State] | None = None,
        cached: Mapping[Path, list[Entry]] | None = None,
        cache_all: bool = False,
        restore_all: bool = False,
        store: Store | None = None,
        base: pathlib.Path | None = None,
        pickle_results: bool = False,
        index: FileIndex | None = None,
        cache_reads: bool = True,
        cache_writes: bool = True,
        force: Sequence[str] = (),
        distrust: str | None = None,
    ) -> None:
        self.keys = keys
        self.flow = flow
        self.previous = previous
        self.states = states
        self.cached = cached or {}
        self.cache_all = cache_all
        self.restore_all = restore_all
        self.store = store
        self.base = base or pathlib.Path.cwd()
        self.pickle_results = pickle_results
        self.cache_reads = cache_reads
        self.cache_writes = cache_writes
        self.force = tuple(force)
        self.distrust = distrust
        #: What the run tells once, before its first task (an untrusted store).
        self.notices: list[str] = [distrust] if distrust is not None else []
        #: The digests of declared files (remembered across runs when the index can be).
        self.index = index if index is not None else FileIndex()
        #: What was decided for each task, by its record's number.
        self.decisions: dict[int, Decided] = {}
        #: For each result key produced in this run, the key of its task.
        self.produced: dict[str, str] = {}
        self._code_unknown = False

    @property
    def entry_flow(self) -> str:
        """The flow the run's entries are written under: its own, or "" (no flow: an
        entry the cache never reads, kept for a later resume of this run) when the
        run writes no cache entries (``--cache=read-only``, ``--no-cache``)."""
        return self.flow if self.cache_writes else ""

    @property
    def previous_id(self) -> str | None:
        """The id of the run resumed, when this run resumes one."""
        return self.previous.id if self.previous is not None else None

    def announcement(self) -> str:
        """The line a resumed run prints before its first task starts."""
        assert self.previous is not None
        ready = sum(1 for state in (self.states or {}).values() if state.entry is not None)
        return (
            f"resuming run {self.previous.id}: {ready} task{'' if ready == 1 else 's'} "
            f"succeeded in its lineage, reused where their keys are unchanged"
        )

    def rerun_reason(self, record: TaskRun) -> str | None:
        """Why the task of ``record`` ran, when it was looked up and not reused."""
        decided = self.decisions.get(record.number)
        if decided is None or decided.outcome != RAN:
            return None
        return decided.reason

    async def decide(self, record: TaskRun, context: Context) -> Reuse | None:
        """Reuse a stored result whose key equals the task's, or None to run it."""
        task = record.task
        if not task.stores_result:
            return None
        chain = _chain(record, self.keys)
        files: tuple[dict[str, str], dict[str, str]] = ({}, {})
        if chain is not None and (task.sources or task.outputs):
            # Hashing files touches the disk: in a thread, never on the loop.
            try:
                files = await asyncio.to_thread(self.digest_files, task)
            except OSError as error:
                decided = self.decisions[record.number] = Decided(record.path)
                decided.reason = f"not reusable: its declared files cannot be read ({error})"
                return None
        reuse = self.judge(record.number, record.path, chain, context, *files)
        decided = self.decisions[record.number]
        if reuse is not None and decided.restore:
            # Reading the store and writing files: in a thread, never on the loop.
            why = await asyncio.to_thread(
                self.restore_outputs, decided.restore, decided.differences
            )
            if why is not None:
                decided.outcome, decided.entry, decided.reason = RAN, None, why
                decided.restore = None
                return None
        return reuse

    def restore_outputs(self, files: Mapping[str, Kept], told: Sequence[str]) -> str | None:
        """Put ``files`` back from the store; None when done, else why they could not be."""
        store = self.store
        if store is None:
            return f"{told[0] if told else 'outputs changed'}, and no run store to restore from"
        said = {_told_path(line): line for line in told}
        try:
            connection = store.connect()
            try:
                restore(connection, self.base, files, said)
            finally:
                connection.close()
        except NotRestored as error:
            return error.reason
        except Exception as error:  # a store that cannot be read: the task runs
            return f"{told[0] if told else 'outputs changed'}, and not restored ({error})"
        return None

    def digest_files(self, task: Task) -> tuple[dict[str, str], dict[str, str]]:
        """The digests of the task's declared sources, and of its outputs as they are now.

        :raises OSError: a file cannot be read, or a pattern leads out of the
            working directory (flow2 checks files under it only)
        """
        index, base = self.index, self.base
        for pattern in (*task.sources, *task.outputs):
            if outside(pattern):
                raise OSError(f"{pattern!r} leads out of the working directory")
        return (
            index.digests(task.sources, base) if task.sources else {},
            index.digests(task.outputs, base) if task.outputs else {},
        )

    def judge(
        self,
        number: int,
        path: Path,
        chain: Sequence[Task] | None,
        context: Context,
        sources: Mapping[str, str],
        outputs: Mapping[str, str],
        *,
        code_unknown: bool = False,
    ) -> Reuse | None:
        """Key the task at the end of ``chain`` and decide (what :meth:`decide` and a
        dry run share); the decision is kept in :attr:`decisions` under ``number``.

        :param code_unknown: the callback is a stand-in (a dry run imports no
            callback): its code is left out of the comparison, and a reuse says so
        """
        self._code_unknown = code_unknown
        decided = self.decisions[number] = Decided(path)
        if chain is None:
            decided.reason = ON_THE_FLY
            return None
        task = chain[-1]
        try:
            parts, details = self.keys.parts(chain, context, self.produced)
        except NotReusable as error:
            self.produced.pop(task.key, None)
            decided.reason = error.reason
            return None
        except Exception as error:  # a key that cannot be computed never fails the task
            self.produced.pop(task.key, None)
            decided.reason = f"not reusable: its key could not be computed ({error!r})"
            return None
        if sources:
            parts.own.update((f"source {file}", digest) for file, digest in sources.items())
            decided.sources = dict(sources)
        key = decided.key = parts.key
        decided.key_parts, decided.details = parts, details
        self.produced[task.key] = key
        decided.keep_outputs = bool(task.outputs) and self._restores(chain)
        forced = self._forced_by(chain)
        if forced is not None:
            decided.reason = f"forced (--force {forced})"
            return None
        if self.distrust is not None:
            decided.reason = "not reused: the run store is not trusted (see the run's notice)"
            return None
        reason = None
        if self.states is not None:
            assert self.previous is not None
            state = self.states.get(path)
            if state is None:
                reason = f"new: not in run {self.previous.id} nor in the runs it resumed"
            elif state.entry is None:
                reason = state.reason or f"no result kept in run {state.run_id}"
            else:
                reuse = self._try(state.entry, decided, outputs, REUSED)
                if isinstance(reuse, Reuse):
                    return reuse
                reason = reuse
        caches = self._caches(chain)
        if caches and not self.cache_reads:
            reason = reason or "the cache is off (--no-cache): nothing is taken from it"
        elif caches:
            entries = self.cached.get(path, [])
            entry = next((entry for entry in entries if entry.key == key), None)
            if entry is None and entries:
                entry = entries[0]
            if entry is None:
                reason = reason or "new: no cache entry for it yet"
            else:
                reuse = self._try(entry, decided, outputs, CACHED)
                if isinstance(reuse, Reuse):
                    return reuse
                reason = reason or reuse
        decided.reason = reason
        return None

    def _try(
        self, entry: Entry, decided: Decided, outputs: Mapping[str, str], outcome: str
    ) -> Reuse | str:
        """Reuse ``entry``, or say why not."""
        decided.compared = entry.origin
        if entry.key != decided.key:
            if self._code_unknown:
                old_parts, new_parts = _without_code(entry.parts), _without_code(decided.parts)
            else:
                old_parts, new_parts = entry.parts, decided.parts
            # Equal parts under another key: an entry keyed by an earlier
            # flow2, which digested the parts in another way (see
            # test_an_entry_keyed_the_earlier_way_is_reused_when_its_parts_are_equal).
            if old_parts != new_parts:
                told = differences(old_parts, new_parts, entry.details, decided.details)
                decided.differences = told
                return _one_line(told)
        changed = outputs_changed(entry.outputs, outputs)
        restoring = None
        if changed:
            decided.differences = changed
            restoring = self._restorable(entry, decided, outputs)
            if restoring is None:
                return _one_line(changed)
        usable, value, why = decode_result(
            entry.result_format, entry.result, pickle_results=self.pickle_results
        )
        if not usable:
            if entry.result_format is None and entry.result_note:
                why = entry.result_note
            return f"result not stored: {why}"
        decided.outcome, decided.entry = outcome, entry
        word = "succeeded in" if outcome == REUSED else "cached from"
        decided.reason = f"{word} run {entry.origin}"
        if restoring:
            decided.restore = restoring
            decided.reason = restored_reason(decided)
        if entry.key != decided.key:
            decided.reason += ", if its code is unchanged (a dry run imports no callback)"
        return Reuse(value, decided.reason, cached=outcome == CACHED)

    def _forced_by(self, chain: Sequence[Task]) -> str | None:
        """The ``force`` reference naming the task at the end of ``chain``, or a group of it."""
        if not self.force:
            return None
        names = [task.name for task in chain]
        for place, task in enumerate(chain):
            for reference in self.force:
                if names_task(reference, names[: place + 1], task.key):
                    return reference
        return None

    def _restorable(
        self, entry: Entry, decided: Decided, outputs: Mapping[str, str]
    ) -> dict[str, Kept] | None:
        """The kept outputs that put back would make ``outputs`` as the entry recorded
        them; None when that cannot be (not asked for, an output not kept, one added)."""
        if not decided.keep_outputs or entry.key != decided.key or not entry.kept:
            return None
        restoring = {}
        for path in sorted(set(entry.outputs) | set(outputs)):
            if entry.outputs.get(path) == outputs.get(path):
                continue
            if path not in entry.outputs and outputs[path] == MISSING:
                continue  # a folder deleted whole: its files are put back
            kept = entry.kept.get(path)
            if kept is None or kept[0] != entry.outputs.get(path):
                return None  # appeared, or recorded missing: nothing to put back
            restoring[path] = kept
        return restoring

    def _restores(self, chain: Sequence[Task]) -> bool:
        """Whether the task at the end of ``chain`` keeps and restores its outputs: as the
        nearest ``cache=`` that is a :class:`flow2.Cache` says (``cache=True`` keeps
        what its group says), else as the runner's."""
        for task in reversed(chain):
            if task.cache is False:
                return False
            said = restores_outputs(task.cache)
            if said is not None:
                return said
        return self.restore_all

    def _caches(self, chain: Sequence[Task]) -> bool:
        for task in reversed(chain):
            if task.cache is not None:
                return bool(task.cache)
        return self.cache_all


def names_task(reference: str, names: Sequence[str], key: str | None) -> bool:
    """Whether ``reference`` names the task whose path is ``names`` (the root's name
    first) and result key is ``key``: the key, the name, or the path (with or without
    the root's name; ``/``, ``>`` or `` › `` between the names)."""
    wanted = reference.strip()
    if wanted in (key, names[-1]):
        return True
    for separator in ("›", "/", ">"):
        if separator in wanted:
            parts = [part.strip() for part in wanted.split(separator)]
            return parts in (list(names), list(names[1:]))
    return False


def outside(pattern: str) -> bool:
    """Whether a ``sources:`` or ``outputs:`` pattern leads out of the working directory."""
    path = pathlib.PurePosixPath(pattern.replace("\\", "/"))
    if path.is_absolute() or pathlib.PureWindowsPath(pattern).drive:
        return True
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return True
    return False


def _without_code(parts: Mapping[str, str]) -> dict[str, str]:
    """``parts`` less those of a callable's behaviour (``code``, ``constant …``, …)."""
    return {name: digest for name, digest in parts.items() if not is_code_part(name)}


def restored_reason(decided: Decided, *, done: bool = True) -> str:
    """Why a task whose outputs are put back is reused: ``outputs restored: PATH;
    cached from run ID``; ``outputs to restore: …`` when not ``done`` (a dry run)."""
    assert decided.restore is not None and decided.entry is not None
    word = "succeeded in" if decided.outcome == REUSED else "cached from"
    return (
        f"outputs {'restored' if done else 'to restore'}: {_listed(decided.restore)}; "
        f"{word} run {decided.entry.origin}"
    )


def _listed(files: Mapping[str, Any]) -> str:
    """``a, b, c (and 2 more)``: the first paths of ``files``."""
    paths = sorted(files)
    shown = ", ".join(paths[:3])
    return f"{shown} (and {len(paths) - 3} more)" if len(paths) > 3 else shown


def _told_path(line: str) -> str:
    """The path in a line of :func:`outputs_changed` (``outputs: PATH missing``)."""
    return line.removeprefix("outputs: ").rsplit(" ", 1)[0]


def _one_line(told: list[str]) -> str:
    if len(told) > 1:
        return f"{told[0]} (and {len(told) - 1} more: flow2 explain)"
    return told[0] if told else "its key changed"


def _chain(record: TaskRun, keys: KeyMaker) -> list[Task] | None:
    """The tasks from the root down to ``record``'s; None for a task made on the fly.

    The tasks a :class:`flow2.ForEach` makes for its items are made on the
    fly too, but each is named after its item: its path identifies it from
    run to run, and it is keyed and reused as any task of the tree.
    """
    chain = [record.task]
    parent = record.parent
    while parent is not None:
        if not keys.is_child(parent.task, chain[-1]) and not isinstance(parent.task, ForEach):
            return None
        chain.append(parent.task)
        parent = parent.parent
    chain.reverse()
    return chain


# Reading the store ---------------------------------------------------------------

_UNFINISHED = {"running": "interrupted", "retrying": "interrupted"}


def file_index(connection: sqlite3.Connection) -> FileIndex:
    """The store's file index: the digests of declared files by their ``stat``,
    kept between runs when this flow2's :class:`FileIndex` can (``load``/``save``)."""
    load = getattr(FileIndex, "load", None)
    if load is None:
        return FileIndex()
    index: FileIndex = load(connection)
    return index


def save_file_index(index: FileIndex, connection: sqlite3.Connection) -> None:
    """Keep what ``index`` learnt, in the caller's transaction (when it can be kept)."""
    save = getattr(index, "save", None)
    if save is not None:
        save(connection)


def flow_identity(flow_file: str | None, root_name: str) -> str:
    """What names a flow across runs: its file, else the name of its root."""
    return flow_file if flow_file is not None else f"name:{root_name}"


def read_entries(
    connection: sqlite3.Connection, where: str, parameters: Sequence[Any]
) -> list[Entry]:
    """The cache entries ``where`` selects, newest first."""
    rows = connection.execute(
        "SELECT path, key, parts, details, outputs, result_format, result, result_note, "
        f"run_id, origin, kept_outputs FROM cache_entries WHERE {where} "
        "ORDER BY created DESC, rowid DESC",
        parameters,
    ).fetchall()
    shared: dict[str, dict[str, str]] = {}
    entries = []
    for (
        path,
        key,
        parts,
        details,
        outputs,
        result_format,
        result,
        note,
        run_id,
        origin,
        kept,
    ) in rows:
        names = tuple(json.loads(path))
        entries.append(
            Entry(
                names,
                key,
                expand_parts(connection, parts, names, shared),
                json.loads(details),
                json.loads(outputs),
                result_format,
                result,
                note,
                run_id,
                origin,
                kept_of(kept),
            )
        )
    return entries


def lineage_states(
    store: Store, connection: sqlite3.Connection, previous: StoredRun
) -> dict[Path, State]:
    """Each task's latest state in the lineage of ``previous``."""
    from ._database import StoreError

    runs = [previous]
    seen = {previous.id}
    while runs[-1].resumed_from and runs[-1].resumed_from not in seen:
        try:
            older = store.find_run(connection, runs[-1].resumed_from)
        except StoreError:  # deleted by retention: the lineage ends there
            break
        seen.add(older.id)
        runs.append(older)
    ids = [run.id for run in runs]
    marks = ", ".join("?" * len(ids))
    entries = {
        (entry.run_id, entry.path): entry
        for entry in read_entries(connection, f"run_id IN ({marks})", ids)
    }
    kept = dict(
        ((run_id, tuple(json.loads(path))), reason)
        for run_id, path, reason in connection.execute(
            f"SELECT run_id, path, reason FROM task_keys WHERE run_id IN ({marks})", ids
        )
    )
    states: dict[Path, State] = {}
    for run in runs:
        for task in run.tasks:
            if task.is_group or task.path in states:
                continue
            entry = entries.get((run.id, task.path))
            if entry is not None:
                states[task.path] = State(run.id, entry)
                continue
            reason = _why_not(task.status, task.started_at, run.id, kept.get((run.id, task.path)))
            if reason is not None:
                states[task.path] = State(run.id, None, reason)
    return states


def _why_not(status: str, started_at: float | None, run_id: str, kept: str | None) -> str | None:
    """Why a task's state in one run of the lineage stops the search; None: look further."""
    if status == "failed":
        return f"failed in run {run_id}"
    if status in _UNFINISHED:
        return f"did not finish in run {run_id} (the run was interrupted)"
    if status == "cancelled" and started_at is not None:
        return f"was cancelled in run {run_id}"
    if status == "succeeded":
        return f"no result kept in run {run_id}: {kept or 'no reuse key was recorded'}"
    return None  # skipped, left out, reused from elsewhere, never started
