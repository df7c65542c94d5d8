"""Command-line variables: ``key=value`` text into template variables.

A value keeps its text. It becomes a number or a boolean only when that
number or boolean reads back as exactly the same text, so nothing typed on
a command line is silently rewritten::

    n=3        -> 3             ratio=0.5  -> 0.5         debug=true -> True
    version=1.10 -> "1.10"      mode=0755  -> "0755"      size=1e3   -> "1e3"
    answer=on  -> "on"          answer=no  -> "no"        when=2020-01-01 -> "2020-01-01"

A value starting with ``[`` or ``{`` is a YAML flow list or mapping whose
items follow the same rule (``tags=[a, 1.10, 3]`` -> ``["a", "1.10", 3]``);
quoted items stay strings; tags are ignored and aliases refused.

An error names the variable, never its value: the value may be a secret
(``api_token=[…``), and the user has it on their own command line.
"""

from __future__ import annotations

import math
from typing import Any

#: Deepest list or mapping a command-line value may nest.
MAX_DEPTH = 50
#: Most items a command-line list or mapping may hold, all levels together.
MAX_ITEMS = 10_000


class VariableError(ValueError):
    """A ``key=value`` that cannot be read; the message says why and the fix."""


def parse_assignment(assignment: str) -> tuple[str, Any]:
    """``"n=3"`` -> ``("n", 3)``, following the rule of this module.

    :raises VariableError: on a missing ``=``, a bad name or an unreadable list or mapping
    """
    key, equals, raw = assignment.partition("=")
    if not equals or not key.isidentifier():
        shown = f"{key[:40]!r}=…" if equals else repr(assignment[:40])
        raise VariableError(
            f"{shown} is not a variable assignment; write name=value, "
            f"e.g. version=1.2.0 (names are letters, digits and _)"
        )
    if raw[:1] in ("[", "{"):
        return key, _parse_collection(key, raw)
    return key, scalar_value(raw)


def scalar_value(text: str) -> Any:
    """``text`` as an int, float or bool when it reads back as the same text, else ``text``.

    >>> scalar_value("3"), scalar_value("0.5"), scalar_value("true")
    (3, 0.5, True)
    >>> scalar_value("1.10"), scalar_value("0755"), scalar_value("on")
    ('1.10', '0755', 'on')
    """
    if text == "true":
        return True
    if text == "false":
        return False
    # Digits only, at most 4300 of them (Python's own limit for int text).
    if 0 < len(text) <= 4300 and text.lstrip("-").isdigit() and text.isascii():
        number = int(text)
        return number if str(number) == text else text
    if len(text) <= 40 and text.isascii() and any(character.isdigit() for character in text):
        try:
            value = float(text)
        except ValueError:
            return text
        return value if math.isfinite(value) and repr(value) == text else text
    return text


def _parse_collection(key: str, raw: str) -> Any:
    import yaml

    if _nesting(raw) > MAX_DEPTH:
        # Checked on the text first: YAML's parser needs seconds to fail on
        # thousands of "[" (tests/test_fuzz.py).
        raise _too_big(key, raw)
    try:
        # BaseLoader resolves no implicit types; the nodes' styles tell
        # plain scalars from quoted ones.
        node = yaml.compose(raw, Loader=yaml.BaseLoader)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise VariableError(
            f"{key}=…: a value starting with {raw[0]!r} is read as YAML "
            f"(a list or mapping) and {problem}; quote it for the shell and YAML to pass "
            f"text, e.g. {key}='\"…\"'"
        ) from None
    return _value_of(node, key, raw, set(), 0)


def _nesting(text: str) -> int:
    """How deep the brackets of ``text`` nest, quotes roughly skipped."""
    deepest = depth = 0
    quote = ""
    for character in text:
        if quote:
            if character == quote:
                quote = ""
        elif character in "\"'":
            quote = character
        elif character in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in "]}":
            depth -= 1
    return deepest


def _value_of(node: Any, key: str, raw: str, seen: set[int], depth: int) -> Any:
    import yaml

    if node is None:
        return ""
    if depth > MAX_DEPTH or len(seen) >= MAX_ITEMS:
        raise _too_big(key, raw)
    if id(node) in seen:
        raise VariableError(
            f"{key}=…: aliases (*name) are not read in command-line values; write the items out"
        )
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        return scalar_value(node.value) if node.style is None else node.value
    if isinstance(node, yaml.SequenceNode):
        return [_value_of(item, key, raw, seen, depth + 1) for item in node.value]
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        item_key = _value_of(key_node, key, raw, seen, depth + 1)
        if not isinstance(item_key, str | int | float | bool):
            raise VariableError(
                f"{key}=…: a mapping's keys must be plain values, not lists or mappings"
            )
        mapping[item_key] = _value_of(value_node, key, raw, seen, depth + 1)
    return mapping


def _too_big(key: str, raw: str) -> VariableError:
    return VariableError(
        f"{key}=…: the value nests deeper than {MAX_DEPTH} levels or holds more "
        f"than {MAX_ITEMS} items; pass large data in a file and read it from a task"
    )
