"""Why a task of a recorded run was reused, taken from the cache, or ran: ``flow2 explain``.

What the reuser decided is stored with each task (``task_keys``): its key,
the key's parts (digests only), the decision, its reason, and the
differences against the entry it could have used. Nothing here shows a
value: an environment variable or a secret appears by name only.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from ._history import role_note
from ._keys import expand_parts

if TYPE_CHECKING:
    from ._database import StoredRun, StoredTask

#: What each decision reads as.
_DECISIONS = {
    "reused": "reused",
    "cached": "cached",
    "ran": "ran",
}


def explanation(connection: sqlite3.Connection, run: StoredRun, task: StoredTask) -> dict[str, Any]:
    """What ``flow2 explain --json`` prints for ``task`` of ``run``."""
    try:
        row = connection.execute(
            "SELECT key, parts, decision, reason, differences, entry_run FROM task_keys "
            "WHERE run_id = ? AND number = ?",
            (run.id, task.number),
        ).fetchone()
        if row is None:
            # A task that ran with nothing looked up has its cache entry only.
            row = connection.execute(
                "SELECT key, parts, 'ran', NULL, NULL, NULL FROM cache_entries "
                "WHERE run_id = ? AND origin = ? AND path = ?",
                (run.id, run.id, json.dumps(list(task.path))),
            ).fetchone()
    except sqlite3.OperationalError:  # a store read before its migration: no keys
        row = None
    found: dict[str, Any] = {
        "run": run.id,
        "task": list(task.path),
        "role": task.role,
        "status": task.status,
        "decision": None,
        "reason": task.reason,
        "key": None,
        "parts": {},
        "differences": [],
        "compared_with": None,
    }
    if row is None:
        if task.status == "skipped":
            found["decision"] = "skipped"
        elif task.status in ("succeeded", "failed", "running"):
            found["decision"] = "ran"
            found["reason"] = task.reason or "no reuse key was recorded for it"
        return found
    key, parts, decision, reason, differences, entry_run = row
    if parts is None:  # written once, with the task's cache entry
        kept = connection.execute(
            "SELECT parts FROM cache_entries WHERE run_id = ? AND path = ?",
            (run.id, json.dumps(list(task.path))),
        ).fetchone()
        parts = kept[0] if kept is not None else None
    found.update(
        decision=_DECISIONS.get(decision, decision),
        reason=reason,
        key=key,
        parts=expand_parts(connection, parts, task.path, {}) if parts else {},
        differences=json.loads(differences) if differences else [],
        compared_with=entry_run,
    )
    return found


def explanation_lines(found: dict[str, Any]) -> list[str]:
    """``found`` as a person reads it."""
    name = " › ".join(found["task"]) + role_note(found["role"])
    decision = found["decision"] or found["status"]
    reason = found["reason"]
    if decision == "ran" and not reason:
        reason = "nothing was looked up (no --resume, no cache)"
    lines = [f"{name} in run {found['run']}: {decision}{f' ({reason})' if reason else ''}"]
    if found["differences"]:
        lines.append(f"differences from the entry of run {found['compared_with']}:")
        lines += [f"  {difference}" for difference in found["differences"]]
    if found["key"]:
        lines.append(f"key {found['key']}:")
        width = max(len(part) for part in found["parts"])
        lines += [
            f"  {part.ljust(width)}  {digest}" for part, digest in sorted(found["parts"].items())
        ]
    return lines
