"""Running part of a tree, and saying beforehand what a run would do.

:class:`PartialRun` is a plan (see :class:`flow2.TaskRun` and ``Plan``): it
leaves tasks out of a run — all but ``only`` and what they need, those of
``skip``, those after ``until`` — or, with ``start_from``, takes the results
of the tasks before a task from an earlier run. Tasks are named by a leaf's
result key or a group's path (``checks``, ``release/checks``).

:func:`plan_run` tells, without running anything, which tasks a run would
run, skip or reuse, and why (``flow2 run --dry-run``, :meth:`flow2.Runner.dry_run`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ._exceptions import DefinitionError
from ._foreach import ForEach
from ._gate import CONDITION_IS_FALSE
from ._naming import snake_case
from ._needs import Condition, NeedsError, analyse_needs
from ._state import Reuse, Skip

if TYPE_CHECKING:
    from ._needs import Needs
    from ._state import Decision, TaskRun
    from ._task import Context, Task


class _Tree:
    """The tasks of a tree in file order, with their parents and paths."""

    def __init__(self, root: Task) -> None:
        self.order: list[Task] = []
        self.parent: dict[int, Task] = {}
        self.path: dict[int, tuple[str, ...]] = {id(root): (root.name,)}
        self.last: dict[int, int] = {}  # id → position of the last task of its subtree
        stack = [root]
        while stack:
            task = stack.pop()
            self.order.append(task)
            for child in task.children:
                self.parent[id(child)] = task
                self.path[id(child)] = (*self.path[id(task)], child.name)
            stack.extend(reversed(task.children))
        self.position = {id(task): index for index, task in enumerate(self.order)}
        for index in range(len(self.order) - 1, -1, -1):
            task = self.order[index]
            children = task.children
            self.last[id(task)] = self.last[id(children[-1])] if children else index

    def ancestors(self, task: Task) -> list[Task]:
        found = []
        parent = self.parent.get(id(task))
        while parent is not None:
            found.append(parent)
            parent = self.parent.get(id(parent))
        return found

    def subtree(self, task: Task) -> list[Task]:
        start = self.position[id(task)]
        return self.order[start : self.last[id(task)] + 1]

    def find(self, reference: str, option: str) -> Task:
        """The task a reference names: a leaf's key, or a path ending with group names.

        :raises flow2.DefinitionError: when it names no task, or several
        """
        wanted = [part.strip() for part in reference.strip("/").split("/")]
        matches = []
        for task in self.order:
            if task.stores_result and task.key == reference:
                matches.append(task)
                continue
            path = self.path[id(task)]
            if len(wanted) <= len(path) and all(
                part == name or part == snake_case(name) or part.lower() == name.lower()
                for part, name in zip(wanted, path[-len(wanted) :], strict=True)
            ):
                matches.append(task)
        if len(matches) == 1:
            return matches[0]
        if not matches:
            known = sorted(
                {task.key for task in self.order if task.stores_result}
                | {"/".join(self.path[id(task)][1:]) for task in self.order if task.children} - {""}
            )
            closest = difflib.get_close_matches(reference, known, n=1)
            hint = f"did you mean {closest[0]!r}? " if closest else ""
            raise DefinitionError(
                f"{option} {reference!r} names no task: it is neither a task's result key "
                f"nor a group's path; {hint}tasks: {', '.join(known[:20]) or 'none'}",
                option=option.strip("-"),
                key=reference,
            )
        listed = ", ".join(repr("/".join(self.path[id(task)])) for task in matches[:5])
        raise DefinitionError(
            f"{option} {reference!r} names several tasks ({listed}); give the group's path",
            option=option.strip("-"),
            key=reference,
        )


class PartialRun:
    """A plan running part of a tree; pass it to a run (``Runner(only=…)`` builds one).

    :param root: the tree (already checked)
    :param only: run these tasks, and the tasks they need, and nothing else
    :param skip: leave these tasks out (and the tasks needing them are skipped)
    :param until: run the tasks up to this one (and what it needs), none after it
    :param start_from: start at this task: the tasks before it are not run,
        their results are taken from ``stored_results``
    :param stored_results: result key → result, from an earlier run of the tree
    :param source: where ``stored_results`` come from, as errors and reasons name it
    :param needs: what the analysis of the tree's needs found, when the tree
        was checked already (None: no task has needs or a condition)
    :raises flow2.DefinitionError: a reference names no task or several, or
        ``stored_results`` lacks a result the tasks from ``start_from`` on need
    """

    def __init__(
        self,
        root: Task,
        *,
        only: Iterable[str] = (),
        skip: Iterable[str] = (),
        until: str | None = None,
        start_from: str | None = None,
        stored_results: Mapping[str, Any] | None = None,
        source: str = "the latest recorded run",
        needs: Needs | Literal["analyse"] | None = "analyse",
    ) -> None:
        self.source = source
        tree = _Tree(root)
        self.tree = tree
        if isinstance(needs, str):
            needs = analyse_needs(root, None)
        # A tree checked already: None when no task has needs or a condition.
        producers = needs.producers if needs is not None else {}
        self.decisions: dict[int, Decision] = {}

        def needed_by(tasks: Iterable[Task]) -> set[int]:
            """``tasks``, their groups' needs, and what they need, transitively."""
            found: set[int] = set()
            pending = list(tasks)
            while pending:
                task = pending.pop()
                if id(task) in found:
                    continue
                found.add(id(task))
                for holder in (task, *tree.ancestors(task)):
                    pending.extend(producers[key] for key in holder.needs if key in producers)
            return found

        def keep_with_groups(kept: set[int]) -> set[int]:
            for task in tree.order:
                if id(task) in kept:
                    kept.update(id(group) for group in tree.ancestors(task))
            return kept

        only_tasks = [tree.find(reference, "--only") for reference in only]
        if only_tasks:
            chosen = [inner for task in only_tasks for inner in tree.subtree(task)]
            kept = keep_with_groups(needed_by(chosen))
            for task in tree.order:
                if id(task) not in kept:
                    self.decisions[id(task)] = Skip("left out by --only")
        for reference in skip:
            self.decisions[id(tree.find(reference, "--skip"))] = Skip("left out by --skip")
        if until is not None:
            last = tree.find(until, "--until")
            end = tree.last[id(last)]
            kept = keep_with_groups(needed_by(tree.subtree(last)))
            for task in tree.order[end + 1 :]:
                if id(task) not in kept:
                    self.decisions.setdefault(id(task), Skip(f"after {last.name!r} (--until)"))
        if start_from is not None:
            self._start_from(tree.find(start_from, "--from"), stored_results or {}, needed_by)

    def _start_from(self, first: Task, stored: Mapping[str, Any], needed_by: Any) -> None:
        tree = self.tree
        start = tree.position[id(first)]
        ancestors = {id(group) for group in tree.ancestors(first)}
        before = [
            task for task in tree.order[:start] if id(task) not in ancestors and task.stores_result
        ]
        needed = needed_by(tree.order[start:])
        missing = [task.key for task in before if id(task) in needed and task.key not in stored]
        if missing:
            raise DefinitionError(
                f"--from {first.name!r}: {self.source} has no result for "
                f"{', '.join(map(repr, missing))}, which {first.name!r} or the tasks after it "
                f"need; run the whole flow (or --until {first.name!r}) first",
                option="from",
                key=missing[0],
            )
        for task in before:
            if task.key in stored:
                self.decisions[id(task)] = Reuse(
                    stored[task.key], f"result of {self.source} (--from {first.name!r})"
                )
            else:
                self.decisions[id(task)] = Skip(f"before {first.name!r} (--from)")

    def decide(self, record: TaskRun, context: Context) -> Decision | None:
        """Leave the task out, reuse its stored result, or (None) run it."""
        return self.decisions.get(id(record.task))


class ResumeDecisions(Protocol):
    """What a resume would do with each leaf task (the run store's resume plan)."""

    @property
    def previous_id(self) -> str:
        """The id of the run being resumed."""

    def reuse_reason(self, path: tuple[str, ...], key: str) -> str | None:
        """Why the task at ``path`` would be reused; None when it would run."""

    def rerun_reason(self, path: tuple[str, ...], key: str) -> str | None:
        """Why the task at ``path`` would run again."""


class PlannedTask:
    """What a run would do with one task.

    :ivar task: the task
    :ivar path: names from the root down to it
    :ivar action: ``"run"``, ``"skip"`` or ``"reuse"``
    :ivar reason: why it would be skipped or reused; for a task that runs, a
        condition decided only when it starts
    :ivar needs: the result keys it waits for
    """

    __slots__ = ("action", "needs", "path", "reason", "task")

    def __init__(self, task: Task, path: tuple[str, ...], action: str, reason: str | None) -> None:
        self.task = task
        self.path = path
        self.action = action
        self.reason = reason
        self.needs = task.needs

    def __repr__(self) -> str:
        return f"<PlannedTask {'/'.join(self.path)!r} {self.action}>"


class RunPlan:
    """What a run would do, task by task, in file order; nothing ran.

    ``str(plan)`` draws it as a tree (what ``flow2 run --dry-run`` prints).

    :ivar tasks: a :class:`PlannedTask` per task
    """

    def __init__(self, tasks: list[PlannedTask], *, resumed_run: str | None = None) -> None:
        self.tasks = tasks
        #: The run a resume would reuse results from, when the plan is a resume's.
        self.resumed_run = resumed_run

    def __getitem__(self, key: str) -> PlannedTask:
        """The planned task whose result key (or, for a group, name) is ``key``."""
        for planned in self.tasks:
            task = planned.task
            if (task.key if task.stores_result else task.name) == key:
                return planned
        raise KeyError(key)

    def __str__(self) -> str:
        lines = []
        for planned in self.tasks:
            depth = len(planned.path) - 1
            task = planned.task
            label = f"{task.name} → {task.key}" if task.stores_result else task.name
            text = f"{'    ' * depth}{label}  {planned.action.upper()}"
            if planned.reason:
                text += f" ({planned.reason})"
            if planned.needs:
                text += f"  needs: {', '.join(planned.needs)}"
            lines.append(text)
        counts = {action: 0 for action in ("run", "skip", "reuse")}
        for planned in self.tasks:
            if planned.task.stores_result:
                counts[planned.action] += 1
        resumed = f" from run {self.resumed_run}" if self.resumed_run else ""
        lines.append(
            f"{counts['run']} to run, {counts['skip']} to skip, {counts['reuse']} to "
            f"reuse{resumed}; nothing ran (dry run)"
        )
        return "\n".join(lines)


def plan_run(
    root: Task,
    context: Context,
    plan: PartialRun | None,
    *,
    resume: ResumeDecisions | None = None,
    needs: Needs | Literal["analyse"] | None = "analyse",
) -> RunPlan:
    """What running ``root`` from ``context`` with ``plan`` would do; runs nothing.

    :param resume: what a resume would reuse; a task it does not reuse runs,
        and the plan says why
    :param needs: what the analysis of the tree's needs found, when the tree
        was checked already (None: no task has needs or a condition)
    :raises flow2.NeedsError: when the tree's needs cannot be met, as a run would
    """
    if isinstance(needs, str):
        needs = analyse_needs(root, context)
        if needs.problems:
            raise NeedsError(problems=needs.problems)
    tree = plan.tree if plan is not None else _Tree(root)
    producers = needs.producers if needs is not None else {}
    decided: dict[int, tuple[str, str | None]] = {}
    in_cleanup: set[int] = set()
    for task in tree.order:
        parent = tree.parent.get(id(task))
        inherited = decided.get(id(parent)) if parent is not None else None
        if inherited is not None and inherited[0] == "skip":
            decided[id(task)] = inherited
            continue
        if parent is not None and (
            id(parent) in in_cleanup or parent.cleanup_role_of(task) is not None
        ):
            # As in a run: a cleanup task is never reused nor left out.
            in_cleanup.add(id(task))
            decided[id(task)] = ("run", "a cleanup task always runs")
            continue
        decision = plan.decisions.get(id(task)) if plan is not None else None
        if isinstance(decision, Skip):
            decided[id(task)] = ("skip", decision.reason)
        elif isinstance(decision, Reuse):
            decided[id(task)] = ("reuse", decision.reason)
        else:
            note = _condition_note(task, context, producers)
            if note != CONDITION_IS_FALSE and resume is not None and task.stores_result:
                path = tree.path[id(task)]
                reused = resume.reuse_reason(path, task.key)
                if reused is not None:
                    decided[id(task)] = ("reuse", reused)
                    continue
                again = resume.rerun_reason(path, task.key)
                note = f"{again}; {note}" if again and note else again or note
            decided[id(task)] = ("skip" if note == CONDITION_IS_FALSE else "run", note)
    # A task whose need is skipped is skipped: repeat until nothing changes
    # (a need may sit later in the file, in a parallel group).
    changed = True
    while changed:
        changed = False
        for task in tree.order:
            if decided[id(task)][0] != "run":
                continue
            parent = tree.parent.get(id(task))
            if parent is not None and decided[id(parent)][0] == "skip":
                decided[id(task)] = decided[id(parent)]
                changed = True
                continue
            for key in task.needs:
                producer = producers.get(key)
                if producer is not None and decided[id(producer)][0] == "skip":
                    decided[id(task)] = ("skip", f"needs {key!r}, which is skipped")
                    changed = True
                    break
    for task in tree.order:
        action, note = decided[id(task)]
        if isinstance(task, ForEach) and action == "run":
            # Its tasks are not known before it runs: say what they come from.
            expands = f"expands at run time over {task.items_text}"
            decided[id(task)] = (action, f"{note}; {expands}" if note else expands)
    return RunPlan(
        [PlannedTask(task, tree.path[id(task)], *decided[id(task)]) for task in tree.order],
        resumed_run=resume.previous_id if resume is not None else None,
    )


def _condition_note(task: Task, context: Context, producers: Mapping[str, Task]) -> str | None:
    """The planned action's note for a condition (a false one makes it a skip)."""
    when = task.when
    if when is None or when is True:
        return None
    if when is False:
        return CONDITION_IS_FALSE
    if isinstance(when, Condition) and not set(when.reads) & set(producers):
        try:
            holds = bool(when(context))
        except Exception:
            return "if its condition holds"
        return None if holds else CONDITION_IS_FALSE
    return "if its condition holds"
