"""Reading a flow file's YAML: safe loading only, every mapping, key and item with its line.

PyYAML's SafeLoader builds plain data (no Python objects from tags); the
subclass here makes mappings :class:`LineDict` and sequences
:class:`LineList`, which remember where they were in the text, and refuses
a key given twice in one mapping (YAML itself keeps the last silently).

Before anything is built, the document's nodes are checked: an alias that
contains itself, nesting deeper than :data:`MAX_DEPTH`, or aliases that
expand the document far beyond its written size (a "billion laughs" bomb)
are refused with one message, quickly.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .._engine._exceptions import FlowFileError

if TYPE_CHECKING:
    import yaml

#: Deepest nesting of lists and mappings a flow file may have.
MAX_DEPTH = 500
#: Nodes the aliases of a document may expand it to: this many, or ten times
#: the nodes written, whichever is more.
MAX_EXPANDED_NODES = 10_000


class LineDict(dict[Any, Any]):
    """A YAML mapping that remembers its line and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list[Any]):
    """A YAML sequence that remembers its line and the line of each item."""

    line: int = 0
    item_lines: list[int]


@functools.cache
def _line_loader() -> type[yaml.SafeLoader]:
    """A SafeLoader whose mappings and sequences carry their line numbers."""
    import yaml
    from yaml.constructor import ConstructorError

    # libyaml's parser when PyYAML has it (several times faster); the
    # constructors below are Python either way.
    base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class LineLoader(base):  # type: ignore[valid-type,misc]
        pass

    def construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> Any:
        mapping = LineDict()
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {}
        yield mapping
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            if key_node.value in seen:
                raise ConstructorError(
                    None,
                    None,
                    f"key {key_node.value!r} appears twice in this mapping (first on line "
                    f"{seen[key_node.value]}); keep one",
                    key_node.start_mark,
                )
            seen[key_node.value] = key_node.start_mark.line + 1
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise ConstructorError(
                    None, None, "a list or mapping cannot be a key", key_node.start_mark
                ) from None
            mapping[key] = loader.construct_object(value_node, deep=True)
            mapping.key_lines[key] = key_node.start_mark.line + 1

    def construct_sequence(loader: LineLoader, node: yaml.SequenceNode) -> Any:
        sequence = LineList()
        sequence.line = node.start_mark.line + 1
        sequence.item_lines = [item.start_mark.line + 1 for item in node.value]
        yield sequence
        sequence.extend(loader.construct_object(item, deep=True) for item in node.value)

    def construct_object(loader: LineLoader, node: yaml.Node, deep: bool = False) -> Any:
        # A tag's constructor given a value it cannot read (``!!int abc``,
        # ``!!int`` on a mapping, a timestamp in month 13) raises a plain
        # ValueError or TypeError: make it a YAML error with the node's line.
        try:
            return base.construct_object(loader, node, deep)
        except (ValueError, TypeError, ArithmeticError, LookupError, AttributeError) as error:
            if isinstance(error, yaml.YAMLError):  # pragma: no cover - never both
                raise
            tag = node.tag.rpartition(":")[2] if node.tag.startswith("tag:yaml.org") else node.tag
            shown = (
                node.value
                if isinstance(node, yaml.ScalarNode)
                else "a list"
                if isinstance(node, yaml.SequenceNode)
                else "a mapping"
            )
            raise ConstructorError(
                None,
                None,
                f"{str(shown)[:60]!r} cannot be read as {tag} ({type(error).__name__}); "
                f"quote the value to keep it text, or remove a !!{tag} tag",
                node.start_mark,
            ) from None

    LineLoader.construct_object = construct_object
    LineLoader.add_constructor("tag:yaml.org,2002:map", construct_mapping)
    LineLoader.add_constructor("tag:yaml.org,2002:seq", construct_sequence)
    return LineLoader


def type_name(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"the boolean {value!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{value!r} ({type(value).__name__})"


def parse(file: str, text: str) -> Any:
    """The YAML data of ``text`` (already rendered), mappings and lists carrying lines.

    :raises flow2.FlowFileError: on malformed YAML, naming the line
    """
    import yaml

    loader = _line_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(file, node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or "malformed YAML"
        if error.context:
            problem = f"{problem} ({error.context})"
        raise FlowFileError(
            f"invalid YAML: {problem}; check the indentation and quoting around this line "
            f"(`flow2 render` shows the text after templating)",
            file=file,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as error:
        raise FlowFileError(f"invalid YAML: {error}", file=file) from None
    except RecursionError:
        raise FlowFileError("the YAML is nested too deeply to read", file=file) from None
    finally:
        loader.dispose()


def _check_nodes(file: str, root: yaml.Node) -> None:
    """Refuse self-containing aliases, deep nesting and alias bombs, in time linear in the nodes.

    :raises flow2.FlowFileError: naming the line and the limit
    """
    # Iterative depth-first walk; ``expanded`` is each node's size with its
    # aliases expanded, computed once per node however often it is used.
    expanded: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool, int]] = [(root, False, 1)]
    while stack:
        node, children_done, depth = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            expanded[key] = 1 + sum(expanded[id(child)] for child in _children(node))
            continue
        if key in expanded:
            continue
        if key in on_path:
            raise FlowFileError(
                "this node contains itself through a YAML alias, a recursive structure (*name "
                "inside the &name node); a task or value cannot contain itself",
                file=file,
                line=node.start_mark.line + 1,
            )
        if depth > MAX_DEPTH:
            raise FlowFileError(
                f"the YAML is nested too deeply (more than {MAX_DEPTH} levels of lists and "
                f"mappings); flatten the groups",
                file=file,
                line=node.start_mark.line + 1,
            )
        on_path.add(key)
        stack.append((node, True, depth))
        stack.extend((child, False, depth + 1) for child in _children(node))
    limit = max(MAX_EXPANDED_NODES, 10 * len(expanded))
    if expanded[id(root)] > limit:
        raise FlowFileError(
            f"YAML aliases (*name) expand this document to {expanded[id(root)]:,} values, "
            f"from {len(expanded):,} written (at most {limit:,}); an alias bomb is refused, "
            f"write the values out or use fewer nested aliases",
            file=file,
            line=root.start_mark.line + 1,
        )


def _children(node: Any) -> list[Any]:
    value = node.value
    if isinstance(value, list):
        return [child for item in value for child in (item if isinstance(item, tuple) else (item,))]
    return []
