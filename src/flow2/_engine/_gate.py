"""What a task passes before it starts: the run's plan, its needs, its condition.

A run has a :class:`Gate` only when its tree has needs or conditions, or
when it follows a plan (a partial or resumed run); a task of any other run
starts without consulting anything. The gate, in order:

1. asks the plan (:meth:`flow2.Plan.decide`): a task the plan leaves out or
   reuses neither waits nor runs (a group's cleanup tasks are not asked:
   they always run);
2. waits until every task producing a key the task needs has finished, and
   leaves the task out (SKIPPED, "needs 'wheel', which failed") when one of
   them failed, was skipped or was cancelled;
3. evaluates the task's ``when`` condition: false leaves it out
   ("condition is false");
4. asks the run's reuser (the run store, when the run records): only now,
   with its inputs known and its condition true, is the task's reuse key
   computed, and a stored result with an equal key stands in for it.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

from ._events import FINISHED_STATUSES, Status, TaskEvent
from ._executor import keyword_only_parameters
from ._state import Skip

if TYPE_CHECKING:
    from ._events import Event
    from ._needs import Needs
    from ._run import Run
    from ._state import Decision, Plan, Reuser, TaskRun
    from ._task import Context, Task

#: How the reason of a skipped task names what happened to its need.
_WHAT_HAPPENED = {
    Status.FAILED: "failed",
    Status.SKIPPED: "was skipped",
    Status.CANCELLED: "was cancelled",
}

CONDITION_IS_FALSE = "condition is false"


class Gate:
    """The checks a task of one run passes before it starts.

    :param run: the run
    :param plan: the run's plan, or None
    :param needs: what the tree's analysis found, or None when no task has needs
    :param reuser: what decides reuse by key, or None
    """

    __slots__ = ("_finished", "needs", "plan", "reuser", "run")

    #: As a listener, it only needs the events that end a task.
    listens_to = FINISHED_STATUSES

    def __init__(
        self, run: Run, plan: Plan | None, needs: Needs | None, reuser: Reuser | None = None
    ) -> None:
        self.run = run
        self.plan = plan
        self.needs = needs
        self.reuser = reuser
        # One asyncio.Event per producer that somebody waits for, created on
        # the first wait and set by the producer's finishing event.
        self._finished: dict[int, asyncio.Event] = {}

    def __call__(self, event: Event) -> None:
        """Wake the tasks waiting for the task that just finished (a run listener)."""
        if type(event) is TaskEvent:
            finished = self._finished.pop(id(event.task), None)
            if finished is not None:
                finished.set()

    async def check(self, record: TaskRun, context: Context) -> Decision | None:
        """None to start the task; else why it does not run.

        :raises Exception: what the task's condition raised
        """
        # A cleanup task is never reused nor left out: it always runs when
        # its group does. See test_cleanup_tasks_run_again_when_a_run_is_resumed.
        if self.plan is not None and not record.in_cleanup:
            decision = self.plan.decide(record, context)
            if decision is not None:
                return decision
        task = record.task
        needs = self.needs
        if needs is not None:
            waits = needs.waits.get(id(task))
            if waits:
                for key, producer in waits:
                    status = await self._outcome_of(producer)
                    happened = _WHAT_HAPPENED.get(status)
                    if happened is not None:
                        return Skip(f"needs {key!r}, which {happened}")
        when = task.when
        if when is not None and not await condition_holds(when, context):
            # Before reuse: a task whose condition is now false is skipped,
            # never reused. See test_a_condition_now_false_skips_never_reuses.
            return Skip(CONDITION_IS_FALSE)
        if self.reuser is not None:
            return await self.reuser.decide(record, context)
        return None

    async def _outcome_of(self, producer: Task) -> Status:
        """The status ``producer`` ends with in this run, once it has ended."""
        record = self.run.record_for(producer)
        if not record.status.is_finished:
            finished = self._finished.get(id(producer))
            if finished is None:
                finished = self._finished[id(producer)] = asyncio.Event()
            # An Event, not a shared future: a waiter cancelled here must not
            # cancel the wait of the others. See test_cancelled_waiter_is_reported_cancelled.
            await finished.wait()
        return record.status


async def condition_holds(when: Any, context: Context) -> bool:
    """Evaluate a ``when`` condition: a bool, or a sync or async callable of the context.

    A callable's keyword-only parameters receive the context keys of those names.
    """
    if isinstance(when, bool):
        return when
    keywords = {name: context[name] for name, _ in keyword_only_parameters(when) if name in context}
    value = when(context, **keywords)
    while inspect.isawaitable(value):
        value = await value
    return bool(value)
