"""How a task's name becomes the key its result is stored under."""

from __future__ import annotations

import re

# "HTTPResponse" -> "HTTP_Response": an upper-case run followed by a capitalised word.
_ACRONYM_BOUNDARY = re.compile(r"([A-Z]+)([A-Z][a-z])")
# "fetchData" -> "fetch_Data", "v2Build" -> "v2_Build".
_CAMEL_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")
# Every run of characters that are neither letters nor digits.
_SEPARATORS = re.compile(r"[\W_]+")


def snake_case(name: str) -> str:
    """Return the lower_snake_case form of ``name``.

    Lower case, camelCase and acronym boundaries split, every run of other
    characters one ``_``, none leading or trailing::

        >>> snake_case("Fetch HTTPResponse")
        'fetch_http_response'
        >>> snake_case("  Deploy  to   prod!")
        'deploy_to_prod'
    """
    spaced = _CAMEL_BOUNDARY.sub(r"\1_\2", _ACRONYM_BOUNDARY.sub(r"\1_\2", name))
    return _SEPARATORS.sub("_", spaced).strip("_").lower()
