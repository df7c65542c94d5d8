"""What every report does first: get the record, mask its secrets, name its outcome."""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import TYPE_CHECKING

from .._listeners import _text
from .._listeners._secrets import SecretMasker
from .._listeners._text import format_minutes
from ._model import RunRecord

if TYPE_CHECKING:
    from ._model import ErrorRecord

ReportSource = RunRecord | str | os.PathLike[str]

#: How a run's status reads in a report's verdict: the summary's words, and
#: what only a record can say (a run whose record stops before its end).
VERDICTS = {
    **{status.value: word for status, word in _text.VERDICTS.items()},
    "interrupted": "was interrupted (its record stops before the end)",
}

#: The status marks of the live view, reused in the text reports (``report.js``
#: keeps a copy of them for the HTML report's tree).
MARKS = {status.value: mark for status, mark in _text.MARKS.items()}


def record_of(source: ReportSource, run: str = "last") -> RunRecord:
    """``source`` itself when it is a record, else the run ``run`` of the event file it names.

    :raises flow2.ReportError: the event file cannot be read
    """
    if isinstance(source, RunRecord):
        return source
    from ._reading import read_events

    return read_events(source, run)


def masked(run: RunRecord, masker: SecretMasker | None = None) -> RunRecord:
    """A copy of ``run`` whose variables and texts carry no secret value and draw as they read.

    Secret-named variables become ``***``, and every value of a secret-named
    environment variable (and of ``masker``) is masked wherever it appears
    (names, descriptions, errors, tracebacks, output), in case the source was written
    without masking. Names, paths and reasons show their control characters
    as text (:func:`flow2._listeners._text.visible`); output loses its
    terminal escape sequences.
    """
    masker = SecretMasker(masker.values) if masker is not None else SecretMasker.from_environment()
    # The values of secret-named variables too: the output of a run collected
    # in memory is not masked yet.
    masker.add_from_mapping(run.variables)
    mask, visible = masker.mask, _text.visible
    result = copy.copy(run)
    result.variables = masker.mask_variables(run.variables)
    result.name = mask(visible(run.name))
    result.flow = mask(run.flow) if run.flow else run.flow

    def clean(error: ErrorRecord | None) -> ErrorRecord | None:
        if error is None:
            return None
        return dataclasses.replace(
            error, message=mask(error.message), traceback=mask(error.traceback)
        )

    result.error = clean(run.error)
    result.tasks = []
    for task in run.tasks:
        task = copy.copy(task)
        task.name = mask(visible(task.name))
        task.key = mask(visible(task.key))
        task.path = tuple(mask(visible(part)) for part in task.path)
        task.error = clean(task.error)
        task.output = mask(_text.strip_escapes(task.output))
        task.reason = mask(visible(task.reason)) if task.reason else task.reason
        # A run collected in memory keeps its descriptions as written.
        task.description = mask(task.description)
        task.attempts = [
            dataclasses.replace(attempt, error=clean(attempt.error)) for attempt in task.attempts
        ]
        result.tasks.append(task)
    return result


def format_seconds(seconds: float | None) -> str:
    """``0.042s``, ``3.2s``, ``2m05s``, ``1h02m``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds:.3f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return format_minutes(seconds)


def format_path(path: tuple[str, ...]) -> str:
    """A task's place in the tree: ``Release › Build › Wheel``."""
    return " › ".join(path)
