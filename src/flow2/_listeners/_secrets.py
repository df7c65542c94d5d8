"""Secrets never leave the process: the values to hide, and the masking of text.

A value is secret when an environment variable whose name marks it as one
holds it (the name contains TOKEN, SECRET, PASSWORD, PASSWD, API_KEY,
PRIVATE_KEY or CREDENTIAL, in any case), or when it is declared secret
(``secrets:`` in a flow file, ``Runner(secrets=[...])``). Everything that
leaves the process (console, live view, summary, log records, the event
file, per-task log files, the run store, reports) passes through
:meth:`SecretMasker.mask`, which replaces each secret, wherever it appears
in the text, by ``***``.

What it cannot catch: a secret transformed before it is printed (base64,
URL-encoding, split across lines, reversed), and values shorter than
:data:`MINIMUM_LENGTH` characters, which would mask ordinary words.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

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
            # Longest first, so a secret containing another is masked whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

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
