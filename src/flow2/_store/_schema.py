"""The run store's schema: its tables, their migrations, and how rows are laid out.

``tasks`` holds one row per task that needed one (a result, a failure,
output, a group, a task still running when the writer committed);
``task_batches`` packs the plain successes of one commit in a single row
(see ``_TASK_BATCHES``); ``task_notes`` holds errors, output, retried
attempts and why a task ran again; ``definitions`` each distinct task
definition once (its parts as digests, and its description as text, secrets
masked). The store's own ``flow2_store`` table says what the file
is and its schema version.
"""

from __future__ import annotations

import json
import sqlite3
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

#: What ``flow2_store.application`` says in a flow2 store.
APPLICATION = "flow2 run store"
#: The schema this flow2 writes (2: a run's error, a task's retried attempts;
#: 3: plain successes packed in ``task_batches``; 4: a run's ``process``, which
#: tells a live run from a killed one whose pid was given to another process;
#: 5: ``task_keys`` and ``cache_entries``, each task's reuse key and the results
#: kept for reuse, and a task's ``queued`` seconds; 6: ``key_parts``, the parts
#: many keys have alike, kept once; a task's ``role`` in its group, ``finally``
#: or ``on_failure`` for a cleanup task; a definition's ``description``;
#: ``output_blobs`` and ``cache_entries.kept_outputs``, the outputs kept for
#: ``restore_outputs``).
SCHEMA_VERSION = 6
#: Rows one INSERT statement writes at most (fewer when SQLite allows fewer parameters).
ROWS_PER_STATEMENT = 256

_SCHEMA_TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    flow TEXT,
    variables TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    last_seen REAL,
    status TEXT NOT NULL,
    pid INTEGER,
    host TEXT,
    resumed_from TEXT,
    counts TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    process TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    parent INTEGER,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    is_group INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    started_at REAL,
    ended_at REAL,
    duration REAL,
    result_format TEXT,
    result BLOB,
    definition TEXT,
    queued REAL,
    role TEXT,
    PRIMARY KEY (run_id, number)
);
CREATE TABLE IF NOT EXISTS task_notes (
    run_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    reads TEXT,
    reason TEXT,
    error_type TEXT,
    error_message TEXT,
    error_traceback TEXT,
    result_note TEXT,
    output TEXT,
    retries TEXT,
    PRIMARY KEY (run_id, number)
);
CREATE TABLE IF NOT EXISTS definitions (
    id TEXT PRIMARY KEY,
    parts TEXT NOT NULL,
    description TEXT
);
"""

# The plain successes of one commit (leaf tasks that succeeded with None),
# ``size`` tasks in one row, each column packed whole (pack_numbers,
# pack_texts): ``numbers``, ``parents`` (-1: none), ``attempts`` and
# ``definition_of`` as little-endian 64-bit integers, the times (seconds
# since the epoch) and durations as little-endian doubles (integers all
# equal as one); ``names`` and ``keys`` as texts each after a NUL (a JSON
# array when one holds a NUL); ``definitions`` as a JSON array of
# ``[definition id, JSON list of the keys it reads or null]``, which
# ``definition_of`` gives each task a place in.
_TASK_BATCHES = """
CREATE TABLE IF NOT EXISTS task_batches (
    run_id TEXT NOT NULL,
    batch INTEGER NOT NULL,
    size INTEGER NOT NULL,
    numbers BLOB NOT NULL,
    parents BLOB NOT NULL,
    names TEXT NOT NULL,
    keys TEXT NOT NULL,
    attempts BLOB NOT NULL,
    started_at BLOB NOT NULL,
    ended_at BLOB NOT NULL,
    durations BLOB NOT NULL,
    definitions TEXT NOT NULL,
    definition_of BLOB NOT NULL,
    PRIMARY KEY (run_id, batch)
)"""

# Each task's reuse key in a run (``parts``: JSON of part → digest;
# ``details``: the names that explain its order), what was decided
# (``reused``, ``cached``, ``ran``), why, and the differences against the
# entry it could have used. A cache entry is written with a task's success,
# in the same transaction, for the run it succeeded in (``origin``) and
# again for each run that reuses it (``run_id``): the lineage of a resume
# finds it in its own runs.
# The parts many keys have alike (a definition, a callback's code, an order
# in a parallel group, the salt), once each under their digest: a task's
# ``parts`` (in ``task_keys``, ``cache_entries``) name them as ``"@shared"``
# and hold only its own (see flow2._store._keys.KeyParts).
_KEY_PARTS = """CREATE TABLE IF NOT EXISTS key_parts (
    digest TEXT PRIMARY KEY,
    parts TEXT NOT NULL
) WITHOUT ROWID"""

_REUSE_TABLES = [
    """CREATE TABLE IF NOT EXISTS task_keys (
    run_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    path TEXT NOT NULL,
    key TEXT,
    parts TEXT,
    details TEXT,
    decision TEXT NOT NULL,
    reason TEXT,
    differences TEXT,
    entry_run TEXT,
    PRIMARY KEY (run_id, number)
)""",
    """CREATE TABLE IF NOT EXISTS cache_entries (
    flow TEXT NOT NULL,
    path TEXT NOT NULL,
    key TEXT NOT NULL,
    parts TEXT NOT NULL,
    details TEXT NOT NULL,
    outputs TEXT NOT NULL,
    result_format TEXT,
    result BLOB,
    result_note TEXT,
    run_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (run_id, path)
)""",
    "CREATE INDEX IF NOT EXISTS cache_entries_by_flow ON cache_entries (flow, path)",
    _KEY_PARTS,
]

# The outputs kept for ``cache: {restore_outputs: true}``: each distinct
# file content once, by its sha256, in parts of at most 64 MiB (``part`` 0,
# 1, …; written and read in chunks, see ``_kept``); an entry's
# ``kept_outputs`` is a JSON object of ``path → [digest, mode, size]``. A
# content no entry names any more is deleted with the last entry that named it.
_KEPT_OUTPUTS = [
    "ALTER TABLE cache_entries ADD COLUMN kept_outputs TEXT",
    """CREATE TABLE IF NOT EXISTS output_blobs (
    digest TEXT NOT NULL,
    part INTEGER NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (digest, part)
)""",
]

#: The keys of ``runs.counts``: what a run's leaf tasks ended in.
COUNTED = ("succeeded", "failed", "skipped", "cancelled", "reused", "cached")

#: The parent of the root in ``task_batches.parents``.
NO_PARENT = -1

#: The columns of ``task_batches``, in order; the first two are the key.
BATCH_COLUMNS = (
    "run_id",
    "batch",
    "size",
    "numbers",
    "parents",
    "names",
    "keys",
    "attempts",
    "started_at",
    "ended_at",
    "durations",
    "definitions",
    "definition_of",
)
#: The columns of ``tasks`` and ``task_notes``, in order; the first two are the key.
TASK_COLUMNS = (
    "run_id",
    "number",
    "parent",
    "name",
    "key",
    "is_group",
    "status",
    "attempts",
    "started_at",
    "ended_at",
    "duration",
    "result_format",
    "result",
    "definition",
    "queued",
    "role",
)
NOTE_COLUMNS = (
    "run_id",
    "number",
    "reads",
    "reason",
    "error_type",
    "error_message",
    "error_traceback",
    "result_note",
    "output",
    "retries",
)

# A new store is made as schema 5 was, then migrated to 6 by the same
# statements as an old one: both have the same columns in the same order.
_SCHEMA = ";".join([_SCHEMA_TABLES + _TASK_BATCHES, *_REUSE_TABLES, *_KEPT_OUTPUTS])

#: ``MIGRATIONS[n]`` turns a store of schema ``n`` into one of schema ``n + 1``.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        # The exception a run raised to its caller, as JSON (type, message, traceback).
        "ALTER TABLE runs ADD COLUMN error TEXT",
        # A task's retried attempts, as a JSON list of [end, retry delay, error type,
        # error message, traceback]: the reports draw each attempt.
        "ALTER TABLE task_notes ADD COLUMN retries TEXT",
    ],
    2: [_TASK_BATCHES],
    # Which process recorded the run: the boot and the process's start time
    # (see flow2._store._liveness.process_identity).
    3: ["ALTER TABLE runs ADD COLUMN process TEXT"],
    # Seconds a task's work waited for a remote worker (its start is the work's).
    4: [*_REUSE_TABLES[:-1], "ALTER TABLE tasks ADD COLUMN queued REAL"],
    # The parts many keys have alike, kept once; a cleanup task's role in its
    # group ("finally", "on_failure"; NULL for one of the group's own tasks),
    # and a definition's description (masked): a report drawn from the store
    # shows both, as one drawn from the run does; the outputs kept for
    # restore_outputs, and which of them each entry names.
    5: [
        _KEY_PARTS,
        "ALTER TABLE tasks ADD COLUMN role TEXT",
        "ALTER TABLE definitions ADD COLUMN description TEXT",
        *_KEPT_OUTPUTS,
    ],
}


def pack_numbers(code: str, values: list[Any]) -> bytes:
    """``values`` as little-endian machine values (``struct`` type ``code``: ``q``, ``d``);
    integers all equal as a single one."""
    if code == "q" and len(values) > 1 and values.count(values[0]) == len(values):
        values = values[:1]
    return struct.pack(f"<{len(values)}{code}", *values)


def unpack_numbers(code: str, data: bytes, size: int) -> list[Any]:
    """The ``size`` values :func:`pack_numbers` packed."""
    values = list(struct.unpack(f"<{len(data) // 8}{code}", data))
    return values * size if len(values) == 1 else values


def pack_texts(texts: list[str]) -> str:
    """``texts`` as one text: NUL before each, or a JSON array when one holds a NUL."""
    joined = "\0" + "\0".join(texts)
    if joined.count("\0") != len(texts):
        return json.dumps(texts)
    return joined


def unpack_texts(packed: str) -> list[str]:
    """What :func:`pack_texts` packed."""
    if packed.startswith("\0"):
        return packed[1:].split("\0")
    texts: list[str] = json.loads(packed)
    return texts


def upsert(table: str, columns: Sequence[str]) -> str:
    """The clause that makes an INSERT into ``table`` replace the row of the same key."""
    updates = ", ".join(f"{column} = excluded.{column}" for column in columns[2:])
    return f"ON CONFLICT ({columns[0]}, {columns[1]}) DO UPDATE SET {updates}"


def insert_rows(
    connection: sqlite3.Connection,
    insert: str,
    row: str,
    conflict: str,
    shared: Any,
    columns: Sequence[list[Any]],
) -> None:
    """Insert the rows whose ``columns`` are given, with ``insert`` (``INSERT … VALUES``)
    and ``row``, their values' SQL: ``?1`` for ``shared``, ``?`` for each column;
    ``conflict`` ends the statement.

    sqlite3 lets go of the GIL while SQLite runs a statement and waits to
    take it back after, for as long as the event loop's thread keeps it
    (up to the switch interval, 5 ms): a statement per row would keep a
    writer thread waiting once per row. Rows go in statements of
    :data:`ROWS_PER_STATEMENT`, then of halves for what is left (each size
    prepared once per connection and cached): a handful of statements.
    Their parameters are laid out from the columns by slice assignment,
    in C, with no object per row.
    """
    total = len(columns[0])
    if not total:
        return
    width = len(columns)
    limit = (connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 1) // width
    size = max(1, min(ROWS_PER_STATEMENT, limit))
    position = 0
    while position < total:
        while size > total - position:
            size //= 2
        parameters: list[Any] = [None] * (1 + width * size)
        parameters[0] = shared
        end = position + size
        for offset, column in enumerate(columns, 1):
            parameters[offset::width] = column[position:end]
        connection.execute(_statement(insert, row, conflict, size), parameters)
        position = end


_STATEMENTS: dict[tuple[str, str, str, int], str] = {}


def _statement(insert: str, row: str, conflict: str, size: int) -> str:
    statement = _STATEMENTS.get((insert, row, conflict, size))
    if statement is None:
        values = ", ".join([row] * size)
        statement = _STATEMENTS[insert, row, conflict, size] = f"{insert} {values} {conflict}"
    return statement
