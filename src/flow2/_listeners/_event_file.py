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

A task whose work waited for a process or Dask worker also has
``"queued"``: the seconds it waited, which ``duration`` leaves out. A
group's cleanup task also has ``"cleanup"``: ``"on_failure"`` or ``"finally"``.

Secrets are masked in every line.

Lines are written whole (each flush is one ``write`` of whole lines), at
every task's end and at least every 0.2 s, so the file can be followed
while the run goes, and after a crash (even ``kill -9``) every line in it is
valid JSON. A file flow2 creates is readable by its owner only (0600): the
events carry error messages and output, which may hold anything.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING, Any, TextIO

from .._engine._events import RunEvent, Status, TaskEvent
from .._engine._exceptions import ConfigurationError
from ._text import error_message, strip_escapes, user_traceback

if TYPE_CHECKING:
    from .._engine._events import Event
    from ._secrets import SecretMasker

#: The version of the line format, in the ``format`` field of each run's first line.
FORMAT_VERSION = 1

#: Seconds a line may wait before it is written.
FLUSH_INTERVAL = 0.2
#: Characters gathered before they are written whatever the time.
_FLUSH_SIZE = 65536

EventTarget = str | os.PathLike[str] | TextIO


def check_events_target(value: EventTarget, variable: str | None) -> EventTarget:
    """``value`` when it can receive events: a path that can be a file, or a writable stream.

    :param variable: the environment variable the value came from, when it did
    :raises flow2.ConfigurationError: the value is neither a path nor a
        writable text stream, or the path cannot be a file (a directory,
        or in a directory that does not exist)
    """
    if isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        source = f"environment variable {variable}={path!r}" if variable else f"events={path!r}"
        _check_path(path, source)
        return value
    if callable(getattr(value, "write", None)):
        return value
    raise ConfigurationError(
        f"events={value!r} is neither a file path nor a writable text stream; "
        f"pass a path such as 'events.jsonl' or an open text file",
        option="events",
        value=value,
    )


def _check_path(path: str, source: str, *, variable: str | None = None) -> None:
    option = None if variable is not None else "events"
    if not path.strip():
        raise ConfigurationError(
            f"{source} is empty; give a file path such as 'events.jsonl'",
            variable=variable,
            option=option,
            file=path,
        )
    if os.path.isdir(path):
        raise ConfigurationError(
            f"{source} is a directory; give a file path such as "
            f"{os.path.join(path, 'events.jsonl')!r}",
            variable=variable,
            option=option,
            file=path,
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigurationError(
            f"{source}: the directory {parent!r} does not exist; create it or choose another path",
            variable=variable,
            option=option,
            file=path,
        )


def _error(
    error: BaseException | None, masker: SecretMasker | None = None
) -> dict[str, str] | None:
    if error is None:
        return None
    message = error_message(error)
    return {
        "type": type(error).__name__,
        "message": masker.mask(message) if masker is not None else message,
    }


def _traceback(status: Status, error: BaseException | None) -> str | None:
    """The user's frames of a failure, as the summary prints them (never local variables)."""
    if error is None or (status is not Status.FAILED and status is not Status.RETRYING):
        return None
    return "\n".join(user_traceback(error)) or None


def task_fields(event: TaskEvent, masker: SecretMasker | None = None) -> dict[str, Any]:
    """The JSON object of one task event, as the event file writes it.

    ``output`` is the last lines the task wrote (``event.output``), on the
    events that end a task; None when it wrote nothing.
    """
    task = event.task
    status = event.status
    output = event.output
    if output:
        # A file holds the text a task printed, not its colors.
        output = strip_escapes(output)
    if output and masker is not None:
        # Masked before it is encoded: JSON may escape a secret's characters.
        output = masker.mask(output)
    fields: dict[str, Any] = {
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
        "output": output,
    }
    if event.queued:
        # Only for work that waited for a process or Dask worker.
        fields["queued"] = event.queued
    if task.description:
        # Only for tasks that have one: the reports show it.
        description = task.description
        fields["description"] = masker.mask(description) if masker is not None else description
    cleanup = event.record.cleanup
    if cleanup is not None:
        # Only for a group's cleanup task: "on_failure" or "finally".
        fields["cleanup"] = cleanup.value
    return fields


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
        created owner-only, closed when it ends) or a text stream (written
        and flushed, never closed)
    :param masker: masks secrets in every line
    :ivar error: the error that stopped the writing (a full disk), or None
    :raises flow2.ConfigurationError: when the file cannot be opened
    """

    def __init__(self, target: EventTarget, *, masker: SecretMasker | None = None) -> None:
        self.target = target
        self.masker = masker
        self.error: OSError | None = None
        self._stream: TextIO | None = None
        self._descriptor: int | None = None
        self._pending: list[str] = []
        self._pending_size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._dumps = json.JSONEncoder(ensure_ascii=False, default=repr).encode

    @property
    def name(self) -> str:
        """The path, or ``"a stream"``."""
        if isinstance(self.target, str | os.PathLike):
            return os.fspath(self.target)
        return "a stream"

    def __repr__(self) -> str:
        return f"<EventFile {self.name!r}>"

    def open(self) -> None:
        """Open the file now, so a path that cannot be written fails before the run.

        :raises flow2.ConfigurationError: when the file cannot be opened
        """
        if self._descriptor is not None or self._stream is not None:
            return
        if isinstance(self.target, str | os.PathLike):
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            try:
                self._descriptor = os.open(self.target, flags, 0o600)
            except OSError as error:
                raise ConfigurationError(
                    f"cannot open the events file {self.name!r}: "
                    f"{error.strerror or error}; choose a writable path",
                    file=self.name,
                ) from None
        else:
            self._stream = self.target

    def __call__(self, event: Event) -> None:
        if self.error is not None:
            # Writing failed on the timer: the run drops this listener now.
            raise OSError(self.error.errno, self.error.strerror)
        if self._descriptor is None and self._stream is None:
            self.open()
        try:
            masker = self.masker
            if type(event) is TaskEvent:
                line = self._dumps(task_fields(event, masker))
            elif isinstance(event, RunEvent):
                line = self._dumps(run_fields(event, masker))
            else:
                return
            self._add((masker.mask(line) if masker is not None else line) + "\n")
            if type(event) is TaskEvent and not event.status.is_finished:
                self._flush_soon()
            else:
                # A task's end and the run's start and end are written at once.
                self.flush()
                if isinstance(event, RunEvent) and event.status.is_finished:
                    self._close()
        except Exception:
            # The run drops a listener that fails (a full disk): it would
            # never see the run's end, so the file is closed now.
            self._close(quietly=True)
            raise

    def _add(self, line: str) -> None:
        self._pending.append(line)
        self._pending_size += len(line)
        if self._pending_size > _FLUSH_SIZE:
            self.flush()

    def _flush_soon(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._timer = loop.call_later(FLUSH_INTERVAL, self._flush_on_time)

    def _flush_on_time(self) -> None:
        self._timer = None
        try:
            self.flush()
        except OSError:
            self._close(quietly=True)  # reported: self.error

    def flush(self) -> None:
        """Write the lines gathered so far, whole, in one write.

        :raises OSError: when they cannot be written (kept in :attr:`error`)
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        try:
            if self._descriptor is not None:
                data = text.encode("utf-8", "surrogatepass")
                while data:
                    written = os.write(self._descriptor, data)
                    data = data[written:]
            elif self._stream is not None:
                self._stream.write(text)
                self._stream.flush()
        except OSError as error:
            self.error = error
            raise

    def close(self) -> None:
        """Write what is gathered and close the file (a stream is flushed, not closed)."""
        try:
            self.flush()
        finally:
            self._close()

    def _close(self, *, quietly: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        descriptor, self._descriptor = self._descriptor, None
        stream, self._stream = self._stream, None
        self._pending.clear()
        self._pending_size = 0
        try:
            if descriptor is not None:
                os.close(descriptor)
            elif stream is not None:
                stream.flush()
        except (OSError, ValueError):
            if not quietly:
                raise
