"""Drawing a loaded flow: a text tree (``flow2 show``), Mermaid and DOT (``flow2 graph``).

In the graphs, groups are boxes and an arrow means "runs after": a serial
group chains its children, the children of a parallel group have no arrows
between them, so every task's arrows come from the tasks it waits for. A
dashed arrow is a need: from the task storing a result to a task that
waits for it (``needs:``, or a name its ``${{ }}`` reads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._listeners._text import visible

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._loader import Node


def tree_lines(root: Node) -> list[str]:
    """The tree under ``root``, drawn with box characters, one task a line."""
    lines: list[str] = []

    def describe(node: Node) -> str:
        details = [node.plugin]
        for key, value in node.options.items():
            if key == "description":
                continue  # after the name, whole
            text = value if isinstance(value, str) else repr(value)
            text = " ".join(str(text).split())
            details.append(f"{key}={text if len(text) <= 60 else text[:57] + '...'}")
        key = f" → {visible(node.task.key)}" if node.task.stores_result else ""
        items = getattr(node.task, "items_text", None)
        if items is not None:
            details.insert(1, f"for_each={items}")
        about = " ".join((node.task.description or "").split())
        about = f" — {about}" if about else ""
        note = cleanup_notes.get(id(node), "")
        return visible(f"{node.task.name}{note}{key}{about}  [{', '.join(details)}]")

    # " (finally)" or " (on failure)" for each cleanup task of the tree.
    cleanup_notes: dict[int, str] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        for child in node.children:
            role = node.task.cleanup_role_of(child.task)
            if role is not None:
                cleanup_notes[id(child)] = f" ({role.value.replace('_', ' ')})"
        stack.extend(node.children)

    def walk(node: Node, prefix: str, last: bool, top: bool) -> None:
        if top:
            lines.append(describe(node))
            child_prefix = ""
        else:
            lines.append(f"{prefix}{'└── ' if last else '├── '}{describe(node)}")
            child_prefix = prefix + ("    " if last else "│   ")
        for position, child in enumerate(node.children):
            walk(child, child_prefix, position == len(node.children) - 1, False)

    walk(root, "", True, True)
    return lines


def _graph_parts(root: Node) -> tuple[list[tuple[Node, str, int]], list[tuple[str, str]]]:
    """The boxes (node, id, depth; groups before their children) and the "runs after" arrows."""
    from .._engine._groups import ParallelTaskGroup

    boxes: list[tuple[Node, str, int]] = []
    arrows: list[tuple[str, str]] = []

    def walk(node: Node, depth: int) -> tuple[list[str], list[str]]:
        identifier = f"n{len(boxes) + 1}"
        boxes.append((node, identifier, depth))
        if not node.children:
            return [identifier], [identifier]
        # A group's cleanup tasks run after its own tasks, one after another.
        cleanup = [child for child in node.children if node.task.cleanup_role_of(child.task)]
        if isinstance(node.task, ParallelTaskGroup):
            entries: list[str] = []
            exits: list[str] = []
            for child in node.children[: len(node.children) - len(cleanup)]:
                child_entries, child_exits = walk(child, depth + 1)
                entries += child_entries
                exits += child_exits
            for child in cleanup:
                child_entries, child_exits = walk(child, depth + 1)
                arrows.extend((before, after) for before in exits for after in child_entries)
                entries = entries or child_entries
                exits = child_exits
            return entries, exits
        first: list[str] = []
        previous: list[str] = []
        for child in node.children:
            child_entries, child_exits = walk(child, depth + 1)
            arrows.extend((before, after) for before in previous for after in child_entries)
            first = first or child_entries
            previous = child_exits
        return first, previous

    walk(root, 0)
    return boxes, arrows


def _need_arrows(boxes: list[tuple[Node, str, int]]) -> list[tuple[str, str]]:
    """(producer, task) for every need a task of the tree produces."""
    producers = {
        node.task.key: identifier for node, identifier, _ in boxes if node.task.stores_result
    }
    arrows: list[tuple[str, str]] = []
    for node, identifier, _ in boxes:
        for key in node.task.needs:
            producer = producers.get(key)
            if producer is not None and producer != identifier:
                arrows.append((producer, identifier))
    return list(dict.fromkeys(arrows))


def _label(node: Node) -> str:
    if node.children or not node.task.stores_result:
        kind = node.plugin if node.children else f"empty {node.plugin}"
        items = getattr(node.task, "items_text", None)
        if items is not None:
            kind = f"{kind}, for each of {items}"
        return f"{_drawn(node.task.name)} ({kind})"
    return _drawn(node.task.name)


def _drawn(name: str) -> str:
    # A label's line breaks are the graph's (Mermaid's <br>, DOT's \n); the
    # rest of its control characters show as text.
    return "\n".join(visible(line) for line in name.split("\n"))


def _nested_lines(
    boxes: list[tuple[Node, str, int]],
    escape: Callable[[str], str],
    group_line: Callable[[str, str], str],
    leaf_line: Callable[[str, str], str],
    close: str,
) -> list[str]:
    """Boxes as indented lines, each group's children inside it, closed by ``close``."""
    lines: list[str] = []
    open_groups: list[int] = []

    def close_group() -> None:
        open_groups.pop()
        lines.append("  " * (len(open_groups) + 1) + close)

    for node, identifier, depth in boxes:
        while open_groups and open_groups[-1] >= depth:
            close_group()
        indent = "  " * (len(open_groups) + 1)
        label = escape(_label(node))
        if node.children:
            lines.append(indent + group_line(identifier, label))
            open_groups.append(depth)
        else:
            lines.append(indent + leaf_line(identifier, label))
    while open_groups:
        close_group()
    return lines


def mermaid_graph(root: Node) -> str:
    """The tree under ``root`` as a Mermaid flowchart."""
    boxes, arrows = _graph_parts(root)
    lines = [
        "flowchart LR",
        *_nested_lines(
            boxes,
            # A line break inside the quotes would end Mermaid's statement.
            lambda label: label.replace('"', "#quot;").replace("\n", "<br>"),
            lambda identifier, label: f'subgraph {identifier} ["{label}"]',
            lambda identifier, label: f'{identifier}["{label}"]',
            "end",
        ),
    ]
    lines.extend(f"  {before} --> {after}" for before, after in arrows)
    lines.extend(f"  {before} -. needs .-> {after}" for before, after in _need_arrows(boxes))
    return "\n".join(lines)


def dot_graph(root: Node) -> str:
    """The tree under ``root`` as a Graphviz DOT digraph."""
    boxes, arrows = _graph_parts(root)
    lines = [
        "digraph flow {",
        "  rankdir=LR;",
        "  node [shape=box];",
        *_nested_lines(
            boxes,
            lambda label: label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"),
            lambda identifier, label: f'subgraph cluster_{identifier} {{ label="{label}";',
            lambda identifier, label: f'{identifier} [label="{label}"];',
            "}",
        ),
    ]
    lines.extend(f"  {before} -> {after};" for before, after in arrows)
    lines.extend(
        f'  {before} -> {after} [style=dashed, label="needs"];'
        for before, after in _need_arrows(boxes)
    )
    lines.append("}")
    return "\n".join(lines)
