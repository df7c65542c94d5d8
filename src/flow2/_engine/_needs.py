"""Which results each task waits for, checked before anything runs.

A task's ``needs`` are result keys: declared (``needs=``), or inferred from
a callback's required keyword-only parameters, a condition's, and the names
a flow file's ``${{ }}`` expressions read. :func:`analyse_needs` looks at the
whole tree once, with no side effects, and says

- which task produces each needed key, so that the run can make a task
  wait for exactly those (:attr:`Needs.waits`);
- in which order a parallel group with ``max_parallel`` starts its children,
  so that a child never holds a slot waiting for a sibling not started yet
  (:attr:`Needs.start_orders`);
- what can never work (:attr:`Needs.problems`): a key nobody produces, a
  cycle, a need that cannot finish first.

The analysis runs only when a task of the tree has needs or a condition, so
a tree without them pays nothing for it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any

from ._exceptions import DefinitionError
from ._groups import ParallelTaskGroup, SerialTaskGroup, TaskGroup

if TYPE_CHECKING:
    from ._task import Context, Task


class Condition:
    """A condition that says which names it reads (a flow file's ``if:``).

    Pass one as ``when=``: the keys of ``reads`` that tasks produce are needs
    of the task, and a dry run evaluates a condition that reads none of them.

    :param evaluate: takes the context, returns a true or false value
    :param reads: the names the condition reads
    :param text: the condition as written, for plans and messages
    """

    def __init__(self, evaluate: Callable[[Context], Any], reads: Iterable[str], text: str) -> None:
        self.evaluate = evaluate
        self.reads = tuple(reads)
        self.text = text

    def __call__(self, context: Context) -> Any:
        return self.evaluate(context)

    def __repr__(self) -> str:
        return f"<Condition {self.text!r}>"


class NeedProblem:
    """One reason a tree's needs cannot be met.

    :ivar task: the task whose need it is
    :ivar key: the needed key
    :ivar kind: ``"unknown"``, ``"cycle"``, ``"impossible"`` or ``"order"``
    :ivar message: what is wrong and how to fix it
    """

    __slots__ = ("key", "kind", "message", "task")

    def __init__(self, task: Task, key: str | None, kind: str, message: str) -> None:
        self.task = task
        self.key = key
        self.kind = kind
        self.message = message

    def __repr__(self) -> str:
        return f"<NeedProblem {self.kind} {self.message!r}>"


class NeedsError(DefinitionError):
    """A task's needs can never be met: an unknown key, a cycle, an impossible order.

    :ivar problems: every :class:`NeedProblem` found, in tree order
    """

    def __init__(self, problems: list[NeedProblem]) -> None:
        first = problems[0]
        if len(problems) == 1:
            message = first.message
        else:
            message = f"{len(problems)} problems with needs:\n" + "\n".join(
                f"- {problem.message}" for problem in problems
            )
        super().__init__(message, task_definition=first.task, key=first.key, option="needs")
        self.problems = problems


class Needs:
    """What :func:`analyse_needs` found about a tree.

    :ivar producers: result key → the leaf task storing it
    :ivar waits: ``id(task)`` → the (key, producer) pairs it waits for
    :ivar start_orders: ``id(group)`` → child indexes in the order a parallel
        group with ``max_parallel`` starts them (only where children wait on
        each other)
    :ivar problems: what can never work
    """

    __slots__ = ("problems", "producers", "start_orders", "waits")

    def __init__(self) -> None:
        self.producers: dict[str, Task] = {}
        self.waits: dict[int, tuple[tuple[str, Task], ...]] = {}
        self.start_orders: dict[int, list[int]] = {}
        self.problems: list[NeedProblem] = []


def describe(task: Task) -> str:
    """A task in a path: its key for a leaf, its name for a group."""
    return task.key if task.stores_result else task.name


def analyse_needs(root: Task, available: Collection[str] | None) -> Needs:
    """Find the producers of every need in the tree under ``root`` and what cannot work.

    :param root: the checked tree (no task twice, children are tasks)
    :param available: the keys the run starts with; None to not report
        unknown keys (a check without a starting context)
    """
    found = Needs()
    producers = found.producers
    # Where each task sits: its parent and its position in it.
    parents: dict[int, tuple[Task, int]] = {}
    needing: list[Task] = []
    by_id: dict[int, Task] = {}
    stack = [root]
    while stack:
        task = stack.pop()
        by_id[id(task)] = task
        if task.needs:
            needing.append(task)
        if task.stores_result or task.gathers_results:
            producers.setdefault(task.key, task)
        children = task.children
        for index, child in enumerate(children):
            parents[id(child)] = (task, index)
        stack.extend(reversed(children))

    def ancestors(task: Task) -> list[tuple[Task, int]]:
        """(group, index of the child leading to ``task``), from the parent up."""
        chain = []
        place = parents.get(id(task))
        while place is not None:
            chain.append(place)
            place = parents.get(id(place[0]))
        return chain

    child_waits: dict[int, dict[int, set[int]]] = {}
    excluded: set[tuple[int, int]] = set()
    problems = found.problems
    for task in needing:
        waits: list[tuple[str, Task]] = []
        up = ancestors(task)
        for key in task.needs:
            producer = producers.get(key)
            if producer is None:
                if available is not None and key not in available:
                    problems.append(_unknown(task, key, producers, available))
                continue
            if producer is task:
                problems.append(
                    NeedProblem(
                        task,
                        key,
                        "cycle",
                        f"task {task.name!r} needs its own result {key!r}: a cycle "
                        f"({key} → {key}); remove {key!r} from its needs",
                    )
                )
                continue
            groups_of_task = {id(group): index for group, index in up}
            producer_up = ancestors(producer)
            if any(group is task for group, _ in producer_up):
                problems.append(
                    NeedProblem(
                        task,
                        key,
                        "impossible",
                        f"group {task.name!r} needs {key!r}, which task {producer.name!r} "
                        f"inside it produces; a group starts before the tasks inside it, so "
                        f"it can never wait for one of them; give the need to the task "
                        f"inside that reads {key!r}",
                    )
                )
                continue
            # The lowest group holding both: there, the two sit in different children.
            for group, producer_index in producer_up:
                task_index = groups_of_task.get(id(group))
                if task_index is None:
                    continue
                # A group's cleanup runs after its own tasks, in order: there,
                # as in a serial group, a need on a later task never finishes.
                # See test_a_task_needing_its_groups_cleanup_is_an_error.
                own = len(group.tasks) if isinstance(group, TaskGroup) else len(group.children)
                in_cleanup = producer_index >= own or task_index >= own
                if in_cleanup and producer_index > task_index:
                    problems.append(
                        NeedProblem(
                            task,
                            key,
                            "impossible",
                            f"task {task.name!r} needs {key!r}, but task {producer.name!r}, "
                            f"which produces it, runs after it in group {group.name!r} (a "
                            f"cleanup task runs after the group's tasks), so it can never "
                            f"finish first; read it in a cleanup task after {producer.name!r}",
                        )
                    )
                    excluded.add((id(task), id(producer)))
                elif in_cleanup:
                    pass  # the producer has finished by then: nothing to order
                elif isinstance(group, SerialTaskGroup) and producer_index > task_index:
                    problems.append(
                        NeedProblem(
                            task,
                            key,
                            "impossible",
                            f"task {task.name!r} needs {key!r}, but task {producer.name!r}, "
                            f"which produces it, comes after it in serial group "
                            f"{group.name!r}, so it can never finish first; move "
                            f"{producer.name!r} before {task.name!r}, or put them in a "
                            f"parallel group",
                        )
                    )
                    excluded.add((id(task), id(producer)))
                elif isinstance(group, ParallelTaskGroup) and group.max_parallel is not None:
                    child_waits.setdefault(id(group), {}).setdefault(task_index, set()).add(
                        producer_index
                    )
                break
            if (id(task), id(producer)) not in excluded:
                waits.append((key, producer))
        if waits:
            found.waits[id(task)] = tuple(waits)
    if found.waits:
        problems.extend(_cycles(found.waits, parents, by_id))
        _start_orders(by_id, child_waits, found)
    return found


def _unknown(
    task: Task, key: str, producers: dict[str, Task], available: Collection[str]
) -> NeedProblem:
    import difflib  # only for this message: not at import

    known = sorted({*producers, *available})
    closest = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {closest[0]!r}? " if closest else ""
    listed = ", ".join(sorted(producers)) or "none"
    return NeedProblem(
        task,
        key,
        "unknown",
        f"task {task.name!r} needs {key!r}, which no task in the tree produces and the "
        f"starting context does not hold; {hint}result keys: {listed}",
    )


def _cycles(
    waits: dict[int, tuple[tuple[str, Task], ...]],
    parents: dict[int, tuple[Task, int]],
    names: dict[int, Task],
) -> list[NeedProblem]:
    """Tasks that wait for each other in a circle, each circle reported once.

    A task waits for the tasks it needs, and, since it starts only inside its
    running group, for what its groups wait for: an edge to its parent.
    """

    def edges(identity: int) -> list[tuple[int, str | None]]:
        out: list[tuple[int, str | None]] = [
            (id(producer), key) for key, producer in waits.get(identity, ())
        ]
        parent = parents.get(identity)
        if parent is not None:
            out.append((id(parent[0]), None))
        return out

    # Only tasks reached from a task with needs can be on a circle.
    starts = list(waits)
    state: dict[int, int] = {}  # 1 on the current path, 2 done
    problems: list[NeedProblem] = []
    for start in starts:
        if start in state:
            continue
        path: list[tuple[int, str | None]] = [(start, None)]
        iterators = [iter(edges(start))]
        state[start] = 1
        while iterators:
            step = next(iterators[-1], None)
            if step is None:
                iterators.pop()
                finished, _ = path.pop()
                state[finished] = 2
                continue
            target, key = step
            seen = state.get(target)
            if seen == 1:
                position = next(i for i, (node, _) in enumerate(path) if node == target)
                problems.append(_circle(path[position:], (target, key), names))
            elif seen is None:
                state[target] = 1
                path.append((target, key))
                iterators.append(iter(edges(target)))
    return problems


def _circle(
    path: list[tuple[int, str | None]],
    closing: tuple[int, str | None],
    names: dict[int, Task],
) -> NeedProblem:
    """The problem of one circle: ``path`` (each node with the key of the edge into it)."""
    steps = [*path[1:], closing]
    nodes = [node for node, _ in path] + [closing[0]]
    first = names[nodes[0]]
    if all(key is not None for _, key in steps):
        chain = " → ".join(describe(names[node]) for node in nodes)
        return NeedProblem(
            first,
            steps[0][1],
            "cycle",
            f"tasks need each other in a cycle: {chain}; remove one of these needs",
        )
    parts = []
    for (source, _), (target, key) in zip(path, steps, strict=True):
        source_task = names[source]
        target_task = names[target]
        if key is None:
            parts.append(f"{source_task.name!r} is inside group {target_task.name!r}")
        else:
            parts.append(f"{source_task.name!r} needs {key!r} (task {target_task.name!r})")
    return NeedProblem(
        first,
        next((key for _, key in steps if key is not None), None),
        "impossible",
        f"task {first.name!r} can never start: {'; '.join(parts)}; a group that waits for a "
        f"task cannot hold what that task needs; move the need to the task inside the group",
    )


def _start_orders(
    by_id: dict[int, Task], child_waits: dict[int, dict[int, set[int]]], found: Needs
) -> None:
    """For each bounded parallel group whose children wait on each other, a start order."""
    for identity, waiting in child_waits.items():
        group = by_id[identity]
        count = len(group.children)
        blockers = [0] * count
        unblocks: dict[int, list[int]] = {}
        for child, before in waiting.items():
            blockers[child] = len(before)
            for index in before:
                unblocks.setdefault(index, []).append(child)
        # Kahn's algorithm, taking the lowest ready index first: the file
        # order wherever the needs allow it.
        ready = [index for index in range(count) if not blockers[index]]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            index = heapq.heappop(ready)
            order.append(index)
            for child in unblocks.get(index, ()):
                blockers[child] -= 1
                if not blockers[child]:
                    heapq.heappush(ready, child)
        if len(order) < count:
            stuck = [group.children[index].name for index in range(count) if blockers[index]]
            limit = getattr(group, "max_parallel", None)
            found.problems.append(
                NeedProblem(
                    group,
                    None,
                    "order",
                    f"group {group.name!r} runs at most {limit} children at "
                    f"once, and its children {', '.join(map(repr, stuck))} wait for tasks "
                    f"inside each other; remove max_parallel, or move the needs so that "
                    f"one child can finish first",
                )
            )
        else:
            found.start_orders[identity] = order
