"""Reading a JSON event file (``FLOW2_EVENTS``) back into a :class:`RunRecord`.

A file may hold several runs (lines are appended); one is chosen by its id,
a unique prefix of it, or ``last``. A file cut short (a run killed mid-way,
a disk that filled up) gives the record of what it holds, marked
incomplete; a file that is not flow2's is refused with the line that shows it.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from .._engine._exceptions import ReportError
from .._listeners._event_file import FORMAT_VERSION
from ._model import RunRecord, build_record

if TYPE_CHECKING:
    from collections.abc import Iterator

_FIX = "give a file written by flow2 run --events, FLOW2_EVENTS or Runner(events=...)"


def read_events(path: str | os.PathLike[str], run: str = "last") -> RunRecord:
    """The record of one run in the JSON event file ``path``.

    :param path: a file written by ``FLOW2_EVENTS`` / ``Runner(events=...)``
    :param run: the run's id, a unique prefix of it, or ``"last"`` (the file's last run)
    :raises flow2.ReportError: the file cannot be read, is not a flow2 event
        file, or holds no such run (the message names the file and the line)

    Example::

        record = flow2.read_events("events.jsonl")
        print(record.status, record.counts())
    """
    file = os.fspath(path)
    runs: dict[str, list[dict[str, Any]]] = {}
    for number, fields, is_cut in _lines(file):
        if is_cut:
            break
        run_id = fields["run_id"]
        if fields["event"] == "run" and fields["status"] == "running":
            version = fields.get("format", FORMAT_VERSION)
            if isinstance(version, int) and version > FORMAT_VERSION:
                raise ReportError(
                    f"{file}, line {number}: written by a newer flow2 (format {version}; this "
                    f"flow2 reads format {FORMAT_VERSION}); upgrade flow2 to read it",
                    file=file,
                    line=number,
                )
            runs[run_id] = [fields]
        elif run_id in runs:
            runs[run_id].append(fields)
        else:
            raise ReportError(
                f"{file}, line {number}: an event of run {run_id} before that run's start "
                f"line; the file's beginning is missing. {_FIX}",
                file=file,
                line=number,
            )
    if not runs:
        raise ReportError(f"{file}: no run in the file (it is empty); {_FIX}", file=file)
    chosen = _choose(file, runs, run)
    try:
        record = build_record(runs[chosen])
    except (KeyError, TypeError, ValueError) as error:
        raise ReportError(
            f"{file}: run {chosen} has an event flow2 cannot read ({type(error).__name__}: "
            f"{error}); {_FIX}",
            file=file,
        ) from None
    first = runs[chosen][0]
    if isinstance(first.get("flow"), str):
        record.flow = first["flow"]
    if isinstance(first.get("variables"), dict):
        record.variables = first["variables"]
    # A line cut short is the last one written: its run never recorded its
    # end, so the builder has marked that run incomplete already.
    return record


def _lines(file: str) -> Iterator[tuple[int, dict[str, Any], bool]]:
    """``(line number, decoded object, is_cut)`` for each line; the last may be cut short."""
    try:
        stream = open(file, encoding="utf-8")
    except OSError as error:
        raise ReportError(
            f"cannot read the event file {file!r}: {error.strerror}; {_FIX}", file=file
        ) from None
    with stream:
        try:
            text = stream.read()
        except (OSError, UnicodeDecodeError) as error:
            raise ReportError(
                f"{file}: not a flow2 event file (not UTF-8 text: {error}); {_FIX}", file=file
            ) from None
    lines = text.split("\n")
    ends_cleanly = text.endswith("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        is_last = number == len(lines)
        try:
            fields = json.loads(line)
        except ValueError:
            if is_last and not ends_cleanly and number > 1:
                # The writer was killed mid-line: keep what came before.
                yield number, {}, True
                return
            raise ReportError(
                f"{file}, line {number}: not a flow2 event file (this line is not JSON); {_FIX}",
                file=file,
                line=number,
            ) from None
        if (
            not isinstance(fields, dict)
            or fields.get("event") not in ("run", "task")
            or not isinstance(fields.get("run_id"), str)
            or not isinstance(fields.get("time"), int | float)
        ):
            raise ReportError(
                f'{file}, line {number}: not a flow2 event (it needs "event", "run_id" and '
                f'"time" fields); {_FIX}',
                file=file,
                line=number,
            )
        yield number, fields, False


def _choose(file: str, runs: dict[str, list[dict[str, Any]]], wanted: str) -> str:
    """The id of the run ``wanted`` names: ``last``, an id, or a unique prefix."""
    if wanted == "last":
        return next(reversed(runs))
    if wanted in runs:
        return wanted
    matches = [run_id for run_id in runs if run_id.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(runs)
    if not matches:
        raise ReportError(
            f"{file}: no run {wanted!r} in the file; its runs: {listed} (or use 'last')",
            file=file,
        )
    raise ReportError(
        f"{file}: {wanted!r} matches {len(matches)} runs ({', '.join(matches)}); "
        f"give more of the id",
        file=file,
    )
