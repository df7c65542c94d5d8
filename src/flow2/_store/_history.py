"""What ``flow2 runs`` prints: the list of runs, one run's tree and summary, a task's output."""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Any

from .._engine._events import Status
from .._engine._state import Cleanup
from .._listeners._text import WORDS, cleanup_note, visible, visible_path
from ._schema import COUNTED
from ._values import JSON

if TYPE_CHECKING:
    from ._database import Store, StoredRun, StoredTask

_WORDS = {status.value: word for status, word in WORDS.items()}
_WORDS.update({"pending": "PENDING", "running": "RUNNING", "interrupted": "INTERRUPTED"})


def iso_time(seconds: float) -> str:
    """``seconds`` since the epoch as local ISO 8601 with its offset."""
    return datetime.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def role_note(role: str | None) -> str:
    """`` (finally)`` or `` (on failure)`` after the name of a cleanup task of this
    ``role``, as the console marks it; else nothing (also for a role flow2 never writes)."""
    if role is None:
        return ""
    try:
        return cleanup_note(Cleanup(role))
    except ValueError:
        return ""


def _seconds(duration: float | None) -> str:
    return "?" if duration is None else f"{duration:.2f}s"


def _counts(run: StoredRun) -> dict[str, int]:
    return {name: int(run.counts.get(name, 0)) for name in COUNTED}


def run_as_json(run: StoredRun) -> dict[str, Any]:
    """The object ``flow2 runs --json`` prints for ``run``."""
    duration = run.duration
    return {
        "id": run.id,
        "name": run.name,
        "flow": run.flow,
        "status": run.status,
        "started_at": iso_time(run.started_at),
        "duration": None if duration is None else round(duration, 6),
        "counts": _counts(run),
    }


def runs_as_json(runs: list[StoredRun]) -> str:
    """The JSON array ``flow2 runs --json`` prints."""
    return json.dumps([run_as_json(run) for run in runs], indent=2)


def run_line(run: StoredRun) -> str:
    """One line of ``flow2 runs``: id, name, start, duration, status, counts."""
    started = datetime.datetime.fromtimestamp(run.started_at).strftime("%Y-%m-%d %H:%M:%S")
    counts = ", ".join(f"{count} {name}" for name, count in _counts(run).items() if count)
    return (
        f"{run.id}  {visible(run.name)}  {started}  {_seconds(run.duration):>8}  "
        f"{run.status:<11}  {counts or 'no tasks finished'}"
    )


def show_lines(run: StoredRun) -> list[str]:
    """``flow2 runs show``: the run's facts, its tree, its summary and why tasks ran again."""
    lines = [f"run {run.id} of '{visible(run.name)}': {run.status}"]
    if run.flow:
        lines.append(f"  flow:      {run.flow}")
    if run.variables:
        from ._values import shown_variables

        shown = shown_variables(run.variables)
        lines.append(f"  variables: {json.dumps(shown, default=repr)}")
    lines.append(f"  started:   {iso_time(run.started_at)}")
    if run.resumed_from:
        lines.append(f"  resumed:   from run {run.resumed_from}")
    lines.append("")
    children: dict[int | None, list[StoredTask]] = {}
    for task in run.tasks:
        children.setdefault(task.parent, []).append(task)
    stack = [(task, 0) for task in reversed(children.get(None, []))]
    while stack:
        task, depth = stack.pop()
        lines.append(_tree_line(task, depth))
        stack.extend((child, depth + 1) for child in reversed(children.get(task.number, [])))
    counts = ", ".join(f"{count} {name}" for name, count in _counts(run).items())
    lines += ["", f"{visible(run.name)} {run.status} in {_seconds(run.duration)}: {counts}"]
    again = [
        task for task in run.tasks if not task.is_group and task.status not in ("reused", "cached")
    ]
    reasons = [task for task in again if task.reason]
    if reasons:
        lines.append("Ran again:")
        lines += [f"  {visible_path(task.path)}: {visible(task.reason or '')}" for task in reasons]
    # A group that failed because a task inside it did carries that task's
    # error: only the task is listed, as the summary does.
    failed_inside = {task.parent for task in run.tasks if task.status == "failed"}
    for task in run.tasks:
        if (
            task.status == "failed"
            and task.error_type
            and (not task.is_group or task.number not in failed_inside)
        ):
            lines.append(f"Failed: {visible_path(task.path)}{role_note(task.role)}")
            message = task.error_message or ""
            lines.append(f"  {task.error_type}: {message}" if message else f"  {task.error_type}")
            if task.error_traceback:
                lines += [f"  {line}" for line in task.error_traceback.splitlines()]
    return lines


def _tree_line(task: StoredTask, depth: int) -> str:
    word = _WORDS.get(task.status, task.status.upper())
    line = f"{'  ' * depth}{word:<10}{visible(task.path[-1])}{role_note(task.role)}"
    if task.duration is not None and task.status not in (
        Status.REUSED.value,
        Status.CACHED.value,
    ):
        line += f" ({task.duration:.2f}s)"
    if task.status == "failed" and task.error_type and not task.is_group:
        line += f": {task.error_type}"
        if task.error_message:
            line += f": {task.error_message.splitlines()[0]}"
    elif task.status in ("reused", "cached", "skipped") and task.reason:
        line += f": {task.reason}"
    return line


def find_task(run: StoredRun, reference: str) -> StoredTask | list[StoredTask]:
    """The task ``reference`` names in ``run`` (its key, its path, or its name);
    a list of the candidates when it names none or several."""
    wanted = reference.strip()
    for separator in (" › ", "/", ">"):
        if separator.strip() in wanted:
            parts = tuple(part.strip() for part in wanted.split(separator.strip()))
            matches = [task for task in run.tasks if task.path == parts]
            if matches:
                return matches[0] if len(matches) == 1 else matches
    for attribute in ("key", "name"):
        matches = [
            task
            for task in run.tasks
            if (task.key if attribute == "key" else task.path[-1]) == wanted and not task.is_group
        ]
        if len(matches) == 1:
            return matches[0]
        if matches:
            return matches
    return []


def task_output(store: Store, run: StoredRun, task: StoredTask) -> str | None:
    """The task's output: its log file when there is one, else what the store kept."""
    folder = store.log_directory(run.id)
    if folder.is_dir() and store.is_inside(folder):
        # Only the store's own files: a symlink in it is never followed out of it.
        candidates = sorted(
            path
            for path in folder.iterdir()
            if not path.is_symlink()
            and path.is_file()
            and (path.name == task.key or path.name.startswith(task.key + "."))
        )
        if candidates:
            return candidates[0].read_text(encoding="utf-8", errors="replace")
    if task.output:
        return task.output + "\n"
    if task.result_format == JSON and isinstance(task.result, str):
        try:
            result = json.loads(task.result)
        except ValueError:  # a damaged row: the store kept no output to show
            return None
        if isinstance(result, dict) and ("stdout" in result or "stderr" in result):
            parts = [result.get("stdout") or "", result.get("stderr") or ""]
            text = "\n".join(part for part in parts if part)
            return text + "\n" if text else None
    return None
