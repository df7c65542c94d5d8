"""Fingerprints: each part of a callable, a task or a value changes when, and only
when, the thing it stands for changes; what cannot be captured says why."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flow2
from flow2._store._fingerprint import (
    NotFingerprintable,
    callable_parts,
    task_parts,
    value_digest,
)


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Any]:
    """Write a module into a folder of its own and import it under ``name``;
    the same name twice (from two folders) stands for one module edited."""
    loaded: list[str] = []
    versions = iter(range(1000))

    def load_module(name: str, source: str) -> ModuleType:
        folder = tmp_path / f"version{next(versions)}"
        folder.mkdir()
        path = folder / f"{name}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loaded.append(name)
        spec.loader.exec_module(module)
        return module

    yield load_module
    for name in loaded:
        sys.modules.pop(name, None)


def changed(old: dict[str, str], new: dict[str, str]) -> set[str]:
    """The parts that differ between two fingerprints."""
    return {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}


# -- callables ------------------------------------------------------------------


def test_partial_arguments_are_parts_of_their_own(load: Any) -> None:
    module = load(
        "fp_partial",
        """
        def work(context, bucket, *, mode):
            return bucket, mode
        """,
    )
    base = callable_parts(functools.partial(module.work, "a", mode="fast"))
    assert {"code", "partial argument 1", "partial keyword mode"} <= set(base)
    same = callable_parts(functools.partial(module.work, "a", mode="fast"))
    assert changed(base, same) == set()
    other_argument = callable_parts(functools.partial(module.work, "b", mode="fast"))
    assert changed(base, other_argument) == {"partial argument 1"}
    other_keyword = callable_parts(functools.partial(module.work, "a", mode="slow"))
    assert changed(base, other_keyword) == {"partial keyword mode"}


def test_a_bound_methods_object_state_is_the_part_object(load: Any) -> None:
    module = load(
        "fp_bound",
        """
        class Uploader:
            def __init__(self, bucket):
                self.bucket = bucket

            def upload(self, context):
                return self.bucket
        """,
    )
    base = callable_parts(module.Uploader("a").upload)
    assert {"code", "object", "code: method upload", "code: method __init__"} <= set(base)
    assert changed(base, callable_parts(module.Uploader("a").upload)) == set()
    assert changed(base, callable_parts(module.Uploader("b").upload)) == {"object"}


def test_a_callable_object_is_its_class_and_its_state(load: Any) -> None:
    module = load(
        "fp_callable_object",
        """
        class Step:
            def __init__(self, size):
                self.size = size

            def __call__(self, context):
                return self.size
        """,
    )
    base = callable_parts(module.Step(1))
    assert "code: method __call__" in base
    assert changed(base, callable_parts(module.Step(2))) == {"object"}


def test_a_closure_value_is_a_part(load: Any) -> None:
    module = load(
        "fp_closure",
        """
        def make(limit):
            def check(context):
                return context["count"] < limit
            return check
        """,
    )
    base = callable_parts(module.make(3))
    assert changed(base, callable_parts(module.make(3))) == set()
    assert changed(base, callable_parts(module.make(4))) == {"closure value limit"}


def test_a_function_in_a_closure_is_followed_like_a_helper(load: Any) -> None:
    first = load(
        "fp_closure_function",
        """
        def normalize(text):
            return text.lower()

        def make(transform):
            def work(context):
                return transform(context["name"])
            return work

        work = make(normalize)
        """,
    )
    second = load(
        "fp_closure_function",
        """
        def normalize(text):
            return text.upper()

        def make(transform):
            def work(context):
                return transform(context["name"])
            return work

        work = make(normalize)
        """,
    )
    assert changed(callable_parts(first.work), callable_parts(second.work)) == {
        "closure value transform"
    }


def test_a_lambda_default_is_a_part(load: Any) -> None:
    module = load(
        "fp_lambda",
        """
        def make(mode):
            return lambda context, mode=mode: mode
        """,
    )
    base = callable_parts(module.make("fast"))
    assert changed(base, callable_parts(module.make("slow"))) == {"default value mode"}
    keyword = load(
        "fp_lambda_keyword",
        """
        def make(mode):
            def work(context, *, mode=mode):
                return mode
            return work
        """,
    )
    assert changed(callable_parts(keyword.make("fast")), callable_parts(keyword.make("slow"))) == {
        "default value mode"
    }


DECORATED = """
import functools

def logged(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)
    return wrapper

@logged
def build(context):
    return {body}
"""


def test_a_decorated_functions_body_is_its_code(load: Any) -> None:
    first = callable_parts(load("fp_decorated", DECORATED.format(body="1")).build)
    second = callable_parts(load("fp_decorated", DECORATED.format(body="2")).build)
    assert "code: decorator logged" in first
    assert changed(first, second) == {"code"}
    wrapper_changed = DECORATED.replace("return function(", "return 0 or function(")
    third = callable_parts(load("fp_decorated", wrapper_changed.format(body="1")).build)
    assert changed(first, third) == {"code: decorator logged"}


def test_a_library_decorator_is_named_and_the_body_is_the_code(load: Any) -> None:
    source = """
    import functools

    @functools.lru_cache
    def build(context):
        return {body}
    """
    first = callable_parts(load("fp_cached", source.format(body="1")).build)
    second = callable_parts(load("fp_cached", source.format(body="2")).build)
    assert any(name.startswith("code: decorator") for name in first)
    assert changed(first, second) == {"code"}


HELPERS = """
SUFFIX = "{suffix}"

def _clean(text):
    return text.strip()

def normalize(text):
    return _clean(text).{case}() + SUFFIX
"""

CALLBACK = """
import fp_helpers
from fp_helpers import normalize

def by_attribute(context):
    return fp_helpers.normalize(context["name"])

def by_name(context):
    return normalize(context["name"])

def by_local_import(context):
    import fp_helpers as helpers

    return helpers.normalize(context["name"])

def by_local_from_import(context):
    from fp_helpers import normalize

    return normalize(context["name"])
"""


def test_a_helpers_code_in_a_user_module_is_a_part_followed_transitively(load: Any) -> None:
    def parts(case: str, suffix: str = "") -> tuple[dict[str, str], dict[str, str]]:
        load("fp_helpers", HELPERS.format(case=case, suffix=suffix))
        module = load("fp_callback", CALLBACK)
        return callable_parts(module.by_attribute), callable_parts(module.by_name)

    def imported_inside(case: str) -> tuple[dict[str, str], dict[str, str]]:
        load("fp_helpers", HELPERS.format(case=case, suffix=""))
        module = load("fp_callback", CALLBACK)
        return callable_parts(module.by_local_import), callable_parts(module.by_local_from_import)

    by_attribute, by_name = parts("lower")
    assert {"code: helper fp_helpers.normalize()", "code: helper fp_helpers._clean()"} <= set(
        by_attribute
    )
    assert "constant fp_helpers.SUFFIX" in by_attribute
    assert "code: helper normalize()" in by_name
    again_attribute, again_name = parts("lower")
    assert changed(by_attribute, again_attribute) == set() == changed(by_name, again_name)
    upper_attribute, upper_name = parts("upper")
    assert changed(by_attribute, upper_attribute) == {"code: helper fp_helpers.normalize()"}
    assert changed(by_name, upper_name) == {"code: helper normalize()"}
    suffix_attribute, _ = parts("lower", suffix="!")
    assert changed(by_attribute, suffix_attribute) == {"constant fp_helpers.SUFFIX"}
    local_lower, from_lower = imported_inside("lower")
    local_upper, from_upper = imported_inside("upper")
    assert changed(local_lower, local_upper) == {"code: helper fp_helpers.normalize()"}
    assert changed(from_lower, from_upper) == {"code: helper fp_helpers.normalize()"}


def test_a_module_constant_is_a_part(load: Any) -> None:
    source = """
    LIMIT = {limit}
    NAMES = {{"a", "b"}}

    def check(context):
        return len(NAMES) < LIMIT
    """
    first = callable_parts(load("fp_constant", source.format(limit=3)).check)
    second = callable_parts(load("fp_constant", source.format(limit=4)).check)
    assert {"constant LIMIT", "constant NAMES"} <= set(first)
    assert changed(first, second) == {"constant LIMIT"}


def test_a_helper_class_is_followed(load: Any) -> None:
    source = """
    class Parser:
        def parse(self, text):
            return text.split({separator!r})

    def work(context):
        return Parser().parse(context["line"])
    """
    first = callable_parts(load("fp_class_helper", source.format(separator=",")).work)
    second = callable_parts(load("fp_class_helper", source.format(separator=";")).work)
    assert changed(first, second) == {"code: helper Parser"}


def test_recursion_and_cycles_end(load: Any) -> None:
    module = load(
        "fp_recursion",
        """
        def even(n):
            return n == 0 or odd(n - 1)

        def odd(n):
            return n != 0 and even(n - 1)

        def factorial(n):
            return 1 if n < 2 else n * factorial(n - 1)

        REGISTRY = []

        def registered(context):
            return REGISTRY

        REGISTRY.append(registered)
        """,
    )
    assert "code: helper odd()" in callable_parts(module.even)
    assert "code: helper factorial()" not in callable_parts(module.factorial)
    assert "constant REGISTRY" in callable_parts(module.registered)


def test_library_state_and_the_environment_are_no_constants(
    load: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load(
        "fp_environment",
        """
        import os
        import sys
        from os import environ

        def read(context):
            return os.environ.get("MODE"), environ.get("LEVEL"), sys.platform
        """,
    )
    monkeypatch.setenv("MODE", "a")
    before = callable_parts(module.read)
    monkeypatch.setenv("MODE", "b")
    monkeypatch.setenv("SOMETHING_ELSE", "x")
    assert callable_parts(module.read) == before
    assert not any(name.startswith("constant") for name in before)


def test_builtins_and_library_functions_are_named_not_read() -> None:
    assert set(callable_parts(len)) == {"code"}
    assert callable_parts(math.sqrt) == callable_parts(math.sqrt)
    assert callable_parts(math.sqrt) != callable_parts(math.floor)
    assert set(callable_parts(json.dumps)) == {"code"}
    items: list[int] = [1]
    assert callable_parts(items.append)["object"] != callable_parts([2].append)["object"]


def test_a_third_party_library_is_a_part_by_its_version(load: Any) -> None:
    module = load(
        "fp_library",
        """
        import pytest
        import yaml
        from yaml import dump

        def read(context):
            return yaml.safe_load(context["text"])

        def write(context):
            return dump(context["data"])

        def check(context):
            return pytest.approx(context["value"])
        """,
    )
    read, write, check = (callable_parts(f) for f in (module.read, module.write, module.check))
    # one part per distribution, by its version, whichever of its functions is used
    assert read["library yaml"] == write["library yaml"] != check["library pytest"]


def test_identical_callables_in_two_processes_have_equal_parts(tmp_path: Path) -> None:
    (tmp_path / "fp_processes.py").write_text(
        textwrap.dedent(
            """
            import abc
            import dataclasses
            import enum
            import functools
            import typing

            import flow2

            NAMES = frozenset({"alpha", "beta", "gamma", "delta"})
            TABLE = {"x": {1, 2, 3}, "y": ("a", b"b", 1.5, None)}

            class Base(abc.ABC):
                @abc.abstractmethod
                def go(self): ...

            class Impl(Base):
                def go(self):
                    return self.heavy

                @functools.cached_property
                def heavy(self):
                    return 2

            class Color(enum.Enum):
                RED = "red"
                BLUE = "blue"

            @dataclasses.dataclass
            class Point:
                x: int = 0
                tags: frozenset = frozenset({"p", "q"})

            class Pair(typing.NamedTuple):
                a: int
                b: str

            def helper(name):
                return name in {"alpha", "beta"} or name in NAMES

            def work(context, *, limit=3):
                kinds = (Impl().go(), Color.RED, Point(), Pair(1, "b"))
                return [helper(name) for name in TABLE] and limit and kinds

            class Upload(flow2.Task):
                def __init__(self, name, tags):
                    super().__init__(name)
                    self.tags = tags

                async def run(self, context):
                    return helper(self.name)
            """
        ),
        encoding="utf-8",
    )
    script = textwrap.dedent(
        """
        import functools, json, sys
        sys.path.insert(0, sys.argv[1])
        import fp_processes as m
        from flow2._store._fingerprint import callable_parts, task_parts, value_digest
        print(json.dumps([
            callable_parts(functools.partial(m.work, {"b", "a", "c"}, limit=4)),
            task_parts(m.Upload("Upload", {"x", "y", "z"})),
            value_digest({"s": {"p", "q", "r"}, frozenset({"k", "l"}): [m.helper]}),
        ]))
        """
    )
    outputs = []
    for seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            capture_output=True,
            text=True,
            env=environment,
            check=True,
            timeout=60,
        )
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1]
    assert "code: helper helper()" in outputs[0][0] and "attribute tags" in outputs[0][1]
    assert {"code: helper Impl", "code: helper Color", "code: helper Point"} <= set(outputs[0][0])


def test_what_cannot_be_fingerprinted_says_why(load: Any) -> None:
    connection = socket.socket()
    try:
        module = load(
            "fp_unstable",
            """
            import threading

            LOCK = threading.Lock()

            def make(conn):
                def send(context):
                    return conn.send(b"x")
                return send

            def guarded(context):
                with LOCK:
                    return 1
            """,
        )
        with pytest.raises(NotFingerprintable) as closure:
            callable_parts(module.make(connection))
        assert closure.value.reason == (
            "closure value 'conn' (socket.socket) has no stable fingerprint"
        )
        assert closure.value.kind == "socket.socket"
        with pytest.raises(NotFingerprintable, match="constant 'LOCK' .*_thread.lock"):
            callable_parts(module.guarded)
        with pytest.raises(NotFingerprintable, match="partial argument 1 holds a socket.socket"):
            callable_parts(functools.partial(module.make, [connection]))
        holder = load(
            "fp_unstable_object",
            """
            class Client:
                def __init__(self, connection):
                    self.connection = connection

                def send(self, context):
                    return self.connection
            """,
        )
        with pytest.raises(NotFingerprintable, match="^object holds a socket.socket, which"):
            callable_parts(holder.Client(connection).send)
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda: threading.Lock(), "_thread.lock"),
        (lambda: (n for n in range(3)), "builtins.generator"),
        (lambda: open(os.devnull, "rb"), "_io.BufferedReader"),
        (lambda: threading.Event(), "threading.Event"),
    ],
)
def test_values_without_a_stable_state_are_not_fingerprintable(make: Any, kind: str) -> None:
    value = make()
    try:
        with pytest.raises(NotFingerprintable, match=f"a {kind} has no stable fingerprint"):
            value_digest(value)
        with pytest.raises(NotFingerprintable, match=f"holds a {kind}"):
            value_digest({"nested": [value]})
    finally:
        if hasattr(value, "close"):
            value.close()


# -- Task subclasses ----------------------------------------------------------

TASK = """
import flow2

def sign(data):
    return data + "{signature}"

class Base(flow2.Task):
    def describe(self):
        return "base"

class Upload(Base):
    retries_note = "{note}"

    def __init__(self, name, bucket, **options):
        super().__init__(name, **options)
        self.bucket = bucket

    async def run(self, context):
        return sign(self.bucket) + "{body}"
"""


def test_a_task_subclass_has_its_methods_and_attributes(load: Any) -> None:
    def parts(bucket: str = "a", **edits: str) -> dict[str, str]:
        text = TASK.format(**{"signature": "!", "note": "n", "body": "", **edits})
        module = load("fp_task", text)
        return task_parts(module.Upload("Upload", bucket, timeout=5))

    base = parts()
    assert {
        "code: method run",
        "code: method __init__",
        "code: method describe",
        "attribute bucket",
        "class attribute retries_note",
        "code: helper sign()",
    } <= set(base)
    assert not {"attribute name", "attribute key", "attribute timeout"} & set(base)
    assert changed(base, parts()) == set()
    assert changed(base, parts(body="?")) == {"code: method run"}
    assert changed(base, parts(bucket="b")) == {"attribute bucket"}
    assert changed(base, parts(signature="?")) == {"code: helper sign()"}
    assert changed(base, parts(note="m")) == {"class attribute retries_note"}


def test_flow2s_own_tasks_have_no_parts() -> None:
    def work(context: Any) -> None:
        return None

    assert task_parts(flow2.CallbackTask("Work", work)) == {}
    assert task_parts(flow2.ShellTask("Test", "true")) == {}
    assert task_parts(flow2.SerialTaskGroup("All", flow2.ShellTask("Test", "true"))) == {}


def test_a_task_attribute_that_cannot_be_fingerprinted_says_which(load: Any) -> None:
    module = load("fp_task_lock", TASK.format(signature="", note="", body=""))
    task = module.Upload("Upload", "a")
    task.guard = threading.Lock()
    with pytest.raises(NotFingerprintable, match="attribute 'guard' \\(_thread.lock\\)"):
        task_parts(task)


# -- values ------------------------------------------------------------------------


def test_types_tell_values_apart() -> None:
    values: list[Any] = [
        None, True, False, 0, 1, 1.0, 0.0, -0.0, math.nan, math.inf, -math.inf, "1", b"1",
        "", b"", [], (), {}, set(), frozenset(), [1], (1,), {1}, frozenset({1}), {"1": 1},
        {1: 1}, {1.0: 1}, {True: 1}, [[1]], [1, [2]], [[1], 2], ["a", "b"], ["ab"], 10**5000,
        1j, bytearray(b"1"), range(3), Path("a"), Path("b"),
    ]  # fmt: skip
    digests = [value_digest(value) for value in values]
    assert len(set(digests)) == len(values)


def test_equal_values_give_equal_digests_whatever_their_order() -> None:
    assert value_digest({"a": 1, "b": 2}) == value_digest({"b": 2, "a": 1})
    assert value_digest({3, 1, 2}) == value_digest({2, 3, 1})
    assert value_digest([{"x"}, {"y": (1, 2)}]) == value_digest(
        copy.deepcopy([{"x"}, {"y": (1, 2)}])
    )


def test_nesting_of_any_depth_is_seen() -> None:
    def nested(depth: int, leaf: Any) -> Any:
        value: Any = leaf
        for _ in range(depth):
            value = [value]
        return value

    assert value_digest(nested(1000, 1)) != value_digest(nested(1000, 2))
    assert value_digest(nested(1000, 1)) != value_digest(nested(999, 1))
    assert value_digest(nested(1000, 1)) == value_digest(nested(1000, 1))
    deep_dict: Any = 1
    for _ in range(50_000):
        deep_dict = {"k": deep_dict}
    assert value_digest(deep_dict) != value_digest({"k": deep_dict})


def test_cycles_are_back_references() -> None:
    first: list[Any] = [1]
    first.append(first)
    second: list[Any] = [2]
    second.append(second)
    shared = [1]
    assert value_digest(first) != value_digest(second)
    assert value_digest(first) == value_digest(first)
    # the same list twice is no cycle: it reads as two equal lists
    assert value_digest([shared, shared]) == value_digest([[1], [1]])


def test_objects_enums_dataclasses_and_library_values() -> None:
    import dataclasses
    import datetime
    import decimal
    import enum
    import uuid

    class Color(enum.Enum):
        RED = 1
        BLUE = 2

    @dataclasses.dataclass
    class Point:
        x: int
        y: list[int]

    class Slotted:
        __slots__ = ("a",)

        def __init__(self, a: int) -> None:
            self.a = a

    assert value_digest(Color.RED) != value_digest(Color.BLUE)
    assert value_digest(Point(1, [2])) == value_digest(Point(1, [2]))
    assert value_digest(Point(1, [2])) != value_digest(Point(1, [3]))
    assert value_digest(Slotted(1)) != value_digest(Slotted(2))
    assert value_digest(decimal.Decimal("1.5")) != value_digest(decimal.Decimal("1.6"))
    moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    assert value_digest(moment) != value_digest(moment.replace(tzinfo=None))
    assert value_digest(uuid.UUID(int=1)) != value_digest(uuid.UUID(int=2))
    assert value_digest(datetime.date(2026, 1, 1)) != value_digest(datetime.date(2026, 1, 2))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=20,
)


def strict(value: Any) -> Any:
    """A form of a JSON-like value equal only for the same types and contents."""
    if isinstance(value, list):
        return ("list", tuple(strict(member) for member in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((key, strict(member)) for key, member in value.items())))
    if isinstance(value, float):
        return ("float", value.hex())
    return (type(value).__name__, value)


@settings(max_examples=300, deadline=None)
@given(JSON, JSON)
def test_json_like_values_differ_exactly_when_they_differ(first: Any, second: Any) -> None:
    assert value_digest(first) == value_digest(copy.deepcopy(first))
    assert (value_digest(first) == value_digest(second)) == (strict(first) == strict(second))


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=3)
    | st.binary(max_size=3)
)
PYTHON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.frozensets(SCALARS, max_size=3)
        | st.dictionaries(SCALARS, children, max_size=3)
    ),
    max_leaves=12,
)


def strict_python(value: Any) -> Any:
    """:func:`strict` for tuples, bytes, frozensets and dicts with any scalar keys."""
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(strict_python(member) for member in value))
    if isinstance(value, frozenset):
        return ("frozenset", tuple(sorted(repr(strict_python(member)) for member in value)))
    if isinstance(value, dict):
        items = ((repr(strict_python(key)), strict_python(member)) for key, member in value.items())
        return ("dict", tuple(sorted(items, key=lambda item: item[0])))
    if isinstance(value, float):
        return ("float", value.hex())
    return (type(value).__name__, value)


@settings(max_examples=300, deadline=None)
@given(PYTHON, PYTHON)
def test_python_values_differ_exactly_when_they_differ(first: Any, second: Any) -> None:
    assert value_digest(first) == value_digest(copy.deepcopy(first))
    same = strict_python(first) == strict_python(second)
    assert (value_digest(first) == value_digest(second)) == same


def test_edge_values_keep_their_differences() -> None:
    import collections

    assert value_digest([10**5000]) != value_digest([10**5000 + 1])  # too long for repr
    first = collections.OrderedDict([("a", 1), ("b", 2)])
    second = collections.OrderedDict([("b", 2), ("a", 1)])
    assert value_digest(first) != value_digest(second)  # their order is part of them
    assert value_digest({"a": 1, "b": 2}) == value_digest({"b": 2, "a": 1})
    assert value_digest(collections.Counter("aab")) != value_digest(collections.Counter("abb"))


def test_overridden_methods_slots_classmethods_and_empty_cells(load: Any) -> None:
    source = """
    import flow2

    class Base(flow2.Task):
        limit = 1

        def describe(self):
            return "{base}"

    class Slotted(Base):
        __slots__ = ("mode",)
        limit = 2

        def __init__(self, name, mode):
            super().__init__(name)
            self.mode = mode

        def describe(self):
            return "child " + super().describe()

        @classmethod
        def build(cls, context):
            return cls.limit

    def make():
        def inner(context):
            return later
        return inner
        later = 1
    """
    module = load("fp_edges", source.format(base="base"))
    parts = task_parts(module.Slotted("Task", "fast"))
    assert {
        "code: method describe",
        "code: method Base.describe",
        "class attribute limit",
        "class attribute Base.limit",
        "attribute mode",
    } <= set(parts)
    assert changed(parts, task_parts(module.Slotted("Task", "slow"))) == {"attribute mode"}
    edited = load("fp_edges", source.format(base="BASE"))
    assert changed(parts, task_parts(edited.Slotted("Task", "fast"))) == {
        "code: method Base.describe"
    }
    assert "code: method build" in callable_parts(module.Slotted.build)
    assert "closure value later" in callable_parts(module.make())
