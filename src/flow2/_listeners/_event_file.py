"""Every event as one JSON object per line, for CI annotations and other tools.

Choose the file with ``Runner(events=...)`` or the environment variable
``FLOW2_EVENTS``. Lines are appended, so several runs may share a file;
each line carries its run's id. The fields are documented in
``docs/display.md`` and stay stable: new fields may be added, none is
renamed or removed. ::

    {"event": "task", "run_id": "3f2a9c1b0d4e", "status": "failed", "time": 1764218400.5,
     "task": "Wheel", "key": "wheel", "path": ["Release", "Build", "Wheel"],
     "group": false, "attempt": 1, "duration": 0.12, "failed_count": 1,
     "retry_delay": null, "error": {"type": "ValueError", "message": "no such file"},
     "traceback": "Traceback (your code, most recent call last):\n  File ...", "reason": null,
     "output": "reading setup.cfg\nerror: no [metadata] section"}

Secrets are masked in every line.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, TextIO

from .._engine._events import RunEvent, Status, TaskEvent
from .._engine._exceptions import ConfigurationError

if TYPE_CHECKING:
    from .._engine._events import Event
    from ._secrets import SecretMasker

#: The version of the line format, in the ``format`` field of each run's first line.
FORMAT_VERSION = 1

EventTarget = str | os.PathLike[str] | TextIO


def events_target_from_environment(value: EventTarget | None) -> EventTarget | None:
    """``value``, else the path in ``FLOW2_EVENTS``, checked; None when neither is set.

    :raises flow2.ConfigurationError: the value is neither a path nor a
        writable text stream, or the path cannot be a file (a directory,
        or in a directory that does not exist)
    """
    if value is None:
        raw = os.environ.get("FLOW2_EVENTS")
        if not raw:
            return None
        _check_path(raw, f"environment variable FLOW2_EVENTS={raw!r}")
        return raw
    if isinstance(value, str | os.PathLike):
        _check_path(os.fspath(value), f"events={os.fspath(value)!r}")
        return value
    if callable(getattr(value, "write", None)):
        return value
    raise ConfigurationError(
        f"events={value!r} is neither a file path nor a writable text stream; "
        f"pass a path such as 'events.jsonl' or an open text file"
    )


def _check_path(path: str, source: str) -> None:
    if not path.strip():
        raise ConfigurationError(f"{source} is empty; give a file path such as 'events.jsonl'")
    if os.path.isdir(path):
        raise ConfigurationError(
            f"{source} is a directory; give a file path such as "
            f"{os.path.join(path, 'events.jsonl')!r}"
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigurationError(
            f"{source}: the directory {parent!r} does not exist; create it or choose another path"
        )


def _error(
    error: BaseException | None, masker: SecretMasker | None = None
) -> dict[str, str] | None:
    if error is None:
        return None
    message = str(error)
    return {
        "type": type(error).__name__,
        "message": masker.mask(message) if masker is not None else message,
    }


def _traceback(status: Status, error: BaseException | None) -> str | None:
    """The user's frames of a failure, as the summary prints them (never local variables)."""
    if error is None or (status is not Status.FAILED and status is not Status.RETRYING):
        return None
    from ._summary import user_traceback

    return "\n".join(user_traceback(error)) or None


def task_fields(event: TaskEvent, masker: SecretMasker | None = None) -> dict[str, Any]:
    """The JSON object of one task event, as the event file writes it.

    ``output`` is the last lines the task printed (``event.output``), on the
    events that end a task; None when it printed nothing or no run listener
    captured its output.
    """
    task = event.task
    status = event.status
    return {
        "event": "task",
        "run_id": event.run.id,
        "status": status.value,
        "time": event.time,
        "task": task.name,
        "key": task.key,
        "path": list(event.record.path),
        "group": not task.stores_result,
        "attempt": event.attempt,
        "duration": event.duration,
        "failed_count": event.failed_count,
        "retry_delay": event.retry_delay,
        "error": _error(event.error, masker),
        "traceback": _traceback(status, event.error),
        "reason": event.reason,
        "output": event.output,
    }


def run_fields(event: RunEvent, masker: SecretMasker | None = None) -> dict[str, Any]:
    """The JSON object of a run's start or end, as the event file writes it."""
    fields: dict[str, Any] = {
        "event": "run",
        "run_id": event.run.id,
        "status": event.status.value,
        "time": event.time,
        "root": event.run.root.name,
        "duration": event.duration,
        "error": _error(event.error, masker),
    }
    if event.status is Status.RUNNING:
        fields["format"] = FORMAT_VERSION
    return fields


class EventFile:
    """An event listener writing each event as one JSON line.

    :param target: a file path (opened for appending when the run starts,
        closed when it ends) or a text stream (written and flushed, never closed)
    :param masker: masks secrets in every line
    :raises flow2.ConfigurationError: when the file cannot be opened
    """

    def __init__(self, target: EventTarget, *, masker: SecretMasker | None = None) -> None:
        self.target = target
        self.masker = masker
        self._stream: TextIO | None = None
        self._owns_stream = False
        self._dumps = json.JSONEncoder(ensure_ascii=False, default=repr).encode

    def __repr__(self) -> str:
        where = self.target if isinstance(self.target, str | os.PathLike) else "a stream"
        return f"<EventFile {str(where)!r}>"

    def open(self) -> None:
        """Open the file now, so a path that cannot be written fails before the run.

        :raises flow2.ConfigurationError: when the file cannot be opened
        """
        if isinstance(self.target, str | os.PathLike):
            try:
                self._stream = open(self.target, "a", encoding="utf-8")
            except OSError as error:
                raise ConfigurationError(
                    f"cannot open the events file {os.fspath(self.target)!r}: "
                    f"{error.strerror}; choose a writable path"
                ) from None
            self._owns_stream = True
        else:
            self._stream = self.target

    def __call__(self, event: Event) -> None:
        if self._stream is None:
            self.open()
        assert self._stream is not None
        try:
            masker = self.masker
            if type(event) is TaskEvent:
                line = self._dumps(task_fields(event, masker))
            elif isinstance(event, RunEvent):
                line = self._dumps(run_fields(event, masker))
            else:
                return
            self._stream.write((masker.mask(line) if masker is not None else line) + "\n")
            if isinstance(event, RunEvent) and event.status.is_finished:
                self._close()
        except Exception:
            # The run drops a listener that fails (a full disk): it would
            # never see the run's end, so the file is closed now.
            self._close(quietly=True)
            raise

    def _close(self, *, quietly: bool = False) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            if self._owns_stream:
                stream.close()
            else:
                stream.flush()
        except (OSError, ValueError):
            if not quietly:
                raise
