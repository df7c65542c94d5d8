"""A flow file's ``for_each:``: a group whose tasks are a template, made once per item.

::

    - name: Test
      plugin: parallel          # or serial
      for_each: ${{ packages }}
      as: package               # the item's name in expressions; default: item
      tasks:
        - name: Test ${{ package }}
          plugin: shell
          cmd: pytest ${{ package }}

The group becomes a :class:`flow2.ForEach`. Its ``tasks:`` are loaded and
checked once, as any task (with the item's name known to their
expressions); when the group runs, each item gets a copy of them: names
evaluated with the item (a name that does not use it gets ``[item]``
appended), expressions evaluated with the item under its name, and the
item's value part of each copy's reuse key. Several templates make one
serial group per item, named ``Name[item]``.
"""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

from .._engine._foreach import item_label
from .._engine._groups import SerialTaskGroup, TaskGroup
from .._engine._naming import snake_case
from ._templates import RUNTIME_EXPRESSION, RunTimeOptions, render_runtime

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._engine._task import Context, Task

#: The item's name in expressions when ``as:`` does not give one.
DEFAULT_NAME = "item"


class ItemsExpression:
    """The ``for_each:`` expression, evaluated against the context when the group starts.

    :param text: the expression as written
    :param where: the facts of an error about it (file, line, option)
    :param variables: the flow's variables
    """

    def __init__(self, text: str, where: dict[str, Any], variables: Mapping[str, Any]) -> None:
        self.text = text
        self.where = where
        self.variables = dict(variables)

    def __repr__(self) -> str:
        # What the run store digests: the expression as written.
        return f"ItemsExpression({self.text!r})"

    async def __call__(self, context: Context) -> Any:
        names = {**self.variables, **context}
        return await asyncio.to_thread(render_runtime, self.text, names, self.where)


class TemplateItems:
    """Makes the tasks of one item from the loaded templates (the ``task=`` of a ForEach).

    :param group: the group's name
    :param templates: the tasks under ``tasks:``, loaded once
    :param name: the item's name in expressions (``as:``)
    :param variables: the flow's variables, names in the templates' names too
    """

    def __init__(
        self, group: str, templates: list[Task], name: str, variables: Mapping[str, Any]
    ) -> None:
        self.group = group
        self.templates = templates
        self.name = name
        self.variables = dict(variables)

    def __repr__(self) -> str:
        return f"TemplateItems({self.group!r}, as={self.name!r})"

    def __call__(self, item: Any) -> Task:
        label = item_label(item)
        scope = {self.name: item}
        if len(self.templates) == 1:
            return self._copy(self.templates[0], scope, label)
        return SerialTaskGroup(
            f"{self.group}[{label}]",
            *(self._copy(template, scope, label) for template in self.templates),
        )

    def _copy(self, template: Task, scope: dict[str, Any], label: str) -> Task:
        task = copy.copy(template)
        name = template.name
        if RUNTIME_EXPRESSION.search(name):
            where = {"task_definition": template, "option": "name"}
            name = str(render_runtime(name, {**self.variables, **scope}, where))
        else:
            name = f"{name}[{label}]"
        task.name = name
        task.key = template.register if template.register is not None else snake_case(name)
        stand_in = template.stand_in
        if isinstance(stand_in, RunTimeOptions):
            options = copy.copy(stand_in)
            options.name = name
            options.scope = scope
            task.stand_in = options
        # The item is part of what the task is: its reuse key differs from item
        # to item even where its name and expressions read the same.
        task.runtime_options = {**(template.runtime_options or {}), f"for_each {self.name}": scope}
        if isinstance(template, TaskGroup):
            task.tasks = [self._copy(child, scope, label) for child in template.tasks]  # type: ignore[attr-defined]
        return task


def check_for_each(builder: Any, data: Any, label: str, takes_tasks: bool) -> str | None:
    """The item's name of a node with ``for_each:`` (None without one); its keys checked."""
    key_lines = data.key_lines
    if "for_each" not in data:
        if "as" in data:
            raise builder.error(
                f"{label}: as: names the item of a for_each: group; add for_each: "
                f"${{{{ … }}}} or remove as:",
                key_lines["as"],
                "as",
            )
        return None
    line = key_lines["for_each"]
    if not takes_tasks or data.get("plugin") not in ("serial", "parallel"):
        raise builder.error(
            f"{label}: for_each: works on a serial or parallel group, whose tasks: are made "
            f"once per item; use plugin: parallel (or serial) with tasks:",
            line,
            "for_each",
        )
    text = data["for_each"]
    if not isinstance(text, str) or not RUNTIME_EXPRESSION.search(text):
        raise builder.error(
            f"{label}: for_each: must be a ${{{{ … }}}} expression giving a list when the "
            f"group starts, got {text!r}; write e.g. for_each: ${{{{ packages }}}}",
            line,
            "for_each",
        )
    name = data.get("as", DEFAULT_NAME)
    if not isinstance(name, str) or not name.isidentifier():
        raise builder.error(
            f"{label}: as: must be a name usable in expressions, got {name!r}; write e.g. "
            f"as: package",
            key_lines.get("as", line),
            "as",
        )
    if not data.get("tasks"):
        raise builder.error(
            f"{label}: a for_each: group needs tasks: to make for each item",
            line,
            "tasks",
        )
    return name


def for_each_group(
    builder: Any,
    name: str,
    plugin: str,
    children: list[Any],
    options: dict[str, Any],
    data: Any,
    item_name: str,
) -> Task:
    """The :class:`flow2.ForEach` of a node with ``for_each:``."""
    from .._engine._exceptions import FlowError
    from .._engine._foreach import ForEach

    where = {"file": builder.file, "line": data.key_lines["for_each"], "option": "for_each"}
    text = data["for_each"]
    factory = TemplateItems(name, [child.task for child in children], item_name, builder.variables)
    try:
        group = ForEach(
            name,
            items=ItemsExpression(text, where, builder.variables),
            task=factory,
            parallel=plugin == "parallel",
            items_text=text,
            **options,
        )
    except FlowError as error:
        key = error.option if error.option in options else None
        line = data.key_lines[key] if key is not None else data.line
        raise builder.error(str(error), line, key) from None
    where["task_definition"] = group
    return group


def lift_needs(node: Any) -> None:
    """Give a for-each group the needs of its templates that lie outside them: the
    group then starts once they are met, and each item finds them in the context."""
    from .._engine._task import merge_needs

    inside: set[str] = set()
    needed: list[str] = []
    stack = list(node.children)
    while stack:
        child = stack.pop()
        task = child.task
        if task.stores_result or task.gathers_results:
            inside.add(task.key)
        needed.extend(task.needs)
        stack.extend(child.children)
    outside = [key for key in needed if key not in inside]
    if outside:
        node.task.needs = merge_needs(node.task.needs, outside)
