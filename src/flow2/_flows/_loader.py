"""How a YAML flow file becomes a task tree.

Four steps, each reporting errors with the file, the line and the key:

1. the file is rendered as a Jinja template (see ``_templates``);
2. YAML reads the text (``_yaml``: safe loading only, plain data, no Python objects),
   remembering the line of every mapping, key and list item;
3. each node — a mapping with ``plugin:``, or ``cmd:`` (a shell task),
   ``tasks:`` (a serial group) or ``parallel:`` (a parallel group) — becomes
   the task its plugin builds, its other keys the plugin's options and
   ``tasks:`` (or ``parallel:``) its children; ``env:``, ``dir:`` and
   ``dotenv:`` of a group reach the tasks under it (``_scopes``);
4. the tree is checked as a run would check it (result keys, executors).
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._engine._exceptions import (
    ConfigurationError,
    DefinitionError,
    FlowError,
    FlowFileError,
    PluginError,
)
from .._engine._task import Context, Task
from ._scopes import SCOPE_KEYS, Scope, ScopeReader
from ._templates import ARGUMENTS
from ._yaml import LineDict, parse, type_name

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .._engine._caching import Cache
    from ._plugins import Plugin, PluginOptions

#: Keys every node may have that are not passed as options.
_STRUCTURE_KEYS = (
    "plugin",
    "name",
    "tasks",
    "parallel",
    "needs",
    "if",
    "dotenv",
    "cache",
    "sources",
    "outputs",
    "env_inputs",
    "for_each",
    "as",
    "finally",
    "on_failure",
)
#: What every leaf task accepts: the files and variables of its reuse key.
_LEAF_KEYS = ("sources", "outputs", "env_inputs")
#: Keys the top of a flow may have besides a node's: names of secret variables,
#: the task ``flow2 run`` runs when given no name.
TOP_LEVEL_KEYS = ("secrets", "default", "jobs")
#: The plugin a node without ``plugin:`` gets from the key that says what it is.
SHORT_FORMS = {"cmd": "shell", "tasks": "serial", "parallel": "parallel"}

#: A group's cleanup keys in a flow file, and the option each one fills.
_CLEANUP_KEYS = {"on_failure": "on_failure", "finally": "finally_tasks"}


@dataclass
class Node:
    """What the loader knows about one task of the tree."""

    task: Task
    plugin: str
    line: int
    options: dict[str, Any]
    children: list[Node] = field(default_factory=list)
    #: The line of each key of the node's mapping.
    key_lines: dict[str, int] = field(default_factory=dict)


@dataclass
class LoadedFlow:
    """A flow file read into a task tree, with the facts ``show`` and ``graph`` print."""

    file: str
    text: str
    root: Node
    #: Names of the variables (given to the flow, or in the environment)
    #: whose values are secret: the flow's top-level ``secrets:`` list.
    secrets: list[str] = field(default_factory=list)
    #: The template variables the file was read with: what a run of
    #: :attr:`root` starts its context with (``Runner.run(root.task, dict(variables))``).
    variables: dict[str, Any] = field(default_factory=dict)
    #: The task ``flow2 run`` runs when given no name: the flow's ``default:``.
    default: str | None = None
    #: Values read from ``dotenv:`` files under names that mark them secret.
    dotenv_secrets: list[str] = field(default_factory=list)
    #: The flow's top-level ``jobs:``: how many tasks a run works on at once (None: no limit).
    jobs: int | None = None

    def secret_values(self, variables: Mapping[str, Any]) -> list[str]:
        """Values of the variables :attr:`secrets` names (``variables``, else the
        environment), and the secret-named values of the ``dotenv:`` files."""
        values = list(self.dotenv_secrets)
        for name in self.secrets:
            value = variables.get(name, os.environ.get(name))
            if value is not None:
                values.append(str(value))
        return values

    def located(self, error: DefinitionError) -> FlowFileError:
        """A definition error a run of :attr:`root` raised, as the file's: with the line
        (and key) of the very task it is about."""
        return _located(self.file, self.nodes(), self.root, error)

    def nodes(self) -> list[Node]:
        """Every node, in file order (depth first)."""
        found: list[Node] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(reversed(node.children))
        return found


def read_flow(
    path: str | os.PathLike[str],
    variables: Mapping[str, Any],
    *,
    for_a_run: bool = False,
    import_callbacks: bool = True,
) -> LoadedFlow:
    """Render, parse and build the flow file at ``path``.

    :param for_a_run: the tree is about to run, and the run checks it (once):
        leave out the checks a run makes; turn its errors into the file's
        with :meth:`LoadedFlow.located`
    :param import_callbacks: import the modules ``callback:`` names; off for
        the commands that only look at a flow (validate, show, graph, the dry
        run), which find each function in its module's source and run none
        of its code (see :func:`flow2._flows._plugins.locate_reference`)
    :raises flow2.FlowFileError: when anything about the file is wrong; plugin
        problems included, with the line that names the plugin
    """
    from ._templates import hide_values, render_source

    file = os.fspath(path)
    source = _read(file)
    text, hidden = render_source(source, file, variables)
    try:
        return _build_flow(file, source, text, variables, hidden, for_a_run, import_callbacks)
    except FlowFileError as error:
        # No error message quotes an environment value the template read.
        raise hide_values(error, hidden) from None


def _build_flow(
    file: str,
    source: str,
    text: str,
    variables: Mapping[str, Any],
    hidden: frozenset[str],
    for_a_run: bool = False,
    import_callbacks: bool = True,
) -> LoadedFlow:
    try:
        data = parse(file, text)
        builder = _Builder(file, text, variables, hidden, import_callbacks=import_callbacks)
        secrets = builder.take_secrets(data)
        default = builder.take_default(data)
        jobs = builder.take_jobs(data)
        try:
            root = builder.build(data)
        except RecursionError:
            raise FlowFileError(
                "tasks are nested too deeply to load; flatten the groups", file=file
            ) from None
        builder.check_tree(root, as_a_run_would=not for_a_run)
        if default is not None:
            builder.check_default(root, default)
    except FlowFileError as error:
        if error.line is None or source.count("\n") == text.count("\n"):
            raise
        # Template blocks added or removed lines: the line is the rendered text's.
        raise FlowFileError(
            f"{error.reason} [line {error.line} of the text after templating: "
            f"`flow2 render {file}` shows it]",
            file=file,
            line=error.line,
            key=error.key,
        ) from None
    return LoadedFlow(
        file, text, root, secrets, dict(variables), default, builder.scope_reader.secrets, jobs
    )


def render(path: str | os.PathLike[str], variables: Mapping[str, Any]) -> str:
    """The text of the flow file at ``path`` after templating.

    :raises flow2.FlowFileError: when the file cannot be read or the template fails
    """
    from ._templates import render_file

    file = os.fspath(path)
    return render_file(_read(file), file, variables)


def _read(file: str) -> str:
    if _ENV_FILE_NAME.fullmatch(os.path.basename(file)):
        raise _env_file_error(file)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise FlowFileError(
            f"the file is not UTF-8 text ({error.reason} at byte {error.start})", file=file
        ) from None
    except OSError as error:
        raise FlowFileError(f"cannot read the file: {error.strerror or error}", file=file) from None
    if is_env_text(text):
        raise _env_file_error(file)
    return text


#: ``.env``, ``.env.local``, ``prod.env``: names of environment files.
_ENV_FILE_NAME = re.compile(r"\.env(\..*)?|.+\.env")
#: A line of an environment file: ``NAME=value``, ``export NAME=value``.
_ENV_LINE = re.compile(r"(export\s+)?[A-Za-z_][A-Za-z0-9_.]*=.*")


def is_env_text(text: str) -> bool:
    """True when ``text`` reads as an environment file: only ``NAME=value`` lines and comments.

    Such a file holds secrets more often than not: flow2 never quotes it in a
    message (see tests/test_secret_exits.py).
    """
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    return bool(lines) and all(_ENV_LINE.fullmatch(line) for line in lines)


def _env_file_error(file: str) -> FlowFileError:
    return FlowFileError(
        "this is an environment file (NAME=value lines), not a flow file; its content is "
        "not shown. Give the path of a flow's YAML file; to pass the values, export "
        "them or write NAME=value after the flow on the command line",
        file=file,
    )


EXAMPLE_NODE = "plugin: shell\ncmd: echo hello"


class _Builder:
    """Turns parsed YAML data into tasks, one node at a time."""

    def __init__(
        self,
        file: str,
        text: str,
        variables: Mapping[str, Any],
        hidden: frozenset[str],
        *,
        import_callbacks: bool = True,
    ) -> None:
        self.import_callbacks = import_callbacks
        self.file = file
        self.variables = variables
        self.hidden = hidden
        self._plugins: dict[str, Plugin] | None = None
        self.loaded: dict[str, Callable[..., Any]] = {}
        #: The keys each plugin of :attr:`loaded` takes.
        self.plugin_keys: dict[str, PluginOptions] = {}
        self.unnamed = 0
        self.deferred: list[tuple[Node, dict[str, Any]]] = []
        #: Nodes with an ``if:``, and the expression it evaluates.
        self.conditions: list[tuple[Node, str]] = []
        self._building: set[int] = set()
        #: What the groups being built hand down, innermost last.
        self.scopes: list[Scope] = [Scope()]
        self.scope_reader = ScopeReader(file, self.error)
        #: The line of the top-level ``default:``.
        self.default_line: int | None = None
        #: The item names (``as:``) of the for-each groups being built, innermost last.
        self._scope: list[str] = []
        #: For a node inside a for-each template, the item names its expressions know.
        self.item_scopes: dict[int, frozenset[str]] = {}
        #: The nodes of the for-each groups, whose ``for_each:`` reads are their needs.
        self.for_each_nodes: list[Node] = []
        #: The ids of the nodes inside a group's cleanup, which may read ``failures``.
        self.cleanup_nodes: set[int] = set()
        self._cleanup_depth = 0

    def error(
        self, message: str, line: int | None, key: str | None = None, **facts: Any
    ) -> FlowFileError:
        return FlowFileError(message, file=self.file, line=line, key=key, **facts)

    @property
    def plugins(self) -> dict[str, Plugin]:
        """The installed plugins, read when a flow names one that is not flow2's own."""
        if self._plugins is None:
            from ._plugins import installed_plugins

            self._plugins = installed_plugins()
        return self._plugins

    def take_secrets(self, data: Any) -> list[str]:
        """Remove the top-level ``secrets:`` list (names of variables) from ``data``; return it."""
        if not isinstance(data, LineDict) or "secrets" not in data:
            return []
        line = data.key_lines.get("secrets", data.line)
        names = data.pop("secrets")
        if not isinstance(names, list) or not all(
            isinstance(name, str) and name.strip() for name in names
        ):
            raise self.error(
                f"secrets: must be a list of variable names, got {type_name(names)}; "
                f"write e.g. secrets: [DEPLOY_TOKEN, registry_password]",
                line,
                "secrets",
            )
        return list(names)

    def take_default(self, data: Any) -> str | None:
        """Remove the top-level ``default:`` (the task run when none is named); return it."""
        if not isinstance(data, LineDict) or "default" not in data:
            return None
        line = data.key_lines.get("default", data.line)
        default = data.pop("default")
        if not isinstance(default, str) or not default.strip():
            raise self.error(
                f"default: must name a task, got {type_name(default)}; write e.g. default: build",
                line,
                "default",
            )
        self.default_line = line
        return default

    def check_default(self, root: Node, default: str) -> None:
        """The top-level ``default:`` names one task of the flow."""
        from ._names import check_names

        try:
            check_names(root, [default], file=self.file)
        except DefinitionError as error:
            raise self.error(f"default: {error}", self.default_line, "default") from None

    def take_jobs(self, data: Any) -> int | None:
        """Remove the top-level ``jobs:`` (a whole number >= 1) from ``data``; return it."""
        if not isinstance(data, LineDict) or "jobs" not in data:
            return None
        line = data.key_lines.get("jobs", data.line)
        jobs = data.pop("jobs")
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise self.error(
                f"jobs: must be a whole number >= 1 (how many tasks work at once), got "
                f"{jobs!r}; write e.g. jobs: 4, or leave it out for no limit",
                line,
                "jobs",
                value=jobs,
            )
        return jobs

    def build(self, data: Any) -> Node:
        if data is None:
            raise self.error(
                "the flow is empty; a flow is one task, a mapping with a plugin: key, e.g.\n"
                + EXAMPLE_NODE,
                1,
            )
        if isinstance(data, list):
            raise self.error(
                "the top of a flow is one task (a mapping with plugin:), not a list; "
                "wrap the tasks in a group:\nplugin: serial\ntasks:\n  - ...",
                getattr(data, "line", 1),
            )
        return self.build_node(data, 1, "the flow")

    def build_node(self, data: Any, line: int, where: str) -> Node:
        if not isinstance(data, LineDict):
            raise self.error(
                f"{where} must be a task, a mapping with a plugin: key, but it is "
                f"{type_name(data)}; write e.g.\n{EXAMPLE_NODE}",
                line,
            )
        if id(data) in self._building:
            raise self.error(
                f"{where} contains itself through a YAML alias; a task cannot contain itself",
                line,
            )
        self._building.add(id(data))
        try:
            return self._build_mapping(data)
        finally:
            self._building.discard(id(data))

    def _build_mapping(self, data: LineDict) -> Node:
        line = data.line
        key_lines = data.key_lines
        for key in data:
            if not isinstance(key, str):
                raise self.error(
                    f"the key {key!r} is {type_name(key)}; keys are option names such as "
                    f"cmd or timeout",
                    key_lines.get(key, line),
                )
        plugin_name = self.plugin_of(data)
        if not isinstance(plugin_name, str):
            raise self.error(
                f"plugin: must be a plugin name, got {type_name(plugin_name)}; "
                f"use one of: {', '.join(self.plugins)}",
                key_lines["plugin"],
                "plugin",
            )
        name = data.get("name")
        if "name" not in data:
            self.unnamed += 1
            name = f"Task {self.unnamed}"
        elif not isinstance(name, str) or not name.strip():
            raise self.error(
                f"name: must be a non-empty string, got {type_name(name)}; "
                f"quote it if needed: name: '{name}'",
                key_lines["name"],
                "name",
            )
        factory = self.load_plugin(plugin_name, key_lines.get("plugin", line))
        keys = self.plugin_keys.get(plugin_name)
        if keys is None:
            from ._plugins import plugin_options

            # Once per plugin: reading signatures is most of a node's cost.
            keys = self.plugin_keys[plugin_name] = plugin_options(factory)
        accepted, required, takes_tasks = keys.accepted, keys.required, keys.takes_tasks
        label = f"task {name!r} (plugin {plugin_name!r})"
        # A group's env: and dir: are for the tasks under it, not its plugin's.
        handed_down = takes_tasks and "env" not in accepted
        scope = self.scope_reader.scope_of(data, self.scopes[-1], label, handed_down=handed_down)
        options = {
            key: value
            for key, value in data.items()
            if key not in _STRUCTURE_KEYS and not (handed_down and key in SCOPE_KEYS)
        }
        for key in options:
            is_cwd = key == "dir" and "cwd" in accepted  # dir: is cwd: by its group-level name
            if key not in accepted and not keys.takes_any_key and not is_cwd:
                self.unknown_key(key, key_lines[key], label, accepted, takes_tasks)
        for key in ("tasks", "parallel"):
            if key in data and not takes_tasks:
                self.unknown_key(key, key_lines[key], label, accepted, takes_tasks)
        for key in ("tasks", "parallel"):
            if key in data and not takes_tasks:
                self.unknown_key(key, key_lines[key], label, accepted, takes_tasks)
        if "finally_tasks" in options:
            raise self.error(
                f"{label}: write the tasks that always run as finally:, not finally_tasks:",
                key_lines["finally_tasks"],
                "finally_tasks",
            )
        for key, option in _CLEANUP_KEYS.items():
            if key in data and (not takes_tasks or option not in accepted):
                self.unknown_key(key, key_lines[key], label, accepted, takes_tasks)
        if not handed_down:
            options = self.scope_reader.with_scope(options, scope, accepted, label, data)
        missing = [key for key in required if key not in options]
        if missing:
            raise self.error(
                f"{label} needs the key{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}; add {missing[0]}: …",
                line,
                missing[0],
            )
        item_name = self.item_name(data, label, takes_tasks)
        if item_name is not None:
            self._scope.append(item_name)
        self.scopes.append(scope)
        try:
            children = self.build_children(data, name) if takes_tasks else []
        finally:
            self.scopes.pop()
            if item_name is not None:
                self._scope.pop()
        from ._templates import defer_options, has_runtime_expression

        deferred = {key: value for key, value in options.items() if has_runtime_expression(value)}
        for key in deferred:
            if key not in _runtime_keys(accepted):
                raise self.error(
                    f"{label}: {key}: ${{{{ … }}}} is evaluated when the task starts, which "
                    f"works in a plugin's own options only, not in {key}; compute it at load "
                    f"time with {{{{ … }}}} instead",
                    key_lines[key],
                    key,
                )
        if deferred and takes_tasks:
            key = next(iter(deferred))
            raise self.error(
                f"{label}: {key}: ${{{{ … }}}} works in the options of tasks, not of groups",
                key_lines[key],
                key,
            )
        # A deferred option is checked by the plugin when the task starts; at
        # load time it is left out (its default stands in), unless required.
        checked = {
            key: value for key, value in options.items() if key not in deferred or key in required
        }
        cleanup = {key: self.build_cleanup(data, key, name) for key in _CLEANUP_KEYS if key in data}
        for key, nodes in cleanup.items():
            checked[_CLEANUP_KEYS[key]] = [child.task for child in nodes]
        if item_name is not None:
            from ._fanout import for_each_group

            task = for_each_group(self, name, plugin_name, children, checked, data, item_name)
        else:
            task = self.construct(factory, name, children, checked, label, data)
        # The children as the group's: its tasks, then on_failure, then finally.
        children = children + cleanup.get("on_failure", []) + cleanup.get("finally", [])
        node = Node(task, plugin_name, line, options, children, dict(key_lines))
        # Keys a task got from its groups: their errors point at its line.
        for key in options:
            node.key_lines.setdefault(key, line)
        if self._scope:
            self.item_scopes[id(node)] = frozenset(self._scope)
        if item_name is not None:
            self.for_each_nodes.append(node)
        if self._cleanup_depth:
            self.cleanup_nodes.add(id(node))
        self.add_needs_and_condition(node, data)
        self.add_reuse_keys(node, data, label, takes_tasks)
        if deferred:
            from ._templates import RunTimeOptions

            self.deferred.append((node, deferred))
            defer_options(
                task,
                RunTimeOptions(
                    factory,
                    name,
                    options,
                    deferred,
                    self.where_of(node),
                    self.variables,
                    self.hidden,
                ),
            )
        return node

    def item_name(self, data: LineDict, label: str, takes_tasks: bool) -> str | None:
        """The item's name of a ``for_each:`` group (None: the node has no ``for_each:``)."""
        from ._fanout import check_for_each

        return check_for_each(self, data, label, takes_tasks)

    def add_needs_and_condition(self, node: Node, data: LineDict) -> None:
        """``needs:`` and ``if:``, which every task accepts whatever its plugin."""
        from .._engine._task import check_needs, merge_needs

        task = node.task
        if "needs" in data:
            try:
                declared = check_needs(task.name, data["needs"])
            except DefinitionError as error:
                raise self.error(str(error), data.key_lines["needs"], "needs") from None
            task.needs = merge_needs(declared, task.needs)
        if "if" in data:
            condition = data["if"]
            line = data.key_lines["if"]
            if isinstance(condition, bool):
                task.when = condition
            elif isinstance(condition, str) and condition.strip():
                from ._templates import RUNTIME_EXPRESSION

                text = (
                    condition if RUNTIME_EXPRESSION.search(condition) else f"${{{{ {condition} }}}}"
                )
                self.conditions.append((node, text))
                where = {"file": self.file, "line": line, "task_definition": task, "option": "if"}
                task.when = _condition(text, where)
            else:
                raise self.error(
                    f"task {task.name!r}: if: must be an expression or true/false, got "
                    f"{type_name(condition)}; write e.g. if: ${{{{ env == 'prod' }}}}",
                    line,
                    "if",
                )

    def add_reuse_keys(self, node: Node, data: LineDict, label: str, takes_tasks: bool) -> None:
        """``cache:`` (any task; a group's is inherited), and a leaf's ``sources:``,
        ``outputs:`` and ``env_inputs:``: what its reuse key and its entry cover."""
        task = node.task
        if "cache" in data:
            task.cache = self.cache_of(data["cache"], data.key_lines["cache"], label)
        for key in _LEAF_KEYS:
            if key not in data:
                continue
            line = data.key_lines[key]
            if takes_tasks:
                self.unknown_key(key, line, label, [], takes_tasks)
            value = data[key]
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(
                isinstance(item, str) and item.strip() for item in value
            ):
                raise self.error(
                    f"{label}: {key}: must be a list of "
                    f"{'variable names' if key == 'env_inputs' else 'paths or globs'}, got "
                    f"{type_name(value)}; write e.g. {key}: "
                    f"[{'MODE' if key == 'env_inputs' else 'src/**/*.py'}]",
                    line,
                    key,
                )
            setattr(task, key, tuple(value))

    def cache_of(self, value: Any, line: int, label: str) -> bool | Cache:
        """``cache:``: true, false, or its options (``{restore_outputs: true}``).

        :raises flow2.FlowFileError: naming the line and the key of a wrong value
        """
        from .._engine._caching import Cache

        if isinstance(value, bool):
            return value
        if not isinstance(value, dict):
            raise self.error(
                f"{label}: cache: must be true, false or options such as "
                f"{{restore_outputs: true}}, got {type_name(value)}",
                line,
                "cache",
            )
        lines = getattr(value, "key_lines", {})
        for key, option in value.items():
            where = lines.get(key, line)
            if key != "restore_outputs":
                closest = difflib.get_close_matches(str(key), ["restore_outputs"], n=1)
                hint = "did you mean 'restore_outputs'? " if closest else ""
                raise self.error(
                    f"{label}: cache: has an unknown key {key!r}; {hint}accepted keys: "
                    f"restore_outputs",
                    where,
                    f"cache.{key}",
                )
            if not isinstance(option, bool):
                raise self.error(
                    f"{label}: cache: restore_outputs: must be true or false, got "
                    f"{type_name(option)}; write restore_outputs: true",
                    where,
                    "cache.restore_outputs",
                )
        return Cache(restore_outputs=value.get("restore_outputs", False))

    def where_of(self, node: Node) -> dict[str, dict[str, Any]]:
        """For each key of the node, the facts of an error about it."""
        return {
            key: {
                "file": self.file,
                "line": line,
                "task_definition": node.task,
                "option": key,
            }
            for key, line in node.key_lines.items()
            if isinstance(key, str)
        }

    def plugin_of(self, data: LineDict) -> Any:
        """The node's ``plugin:``, else the one its ``cmd:``, ``tasks:`` or ``parallel:`` implies.

        :raises flow2.FlowFileError: when the node says nothing of what it is,
            or says two things (``cmd:`` and ``tasks:``)
        """
        line = data.line
        forms = [key for key in SHORT_FORMS if key in data]
        # With a plugin: cmd: and tasks: are its options, and it says which it takes.
        if len(forms) > 1 and ("plugin" not in data or {"tasks", "parallel"} <= set(forms)):
            first, second = forms[:2] if "plugin" not in data else ("tasks", "parallel")
            fix = (
                "a group lists its tasks under one key: tasks: (one after another) or "
                "parallel: (at once)"
                if "cmd" not in forms
                else "a task runs a command or holds tasks, not both: move the command into "
                "a task of its own in the list"
            )
            raise self.error(
                f"this node has both {first}: and {second}:, so it is unclear what it is; {fix}",
                data.key_lines[second],
                second,
            )
        if "plugin" in data:
            plugin = data["plugin"]
            if "parallel" in data and plugin != "parallel":
                raise self.error(
                    f"parallel: lists the tasks of a parallel group, but plugin: {plugin} "
                    f"says otherwise; list them under tasks:, or drop plugin:",
                    data.key_lines["parallel"],
                    "parallel",
                )
            return plugin
        if not forms:
            raise self.error(
                "this task has no plugin: key, nor cmd:, tasks: or parallel: to say what it "
                "is; give it cmd: (a shell command), tasks: (a serial group), parallel: (a "
                f"parallel group) or plugin: one of: {', '.join(self.plugins)}",
                line,
                "plugin",
            )
        return SHORT_FORMS[forms[0]]

    def build_children(self, data: LineDict, name: str) -> list[Node]:
        key = "parallel" if "parallel" in data else "tasks"
        tasks = data.get(key)
        line = data.key_lines.get(key, data.line)
        if tasks is None:
            return []
        if not isinstance(tasks, list):
            raise self.error(
                f"{key}: of {name!r} must be a list of tasks, got {type_name(tasks)}; "
                f"write each task as a list item starting with '- name: …'",
                line,
                key,
            )
        item_lines = getattr(tasks, "item_lines", [line] * len(tasks))
        return [
            self.build_node(
                item, item_lines[position], f"item {position + 1} of {key}: of {name!r}"
            )
            for position, item in enumerate(tasks)
        ]

    def build_cleanup(self, data: LineDict, key: str, name: str) -> list[Node]:
        """The tasks of a group's ``on_failure:`` or ``finally:``."""
        tasks = data[key]
        line = data.key_lines[key]
        if not isinstance(tasks, list):
            raise self.error(
                f"{key}: of {name!r} must be a list of tasks, got {type_name(tasks)}; "
                f"write each task as a list item starting with '- plugin: …'",
                line,
                key,
            )
        item_lines = getattr(tasks, "item_lines", [line] * len(tasks))
        self._cleanup_depth += 1
        try:
            return [
                self.build_node(
                    item, item_lines[position], f"item {position + 1} of {key}: of {name!r}"
                )
                for position, item in enumerate(tasks)
            ]
        finally:
            self._cleanup_depth -= 1

    def load_plugin(self, name: str, line: int) -> Callable[..., Any]:
        from ._plugins import OWN_PLUGINS, find_plugin, load_own_plugin

        factory = self.loaded.get(name)
        if factory is None and name in OWN_PLUGINS:
            factory = self.loaded[name] = load_own_plugin(name)
        if factory is None:
            plugin: Plugin
            try:
                plugin = find_plugin(name, self.plugins)
                # A check imports no plugin: see test_check_commands_import_no_plugin.
                factory = plugin.load() if self.import_callbacks else plugin.locate()
            except PluginError as error:
                raise self.error(str(error), line, "plugin") from None
            self.loaded[name] = factory
        return factory

    def unknown_key(
        self, key: str, line: int, label: str, accepted: list[str], takes_tasks: bool
    ) -> None:
        # "if", the reuse keys and the keys after them are read by the loader,
        # not the plugin, so the plugin's options miss them.
        keys = [
            "name",
            *(["tasks", "for_each", "as"] if takes_tasks else []),
            *(key for key in accepted if key not in ("cache", *_LEAF_KEYS)),
            "if",
            "needs",
            "cache",
            *([] if takes_tasks else _LEAF_KEYS),
        ]
        keys += ["parallel", "env", "dir", "dotenv"] if takes_tasks else ["dotenv"]
        if "cwd" in accepted and not takes_tasks:
            keys.append("dir")
        keys = ["finally" if key == "finally_tasks" else key for key in keys]
        keys = list(dict.fromkeys(keys))
        closest = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        hint = f"did you mean {closest[0]!r}? " if closest else ""
        raise self.error(
            f"{label} has an unknown key {key!r}; {hint}accepted keys: plugin, {', '.join(keys)}",
            line,
            key,
        )

    def construct(
        self,
        factory: Callable[..., Any],
        name: str,
        children: list[Node],
        options: dict[str, Any],
        label: str,
        data: LineDict,
    ) -> Task:
        try:
            if not self.import_callbacks:
                options = _located_callback(factory, name, options)
            task = factory(name, *(child.task for child in children), **options)
        except FlowError as error:
            key = error.option if error.option in options else None
            line = data.key_lines[key] if key is not None else data.line
            raise self.error(str(error), line, key, **_facts_of(error)) from None
        except Exception as error:
            # A plugin's own exception carries no facts: the option its
            # message names, if any.
            key = _key_named_in(str(error), options)
            line = data.key_lines[key] if key is not None else data.line
            raise self.error(
                f"{label} could not be created: {type(error).__name__}: {error}", line, key
            ) from None
        if not isinstance(task, Task):
            raise self.error(
                f"{label}: the plugin returned {type(task).__name__}, not a flow2.Task; "
                f"its entry point must name a Task subclass",
                data.line,
                "plugin",
            )
        return task

    def check_tree(self, root: Node, *, as_a_run_would: bool = True) -> None:
        """Duplicate result keys and run-time names, then the run's own checks.

        :param as_a_run_would: also check the tree as a run does (needs, keys,
            executors); off when a run follows, which checks it once itself
            (the caller turns its errors into the file's with
            :meth:`LoadedFlow.located`)
        """
        from .._engine._run import validate_tree
        from ._templates import runtime_names, unsafe_attribute

        owners: dict[str, Node] = {}
        nodes = LoadedFlow(self.file, "", root).nodes()
        for node in nodes:
            if node.task.stores_result or node.task.gathers_results:
                other = owners.setdefault(node.task.key, node)
                if other is not node:
                    raise self.error(
                        f"task {node.task.name!r} stores its result under "
                        f"{node.task.key!r}, as does task {other.task.name!r} "
                        f"(line {other.line}); give one of them another name or register: …",
                        node.line,
                        "name",
                        task_definition=node.task,
                        value=node.task.key,
                    )
        known = set(owners) | set(self.variables) | {"context", ARGUMENTS}
        from .._engine._cleanup import FAILURES_KEY
        from .._engine._needs import Condition
        from .._engine._task import merge_needs

        expressions = [
            (node, key, value)
            for node, deferred in self.deferred
            for key, value in deferred.items()
        ]
        expressions += [(node, "if", text) for node, text in self.conditions]
        expressions += [
            (node, "for_each", node.task.items_text)  # type: ignore[attr-defined]
            for node in self.for_each_nodes
        ]
        for node, key, value in expressions:
            import jinja2  # here: a flow without expressions loads without Jinja

            try:
                names = runtime_names(value)
                unsafe = unsafe_attribute(value)
            except jinja2.TemplateSyntaxError as error:
                raise self.error(
                    f"task {node.task.name!r}, {key}: malformed ${{{{ … }}}} expression: "
                    f"{error.message}",
                    node.line,
                    key,
                ) from None
            if unsafe is not None:
                raise self.error(
                    f"task {node.task.name!r}, {key}: ${{{{ … }}}} reaches the attribute "
                    f"{unsafe!r}; expressions run in Jinja's sandbox, which forbids "
                    f"attributes starting with '_'",
                    node.line,
                    key,
                )
            if key == "for_each" and node.task.key in names:
                raise self.error(
                    f"for-each group {node.task.name!r} stores its items' results under "
                    f"{node.task.key!r}, which its for_each: reads; give the group another "
                    f"name, or register: with another key",
                    node.key_lines.get("for_each", node.line),
                    "for_each",
                    task_definition=node.task,
                )
            visible = known | self.item_scopes.get(id(node), frozenset())
            if id(node) in self.cleanup_nodes:
                visible = visible | {FAILURES_KEY}
            for unknown in sorted(names - visible):
                closest = difflib.get_close_matches(unknown, sorted(visible), n=1)
                hint = f"did you mean {closest[0]!r}? " if closest else ""
                raise self.error(
                    f"task {node.task.name!r}, {key}: ${{{{ … }}}} uses {unknown!r}, which "
                    f"is neither a task's result key nor a variable; {hint}result keys: "
                    f"{', '.join(sorted(owners)) or 'none'}",
                    node.line,
                    key,
                )
            # The results an expression reads are needs of its task.
            # See test_expression_reading_a_parallel_sibling_waits_for_it.
            read = sorted(names & set(owners))
            task = node.task
            if key == "if" and isinstance(task.when, Condition):
                task.when.reads = tuple(sorted(names - {"context"}))
            if read:
                task.needs = merge_needs(task.needs, read)
        from ._fanout import lift_needs

        for node in reversed(self.for_each_nodes):
            lift_needs(node)
        if not as_a_run_would:
            return
        try:
            validate_tree(root.task, context=dict(self.variables))
        except DefinitionError as error:
            raise _located(self.file, nodes, root, error) from None


def _condition(text: str, where: dict[str, Any]) -> Any:
    """The ``when`` of an ``if:``: the expression's truth when the task is about to start."""
    from .._engine._needs import Condition
    from ._templates import render_runtime

    def evaluate(context: Context) -> bool:
        return bool(render_runtime(text, context, where))

    return Condition(evaluate, (), text)


def _located_callback(
    factory: Callable[..., Any], name: str, options: dict[str, Any]
) -> dict[str, Any]:
    """``options`` whose ``callback:`` reference is found in its module's source, not imported."""
    from ._plugins import CallbackPlugin, locate_reference

    callback = options.get("callback")
    if not (isinstance(factory, type) and issubclass(factory, CallbackPlugin)):
        return options
    if not isinstance(callback, str):
        return options
    return {**options, "callback": locate_reference(name, callback)}


def _located(file: str, nodes: list[Node], root: Node, error: DefinitionError) -> FlowFileError:
    """``error`` about the tree, as an error of the flow file naming the line it is about."""
    from .._engine._needs import NeedsError

    if isinstance(error, FlowFileError):
        return error  # located already
    if isinstance(error, NeedsError):
        # Every problem with needs at once, each with its line.
        node_of = {id(node.task): node for node in nodes}
        located = []
        for problem in error.problems:
            node = node_of.get(id(problem.task), root)
            key = "needs" if "needs" in node.key_lines else "if" if "if" in node.key_lines else None
            located.append((node.key_lines[key] if key else node.line, key, problem.message))
        line, key, message = located[0]
        more = "".join(f"\n{file}:{other}: {text}" for other, _, text in located[1:])
        return FlowFileError(message + more, file=file, line=line, key=key, **_facts_of(error))
    # The node of the very task object the error is about: two tasks may
    # share a name. See test_two_tasks_named_alike_errors_name_the_wrong_one.
    about = next((node for node in nodes if node.task is error.task_definition), root)
    return FlowFileError(
        str(error), file=file, line=about.line, key=error.key or error.option, **_facts_of(error)
    )


def _facts_of(error: FlowError) -> dict[str, Any]:
    """What an engine or plugin error is about, for the flow-file error made of it."""
    return {
        "task": error.task,
        "task_definition": error.task_definition,
        "option": error.option,
        "value": error.value,
    }


def _runtime_keys(accepted: list[str]) -> set[str]:
    """The options that may hold run-time expressions: all but Task's own."""
    own = inspect.signature(Task.__init__).parameters
    return {key for key in accepted if key not in own}


def _key_named_in(message: str, options: dict[str, Any]) -> str | None:
    """The option an error message is about: the first ``key=`` it mentions."""
    for key in options:
        if f"{key}=" in message or f"{key}[" in message:
            return key
    return None


def load(path: str | os.PathLike[str], **variables: Any) -> Task:
    """Load the flow file at ``path`` into its task tree.

    :param path: the YAML flow file
    :param variables: the template variables (as ``key=value`` on the command line)
    :returns: the root task, ready to run, inspect or put into a bigger tree
    :raises flow2.FlowFileError: when the file is wrong, with its line and key
    :raises flow2.ConfigurationError: when PyYAML or Jinja2 is not installed

    Example::

        task = flow2.load("examples/release.yml", version="1.2.0")
        context = await task.run()
    """
    check_flow_dependencies()
    loaded = read_flow(path, variables)
    root = loaded.root.task
    # A run of the tree starts with the variables, as `flow2 run` does; the
    # caller's context wins: `await flow2.load(path, v=1).run()` and
    # `flow2 run path v=1` see the same context.
    root.starting_context = loaded.variables
    return root


def check_flow_dependencies() -> None:
    """Raise one clear error when the libraries that read flow files are missing.

    :raises flow2.ConfigurationError: naming the extra to install
    """
    import importlib.util

    needed = {"yaml": "PyYAML", "jinja2": "Jinja2"}
    missing = [name for module, name in needed.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigurationError(
            f"reading flow files needs {' and '.join(missing)}, not installed; "
            f"install flow2[cli] (pip install 'flow2[cli]' from your clone or wheel)",
            value=", ".join(missing),
        )


class Flow:
    """A flow file, loaded and run with template variables.

    :param path: the YAML flow file
    :param variables: default template variables, overridable at each call

    Example::

        context = await flow2.Flow("examples/release.yml").run(version="1.2.0")
    """

    def __init__(self, path: str | os.PathLike[str], **variables: Any) -> None:
        self.path = Path(path)
        self.variables = variables

    def __repr__(self) -> str:
        return f"<Flow {os.fspath(self.path)!r}>"

    def render(self, **variables: Any) -> str:
        """The file's text after templating.

        :raises flow2.FlowFileError: when the template fails
        """
        return render(self.path, {**self.variables, **variables})

    def load(self, **variables: Any) -> Task:
        """The flow's task tree.

        :raises flow2.FlowFileError: when the file is wrong, with its line and key
        """
        return load(self.path, **{**self.variables, **variables})

    async def run(self, **variables: Any) -> Context:
        """Load the flow and run it; the variables are also the run's starting context.

        :returns: the context filled with every task's result
        :raises flow2.FlowFileError: when the file is wrong; nothing ran
        """
        merged = {**self.variables, **variables}
        return await load(self.path, **merged).process(dict(merged))
