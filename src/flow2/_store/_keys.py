"""A task's reuse key: every part of what it does and reads, as ``part → digest``.

One key decides both uses of a stored result: ``--resume`` (within a run's
lineage) and ``cache: true`` (across the runs of one flow). It is computed
when the task is about to start, after the tasks it depends on finished, so
their results are known. The parts, by name (what ``flow2 explain`` prints
when one differs):

- ``path``, ``kind``: the task's identity and class;
- ``order``: its place among its siblings in each enclosing serial group,
  and the kinds of the enclosing groups;
- ``condition``, ``needs``, ``command``, ``expressions``, ``option NAME``:
  its definition (see :func:`flow2._store._values.definition_of`);
- ``code``, ``code: …``, ``closure value …`` and the like: a callback's or a
  :class:`flow2.Task` subclass's behaviour (see ``_fingerprint``);
- ``env NAME``: the value of each variable of ``env_inputs`` (salted, slow
  digest: a secret is never recoverable from it);
- ``input KEY``: the result of each task it reads, with the key of the run
  of that task that produced it; ``variable NAME``: each run variable it reads;
- ``sources``, ``source PATH``: its declared files, by content;
- ``salt``: ``FLOW2_CACHE_SALT`` and flow2's major version.

A part that cannot be fingerprinted raises
:class:`~flow2._store._fingerprint.NotFingerprintable`: the task is then
not reusable, never keyed on a guess.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import operator
from typing import TYPE_CHECKING, Any

from .._engine._callback import CallbackTask
from .._engine._groups import ParallelTaskGroup, SerialTaskGroup
from .._engine._task import Task
from .._listeners._secrets import is_secret_name
from ._fingerprint import NotFingerprintable, callable_parts, task_parts, value_digest
from ._values import declared_reads, definition_of

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Mapping, Sequence

    from .._engine._task import Context

#: Definition options that have a part name of their own.
_SCALARS = frozenset({type(None), bool, int, float, str})
_OPTION_PARTS = {
    "class": "kind",
    "when": "condition",
    "needs": "needs",
    "cmd": "command",
    "runtime_options": "expressions",
}
#: In which order differences are told (the first is a task's one-line reason).
_PRIORITY = (
    "condition",
    "kind",
    "order",
    "needs",
    "command",
    "expressions",
    "option",
    "code",
    "env",
    "sources",
    "source",
    "outputs",
    "input",
    "inputs",
    "variable",
    "salt",
)
#: How many of the results ordered before a task have a part each (and how
#: many names of the siblings before it explain its order).
NEAREST = 32
#: A key of the context that no task has produced in this run, read as absent.
ABSENT = "absent"
#: In a task's stored parts, the digest of the parts it shares (``key_parts``).
SHARED = "@shared"


class NotReusable(Exception):
    """Why a task has no reuse key (a part of it cannot be fingerprinted)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SharedParts:
    """Parts many tasks have alike (their definition, their callback's code, their
    order in a group that is not serial, the salt), kept once: the run store
    writes them once, under their digest, and each task's parts refer to them.

    :param parts: the parts
    """

    __slots__ = ("digest", "parts", "reference", "text")

    def __init__(self, parts: dict[str, str]) -> None:
        self.parts = parts
        #: The parts as stored (``key_parts.parts``).
        self.text = json.dumps(parts, sort_keys=True)
        self.digest = _digest(self.text)
        #: What a task's stored parts are when it has none of its own.
        self.reference = json.dumps({SHARED: self.digest})


class KeyParts:
    """The parts of one task's key: those it shares with tasks alike, its own, and
    its path (whose part is a digest of its names, made only when read).

    :param path: the task's names from the root's, joined by NUL
    :param shared: the parts it has alike with other tasks
    :param own: its own parts (a caller may add to them until :attr:`key` is read)
    """

    __slots__ = ("_key", "own", "path", "shared")

    def __init__(self, path: str, shared: SharedParts, own: dict[str, str]) -> None:
        self.path = path
        self.shared = shared
        self.own = own
        self._key: str | None = None

    @property
    def key(self) -> str:
        """The key: one digest of every part (of the shared ones' digest, the path and
        the task's own parts, in name order), equal for equal parts only."""
        if self._key is None:
            own = "\0".join(map("\0".join, sorted(self.own.items()))) if self.own else ""
            self._key = _digest(f"{self.shared.digest}\0{self.path}\0\0{own}")
        return self._key

    def merged(self) -> dict[str, str]:
        """Every part by name: what ``flow2 explain`` shows and differences compare."""
        return {"path": _digest(self.path), **self.shared.parts, **self.own}

    def stored(self) -> str:
        """The parts as the run store keeps them: the task's own, and a reference to the
        shared ones (see :func:`expand_parts`)."""
        if not self.own:
            return self.shared.reference
        return json.dumps({SHARED: self.shared.digest, **self.own})


class KeyMaker:
    """Computes the parts of each task's key in one run.

    :param root: the run's tree
    :param variables: the run's starting context (its variables)
    :param environ: the environment the run's settings were read from
    :param salt: ``FLOW2_CACHE_SALT`` (empty when not set)
    :param version: flow2's version (its major part goes in the key)
    :param originals: for a tree pruned to the tasks run by name, ``id(copy)`` →
        the group each pruned group was copied from: a task's place, and the
        tasks ordered before it, are those of the whole tree, so its key is
        the one a run of the whole tree computes
    """

    def __init__(
        self,
        root: Task,
        variables: Mapping[str, Any],
        environ: Mapping[str, str],
        *,
        salt: str,
        version: str,
        originals: Mapping[int, Task] | None = None,
    ) -> None:
        self.root = root
        self._originals = originals or {}
        self.variables = frozenset(variables)
        self.environ = environ
        self._salt = _digest(f"{salt}\0{version.partition('.')[0]}")
        self._secrets: dict[tuple[str, str | None], str] = {}
        self._leaf_keys: dict[int, tuple[str, ...]] = {}
        self._values: dict[str, tuple[Any, str]] = {}
        self._prefixes: dict[int, list[str]] = {}
        self._positions: dict[int, dict[int, int]] = {}
        self._children: dict[int, tuple[Task, tuple[Task, ...]]] = {}
        self._definitions: dict[tuple[Any, ...], tuple[list[Any], tuple[tuple[str, str], ...]]] = {}
        self._callables: dict[int, tuple[Any, dict[str, str]]] = {}
        self._reads: dict[int, tuple[Any, list[str] | None]] = {}
        self._orders: dict[int, tuple[Task, str, dict[str, Any]]] = {}
        self._getters: dict[type[Task], Callable[[Task], Any]] = {}
        self._users_classes: dict[type[Task], bool] = {}
        self._context_free: dict[type[Task], bool] = {}
        self._shared: dict[tuple[int, int, str | None], tuple[Any, Any, SharedParts]] = {}

    def parts(
        self,
        chain: Sequence[Task],
        context: Context,
        produced: Mapping[str, str],
    ) -> tuple[KeyParts, dict[str, Any]]:
        """The parts of the key of ``chain[-1]``, and what explains some of them.

        :param chain: the tasks from the root down to the task
        :param context: the run's context, with the results of the tasks before it
        :param produced: for each result key produced in this run, the key of
            the task run that produced it
        :returns: ``(parts, details)``; details: ``before`` (the names of the
            siblings before it in its nearest serial group) and ``group``
            (its group's kind)
        :raises NotReusable: a part cannot be fingerprinted
        """
        if self._originals:
            chain = self._whole(chain)
        task = chain[-1]
        own: dict[str, str] = {}
        definition = self._definition(task)
        shared_definition = definition if self._definitions_shared(task) else None
        if shared_definition is None:
            own.update(definition)
        order, details = self._order_part(chain)
        shared_order = (
            order if len(chain) > 1 and not isinstance(chain[-2], SerialTaskGroup) else None
        )
        if shared_order is None:
            own["order"] = order
        callable_parts: dict[str, str] | None = None
        try:
            if isinstance(task, CallbackTask):
                callable_parts = self._callable(task.callback)
            if self._is_users_class(type(task)):
                own.update(task_parts(task))
        except NotFingerprintable as error:
            raise NotReusable(f"not reusable: {error.reason}") from None
        shared = self._shared_parts(shared_definition, callable_parts, shared_order)
        for name in task.env_inputs:
            own[f"env {name}"] = self._secret_digest(name, self.environ.get(name))
        if task.sources:
            own["sources"] = _digest(json.dumps(list(task.sources)))
        if task.outputs:
            own["outputs"] = _digest(json.dumps(list(task.outputs)))
        declared = self._declared_reads(task)
        if declared is not None:
            names = {*task.needs, *declared}
        elif self._reads_no_variables(type(task)):
            names = set(task.needs)
        else:
            names = {*task.needs, *self.variables}
        for name in sorted(names) if len(names) > 1 else names:
            if name in self.variables and name not in produced:
                own[f"variable {name}"] = self._variable_digest(name, context)
            else:
                own[f"input {name}"] = self._input_digest(name, context, produced)
        if declared is None:
            self._add_earlier(chain, context, produced, own)
        return KeyParts("\0".join([t.name for t in chain]), shared, own), details

    def _definitions_shared(self, task: Task) -> bool:
        """Whether :meth:`_definition` returned parts kept for every task alike (not
        those of a class with a ``definition`` of its own, made anew for each task)."""
        return type(task).definition is Task.definition

    def _shared_parts(
        self,
        definition: tuple[tuple[str, str], ...] | None,
        callable_parts: dict[str, str] | None,
        order: str | None,
    ) -> SharedParts:
        """The parts tasks alike have in common, made once for each combination
        (the objects are kept alive by this key maker: their ids stay theirs)."""
        memo = (id(definition), id(callable_parts), order)
        known = self._shared.get(memo)
        if known is None or known[0] is not definition or known[1] is not callable_parts:
            parts: dict[str, str] = dict(definition or ())
            if callable_parts is not None:
                parts.update(callable_parts)
            if order is not None:
                parts["order"] = order
            parts["salt"] = self._salt
            known = self._shared[memo] = (definition, callable_parts, SharedParts(parts))
        return known[2]

    def reads(self, chain: Sequence[Task]) -> set[str]:
        """The context keys the task may read: what it declares (and its needs), or,
        when it declares nothing, every result stored before it and every variable
        (none for a task whose ``run`` reads nothing from the context)."""
        if self._originals:
            chain = self._whole(chain)
        task = chain[-1]
        declared = declared_reads(task)
        if declared is not None:
            return {*declared, *task.needs}
        variables = () if self._reads_no_variables(type(task)) else self.variables
        return {*self.earlier_keys(chain), *task.needs, *variables}

    def earlier_keys(self, chain: Sequence[Task]) -> list[str]:
        """The result keys of the tasks ordered before ``chain[-1]``: the earlier
        siblings in each enclosing serial group, and everything inside them."""
        if self._originals:
            chain = self._whole(chain)
        keys: list[str] = []
        for group, child in itertools.pairwise(chain):
            if isinstance(group, SerialTaskGroup):
                position = self._position(group, child)
                for sibling in self.children(group)[:position]:
                    keys.extend(self._leaves(sibling))
        return keys

    def _add_earlier(
        self,
        chain: Sequence[Task],
        context: Context,
        produced: Mapping[str, str],
        parts: dict[str, str],
    ) -> None:
        """Parts for the results of the tasks ordered before a task that declares
        nothing: ``inputs before`` covers them all (a digest built once per place in
        each serial group, so a group of ten thousand tasks costs ten thousand
        steps, not fifty million), and each of the nearest :data:`NEAREST` has an
        ``input KEY`` part of its own, which names it when it changed."""
        prefixes = []
        nearest: list[str] = []
        for group, child in itertools.pairwise(chain):
            if isinstance(group, SerialTaskGroup):
                position = self._position(group, child)
                prefixes.append(self._prefix(group, position, context, produced))
                nearest = _last(nearest, self.children(group), position, self._leaves)
        if not any(prefixes):
            return
        parts["inputs before"] = _digest("\0".join(prefixes))
        for name in nearest:
            parts.setdefault(f"input {name}", self._input_digest(name, context, produced))

    def _prefix(
        self, group: Task, position: int, context: Context, produced: Mapping[str, str]
    ) -> str:
        """A digest of the results of ``group``'s first ``position`` children (empty for none)."""
        known = self._prefixes.get(id(group))
        if known is None:
            known = self._prefixes[id(group)] = [""]
        children = self.children(group)
        while len(known) <= position:
            child = children[len(known) - 1]
            digests = [self._input_digest(key, context, produced) for key in self._leaves(child)]
            known.append(_digest("\0".join([known[-1], *digests])))
        return known[position]

    def children(self, group: Task) -> tuple[Task, ...]:
        """``group.children``, read once (a group builds the tuple anew on each read)."""
        known = self._children.get(id(group))
        if known is None or known[0] is not group:
            known = self._children[id(group)] = (group, group.children)
        return known[1]

    def is_child(self, group: Task, child: Task) -> bool:
        """Whether ``child`` is one of the tree's own tasks in ``group`` (not made on the fly)."""
        if self._originals:
            group, child = self._whole((group, child))
        return self._position(group, child) < len(self.children(group))

    def _whole(self, chain: Sequence[Task]) -> list[Task]:
        """``chain`` in the whole tree: each pruned group replaced by its original."""
        originals = self._originals
        return [originals.get(id(task), task) for task in chain]

    def _position(self, group: Task, child: Task) -> int:
        positions = self._positions.get(id(group))
        if positions is None:
            positions = self._positions[id(group)] = {
                id(sibling): place for place, sibling in enumerate(self.children(group))
            }
        return positions.get(id(child), len(self.children(group)))

    def _definition(self, task: Task) -> tuple[tuple[str, str], ...]:
        """The parts of the task's definition; tasks of one class with the same
        option values share them, computed once."""
        kind = type(task)
        values: tuple[Any, ...] | None = None
        if kind.definition is Task.definition:
            getter = self._getters.get(kind)
            if getter is None:
                getter = self._getters[kind] = _getter(kind.definition_options)
            options = getter(task)
            values = (kind, *[v if type(v) in _SCALARS else id(v) for v in options])
            known = self._definitions.get(values)
            if known is not None and known[0] == options:
                return known[1]
        parts = tuple(
            (_OPTION_PARTS.get(name, f"option {name}"), digest)
            for name, digest in definition_of(task).items()
            # A callback's code has parts of its own, below. A description
            # documents the task and changes nothing it does.
            if name != "description" and not (name == "callback" and isinstance(task, CallbackTask))
        )
        if values is not None:
            self._definitions[values] = (options, parts)
        return parts

    def _callable(self, callback: Any) -> dict[str, str]:
        """:func:`callable_parts`, once per callback object in a run."""
        known = self._callables.get(id(callback))
        if known is None or known[0] is not callback:
            known = self._callables[id(callback)] = (callback, callable_parts(callback))
        return known[1]

    def _reads_no_variables(self, kind: type[Task]) -> bool:
        """Whether the ``run`` of ``kind`` is that of a class saying it reads nothing
        from the context (``reads_context = False`` in that very class): such a task
        reads a run variable only through its ``${{ … }}``, declared already."""
        known = self._context_free.get(kind)
        if known is None:
            owner = next(klass for klass in kind.__mro__ if "run" in vars(klass))
            known = self._context_free[kind] = vars(owner).get("reads_context", True) is False
        return known

    def _is_users_class(self, kind: type[Task]) -> bool:
        """Whether ``kind`` is defined outside flow2 (its methods are then in the key)."""
        known = self._users_classes.get(kind)
        if known is None:
            known = self._users_classes[kind] = kind.__module__.partition(".")[0] != "flow2"
        return known

    def _declared_reads(self, task: Task) -> list[str] | None:
        """:func:`declared_reads`, once per callback object in a run (a callback's
        reads are its keyword-only parameters: the same for every task calling it)."""
        if not isinstance(task, CallbackTask):
            return declared_reads(task)
        callback = task.callback
        known = self._reads.get(id(callback))
        if known is None or known[0] is not callback:
            known = self._reads[id(callback)] = (callback, declared_reads(task))
        return known[1]

    def _order_part(self, chain: Sequence[Task]) -> tuple[str, dict[str, Any]]:
        """The ``order`` part and its details. The children of one group that is not
        serial share them (their order is the group's): computed once per group, so
        ten thousand children of a parallel group cost one digest, not ten thousand."""
        parent = chain[-2] if len(chain) > 1 else None
        if parent is None or isinstance(parent, SerialTaskGroup):
            order, details = self._order(chain)
            return _digest(repr(order)), details
        known = self._orders.get(id(parent))
        if known is None or known[0] is not parent:
            order, details = self._order(chain)
            known = self._orders[id(parent)] = (parent, _digest(repr(order)), details)
        return known[1], known[2]

    def _order(self, chain: Sequence[Task]) -> tuple[list[Any], dict[str, Any]]:
        """The task's place at each level, and the details that explain a change:
        the names of the (nearest) siblings before it, and its group's kind."""
        order: list[Any] = []
        before: list[str] = []
        for group, child in itertools.pairwise(chain):
            serial = isinstance(group, SerialTaskGroup)
            position = self._position(group, child) if serial else None
            order.append([_kind(group), position])
            if position is not None:
                start = max(0, position - NEAREST)
                before = [sibling.name for sibling in self.children(group)[start:position]]
        group_kind = _kind(chain[-2]) if len(chain) > 1 else None
        return order, {"before": before, "group": group_kind}

    def _leaves(self, task: Task) -> tuple[str, ...]:
        known = self._leaf_keys.get(id(task))
        if known is None:
            found: list[str] = []
            stack = [task]
            while stack:
                item = stack.pop()
                if item.stores_result or item.gathers_results:
                    found.append(item.key)
                stack.extend(reversed(self.children(item)))
            known = self._leaf_keys[id(task)] = tuple(found)
        return known

    def value_digest(self, name: str, value: Any) -> str:
        """The digest of a context value, computed once for the same object."""
        known = self._values.get(name)
        if known is not None and known[0] is value:
            return known[1]
        if isinstance(value, BaseException):
            digest = _digest(f"failed: {type(value).__qualname__}: {value}")
        else:
            try:
                digest = value_digest(value)
            except NotFingerprintable as error:
                raise NotReusable(f"not reusable: input {name!r}: {error.reason}") from None
        self._values[name] = (value, digest)
        return digest

    def _input_digest(self, name: str, context: Context, produced: Mapping[str, str]) -> str:
        if name not in context:
            return ABSENT
        digest = self.value_digest(name, context[name])
        # The producer's key too: a task that read a result produced again
        # from something else runs again, even when the value is equal
        # (see test_a_task_reading_a_result_produced_again_runs_again).
        return _digest(f"{digest}\0{produced.get(name, '')}")

    def _variable_digest(self, name: str, context: Context) -> str:
        if name not in context:
            return ABSENT
        if is_secret_name(name):
            value = context[name]
            return self._secret_digest(name, value if isinstance(value, str) else repr(value))
        return self.value_digest(name, context[name])

    def _secret_digest(self, name: str, value: str | None) -> str:
        """A slow, salted digest: it tells a changed value and never gives it away."""
        known = self._secrets.get((name, value))
        if known is None:
            text = "\0unset" if value is None else value
            known = hashlib.pbkdf2_hmac(
                "sha256", text.encode("utf-8", "surrogatepass"), f"flow2 {name}".encode(), 20_000
            ).hex()[:32]
            self._secrets[(name, value)] = known
        return known


def expand_parts(
    connection: sqlite3.Connection,
    text: str,
    path: Sequence[str],
    known: dict[str, dict[str, str]],
) -> dict[str, str]:
    """Every part of a stored key by name, from the row's ``parts`` (see
    :meth:`KeyParts.stored`; a row written before the shared parts were kept
    apart holds them all) and the path of its task.

    :param known: the shared parts read so far, by digest (read once each)
    """
    parts: dict[str, str] = json.loads(text)
    reference = parts.pop(SHARED, None)
    if reference is None:
        return parts
    shared = known.get(reference)
    if shared is None:
        row = connection.execute(
            "SELECT parts FROM key_parts WHERE digest = ?", (reference,)
        ).fetchone()
        # Gone (a store edited by hand): what is left differs from any key.
        shared = known[reference] = json.loads(row[0]) if row is not None else {}
    return {"path": _digest("\0".join(path)), **shared, **parts}


def differences(
    old: Mapping[str, str],
    new: Mapping[str, str],
    old_details: Mapping[str, Any],
    new_details: Mapping[str, Any],
) -> list[str]:
    """What differs between two keys, field by field, most telling first.

    ``["order: moved before 'Lint'", "input 'wheel' changed"]``; never a value.
    """
    names = sorted(set(old) | set(new), key=_rank)
    told: list[str] = []
    for name in names:
        if name == "path" or old.get(name) == new.get(name):
            continue
        if name == "order":
            told.append(_order_change(old_details, new_details))
        elif name == "inputs before" and any(line.startswith("input ") for line in told):
            continue  # the input that changed is named already
        elif (
            name.startswith("attribute ")
            and f"option {name[10:]}" in names
            and (old.get(f"option {name[10:]}") != new.get(f"option {name[10:]}"))
        ):
            continue  # a declared option is an attribute too: told once
        else:
            told.append(_change(name, name in old, name in new))
    return told


def outputs_changed(recorded: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """What happened to a task's outputs since they were recorded (``outputs: … missing``)."""
    from ._files import MISSING

    told = []
    for path in sorted(set(recorded) | set(now)):
        before, after = recorded.get(path), now.get(path)
        if before == after:
            continue
        if after is None or after == MISSING:
            told.append(f"outputs: {path} missing")
        elif before is None or before == MISSING:
            told.append(f"outputs: {path} appeared")
        else:
            told.append(f"outputs: {path} changed")
    return told


def is_code_part(name: str) -> bool:
    """Whether part ``name`` is one of a callable's behaviour (``code``, ``closure value n``)."""
    return _rank(name)[0] == _PRIORITY.index("code")


def _rank(name: str) -> tuple[int, str]:
    head = name.partition(" ")[0].rstrip(":")
    try:
        return _PRIORITY.index(head), name
    except ValueError:  # closure values, constants, defaults: with the code
        return _PRIORITY.index("code"), name


def _change(name: str, was: bool, now: bool) -> str:
    head, _, rest = name.partition(" ")
    if head == "env":
        return f"env {rest}: changed (value hidden)"
    if head == "source":
        what = "changed" if was and now else "added" if now else "removed"
        return f"sources: {rest} {what}"
    if head == "input":
        what = "changed" if was and now else "is read now" if now else "is no longer read"
        return f"input {rest!r} {what}"
    if head == "variable":
        what = "changed" if was and now else "is read now" if now else "is no longer read"
        return f"variable {rest!r} {what}"
    if head == "sources":
        return "sources: the declared patterns changed"
    if head == "outputs":
        return "outputs: the declared patterns changed"
    if head == "inputs":
        return "inputs before: a result of a task ordered before it changed"
    if head == "salt":
        return "salt changed (FLOW2_CACHE_SALT, or flow2's major version)"
    if head == "kind":
        return "kind changed (its class)"
    if head == "code:":
        return f"code: {rest} changed"
    if not was:
        return f"{name}: new"
    if not now:
        return f"{name}: gone"
    return f"{name} changed"


def _order_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    if old.get("group") != new.get("group"):
        return f"order: its group is now {new.get('group')} (was {old.get('group')})"
    before_old, before_new = old.get("before", []), new.get("before", [])
    left = [name for name in before_old if name not in before_new]
    if left:
        return f"order: moved before {left[0]!r}"
    came = [name for name in before_new if name not in before_old]
    if came:
        return f"order: moved after {came[0]!r}"
    return "order: moved"


def _last(
    nearest: list[str],
    siblings: Sequence[Task],
    position: int,
    leaves: Callable[[Task], tuple[str, ...]],
) -> list[str]:
    """The keys of the last :data:`NEAREST` leaves of the siblings before ``position``
    (a deeper level's come after)."""
    found: list[str] = []
    for place in range(position - 1, -1, -1):
        found[:0] = leaves(siblings[place])
        if len(found) >= NEAREST:
            break
    return [*found, *nearest][-NEAREST:]


def _getter(names: Sequence[str]) -> Callable[[Task], list[Any]]:
    """A function reading the attributes ``names`` of a task, as a list."""
    if len(names) == 1:
        single = operator.attrgetter(names[0])
        return lambda task: [single(task)]
    several = operator.attrgetter(*names)
    return lambda task: list(several(task))


def _kind(group: Task) -> str:
    if isinstance(group, SerialTaskGroup):
        return "serial"
    if isinstance(group, ParallelTaskGroup):
        return "parallel"
    return type(group).__name__


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
