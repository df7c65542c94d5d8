"""Running some tasks of a tree by name: the tree pruned to them.

``flow2 run NAME…`` (and :class:`flow2.Runner`'s ``select=``) runs the tasks
named, what they need, and nothing else. Unlike ``only=`` (a
:class:`~flow2._engine._partial.PartialRun`, which reports every task it
leaves out as SKIPPED), :func:`select_tasks` builds a smaller tree: the
tasks left out are not part of the run at all, so no event, record, line or
count names them.

The pruned tree keeps every kept task's name, path and result key; a group
that loses tasks is a shallow copy of the original holding the kept ones.
:attr:`Selection.originals` maps each copy back to its original, so that a
task's reuse key (whose ``order`` part is its place among *all* its
siblings) is the one a full run computes: a task run by name is reused after
a full run, and the other way round, as with ``only=``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from ._exceptions import DefinitionError
from ._groups import TaskGroup
from ._partial import _Tree

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._needs import Needs
    from ._task import Task


class Selection:
    """A tree pruned to the tasks a run selects by name.

    :ivar root: the root of the pruned tree (the tree itself when it loses nothing)
    :ivar original_root: the tree it was pruned from
    :ivar originals: ``id(copy)`` → the group each pruned copy was made from
    :ivar names: the references the tasks were selected by
    """

    __slots__ = ("_kept", "_tree", "names", "original_root", "originals", "root")

    def __init__(
        self,
        root: Task,
        original_root: Task,
        originals: dict[int, Task],
        *,
        names: tuple[str, ...],
        tree: _Tree,
        kept: set[int],
    ) -> None:
        self.root = root
        self.original_root = original_root
        self.originals = originals
        self.names = names
        self._tree = tree
        self._kept = kept

    def __repr__(self) -> str:
        return f"<Selection of {self.original_root.name!r}: {len(self.originals)} groups pruned>"

    def check_reference(self, reference: str, option: str) -> None:
        """Check that ``reference`` (of ``--only``, ``--skip``…) names a task the selection kept.

        :raises flow2.DefinitionError: it names no task of the whole tree, several,
            or one the tasks run by name do not include
        """
        task = self._tree.find(reference, option)
        if id(task) not in self._kept:
            named = ", ".join(map(repr, self.names))
            raise DefinitionError(
                f"{option} {reference!r} names a task that the run of {named} leaves out "
                f"(it runs those tasks and what they need); name {reference!r} too, or drop "
                f"{option} {reference!r}",
                option=option.strip("-"),
                key=reference,
            )


def select_tasks(
    root: Task,
    references: Sequence[str],
    *,
    needs: Needs | None,
    option: str = "select",
) -> Selection:
    """The tree under ``root`` pruned to the tasks ``references`` name and what they need.

    Kept: each task named (a group with all its tasks), the tasks each kept
    task or its groups need (transitively), the groups holding a kept task,
    and the cleanup tasks (``on_failure``, ``finally``) of each kept group,
    with what they need. A task with children that is not a
    :class:`flow2.TaskGroup` keeps all its children: only a group's list
    of tasks can be pruned.

    :param root: the tree, already checked
    :param references: result keys or group paths (``checks``, ``release/checks``)
    :param needs: what the analysis of the tree's needs found (None: no task
        has needs or a condition)
    :param option: how errors name where the references come from
    :raises flow2.DefinitionError: a reference names no task, or several
    """
    tree = _Tree(root)
    producers = needs.producers if needs is not None else {}
    named = [tree.find(reference, option) for reference in references]
    pending = [inner for task in named for inner in tree.subtree(task)]
    kept: set[int] = set()
    while pending:
        task = pending.pop()
        if id(task) in kept:
            continue
        kept.add(id(task))
        parent = tree.parent.get(id(task))
        if parent is not None:
            pending.append(parent)
        for key in task.needs:
            producer = producers.get(key)
            if producer is not None:
                pending.extend(tree.subtree(producer))
        if not _is_prunable(task):
            pending.extend(tree.subtree(task))
        elif isinstance(task, TaskGroup):
            for cleanup in (*task.on_failure, *task.finally_tasks):
                pending.extend(tree.subtree(cleanup))
    # Children before their groups: each group's kept tasks are known when it is reached.
    replacement: dict[int, Task] = {}
    originals: dict[int, Task] = {}
    for task in reversed(tree.order):
        if id(task) not in kept:
            continue
        children = task.children
        if all(id(child) in kept and replacement[id(child)] is child for child in children):
            replacement[id(task)] = task
            continue
        assert isinstance(task, TaskGroup)  # see _is_prunable: a kept task's children
        pruned = copy.copy(task)
        pruned.tasks = [replacement[id(child)] for child in task.tasks if id(child) in kept]
        pruned.on_failure = [replacement[id(child)] for child in task.on_failure]
        pruned.finally_tasks = [replacement[id(child)] for child in task.finally_tasks]
        originals[id(pruned)] = task
        replacement[id(task)] = pruned
    return Selection(
        replacement[id(root)], root, originals, names=tuple(references), tree=tree, kept=kept
    )


def _is_prunable(task: Task) -> bool:
    """Whether the run may leave out some of ``task``'s children: a group's own tasks."""
    return not task.children or (
        isinstance(task, TaskGroup) and type(task).children is TaskGroup.children
    )
