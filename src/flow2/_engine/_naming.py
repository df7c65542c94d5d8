"""How a task's name becomes the key its result is stored under."""

from __future__ import annotations

import re

# Where an underscore goes, found by lookarounds only: each position is
# looked at once, so the conversion stays linear even on a long upper-case
# name (a ``([A-Z]+)([A-Z][a-z])`` pattern backtracks quadratically there;
# see benchmarks/bench_fuzz.py and tests/test_fuzz.py).
_BOUNDARY = re.compile(
    # "HTTPResponse" -> "HTTP_Response": an upper-case run before a capitalised word.
    r"(?<=[A-Z])(?=[A-Z][a-z])"
    # "fetchData" -> "fetch_Data", "v2Build" -> "v2_Build".
    r"|(?<=[a-z0-9])(?=[A-Z])"
)
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
    return _SEPARATORS.sub("_", _BOUNDARY.sub("_", name)).strip("_").lower()
