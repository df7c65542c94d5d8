"""What a dry run says the reuser would do, task by task, with nothing run.

Each leaf task is keyed in file order (a task it needs first) from what
is known before the run: the variables, and the stored results of the
tasks that would be reused. A task that reads the result of a task that
would run cannot be keyed yet: it runs, "input 'x' will be produced again".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._engine._state import Reuse
from ._reuse import RAN, restored_reason

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._engine._task import Context, Task
    from ._reuse import ReusePlan

Path = tuple[str, ...]


class DryRun:
    """A resume's or the cache's decisions for a dry run (``flow2 run --dry-run``).

    :param plan: the reuser the run would have
    :param root: the tree
    :param context: the starting context (the variables)
    """

    def __init__(self, plan: ReusePlan, root: Task, context: Mapping[str, Any]) -> None:
        self.plan = plan
        self._context: Context = {**root.starting_context, **context}
        self._chains: dict[str, list[Task]] = {}
        self._paths: dict[Path, list[Task]] = {}
        stack: list[list[Task]] = [[root]]
        order: list[list[Task]] = []
        while stack:
            chain = stack.pop()
            task = chain[-1]
            if task.stores_result:
                order.append(chain)
                self._chains.setdefault(task.key, chain)
                self._paths[tuple(t.name for t in chain)] = chain
            stack.extend([*chain, child] for child in reversed(task.children))
        self._numbers: dict[Path, int] = {}
        self._again: dict[Path, str] = {}
        self._will_run: set[str] = set()
        for chain in order:
            self._decide(chain)

    @property
    def previous_id(self) -> str:
        """The run a resume would reuse from (empty for the cache alone)."""
        return self.plan.previous_id or ""

    def reuse_reason(self, path: Path, key: str) -> str | None:
        """Why the task at ``path`` would be reused; None when it would run."""
        number = self._numbers.get(path)
        if number is None:
            return None
        decided = self.plan.decisions[number]
        return decided.reason if decided.outcome != RAN else None

    def rerun_reason(self, path: Path, key: str) -> str | None:
        """Why the task at ``path`` would run."""
        if path in self._again:
            return self._again[path]
        number = self._numbers.get(path)
        if number is None:
            return None
        return self.plan.decisions[number].reason

    def _decide(self, chain: list[Task]) -> None:
        path = tuple(task.name for task in chain)
        if path in self._numbers or path in self._again:
            return
        task = chain[-1]
        self._numbers[path] = -1  # being decided: a cycle of needs is the run's to report
        reads = sorted(self.plan.keys.reads(chain))
        for name in reads:
            producer = self._chains.get(name)
            if producer is not None and producer is not chain:
                self._decide(producer)
        del self._numbers[path]
        again = [name for name in reads if name in self._will_run]
        if again:
            self._again[path] = f"runs: input {again[0]!r} will be produced again"
            self._will_run.add(task.key)
            return
        number = len(self._numbers)
        self._numbers[path] = number
        sources, outputs = self.plan.digest_files(task)
        callback = getattr(task, "callback", None)
        decision = self.plan.judge(
            number,
            path,
            chain,
            self._context,
            sources,
            outputs,
            # A dry run imports no callback: what stands in has its name and
            # signature, not its code (see flow2._flows._plugins.locate_reference).
            code_unknown=bool(getattr(callback, "__flow2_stand_in__", False)),
        )
        if isinstance(decision, Reuse):
            self._context[task.key] = decision.result
            decided = self.plan.decisions[number]
            if decided.restore:  # nothing is written in a dry run
                decided.reason = restored_reason(decided, done=False)
        else:
            self._will_run.add(task.key)
