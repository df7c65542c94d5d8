"""Resume: a plan that reuses what succeeded in an earlier run, and says why the rest runs.

A task of the new tree is **reused** (not run; its stored result put back
in the context, reported REUSED) when, in the run being resumed:

1. a task with the same path and key succeeded (or was reused itself);
2. its definition is unchanged (see :func:`flow2._store._values.definition_of`);
3. nothing it could have read differs: the variables are the same, and every
   task that had stored a result (or an error) before it started is reused
   too. A task that declares what it reads (a callback's keyword-only
   parameters, a flow task's ``${{ … }}`` names) depends only on those;
4. its result was stored, and can be loaded (a pickle only under
   ``pickle_results``).

Every other task runs, and the store keeps the reason. The decisions are
made once, before the run starts, by walking the earlier run's tasks in the
order they started: a task's inputs all ended before it started, so they
are decided before it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._engine._state import Reuse
from ._values import changed_parts, declared_reads, decode_result, definition_of, variable_digest

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._engine._state import Decision, TaskRun
    from .._engine._task import Context, Task
    from ._database import StoredRun, StoredTask

Identity = tuple[tuple[str, ...], str]

#: Statuses whose result (or error) was in the context: later tasks could read it.
_STORED = frozenset({"succeeded", "failed", "reused"})
_SUCCESS = frozenset({"succeeded", "reused"})
_BEFORE = {
    "failed": "failed before",
    "cancelled": "was cancelled before",
    "skipped": "was skipped before",
    "running": "did not finish before (the run was interrupted)",
    "retrying": "did not finish before (the run was interrupted)",
    "pending": "did not run before",
}


class ResumePlan:
    """The engine's plan for a resumed run: which tasks to reuse, why the rest run.

    :param previous: the run being resumed, with its tasks
    :param root: the new run's tree
    :param variables: the new run's starting context
    :param pickle_results: load results stored as pickles
    """

    def __init__(
        self,
        previous: StoredRun,
        root: Task,
        variables: Mapping[str, Any],
        *,
        pickle_results: bool = False,
    ) -> None:
        self.previous = previous
        self.pickle_results = pickle_results
        self._decisions: dict[Identity, Reuse] = {}
        self._reasons: dict[Identity, str] = {}
        self._leaves = _leaves_of(root)
        self._plan(variables)

    @property
    def previous_id(self) -> str:
        """The id of the run being resumed."""
        return self.previous.id

    @property
    def reused(self) -> int:
        """How many tasks of the tree are reused."""
        return len(self._decisions)

    @property
    def running(self) -> int:
        """How many tasks of the tree run."""
        return len(self._leaves) - len(self._decisions)

    def announcement(self) -> str:
        """The line a resumed run prints before its first task starts."""
        return (
            f"resuming run {self.previous.id}: reusing {_tasks(self.reused)}, "
            f"running {self.running}"
        )

    def decide(self, record: TaskRun, context: Context) -> Decision | None:
        """Reuse the task's stored result, or None to run it."""
        task = record.task
        if not task.stores_result or not self._decisions:
            return None
        return self._decisions.get((record.path, task.key))

    def reuse_reason(self, path: tuple[str, ...], key: str) -> str | None:
        """Why the task at ``path`` is reused (None when it runs)."""
        decision = self._decisions.get((path, key))
        return None if decision is None else decision.reason

    def rerun_reason(self, path: tuple[str, ...], key: str) -> str | None:
        """Why the task at ``path`` runs again (None when it is reused)."""
        identity = (path, key)
        if identity in self._decisions:
            return None
        return self._reasons.get(
            identity, "created while the run ran: only the tree's own tasks are reused"
        )

    def _plan(self, variables: Mapping[str, Any]) -> None:
        previous = self.previous
        old_leaves = [task for task in previous.tasks if not task.is_group]
        by_identity = {(task.path, task.key): task for task in old_leaves}
        by_key = {task.key: task for task in old_leaves}
        changed = self._changed_variables(variables)
        started = sorted(
            (task for task in old_leaves if task.started_at is not None),
            key=lambda task: (task.started_at, task.number),
        )
        stored = sorted(
            (task for task in old_leaves if task.status in _STORED and task.ended_at is not None),
            key=lambda task: (task.ended_at, task.number),
        )
        reused: set[int] = set()
        first_again: StoredTask | None = None  # the first input that is not reused
        position = 0
        for old in started:
            assert old.started_at is not None
            ends_at_start = False
            while position < len(stored) and stored[position].ended_at <= old.started_at:  # type: ignore[operator]
                earlier = stored[position]
                position += 1
                if earlier is old:  # a reused task starts and ends at once: not its own input
                    ends_at_start = True
                    continue
                if first_again is None and earlier.number not in reused:
                    first_again = earlier
            identity = (old.path, old.key)
            new = self._leaves.get(identity)
            if new is not None:
                self._decide(old, new, changed, by_key, reused, first_again)
            if ends_at_start and first_again is None and old.number not in reused:
                first_again = old
        for identity in self._leaves:
            if identity in self._decisions or identity in self._reasons:
                continue
            old_task = by_identity.get(identity)
            if old_task is None:
                self._reasons[identity] = f"new: not in run {previous.id}"
            else:
                self._reasons[identity] = _BEFORE.get(old_task.status, "did not run before")

    def _decide(
        self,
        old: StoredTask,
        new: Task,
        changed: set[str],
        by_key: Mapping[str, StoredTask],
        reused: set[int],
        first_again: StoredTask | None,
    ) -> None:
        """Reuse ``new`` or say why it runs; ``first_again``: its first input that runs again."""
        identity = (old.path, old.key)
        reason = _own_reason(old, new)
        if reason is None:
            reads = declared_reads(new)
            if reads is None:
                if changed:
                    reason = f"an input changed: variable {sorted(changed)[0]!r}"
                elif first_again is not None:
                    reason = (
                        f"an input changed: {_name(first_again)}, which ended before it "
                        f"started, runs again"
                    )
            else:
                reason = _declared_input_reason(old, reads, changed, by_key, reused)
        value = None
        if reason is None:
            usable, value, why = decode_result(
                old.result_format, old.result, pickle_results=self.pickle_results
            )
            if not usable:
                if old.result_format is None and old.result_note:
                    why = old.result_note
                reason = f"result not stored: {why}"
        if reason is not None:
            self._reasons[identity] = reason
        else:
            reused.add(old.number)
            self._decisions[identity] = Reuse(value, f"succeeded in run {self.previous.id}")

    def _changed_variables(self, variables: Mapping[str, Any]) -> set[str]:
        old = self.previous.variables
        changed = set(old) ^ set(variables)
        for name in set(old) & set(variables):
            entry = old[name]
            digest = variable_digest(
                variables[name], self.previous.id, secret=bool(entry.get("masked"))
            )
            if digest != entry.get("digest"):
                changed.add(name)
        return changed


def _own_reason(old: StoredTask, new: Task) -> str | None:
    if old.status not in _SUCCESS:
        return _BEFORE.get(old.status, f"was {old.status} before")
    if old.definition is None:
        return "its definition was not recorded"
    parts = changed_parts(old.definition, definition_of(new))
    if parts:
        return f"definition changed: {', '.join(parts)}"
    return None


def _declared_input_reason(
    old: StoredTask,
    reads: list[str],
    changed: set[str],
    by_key: Mapping[str, StoredTask],
    reused: set[int],
) -> str | None:
    assert old.started_at is not None
    for name in reads:
        if name in changed:
            return f"an input changed: variable {name!r}"
        source = by_key.get(name)
        if (
            source is not None
            and source.status in _STORED
            and source.ended_at is not None
            and source.ended_at <= old.started_at
            and source.number not in reused
        ):
            return f"an input changed: {_name(source)} runs again"
    return None


def _leaves_of(root: Task) -> dict[Identity, Task]:
    """Every leaf task of the tree by (path, key)."""
    leaves: dict[Identity, Task] = {}
    stack: list[tuple[Task, tuple[str, ...]]] = [(root, ())]
    while stack:
        task, above = stack.pop()
        path = (*above, task.name)
        if task.stores_result:
            leaves[(path, task.key)] = task
        stack.extend((child, path) for child in reversed(task.children))
    return leaves


def _name(task: StoredTask) -> str:
    return f"task {' › '.join(task.path)!r}"


def _tasks(count: int) -> str:
    return f"{count} task" if count == 1 else f"{count} tasks"
