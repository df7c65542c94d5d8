"""The tasks of a loaded flow by the names people type: ``flow2 list`` and ``flow2 run NAME``.

A leaf task is named by its result key (``build``), a group by its name in
snake_case (``checks``), or by the path of group names down to it
(``release/checks``) when the short name would name several tasks. These
are exactly the references ``--only`` takes (see
:class:`flow2._engine._partial.PartialRun`), so running a listed name runs
that task and what it needs, nothing else.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._engine._exceptions import DefinitionError
from .._engine._naming import snake_case
from .._engine._partial import _Tree

if TYPE_CHECKING:
    from ._loader import Node


@dataclass(frozen=True)
class NamedTask:
    """One runnable task or group of a flow, as ``flow2 list`` shows it.

    :ivar name: what to type after ``flow2 run``
    :ivar node: the loaded node
    :ivar depth: 0 for the root's children, 1 under them, …
    """

    name: str
    node: Node
    depth: int

    @property
    def description(self) -> str:
        """The node's ``description:``, on one line ("" without one)."""
        return " ".join((self.node.task.description or "").split())

    @property
    def is_group(self) -> bool:
        """Whether the node holds tasks."""
        return bool(self.node.children)


def named_tasks(root: Node) -> list[NamedTask]:
    """Every task and group under ``root`` (not the root itself), in file order."""
    tree = _Tree(root.task)
    found: list[NamedTask] = []

    def walk(node: Node, path: tuple[str, ...], depth: int) -> None:
        for child in node.children:
            child_path = (*path, snake_case(child.task.name))
            found.append(NamedTask(_reference(tree, child, child_path), child, depth))
            walk(child, child_path, depth + 1)

    walk(root, (), 0)
    return found


def _reference(tree: _Tree, node: Node, path: tuple[str, ...]) -> str:
    """The shortest reference naming ``node``'s task alone (its key, else a longer path)."""
    candidates = [node.task.key] if node.task.stores_result and not node.children else []
    candidates += ["/".join(path[start:]) for start in range(len(path) - 1, -1, -1)]
    for candidate in candidates:
        try:
            if tree.find(candidate, "NAME") is node.task:
                return candidate
        except DefinitionError:
            continue
    return "/".join(path)


def check_names(root: Node, names: list[str], *, file: str) -> None:
    """Check that each of ``names`` names one task of the flow.

    :raises flow2.DefinitionError: naming the unknown name, the closest known
        one, and ``flow2 list``
    """
    tree = _Tree(root.task)
    listed = named_tasks(root)
    for name in names:
        try:
            tree.find(name, "NAME")
        except DefinitionError:
            pass
        else:
            continue
        last = snake_case(name.strip("/").rsplit("/", 1)[-1])
        several = [task.name for task in listed if task.name.rsplit("/", 1)[-1] == last]
        if len(several) > 1:
            raise DefinitionError(
                f"{name!r} names several tasks; run one of: {', '.join(several)}",
                file=file,
                value=name,
            ) from None
        known = [task.name for task in listed]
        closest = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {closest[0]!r}? " if closest else ""
        shown = ", ".join(known[:12]) + (", …" if len(known) > 12 else "")
        raise DefinitionError(
            f"no task named {name!r}; {hint}`flow2 list` lists the tasks ({shown or 'none'})",
            file=file,
            value=name,
        ) from None
