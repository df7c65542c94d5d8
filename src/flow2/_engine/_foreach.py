"""Fan-out at run time: a group that makes one task (or subtree) per item of a value
known only when it runs.

A :class:`ForEach` has no children in the tree: when it starts (its needs
met, its condition true), it reads its items (a context key or a callable of
the context), asks its ``task`` factory for one task per item, checks them
(a list, names and keys unique, needs already met), gives each a record
under its own, and runs them as a serial or a parallel group would, with
``max_parallel`` and ``on_error``. Each item is then an ordinary task of the
run: reported, recorded, keyed and reused by its path, which its name makes
stable from run to run. The results are gathered, in item order, under the
group's key.

Nothing here walks the tree: making N items costs N factory calls and N
records, whatever the size of the rest of the tree.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ._exceptions import DefinitionError, DuplicateKeyError, TaskTypeError
from ._frames import user_frames
from ._gate import Gate
from ._groups import (
    OnError,
    TaskGroup,
    check_max_parallel,
    check_on_error,
    run_concurrently,
    run_serially,
)
from ._task import Context, Task, check_is_task, merge_needs, parameter_needs

#: Item values accepted as a list of items.
_SEQUENCES = (list, tuple, range)


class ForEach(TaskGroup):
    """A group that expands, when it runs, into one task (or subtree) per item.

    The results of the items are stored under the group's key as a list in
    item order: an item's result, or for an item that is a group, a dict of
    its tasks' results by key; a failed item's exception; None for an item
    that did not run.

    :param name: group name
    :param items: where the items come from when the group starts: a context
        key (a result or a variable; it becomes a need of the group) or a
        sync or async callable taking the context. The value must be a list
        (or a tuple or a range); an empty one makes a successful group
        without children
    :param task: a callable taking one item and returning a new
        :class:`flow2.Task` for it, named after the item (e.g.
        ``f"Test[{item}]"``): the name is the item's identity in the run
        store, so it must differ from item to item
    :param parallel: run the items at once (default), or one after another,
        stopping at the first failure as :class:`SerialTaskGroup` does
    :param max_parallel: with ``parallel``, how many items may run at once
        (None: all)
    :param on_error: with ``parallel``, as :class:`ParallelTaskGroup`'s:
        ``"continue"``, ``"raise"`` or ``"cancel"``
    :param items_text: how the items are shown before the run (a dry run
        says the group "expands at run time over" it); the key, or the
        callable's name, when not given
    :param kwargs: the options of :class:`Task` (``needs``, ``when``, ``cache`` …)
    :raises flow2.DefinitionError: on a bad option value

    When it runs, the group fails (its items do not start) with

    - :class:`flow2.TaskTypeError` when the items are not a list (a string
      is never iterated letter by letter), or ``task`` returns no Task;
    - :class:`flow2.DuplicateKeyError` when two items make tasks of one
      name or result key;
    - :class:`flow2.DefinitionError` when an item's task needs a key that no
      task has stored when the group starts (give the need to the group).

    Example::

        def test_one(package):
            return flow2.CallbackTask(f"Test[{package}]", lambda context: test(package))

        flow2.ForEach("Test", items="packages", task=test_one, max_parallel=2)
    """

    #: Its results, gathered, are stored under its key.
    gathers_results = True
    #: The options of :class:`Task`, and how it expands.
    definition_options = (
        *TaskGroup.definition_options,
        "items",
        "parallel",
        "max_parallel",
        "on_error",
    )

    def __init__(
        self,
        name: str,
        *,
        items: str | Callable[[Context], Any],
        task: Callable[[Any], Task],
        parallel: bool = True,
        max_parallel: int | None = None,
        on_error: OnError | str = OnError.CONTINUE,
        items_text: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        if isinstance(items, str):
            if not items.strip():
                raise DefinitionError(
                    f"for-each group {name!r}: items={items!r} is not a context key; "
                    f"give a key such as items='packages', or a callable of the context",
                    task=name,
                    option="items",
                    value=items,
                )
            if items == self.key:
                raise DefinitionError(
                    f"for-each group {name!r} stores its items' results under {items!r}, "
                    f"the key its items come from; give the group another name, or "
                    f"register='…'",
                    task=name,
                    option="items",
                    value=items,
                )
            reads: tuple[str, ...] = (items,)
        elif callable(items):
            reads = parameter_needs(items)
        else:
            raise DefinitionError(
                f"for-each group {name!r}: items={items!r} is neither a context key nor a "
                f"callable; write e.g. items='packages' or items=lambda context: "
                f"context['packages']",
                task=name,
                option="items",
                value=items,
            )
        if not callable(task) or isinstance(task, Task):
            raise DefinitionError(
                f"for-each group {name!r}: task={task!r} is not a callable making one task "
                f"per item; write e.g. task=lambda item: flow2.CallbackTask(f'Test[{{item}}]', "
                f"lambda context: test(item))",
                task=name,
                option="task",
                value=task,
            )
        if not isinstance(parallel, bool):
            raise DefinitionError(
                f"for-each group {name!r}: parallel={parallel!r} is not true or false",
                task=name,
                option="parallel",
                value=parallel,
            )
        on_error = check_on_error(name, on_error)
        max_parallel = check_max_parallel(name, max_parallel)
        if not parallel and (max_parallel is not None or on_error is not OnError.CONTINUE):
            option = "max_parallel" if max_parallel is not None else "on_error"
            raise DefinitionError(
                f"for-each group {name!r}: {option} applies to items run in parallel; "
                f"remove it, or use parallel=True",
                task=name,
                option=option,
                value=max_parallel if max_parallel is not None else on_error.value,
            )
        if reads:
            self.needs = merge_needs(self.needs, reads)
        self.items = items
        self.task_factory = task
        self.parallel = parallel
        self.max_parallel = max_parallel
        self.on_error = on_error
        self.items_text = items_text if items_text is not None else _describe_items(items)

    async def run(self, context: Context | None = None) -> Context:
        """Expand into one task per item and run them; without a current run, run the tree.

        :param context: context dict
        :returns: the context, with the items' results under the group's key
        :raises ExceptionGroup: with ``on_error`` "raise" or "cancel", of the failures
        """
        record, context = self._enter(context)
        if record is None:
            try:
                return await self.process(context)
            except Exception as error:
                # The caller sees its own frames, not flow2's and asyncio's.
                raise user_frames(error)  # noqa: B904  (the same exception, not a new one)

        async def expand_and_run() -> None:
            values = await self._values(context)
            tasks = self._expand(values, context)
            run = record.run
            if run.gate is None and tasks:
                # The items' own conditions are checked as any task's; a run
                # whose tree had none has no gate yet.
                # See test_an_items_condition_is_checked_in_a_tree_without_any_other.
                run.gate = Gate(run, None, None, None)
            try:
                if self.parallel:
                    failures = await run_concurrently(
                        record,
                        context,
                        tasks,
                        max_parallel=self.max_parallel,
                        on_error=self.on_error,
                    )
                else:
                    await run_serially(record, context, tasks)
                    failures = []
            finally:
                # Gathered however the items ended: a failed one's exception,
                # None for one that did not run.
                context[self.key] = [_result_of(task, context) for task in tasks]
            if failures and self.on_error is not OnError.CONTINUE:
                raise ExceptionGroup(
                    f"{len(failures)} of {len(tasks)} items in group {self.name!r} failed",
                    failures,
                )

        # Its on_failure and finally_tasks run after the items, as any group's.
        await self._run_with_cleanup(record, context, expand_and_run)
        return context

    async def _values(self, context: Context) -> list[Any] | tuple[Any, ...] | range:
        """The items, read now; a value that is not a list is an error naming the fix."""
        items = self.items
        if isinstance(items, str):
            if items not in context:
                raise DefinitionError(
                    f"for-each group {self.name!r}: the context holds no {items!r} when the "
                    f"group starts; store it before the group (a task or a variable of that "
                    f"name)",
                    task_definition=self,
                    option="items",
                    key=items,
                )
            value = context[items]
        else:
            keywords = {name: context[name] for name in parameter_needs(items) if name in context}
            value = items(context, **keywords)
            while inspect.isawaitable(value):
                value = await value
        if isinstance(value, _SEQUENCES):
            return value
        if isinstance(value, str | bytes):
            fix = (
                f"a string is not iterated letter by letter: give a list, e.g. [{value!r}], "
                f"or split it (in a flow file: ${{{{ value.split(',') }}}})"
            )
        elif isinstance(value, dict):
            fix = (
                "a mapping is not iterated: give a list, e.g. its keys (list(value)) or its "
                "pairs (list(value.items()); in a flow file: ${{ value | dictsort }})"
            )
        else:
            fix = "give a list"
        raise TaskTypeError(
            f"for-each group {self.name!r}: its items ({self.items_text}) are "
            f"{type(value).__name__} {_short(value)}, not a list; {fix}",
            task_definition=self,
            option="items",
            value=value,
        )

    def _expand(self, values: list[Any] | tuple[Any, ...] | range, context: Context) -> list[Task]:
        """One new task per item, each checked: a Task, a new object, a unique name and keys."""
        tasks: list[Task] = []
        names: dict[str, Any] = {}
        keys: dict[str, str] = {}
        objects: set[int] = set()
        factory = self.task_factory
        for position, item in enumerate(values, 1):
            made = factory(item)
            if not isinstance(made, Task):
                check_is_task(self.name, position, made, group=self)
            if made.name in names:
                other = names[made.name]
                raise DuplicateKeyError(
                    f"for-each group {self.name!r}: items {other!r} and {item!r} both make a "
                    f"task named {made.name!r}; an item's name is its identity in the run "
                    f"(its results, its reuse): put the item in the name, e.g. "
                    f"{self.name + '[{item}]'!r}, and keep the items unique",
                    task_definition=self,
                    key=made.name,
                    value=item,
                )
            names[made.name] = item
            stack = [made]
            while stack:
                task = stack.pop()
                if id(task) in objects:
                    raise DuplicateKeyError(
                        f"for-each group {self.name!r}: the task {task.name!r} is made for "
                        f"two items; its task= callable must return a new task for each item",
                        task_definition=self,
                        key=task.name,
                    )
                objects.add(id(task))
                if task.stores_result or task.gathers_results:
                    owner = keys.setdefault(task.key, task.name)
                    if owner != task.name or task.key in context:
                        holder = f"task {owner!r}" if owner != task.name else "the run"
                        raise DuplicateKeyError(
                            f"for-each group {self.name!r}: task {task.name!r} (item "
                            f"{item!r}) stores its result under {task.key!r}, as {holder} "
                            f"does already; put the item in the name of each task it makes",
                            task_definition=self,
                            key=task.key,
                            value=item,
                        )
                for need in task.needs:
                    if need not in context:
                        raise DefinitionError(
                            f"for-each group {self.name!r}: task {task.name!r} (item "
                            f"{item!r}) needs {need!r}, which no task has stored when the "
                            f"group starts; give the need to the group "
                            f"(needs={need!r} on {self.name!r})",
                            task_definition=self,
                            key=need,
                            option="needs",
                        )
                children = task.children
                for child_position, child in enumerate(children, 1):
                    check_is_task(task.name, child_position, child, group=task)
                stack.extend(children)
            tasks.append(made)
        return tasks


def item_label(item: Any) -> str:
    """How an item appears in a name: text as it is, anything else as compact JSON."""
    if isinstance(item, str):
        return item
    import json  # only for items that are not text: not at import

    try:
        return json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    except ValueError:  # a circular structure
        return repr(item)


def _result_of(task: Task, context: Context) -> Any:
    if task.stores_result or task.gathers_results:
        return context.get(task.key)
    results: dict[str, Any] = {}
    stack = list(reversed(task.children))
    while stack:
        inner = stack.pop()
        if inner.stores_result or inner.gathers_results:
            results[inner.key] = context.get(inner.key)
        else:
            stack.extend(reversed(inner.children))
    return results


def _describe_items(items: str | Callable[..., Any]) -> str:
    if isinstance(items, str):
        return repr(items)
    return getattr(items, "__qualname__", None) or type(items).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
