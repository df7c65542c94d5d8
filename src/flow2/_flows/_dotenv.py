"""Reading ``.env`` files: the ``dotenv:`` key of a flow and of its groups.

The format is the one docker compose, go-task and python-dotenv read, kept
small: one ``NAME=value`` a line, ``#`` comments and blank lines ignored, an
optional ``export`` before the name. A value may be quoted: in single quotes
it is taken as written; in double quotes ``\\n``, ``\\t``, ``\\"`` and
``\\\\`` are escapes; either quote may span lines (a private key). An
unquoted value ends at `` #`` (a comment) and loses its surrounding spaces.
Nothing is expanded: ``$HOME`` stays the text ``$HOME``.

A small parser rather than python-dotenv: flow2's core has no dependency,
and the format is a few rules. An error names the file and the line, never
the value: an environment file holds secrets more often than not.
"""

from __future__ import annotations

import re

#: A name, after an optional ``export``, and the ``=``.
_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


class DotenvError(ValueError):
    """A line of an environment file that cannot be read; the message says which and why.

    :ivar line: the line (1-based) of the file
    """

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def parse_dotenv(text: str) -> dict[str, str]:
    """The variables of an environment file's ``text``, in file order (a later one wins).

    >>> parse_dotenv("# settings\\nexport A=1\\nB='two words'\\nC=\\"x\\\\ny\\" # note\\n")
    {'A': '1', 'B': 'two words', 'C': 'x\\ny'}

    :raises DotenvError: on a line that is not ``NAME=value``, or a quote never closed
    """
    values: dict[str, str] = {}
    position = 0
    line = 1
    while position < len(text):
        end = text.find("\n", position)
        end = len(text) if end < 0 else end
        stripped = text[position:end].strip()
        if not stripped or stripped.startswith("#"):
            position, line = end + 1, line + 1
            continue
        found = _ASSIGNMENT.match(text, position, end)
        if found is None:
            raise DotenvError(
                f"line {line} is not NAME=value (nor a # comment); names are letters, "
                f"digits, _ and .",
                line,
            )
        start_line = line
        value, position = _value(text, found.end(), start_line)
        line = start_line + text.count("\n", found.end(), position)
        values[found.group(1)] = value
        # The rest of the line after a quoted value: nothing, or a comment.
        end = text.find("\n", position)
        end = len(text) if end < 0 else end
        rest = text[position:end].strip()
        if rest and not rest.startswith("#"):
            raise DotenvError(
                f"line {line}: text after the closing quote; put a comment after ' #'", line
            )
        position, line = end + 1, line + 1
    return values


def _value(text: str, start: int, line: int) -> tuple[str, int]:
    """The value starting at ``start`` and where it ends (after its closing quote)."""
    quote = text[start : start + 1]
    if quote not in ("'", '"'):
        end = text.find("\n", start)
        raw = text[start : len(text) if end < 0 else end]
        comment = re.search(r"\s#", raw)
        if comment is not None:
            raw = raw[: comment.start()]
        return raw.strip(), start + len(raw)
    pieces: list[str] = []
    position = start + 1
    while position < len(text):
        character = text[position]
        if character == quote:
            return "".join(pieces), position + 1
        if quote == '"' and character == "\\" and position + 1 < len(text):
            following = text[position + 1]
            pieces.append(_ESCAPES.get(following, "\\" + following))
            position += 2
            continue
        pieces.append(character)
        position += 1
    raise DotenvError(f"line {line}: the value's {quote} quote is never closed", line)
