"""Secrets never leave the process: the values to hide, and the masking of text.

A value is secret when an environment variable whose name marks it as one
holds it (the name contains TOKEN, SECRET, PASSWORD, PASSWD, API_KEY,
PRIVATE_KEY or CREDENTIAL, in any case), or when it is declared secret
(``secrets:`` in a flow file, ``Runner(secrets=[...])``). Everything that
leaves the process (console, live view, summary, log records, the event
file, per-task log files, the run store, reports) passes through
:meth:`SecretMasker.mask`, which replaces each secret, wherever it appears
in the text, by ``***``.

A secret is also masked in the forms it commonly takes on its way out: its
base64 encoding (standard and URL-safe, with or without padding, alone or
inside a longer encoded text), its URL encoding (``%40`` for ``@``,
``+`` for a space) and the result key a task named after it gets. Output
is masked a whole line at a time, so a secret a task writes in two pieces
is masked once its line is complete; the live view's unfinished line holds
back an ending that could be the start of a secret
(:meth:`SecretMasker.mask_partial`).

What it cannot catch: a secret transformed otherwise (reversed, hashed,
split across lines), and values shorter than :data:`MINIMUM_LENGTH`
characters, which would mask ordinary words.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

from .._engine._events import RunEvent, Status
from .._engine._logger import logger, tasks_logger
from .._engine._naming import snake_case

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

#: Parts of a variable name that mark its value as secret (case-insensitive).
SECRET_NAME_PARTS = (
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "API_KEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
)

#: Shorter values are not masked: "1", "on" or "x" would hide ordinary text.
MINIMUM_LENGTH = 3

#: Shorter parts of an encoded secret are not masked alone: they could be ordinary words.
MINIMUM_ENCODED_CORE = 8

#: What a secret is replaced with.
MASK = "***"


def is_secret_name(name: str) -> bool:
    """True when a variable called ``name`` holds a secret by its name."""
    upper = name.upper()
    return any(part in upper for part in SECRET_NAME_PARTS)


class SecretMasker:
    """Replaces every occurrence of the secret values in text by ``***``.

    :param values: the secret values (empty and very short ones are ignored)
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    @classmethod
    def from_environment(
        cls, extra: Iterable[str] = (), environ: Mapping[str, str] | None = None
    ) -> SecretMasker:
        """A masker for the secret-named environment variables' values, plus ``extra``."""
        environ = os.environ if environ is None else environ
        found = [value for name, value in environ.items() if is_secret_name(name)]
        return cls([*found, *extra])

    def add(self, values: Iterable[str]) -> None:
        """Declare more secret values."""
        fresh = {str(value) for value in values if len(str(value)) >= MINIMUM_LENGTH}
        if fresh - self._values:
            self._values |= fresh
            forms = {form for value in self._values for form in _forms(value)}
            # Longest first, so a secret containing another is masked whole.
            ordered = sorted(forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    @property
    def values(self) -> frozenset[str]:
        """The secret values declared so far."""
        return frozenset(self._values)

    def add_from_mapping(self, variables: Mapping[str, Any]) -> None:
        """Declare secret the string values of ``variables`` whose names mark them as secrets.

        A run's context and a flow's variables go through here: ``api_token=…``
        on the command line is a secret like the environment variable would be.
        """
        found = [
            value
            for name, value in variables.items()
            if isinstance(name, str) and isinstance(value, str) and is_secret_name(name)
        ]
        if found:
            self.add(found)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def mask_partial(self, text: str) -> str:
        """An unfinished line masked, and without an ending that could begin a secret.

        The rest of a secret may come with the next piece of output: until the
        line is complete, what could be its beginning is not shown.
        """
        text = self.mask(text)
        if self._pattern is None or not text:
            return text
        for value in self._values:
            for length in range(min(len(value) - 1, len(text)), 0, -1):
                if text.endswith(value[:length]):
                    text = text[:-length]
                    break
        return text

    def mask_lines(self, lines: Iterable[str]) -> list[str]:
        """Each of ``lines`` masked."""
        if self._pattern is None:
            return list(lines)
        return [self._pattern.sub(MASK, line) for line in lines]

    def mask_variables(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``variables`` in which secret-named keys and secret values are masked."""
        masked: dict[str, Any] = {}
        for name, value in variables.items():
            if is_secret_name(name):
                masked[name] = MASK
            elif isinstance(value, str):
                masked[name] = self.mask(value)
            else:
                masked[name] = value
        return masked


def _forms(value: str) -> set[str]:
    """``value`` and the encodings it is commonly printed in (see the module's docstring)."""
    forms = {value}
    # As a task's result key: "push {{ deploy_key }}" stores under push_<key>.
    key = snake_case(value)
    if len(key) >= MINIMUM_ENCODED_CORE:
        forms.add(key)
    data = value.encode("utf-8", "surrogatepass")
    for quote in (urllib.parse.quote, urllib.parse.quote_plus):
        forms.add(quote(value, safe=""))
    forms.add(urllib.parse.quote(value))
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(data).decode("ascii"))
        forms.add(encode(data).decode("ascii").rstrip("="))
        # Inside a longer encoded text, the secret starts at one of three
        # offsets of a 3-byte group: the characters fully its own are the same
        # whatever surrounds it.
        for offset in (1, 2):
            encoded = encode(b"\0" * offset + data).decode("ascii").rstrip("=")
            start = (offset * 8 + 5) // 6
            core = encoded[start : (offset + len(data)) * 8 // 6]
            if len(core) >= MINIMUM_ENCODED_CORE:
                forms.add(core)
        core = encode(data).decode("ascii")[: len(data) * 8 // 6]
        if len(core) >= MINIMUM_ENCODED_CORE:
            forms.add(core)
    return {form for form in forms if len(form) >= MINIMUM_LENGTH}


class MaskingFilter(logging.Filter):
    """A logging filter masking the secrets in a record's message and traceback.

    The runner puts one on the ``flow2`` and ``flow2.tasks`` loggers while a
    run with secrets lasts, so no handler (the application's own included)
    receives a secret through flow2's records.
    """

    def __init__(self, masker: SecretMasker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.masker:
            return True
        message = record.getMessage()
        masked = self.masker.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.masker.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.masker.mask(record.stack_info)
        return True


class MaskLogRecords:
    """An event listener that masks secrets in flow2's log records while its run lasts.

    It puts a :class:`MaskingFilter` on the ``flow2`` logger (one record per
    event) and on ``flow2.tasks`` (what tasks log) when the run starts, and
    takes it off when the run ends; nothing is added when there are no secrets.

    :param masker: the run's secrets
    """

    #: It acts on the run's begin and end only.
    listens_to: frozenset[Status] = frozenset()

    def __init__(self, masker: SecretMasker) -> None:
        self.masker = masker
        self._filter: MaskingFilter | None = None

    def __call__(self, event: Any) -> None:
        if type(event) is not RunEvent:
            return
        if event.status is Status.RUNNING:
            if self.masker:
                self._filter = MaskingFilter(self.masker)
                logger.addFilter(self._filter)
                tasks_logger.addFilter(self._filter)
        elif self._filter is not None:
            logger.removeFilter(self._filter)
            tasks_logger.removeFilter(self._filter)
            self._filter = None
