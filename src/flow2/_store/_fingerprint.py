"""Fingerprints of what a task does: its code, the values it is given, its class.

A reuse key is only as good as what it sees. Each function here returns a
mapping *part → digest*; the part names are what ``flow2 explain`` prints
when a part changed:

- ``code``: the callable's own code (its source text and its compiled code,
  nested functions included); for a decorated function (``functools.wraps``)
  the innermost body, and ``code: decorator NAME`` for each wrapper.
- ``code: helper NAME()`` / ``code: helper NAME``: a function or class it
  uses from the user's own modules, followed transitively (a global name, or
  an attribute chain on a module such as ``helpers.normalize``). A module is
  the user's unless its file lies in the standard library, in
  ``site-packages``/``dist-packages`` or in flow2 itself.
- ``library NAME``: a third-party distribution it uses, by its version.
- ``constant NAME``: a module global it (or a helper) reads that is a value.
- ``closure value NAME``, ``default value NAME``: its closure cells, its
  defaults and keyword defaults.
- ``partial argument N`` (from 1), ``partial keyword NAME``: a
  ``functools.partial``'s arguments, with the parts of the function it wraps.
- ``object``: the state of a bound method's object or of a callable object,
  with ``code: method NAME`` for each method of its class.
- ``code: method NAME``, ``class attribute NAME``, ``attribute NAME``: a
  :class:`flow2.Task` subclass's methods, class attributes and instance attributes.

A name from another module than the callable's is qualified (``constant
settings.LIMIT``). Functions, methods and objects of the standard library,
of installed distributions and of flow2 are identified by their qualified
name and version (Python's, the distribution's), not by code.

A value whose behaviour cannot be captured raises :class:`NotFingerprintable`
with the reason: the task is then not reusable, never keyed on a guess or a
constant. Values are encoded with an explicit stack (no depth limit; a cycle
is a back-reference to the enclosing value), every type tagged (``1``,
``1.0``, ``True`` and ``"1"`` differ), sets and dict keys in a canonical
order, objects by their class (its qualified name; its code too for a class
of the user's own) and their pickled state (``__reduce_ex__``, so
``__dict__``, ``__slots__`` and C types that pickle all count): what cannot be
pickled, and sockets, files, locks, generators, coroutines, event loops,
threads and executors, has no stable fingerprint. A logger a callable uses is
no part of it (where it logs to is not what the task computes).

What is not seen: the state of library modules (``sys.argv``, ``os.environ``:
a library counts by its version), the environment read from Python code
(``os.environ``, ``os.getenv``), files and the network a callable reads, the
clock. Those are inputs to declare (environment variables, ``sources:``).
"""

from __future__ import annotations

import dis
import enum
import functools
import hashlib
import inspect
import itertools
import os
import pathlib
import platform
import site
import sys
import sysconfig
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .._engine._task import Task


class NotFingerprintable(Exception):
    """A value or callable whose behaviour cannot be captured in a reuse key.

    :param reason: why, in words a person can act on
        ("closure value 'conn' (socket.socket) has no stable fingerprint")
    :param kind: the qualified name of the type that could not be captured, when one was
    :ivar reason: the reason
    :ivar kind: the type's qualified name, or None
    """

    def __init__(self, reason: str, *, kind: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def value_digest(value: Any) -> str:
    """A digest equal for equal values in any process, different for different ones.

    :param value: scalars, bytes, containers nested to any depth (cycles
        included), enums, dataclasses, paths, dates, decimals, uuids, objects
        with a picklable state, functions and classes
    :raises NotFingerprintable: the value holds something without a stable
        state (a socket, a file, a lock, a generator …); the reason names its type
    """
    return _digest_bytes(_Encoder(_State()).encode(value, None))


def callable_parts(function: Any) -> dict[str, str]:
    """The parts of a callable's behaviour: its code, and what changes it.

    :param function: a function, lambda, method, ``functools.partial``,
        decorated function, class, callable object or builtin
    :raises NotFingerprintable: a part of it cannot be fingerprinted; the
        reason names the part ("closure value 'conn' (socket.socket) has no
        stable fingerprint")
    """
    return _Collector(_State(), _module_of(function)).root(function)


def task_parts(task: Task) -> dict[str, str]:
    """The parts of a :class:`flow2.Task` subclass's behaviour (empty for flow2's own classes).

    ``code: method NAME`` for every method of its classes below flow2's
    (``code: method Base.NAME`` for one a subclass overrides), ``class
    attribute NAME`` for their other class attributes, and ``attribute
    NAME`` for every attribute set on the instance except those flow2's own
    classes set (the names their methods assign on ``self``, their class
    attributes and slots: ``name``, ``key``, ``timeout``, ``callback`` …;
    see :func:`flow2_attributes`).

    :raises NotFingerprintable: a part of it cannot be fingerprinted
    """
    kind = type(task)
    own = [cls for cls in kind.__mro__ if _is_user_class(cls)]
    if not own:
        return {}
    collector = _Collector(_State(), kind.__module__)
    for cls in own:  # a method naming its own class names no helper
        collector.seen[id(cls)] = cls
    known = flow2_attributes(kind)  # type: ignore[arg-type]  # classes are hashable
    for cls in own:
        collector.class_members(cls, skip=known)
    state = vars(task) if hasattr(task, "__dict__") else {}
    for name in sorted(state):
        if name not in known:
            collector.add(f"attribute {name}", collector.value(state[name], f"attribute {name!r}"))
    for cls in own:
        for name in _slot_names(cls):
            if name not in known and hasattr(task, name):
                label = f"attribute {name}"
                collector.add(label, collector.value(getattr(task, name), f"attribute {name!r}"))
    return collector.finish()


#: Attributes flow2's flow loader sets on tasks from outside their classes.
_SET_BY_FLOWS = frozenset({"runtime_names"})


@functools.lru_cache(maxsize=256)
def flow2_attributes(kind: type) -> frozenset[str]:
    """The instance attributes flow2's own classes in ``kind``'s MRO set.

    The names their functions assign on an object (``self.X = …``, read from
    their bytecode), their class attributes and slots, and what the flow
    loader sets (``runtime_names``). A user's subclass sets the rest.
    """
    names: set[str] = set(_SET_BY_FLOWS)
    for cls in kind.__mro__:
        if not _is_flow2_class(cls):
            continue
        names.update(vars(cls))
        names.update(_slot_names(cls))
        for member in vars(cls).values():
            for function in _functions_of(member):
                for code in _codes(function.__code__):
                    names.update(
                        instruction.argval
                        for instruction in dis.get_instructions(code)
                        if instruction.opname == "STORE_ATTR"
                    )
    return frozenset(names)


# -- the value encoder --------------------------------------------------------


class _State:
    """What one fingerprint shares between its values and callables: the
    callables being fingerprinted (a cycle through a constant ends there)."""

    def __init__(self) -> None:
        self.in_progress: set[int] = set()


class _Leave:
    """Stack marker: the value ``ident`` is no longer on the path."""

    __slots__ = ("ident",)

    def __init__(self, ident: int) -> None:
        self.ident = ident


class _Raw:
    """Stack marker: bytes to write as they are (a dict key already encoded)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _encode_int(value: int) -> bytes:
    return b"i%x;" % value


def _encode_float(value: float) -> bytes:
    return b"f" + value.hex().encode() + b";"


def _encode_str(value: str) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    return b"s%d:" % len(data) + data


def _encode_bytes(value: bytes) -> bytes:
    return b"b%d:" % len(value) + value


def _encode_complex(value: complex) -> bytes:
    return b"c" + value.real.hex().encode() + b"," + value.imag.hex().encode() + b";"


_SCALARS: dict[type, Callable[[Any], bytes]] = {
    type(None): lambda value: b"N",
    bool: lambda value: b"T" if value else b"F",
    int: _encode_int,
    float: _encode_float,
    str: _encode_str,
    bytes: _encode_bytes,
    complex: _encode_complex,
}
#: Types whose repr is exact and unambiguous: a list of them is written as its repr.
_REPR_EXACT = frozenset({type(None), bool, int, float, str})

_FUNCTION_TYPES = (
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
    functools.partial,
)


class _Encoder:
    """Writes a value as tagged bytes, iteratively: each value is a tag, then its
    length or a terminator, then its members, so no two values write the same bytes."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.classes: dict[int, tuple[type, str]] = {}  # a class's text, once per encoder

    def encode(self, value: Any, label: str | None) -> bytes:
        """The bytes of ``value``; ``label`` names it in a reason ("closure value 'n'")."""
        kind = type(value)
        scalar = _SCALARS.get(kind)
        if scalar is not None:
            return scalar(value)
        out: list[bytes] = []
        stack: list[Any] = [value]
        path: dict[int, int] = {}  # the containers enclosing the current value → depth
        # What this encoding made (reduced states, code fields): alive until the
        # end, so that no new object takes the id of one still on the path.
        keep: list[Any] = []
        while stack:
            item = stack.pop()
            kind = type(item)
            scalar = _SCALARS.get(kind)
            if scalar is not None:
                out.append(scalar(item))
                continue
            if kind is _Leave:
                del path[item.ident]
                continue
            if kind is _Raw:
                out.append(item.data)
                continue
            ident = id(item)
            back = path.get(ident)
            if back is not None:
                out.append(b"@%d;" % back)  # a cycle: the enclosing value at that depth
                continue
            if kind is list or kind is tuple:
                if all(type(member) in _REPR_EXACT for member in item):
                    try:
                        text = repr(item).encode("utf-8", "surrogatepass")
                    except ValueError:  # an int too long for repr
                        pass
                    else:
                        out.append((b"r[%d:" if kind is list else b"r(%d:") % len(text) + text)
                        continue
                out.append((b"[%d;" if kind is list else b"(%d;") % len(item))
                path[ident] = len(path)
                stack.append(_Leave(ident))
                stack.extend(reversed(item))
            elif kind is dict:
                out.append(b"{%d;" % len(item))
                path[ident] = len(path)
                stack.append(_Leave(ident))
                self._push_items(item.items(), stack, label)
            elif kind is set or kind is frozenset:
                members = sorted(self._member(member, label) for member in item)
                out.append((b"<%d;" if kind is set else b">%d;") % len(members))
                out.extend(b"%d:" % len(member) + member for member in members)
            elif isinstance(item, enum.Enum):
                out.append(b"E" + _encode_str(_qualified(kind)) + _encode_str(item.name))
            elif isinstance(item, type):
                out.append(b"Y" + _encode_str(self._class_text(item)))
            elif isinstance(item, types.ModuleType):
                out.append(b"M" + _encode_str(item.__name__))
            elif isinstance(item, types.CodeType):
                out.append(b"K")
                fields = _code_fields(item)
                keep.append(fields)
                stack.append(fields)
            elif isinstance(item, _FUNCTION_TYPES) or _is_callable_object(item):
                out.append(b"F" + _encode_str(self._callable(item)))
            elif isinstance(item, pathlib.PurePath):
                out.append(b"P" + _encode_str(_qualified(kind)) + _encode_str(item.as_posix()))
            else:
                reduced = self._reduce(item, label, top=item is value)
                keep.append(reduced)
                out.append(b"O")
                path[ident] = len(path)
                stack.append(_Leave(ident))
                stack.append(reduced)
        return b"".join(out)

    def state_of(self, item: Any, label: str) -> bytes:
        """The bytes of an object's class and state, even when it is callable."""
        scalar = _SCALARS.get(type(item))
        if scalar is not None or type(item) in (list, tuple, dict, set, frozenset):
            return self.encode(item, label)
        return b"O" + self.encode(self._reduce(item, label, top=True), label)

    def _push_items(
        self, items: Iterable[tuple[Any, Any]], stack: list[Any], label: str | None
    ) -> None:
        pairs = sorted(
            ((self._member(key, label), member) for key, member in items),
            key=lambda pair: pair[0],
            reverse=True,
        )
        for key, member in pairs:
            stack.append(member)
            stack.append(_Raw(b"%d:" % len(key) + key))

    def _member(self, value: Any, label: str | None) -> bytes:
        """A set member's or dict key's bytes, for sorting (hashable, hence small)."""
        scalar = _SCALARS.get(type(value))
        if scalar is not None:
            return scalar(value)
        return b"#" + hashlib.sha256(self.encode(value, label)).digest()

    def _class_text(self, cls: type) -> str:
        cached = self.classes.get(id(cls))
        if cached is not None and cached[0] is cls:
            return cached[1]
        if _is_user_class(cls):
            text = _qualified(cls) + " " + self._callable(cls)
        else:
            text = _qualified(cls)
        self.classes[id(cls)] = (cls, text)
        return text

    def _callable(self, function: Any) -> str:
        ident = id(function)
        if ident in self.state.in_progress:
            return "recursive " + _name_of(function)
        parts = _Collector(self.state, _module_of(function)).root(function)
        return _digest_text(repr(sorted(parts.items())))

    def _reduce(self, item: Any, label: str | None, *, top: bool) -> tuple[Any, ...]:
        kind = type(item)
        unstable = _unstable_kind(item)
        if unstable is None:
            try:
                reduced = item.__reduce_ex__(4)
            except Exception:
                unstable = _qualified(kind)
            else:
                if isinstance(reduced, str):
                    return ("global", _qualified(kind), reduced)
                return self._reduced_parts(item, reduced)
        if top and label is not None:
            reason = f"{label} ({unstable}) has no stable fingerprint"
        elif top:
            reason = f"a {unstable} has no stable fingerprint"
        else:
            reason = f"{label or 'the value'} holds a {unstable}, which has no stable fingerprint"
        raise NotFingerprintable(reason, kind=unstable)

    def _reduced_parts(self, item: Any, reduced: tuple[Any, ...]) -> tuple[Any, ...]:
        constructor = reduced[0]
        arguments = reduced[1] if len(reduced) > 1 else ()
        state = reduced[2] if len(reduced) > 2 else None
        list_items = list(reduced[3]) if len(reduced) > 3 and reduced[3] is not None else None
        dict_items = reduced[4] if len(reduced) > 4 and reduced[4] is not None else None
        if dict_items is not None:
            ordered = isinstance(item, dict) and type(item).__eq__ is not dict.__eq__
            dict_items = list(dict_items) if ordered else dict(dict_items)
        name = getattr(constructor, "__qualname__", None)
        module = getattr(constructor, "__module__", None)
        constructor_text = f"{module}.{name}" if name else repr(constructor)
        return (_qualified(type(item)), constructor_text, arguments, state, list_items, dict_items)


def _code_fields(code: types.CodeType) -> tuple[Any, ...]:
    return (
        code.co_name,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_code,
        code.co_consts,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
    )


def _is_callable_object(value: Any) -> bool:
    call = getattr(type(value), "__call__", None)  # noqa: B004
    return isinstance(call, types.FunctionType) and _is_user_code(call.__code__.co_filename)


def _unstable_kind(value: Any) -> str | None:
    """The qualified name of ``value``'s type when its state lives outside Python's
    view (an open resource, a running computation), or None."""
    if isinstance(value, types.GeneratorType | types.CoroutineType | types.AsyncGeneratorType):
        return _qualified(type(value))
    if isinstance(value, types.FrameType | types.TracebackType):
        return _qualified(type(value))
    for module_name, names in _UNSTABLE:
        module = sys.modules.get(module_name)
        if module is None:  # not imported: no such object can exist
            continue
        for name in names:
            cls = getattr(module, name, None)
            if isinstance(cls, type) and isinstance(value, cls):
                return _qualified(type(value))
    return None


_UNSTABLE = (
    ("io", ("IOBase",)),
    ("socket", ("socket",)),
    ("_thread", ("LockType", "RLock")),
    ("threading", ("Thread", "Condition", "Event", "Semaphore", "Barrier")),
    (
        "asyncio",
        (
            "AbstractEventLoop",
            "Future",
            "Lock",
            "Event",
            "Condition",
            "Semaphore",
            "Queue",
            "StreamReader",
            "StreamWriter",
        ),
    ),
    ("concurrent.futures", ("Executor", "Future")),
    ("subprocess", ("Popen",)),
    ("sqlite3", ("Connection", "Cursor")),
    ("mmap", ("mmap",)),
    ("selectors", ("BaseSelector",)),
    ("logging", ("Handler",)),
)


# -- the callable collector ---------------------------------------------------


class _Collector:
    """Gathers the parts of one callable or task, following what it uses."""

    def __init__(self, state: _State, home: str) -> None:
        self.state = state
        self.home = home  # the module whose names are shown unqualified
        self.parts: dict[str, set[str]] = {}
        self.seen: dict[int, Any] = {}  # references already followed (kept alive)
        self.encoder = _Encoder(state)

    def add(self, name: str, digest: str) -> None:
        """Record part ``name``; two different things under one name both count."""
        self.parts.setdefault(name, set()).add(digest)

    def finish(self) -> dict[str, str]:
        """The parts, one digest each."""
        return {
            name: next(iter(digests)) if len(digests) == 1 else _digest_text(repr(sorted(digests)))
            for name, digests in sorted(self.parts.items())
        }

    def root(self, function: Any) -> dict[str, str]:
        """The parts of ``function`` itself (see :func:`callable_parts`)."""
        ident = id(function)
        self.state.in_progress.add(ident)
        try:
            self._root(function)
        finally:
            self.state.in_progress.discard(ident)
        return self.finish()

    def _root(self, function: Any) -> None:
        if isinstance(function, functools.partial):
            self._root(function.func)
            for number, argument in enumerate(function.args, start=1):
                label = f"partial argument {number}"
                self.add(label, self.value(argument, label))
            for name, argument in function.keywords.items():
                self.add(
                    f"partial keyword {name}", self.value(argument, f"partial keyword {name!r}")
                )
        elif isinstance(function, types.MethodType):
            self._root(function.__func__)
            self._object(function.__self__)
        elif isinstance(function, types.FunctionType) or (
            not isinstance(function, type) and hasattr(function, "__wrapped__")
        ):
            self._function_root(function)
        elif isinstance(function, type):
            self.add("code", _library_identity(function))
            if _is_user_class(function):
                self.class_members(function)
        elif isinstance(function, _FUNCTION_TYPES):  # a builtin, a C method or descriptor
            self.add("code", _library_identity(function))
            owner = getattr(function, "__self__", None)
            if owner is not None and not isinstance(owner, types.ModuleType):
                self._object(owner)
        elif callable(function):  # a callable object: its class, and its state
            self.add("code", _library_identity(type(function)))
            self._object(function)
        else:
            raise NotFingerprintable(
                f"{_qualified(type(function))} is not callable", kind=_qualified(type(function))
            )

    def _function_root(self, function: Any) -> None:
        layers: list[Any] = [function]
        seen = {id(function)}
        while hasattr(layers[-1], "__wrapped__"):
            inner = layers[-1].__wrapped__
            if id(inner) in seen:
                break
            seen.add(id(inner))
            layers.append(inner)
        for layer in layers:  # a recursive call names no helper
            self.seen[id(layer)] = layer
        for layer, inner in itertools.pairwise(layers):
            label = f"code: decorator {_decorator_name(layer)}"
            if isinstance(layer, types.FunctionType) and _is_user_code(layer.__code__.co_filename):
                own = self._function(layer, skip=inner)
                self.add(label, _digest_text(repr(sorted(own.items()))))
            else:
                self.add(label, _library_identity(layer))
        body = layers[-1]
        if not isinstance(body, types.FunctionType):
            self._root(body)
        elif not _is_user_code(body.__code__.co_filename):
            self.add("code", _library_identity(body))
        else:
            for name, digest in self._function(body).items():
                self.add(name, digest)

    def _object(self, owner: Any) -> None:
        """``object`` and the class's methods, for a bound method or callable object."""
        if isinstance(owner, type):  # a classmethod: its class is its object
            if _is_user_class(owner):
                self.class_members(owner)
            return
        self.add("object", _digest_bytes(self.encoder.state_of(owner, "object")))
        for cls in type(owner).__mro__:
            if _is_user_class(cls):
                self.class_members(cls)

    def class_members(self, cls: type, *, skip: frozenset[str] = frozenset()) -> None:
        """``code: method NAME`` and ``class attribute NAME`` for what ``cls`` defines
        (less the names in ``skip``: what flow2's own classes define)."""
        for name, member in vars(cls).items():
            if (name in skip and not _functions_of(member)) or name in _CLASS_MACHINERY:
                continue
            functions = _functions_of(member)
            if functions:
                label = f"code: method {name}"
                if label in self.parts:  # overridden by a subclass met first
                    label = f"code: method {cls.__qualname__}.{name}"
                own = [self._function_digest(function) for function in functions]
                self.add(label, _digest_text(repr(own)))
            elif not (name.startswith("__") and name.endswith("__")) and not isinstance(
                member, type
            ):
                label = f"class attribute {name}"
                if label in self.parts:
                    label = f"class attribute {cls.__qualname__}.{name}"
                self.add(label, self.value(member, f"class attribute {name!r}"))
            elif isinstance(member, type) and _is_user_class(member):
                self.add(f"code: helper {cls.__qualname__}.{name}", self._class_digest(member))

    def _function(self, function: types.FunctionType, skip: Any = None) -> dict[str, str]:
        """The own parts of a user function: code, defaults, closure values; what it
        uses (helpers, constants) is added to the collector's parts."""
        code = function.__code__
        own = {"code": _code_digest(code)}
        if function.__defaults__:
            names = code.co_varnames[: code.co_argcount][-len(function.__defaults__) :]
            for name, default in zip(names, function.__defaults__, strict=True):
                own[f"default value {name}"] = self.value(default, f"default value {name!r}")
        for name, default in (function.__kwdefaults__ or {}).items():
            own[f"default value {name}"] = self.value(default, f"default value {name!r}")
        for name, cell in zip(code.co_freevars, function.__closure__ or (), strict=True):
            try:
                content = cell.cell_contents
            except ValueError:  # a cell not yet assigned
                own[f"closure value {name}"] = _digest_text("empty cell")
                continue
            if skip is not None and content is skip:
                continue  # the function a decorator wraps: its parts are the body's
            if name == "__class__" and isinstance(content, type):
                # the class a method is defined in (for super()): its own parts cover it
                own[f"closure value {name}"] = _digest_text(_qualified(content))
                continue
            own[f"closure value {name}"] = self.value(content, f"closure value {name!r}")
        self._references(function)
        return own

    def _function_digest(self, function: Any) -> str:
        if isinstance(function, types.FunctionType) and _is_user_code(
            function.__code__.co_filename
        ):
            ident = id(function)
            if ident in self.state.in_progress:
                return "recursive " + _name_of(function)
            self.state.in_progress.add(ident)
            try:
                return _digest_text(repr(sorted(self._function(function).items())))
            finally:
                self.state.in_progress.discard(ident)
        if isinstance(function, types.FunctionType):
            return _library_identity(function)
        return self.value(function, f"the method {_name_of(function)}")

    def _class_digest(self, cls: type) -> str:
        ident = id(cls)
        if ident in self.state.in_progress:
            return "recursive " + _qualified(cls)
        self.state.in_progress.add(ident)
        try:
            sub = _Collector(self.state, self.home)
            sub.seen = self.seen
            for base in cls.__mro__:
                if _is_user_class(base):
                    sub.class_members(base)
                elif base is not object:
                    sub.add(f"base {_qualified(base)}", _library_identity(base))
            own = sub.finish()
            for name, digest in own.items():
                if name.startswith(("code: helper", "constant", "library")):
                    self.add(name, digest)
            return _digest_text(repr(sorted(own.items())))
        finally:
            self.state.in_progress.discard(ident)

    def value(self, value: Any, label: str) -> str:
        """The digest of a value a callable holds: a function or class by its code
        (and what it uses), anything else by :func:`value_digest`'s encoding."""
        if isinstance(value, types.FunctionType):
            return self._function_digest(value)
        if isinstance(value, type) and _is_user_class(value):
            return self._class_digest(value)
        try:
            return _digest_bytes(self.encoder.encode(value, label))
        except RecursionError as error:  # pragma: no cover - deep chains of callables
            raise NotFingerprintable(f"{label} nests callables too deeply") from error

    def _references(self, function: types.FunctionType) -> None:
        """Follow the globals the function's code reads: helpers, classes, constants."""
        namespace = function.__globals__
        home = namespace.get("__name__", "?")
        for chain in _global_chains(function.__code__):
            self._reference(chain, namespace, home)

    def _reference(self, chain: tuple[str, ...], namespace: dict[str, Any], home: str) -> None:
        missing = _MISSING
        target = namespace.get(chain[0], missing)
        if target is missing:
            target = sys.modules.get(chain[0], missing)  # imported inside the function
            if target is missing:  # a builtin, or a name not defined (yet)
                return
        name = chain[0]
        owner: types.ModuleType | None = None  # the module the target was read from
        for attribute in chain[1:]:
            if not isinstance(target, types.ModuleType):
                break
            found = vars(target).get(attribute, missing)
            if found is missing:
                break
            owner, target, name = target, found, f"{name}.{attribute}"
        if isinstance(target, types.ModuleType):
            return
        if owner is not None and not _is_user_module(owner):
            # A library's own global (``sys.platform``, ``os.environ``): the library
            # counts by its version, its state is no constant of the user's.
            self._library(owner.__name__)
            return
        ident = id(target)
        if ident in self.seen or ident in self.state.in_progress:
            return
        self.seen[ident] = target
        shown = name if home == self.home or "." in name else f"{home}.{name}"
        if isinstance(target, types.FunctionType):
            if _is_user_code(target.__code__.co_filename):
                self.add(f"code: helper {shown}()", self._function_digest(target))
            else:
                self._library(target)
        elif isinstance(target, type):
            if _is_user_class(target):
                self.add(f"code: helper {shown}", self._class_digest(target))
            else:
                self._library(target)
        elif isinstance(target, types.BuiltinFunctionType | functools.partial | types.MethodType):
            if isinstance(target, functools.partial) or _is_user_callable(target):
                self.add(f"constant {shown}", self.value(target, f"constant {shown!r}"))
            else:
                self._library(target)
        elif _is_logger(target) or _is_environment(target):
            # Where it logs to is no part of what the task computes; the environment
            # is read by name (a task declares what it reads: see the module docstring).
            return
        else:
            self.add(f"constant {shown}", self.value(target, f"constant {shown!r}"))

    def _library(self, target: Any) -> None:
        """A third-party distribution by its version (the standard library and flow2 are
        covered by the Python and flow2 versions in the key)."""
        module = target if isinstance(target, str) else getattr(target, "__module__", None) or ""
        top = module.partition(".")[0]
        if not top or top in sys.stdlib_module_names or top in ("builtins", "flow2"):
            return
        self.add(f"library {top}", _digest_text(f"{top} {_version_of(top)}"))


_MISSING: Any = object()


def _global_chains(code: types.CodeType) -> list[tuple[str, ...]]:
    """The global names ``code`` (and the code nested in it) reads, each with the
    attribute chain read on it (``helpers.normalize`` → ``("helpers", "normalize")``)."""
    cached = _CHAINS.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    chains: list[tuple[str, ...]] = []
    # Modules imported inside a function, by the local name bound to them
    # (``import helpers`` then ``helpers.normalize(x)``), nested functions included.
    local_modules: dict[str, str] = {}
    for nested in _codes(code):
        current: list[str] | None = None
        imported: str | None = None
        previous = ""
        for instruction in dis.get_instructions(nested):
            operation = instruction.opname
            if operation in ("LOAD_ATTR", "LOAD_METHOD") and current is not None:
                current.append(instruction.argval)
                previous = operation
                continue
            if current is not None:
                chains.append(tuple(current))
                current = None
            if operation in ("LOAD_GLOBAL", "LOAD_NAME"):
                current = [instruction.argval]
            elif operation in ("LOAD_FAST", "LOAD_DEREF") and instruction.argval in local_modules:
                current = [local_modules[instruction.argval]]
            elif operation == "IMPORT_NAME":
                imported = instruction.argval
                chains.append((imported,))
            elif operation == "IMPORT_FROM" and imported is not None:
                chains.append((imported, instruction.argval))
            elif operation.startswith("STORE_") and previous == "IMPORT_NAME" and imported:
                # ``import a.b`` binds ``a``; ``import a.b as c`` goes through IMPORT_FROM
                local_modules[instruction.argval] = imported.partition(".")[0]
            previous = operation
        if current is not None:
            chains.append(tuple(current))
    result = list(dict.fromkeys(chains))
    if len(_CHAINS) >= _CACHE_LIMIT:  # code made at run time (exec, lambdas in loops) ends here
        _CHAINS.clear()
    _CHAINS[id(code)] = (code, result)
    return result


_CHAINS: dict[int, tuple[types.CodeType, list[tuple[str, ...]]]] = {}
#: Code objects whose digest and global names are kept (each kept alive by its entry).
_CACHE_LIMIT = 20_000


def _codes(code: types.CodeType) -> list[types.CodeType]:
    """``code`` and every code object nested in it (functions, lambdas, comprehensions)."""
    found = [code]
    index = 0
    while index < len(found):
        found.extend(const for const in found[index].co_consts if isinstance(const, types.CodeType))
        index += 1
    return found


def _code_digest(code: types.CodeType) -> str:
    """Its source text (when there is one) and its compiled code, nested code included."""
    cached = _CODE_DIGESTS.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    try:
        source = inspect.getsource(code)
    except Exception:  # no file (exec, a REPL), or one that no longer parses: the bytecode says it
        source = ""
    structure = _Encoder(_State()).encode(_code_fields(code), "code")
    digest = _digest_bytes(_encode_str(source) + structure)
    if len(_CODE_DIGESTS) >= _CACHE_LIMIT:
        _CODE_DIGESTS.clear()
    _CODE_DIGESTS[id(code)] = (code, digest)
    return digest


_CODE_DIGESTS: dict[int, tuple[types.CodeType, str]] = {}


def _functions_of(member: Any) -> list[Any]:
    """The functions a class member holds: a function, a static or class method, a
    property, a cached property, a single-dispatch method."""
    if isinstance(member, staticmethod | classmethod):
        return [member.__func__]
    if isinstance(member, property):
        return [accessor for accessor in (member.fget, member.fset, member.fdel) if accessor]
    if isinstance(member, functools.cached_property | functools.singledispatchmethod):
        return [member.func]
    if isinstance(member, types.FunctionType | functools.partialmethod):
        return [member]
    return []


#: What Python's machinery keeps on a class (abc's cache): no part of what it does.
_CLASS_MACHINERY = frozenset({"_abc_impl"})


def _slot_names(cls: type) -> list[str]:
    slots = vars(cls).get("__slots__", ())
    if isinstance(slots, str):
        slots = (slots,)
    return [name for name in slots if name not in ("__dict__", "__weakref__")]


def _is_logger(value: Any) -> bool:
    logging = sys.modules.get("logging")
    return logging is not None and isinstance(value, logging.Logger | logging.LoggerAdapter)


def _is_environment(value: Any) -> bool:
    return type(value) is type(os.environ)


def _is_user_module(module: types.ModuleType) -> bool:
    filename = getattr(module, "__file__", None)
    if filename is None:
        return module.__name__ == "__main__"
    return _is_user_code(filename)


def _is_user_callable(value: Any) -> bool:
    function = getattr(value, "__func__", value)
    code = getattr(function, "__code__", None)
    return isinstance(code, types.CodeType) and _is_user_code(code.co_filename)


# -- where code comes from -----------------------------------------------------


def _library_roots() -> tuple[str, ...]:
    roots: set[str] = set()
    for scheme_path in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(scheme_path)
        if path:
            roots.add(path)
    roots.update(getattr(site, "getsitepackages", list)())
    user_site = getattr(site, "getusersitepackages", lambda: "")()
    if user_site:
        roots.add(user_site)
    roots.add(str(pathlib.Path(__file__).resolve().parent.parent))  # flow2 itself
    resolved = {os.path.realpath(root) for root in roots} | {os.path.abspath(r) for r in roots}
    return tuple(sorted(root.rstrip(os.sep) + os.sep for root in resolved))


@functools.lru_cache(maxsize=4096)
def _is_user_code(filename: str) -> bool:
    """True when code from ``filename`` is the user's own, not the standard library,
    an installed distribution or flow2."""
    if filename.startswith("<"):  # <string>, <stdin>: written at run time; <frozen os>: not
        return not filename.startswith("<frozen")
    path = os.path.abspath(filename)
    if path.startswith(_LIBRARY_ROOTS) or os.path.realpath(path).startswith(_LIBRARY_ROOTS):
        return False
    folders = path.split(os.sep)
    return "site-packages" not in folders and "dist-packages" not in folders


_LIBRARY_ROOTS = _library_roots()


def _is_user_class(cls: type) -> bool:
    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None)
    if module is None or filename is None:
        # No file: __main__ run from -c or a REPL is the user's; builtins are not.
        return cls.__module__ == "__main__" or (
            module is None and cls.__module__ not in sys.builtin_module_names
        )
    return _is_user_code(filename)


def _is_flow2_class(cls: type) -> bool:
    return cls.__module__.partition(".")[0] == "flow2"


def _library_identity(target: Any) -> str:
    """A library callable or class by its qualified name and its distribution's version
    (a class of the user's own by its name: its methods are parts of their own)."""
    module = getattr(target, "__module__", None) or getattr(
        getattr(target, "__self__", None), "__name__", "builtins"
    )
    loaded = sys.modules.get(str(module))
    filename = getattr(loaded, "__file__", None)
    if filename and _is_user_code(filename):  # the user's own: its code is in other parts
        return _digest_text(f"{module}.{_name_of(target)}")
    return _digest_text(f"{module}.{_name_of(target)} {_version_of(str(module))}")


@functools.lru_cache(maxsize=1024)
def _version_of(module: str) -> str:
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names or top in ("builtins", "__main__"):
        return "python " + platform.python_version()
    if top == "flow2":
        from importlib.metadata import version

        return "flow2 " + version("flow2")
    from importlib.metadata import version

    names = _distributions().get(top)
    if names:
        return ", ".join(f"{name} {version(name)}" for name in sorted(set(names)))
    loaded = sys.modules.get(module)
    filename = getattr(loaded, "__file__", None)
    if filename:  # no distribution says which version: the module's own bytes do
        try:
            return "file " + _digest_bytes(pathlib.Path(filename).read_bytes())
        except OSError:
            pass
    return "python " + platform.python_version()


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    from importlib.metadata import packages_distributions

    return dict(packages_distributions())


def _module_of(function: Any) -> str:
    target = getattr(function, "func", None) if isinstance(function, functools.partial) else None
    target = target or getattr(function, "__func__", function)
    module = getattr(target, "__module__", None)
    return module if isinstance(module, str) else _qualified(type(function)).rpartition(".")[0]


def _decorator_name(wrapper: Any) -> str:
    """The decorator that made ``wrapper`` (``functools.wraps`` copied the wrapped
    function's name onto it): ``logged`` for ``logged.<locals>.wrapper``."""
    code = getattr(wrapper, "__code__", None)
    if isinstance(code, types.CodeType):
        return code.co_qualname.partition(".<locals>")[0]
    return _qualified(type(wrapper))


def _name_of(target: Any) -> str:
    return str(getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or "?")


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _digest_text(text: str) -> str:
    return _digest_bytes(text.encode("utf-8", "surrogatepass"))
