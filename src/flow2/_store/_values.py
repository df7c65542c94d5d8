"""What the store keeps of a task: its result, its definition, what it reads.

Results are stored as JSON only when they survive the round trip exactly:
the same value with the same type at every level (a tuple would come back
as a list, an ``int`` subclass as an ``int``, a dict with int keys with str
keys: none of those is stored). Anything else is stored as a pickle only
when the user opted in (``--pickle-results``, ``Runner(pickle_results=True)``),
and a pickle is only ever loaded under the same opt-in: opening a store
runs no code from it.

A task's *definition* is a small mapping, part name → a digest of its
canonical text: its class, and each of its options as the task holds
them (after templating), a shell task's command, environment and working
directory, a callback's qualified name and source. Comparing two of them
says which part changed.
"""

from __future__ import annotations

import enum
import hashlib
import inspect
import json
import math
import pickle
from typing import TYPE_CHECKING, Any

from .._engine._callback import CallbackTask
from .._engine._executor import keyword_only_parameters
from .._listeners._secrets import MASK, is_secret_name

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._engine._task import Task
    from .._listeners._secrets import SecretMasker

JSON = "json"
PICKLE = "pickle"

#: How definition parts read in a reason ("definition changed: command").
PART_WORDS = {
    "class": "class",
    "cmd": "command",
    "env": "environment",
    "cwd": "working directory",
    "callback": "callback",
    "runtime_options": "run-time expressions",
}

_SCALARS = frozenset({type(None), bool, int, float, str})


def is_exact_json(value: Any) -> bool:
    """True when JSON gives ``value`` back equal and with the same type at every level."""
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is list or kind is dict:
            if id(item) in seen:  # a cycle, or one list twice: json.dumps decides
                continue
            seen.add(id(item))
            if kind is list:
                stack.extend(item)
            else:
                for key, member in item.items():
                    if type(key) is not str:
                        return False
                    stack.append(member)
        else:
            return False
    return True


def encode_result(
    value: Any, *, pickle_results: bool, masker: SecretMasker | None
) -> tuple[str | None, str | bytes | None, str | None]:
    """``(format, data, note)``: how ``value`` is stored, or why it is not (``note``)."""
    if value is None:
        return JSON, "null", None
    note = None
    if is_exact_json(value):
        try:
            text = json.dumps(value, ensure_ascii=True)
        except (ValueError, RecursionError):  # a cycle, too deep, an int too long
            note = "the result cannot be written as JSON"
        else:
            if masker and masker.mask(text) != text:
                return None, None, "the result holds a secret value"
            return JSON, text, None
    if not pickle_results:
        return (
            None,
            None,
            note
            or (
                f"the result ({type(value).__name__}) does not survive JSON exactly; "
                f"--pickle-results stores it"
            ),
        )
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        return None, None, f"the result cannot be pickled ({type(error).__name__}: {error})"
    if masker and masker.mask(data.decode("latin-1")) != data.decode("latin-1"):
        return None, None, "the result holds a secret value"
    return PICKLE, data, None


def decode_result(
    result_format: str | None, data: str | bytes | None, *, pickle_results: bool
) -> tuple[bool, Any, str]:
    """``(usable, value, why not)`` for a stored result; never unpickles unless asked."""
    if result_format == JSON and isinstance(data, str):
        try:
            return True, json.loads(data), ""
        except ValueError:
            return False, None, "its stored result is not valid JSON"
    if result_format == PICKLE:
        if not pickle_results:
            return False, None, "its result is stored as a pickle; --pickle-results reuses it"
        try:
            return True, pickle.loads(data if isinstance(data, bytes) else b""), ""
        except Exception as error:
            return False, None, f"its pickled result cannot be loaded ({type(error).__name__})"
    return False, None, "its result was not stored"


def definition_of(task: Task) -> dict[str, str]:
    """The parts of ``task``'s definition: its class, and a digest of each option."""
    return dict(definition_parts(task, {}))


def definition_parts(task: Task, cache: dict[int, tuple[Any, str]]) -> tuple[tuple[str, str], ...]:
    """:func:`definition_of` as pairs; ``cache`` keeps the text of values met before
    (a callback shared by ten thousand tasks is read once)."""
    kind = type(task)
    module = kind.__module__
    if module.partition(".")[0] == "flow2":
        # flow2's public classes say flow2.X once the name has been looked up
        # (see flow2._report_as_flow2): the same class either way.
        module = "flow2"
    parts = [("class", f"{module}.{kind.__qualname__}")]
    # What the task declares defines it, never its attributes as such:
    # see test_an_undeclared_attribute_is_no_part_of_the_fingerprint.
    for name, value in task.definition().items():
        value_type = type(value)
        if value_type in _SCALARS:
            text = repr(value)
        else:
            cached = cache.get(id(value))
            if cached is not None and cached[0] is value:
                text = cached[1]
            else:
                text = canonical(value)
                cache[id(value)] = (value, text)
        # Only digests are kept: an option may hold a secret (a command line
        # rendered with a token), and the store never shows the texts.
        parts.append((name, _digest(text)))
    return tuple(parts)


def digest(text: str) -> str:
    """A short digest of ``text`` (sha256, 24 hex digits)."""
    return _digest(text)


def changed_parts(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """The parts that differ, in words ("command", "option timeout")."""
    names = sorted(set(old) | set(new), key=lambda name: (name != "class", name))
    return [
        PART_WORDS.get(name, f"option {name}") for name in names if old.get(name) != new.get(name)
    ]


def canonical(value: Any, depth: int = 0) -> str:
    """Text that is equal for equal definitions, in any process."""
    kind = type(value)
    if kind in _SCALARS:
        return repr(value)
    if depth > 20:
        return f"{kind.__qualname__}(…)"
    if kind is list or kind is tuple:
        inner = ", ".join(canonical(item, depth + 1) for item in value)
        return f"[{inner}]" if kind is list else f"({inner})"
    if kind is dict:
        items = sorted(
            (canonical(key, depth + 1), canonical(item, depth + 1)) for key, item in value.items()
        )
        return "{" + ", ".join(f"{key}: {item}" for key, item in items) + "}"
    if kind is set or kind is frozenset:
        return "{" + ", ".join(sorted(canonical(item, depth + 1) for item in value)) + "}"
    if isinstance(value, enum.Enum):
        return f"{kind.__qualname__}.{value.name}"
    if inspect.isfunction(value) or inspect.ismethod(value) or inspect.isbuiltin(value):
        return callable_text(value)
    if isinstance(value, float) and not math.isfinite(value):  # pragma: no cover - subclasses
        return repr(float(value))
    text = repr(value)
    if " at 0x" not in text:
        return f"{kind.__module__}.{kind.__qualname__}:{text}"
    state = getattr(value, "__dict__", None)
    if isinstance(state, dict):
        return f"{kind.__module__}.{kind.__qualname__}{canonical(state, depth + 1)}"
    if callable(value):
        return callable_text(value)
    return f"{kind.__module__}.{kind.__qualname__}"


_SOURCES: dict[Any, str] = {}


def callable_text(function: Any) -> str:
    """A callable's qualified name and a digest of its source (or code when no source)."""
    target = getattr(function, "__func__", function)
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"
    code = getattr(target, "__code__", None)
    if code is None:
        call = getattr(type(target), "__call__", None)  # noqa: B004
        code = getattr(call, "__code__", None)
    if code is None:
        return name
    digest = _SOURCES.get(code)
    if digest is None:
        try:
            source = inspect.getsource(code)
        except (OSError, TypeError):
            source = repr((code.co_code, code.co_consts, code.co_names))
        digest = _SOURCES[code] = _digest(source)
    return f"{name} {digest}"


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def declared_reads(task: Task) -> list[str] | None:
    """The context keys ``task`` declares it reads, or None when it may read any.

    A callback's keyword-only parameters, or the names a flow task's ``${{ … }}``
    expressions use (unless one of them is ``context`` itself).
    """
    if isinstance(task, CallbackTask):
        names = [name for name, _ in keyword_only_parameters(task.callback)]
        return sorted(names) if names else None
    runtime = getattr(task, "runtime_names", None)
    if isinstance(runtime, frozenset | set) and runtime and "context" not in runtime:
        return sorted(runtime)
    return None


def encode_variables(
    variables: Mapping[str, Any], masker: SecretMasker | None, salt: str
) -> dict[str, dict[str, Any]]:
    """Each variable as stored: its value (when JSON keeps it exactly and it is no
    secret), ``masked`` or its ``repr``, and a digest to tell whether it changed."""
    encoded: dict[str, dict[str, Any]] = {}
    for name, value in variables.items():
        secret = is_secret_name(name)
        exact = is_exact_json(value)
        text = json.dumps(value, sort_keys=True) if exact else canonical(value)
        if not secret and masker:
            secret = masker.mask(text) != text
        entry: dict[str, Any] = {}
        if secret:
            entry["masked"] = True
            # A slow, salted digest: it tells a changed secret, and does not
            # give the secret away to a dictionary attack.
            entry["digest"] = hashlib.pbkdf2_hmac(
                "sha256", text.encode("utf-8", "surrogatepass"), salt.encode(), 20_000
            ).hex()
        else:
            entry["digest"] = _digest(text)
            if exact:
                entry["value"] = value
            else:
                entry["repr"] = text
        encoded[name] = entry
    return encoded


def variable_digest(value: Any, salt: str, *, secret: bool) -> str:
    """The digest :func:`encode_variables` stores for ``value``."""
    text = json.dumps(value, sort_keys=True) if is_exact_json(value) else canonical(value)
    if secret:
        return hashlib.pbkdf2_hmac(
            "sha256", text.encode("utf-8", "surrogatepass"), salt.encode(), 20_000
        ).hex()
    return _digest(text)


def shown_variables(encoded: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The variables as a person sees them: values, ``***`` for secrets."""
    shown: dict[str, Any] = {}
    for name, entry in encoded.items():
        if entry.get("masked"):
            shown[name] = MASK
        elif "value" in entry:
            shown[name] = entry["value"]
        else:
            shown[name] = entry.get("repr")
    return shown
