"""Fingerprints of what a task does: its code, the values it is given, its class.

A reuse key is only as good as what it sees. Each function here returns a
mapping *part → digest*; the part names are what ``flow2 explain`` prints
when a part changed (``code``, ``code: helper normalize()``, ``constant
LIMIT``, ``closure value n``, ``default value mode``, ``partial argument 1``,
``object``, ``code: method run``, ``attribute bucket``). A value whose
behaviour cannot be captured raises :class:`NotFingerprintable` with the
reason: the task is then not reusable, never keyed on a guess.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from ._values import callable_text, canonical

if TYPE_CHECKING:
    from .._engine._task import Task


class NotFingerprintable(Exception):
    """A value or callable whose behaviour cannot be captured in a reuse key.

    :ivar reason: why, in words a person can act on
        ("closure value 'client' is a socket.socket, which has no stable fingerprint")
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def value_digest(value: Any) -> str:
    """A digest equal for equal values in any process.

    :raises NotFingerprintable: the value has no stable text (its only text is an address)
    """
    text = canonical(value)
    if " at 0x" in text:
        raise NotFingerprintable(f"a {type(value).__qualname__} has no stable fingerprint")
    return _digest(text)


def callable_parts(function: Any) -> dict[str, str]:
    """The parts of a callable's behaviour: its code, and what changes it.

    :raises NotFingerprintable: a part of it cannot be fingerprinted
    """
    return {"code": _digest(callable_text(function))}


def task_parts(task: Task) -> dict[str, str]:
    """The parts of a :class:`flow2.Task` subclass's behaviour (empty for flow2's own classes).

    :raises NotFingerprintable: a part of it cannot be fingerprinted
    """
    kind = type(task)
    if kind.__module__.partition(".")[0] == "flow2":
        return {}
    return {"code: method run": _digest(callable_text(kind.run))}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
