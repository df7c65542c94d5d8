"""Plugins: the names a flow file's ``plugin:`` keys refer to.

A plugin is an entry point in the ``flow2`` group: a name and the
``module:attribute`` of a :class:`flow2.Task` subclass (or any callable
returning a Task) that a node's keys are passed to. flow2 registers its own
(``serial``, ``parallel``, ``callback``, ``shell``) the same way a third-party
distribution does, in its ``pyproject.toml``::

    [project.entry-points.flow2]
    deploy = "acme_flow2.deploy:DeployTask"

Nothing is imported until a flow names the plugin. flow2's own plugins
(:data:`OWN_PLUGINS`) are found without reading the installed distributions'
entry points, which takes tens of milliseconds at every start; another
distribution declaring one of their names does not replace them.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.machinery
import inspect
import os
import sys
import types
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._engine._callback import CallbackTask
from .._engine._exceptions import DefinitionError, PluginError, TaskTypeError
from .._engine._groups import SerialTaskGroup
from .._engine._task import Task

if TYPE_CHECKING:
    from collections.abc import Callable
    from importlib.metadata import EntryPoint

#: The entry-point group plugins register in.
ENTRY_POINT_GROUP = "flow2"
#: flow2's own plugins, as its ``pyproject.toml`` declares them in
#: :data:`ENTRY_POINT_GROUP`. See test_builtin_plugins_are_entry_points_of_flow2.
OWN_PLUGINS = {
    "callback": "flow2._flows._plugins:CallbackPlugin",
    "parallel": "flow2.task:ParallelTaskGroup",
    "serial": "flow2.task:SerialTaskGroup",
    "shell": "flow2._flows._shell:ShellTask",
}


@dataclass(frozen=True)
class Plugin:
    """One installed plugin.

    :ivar name: the name flow files use after ``plugin:``
    :ivar target: what it loads, ``module:attribute``
    :ivar distribution: ``name version`` of the distribution that declares it
    """

    name: str
    target: str
    entry_point: EntryPoint

    @property
    def distribution(self) -> str:
        """``name version`` of the distribution that declares the plugin.

        Read when asked: reading every distribution's metadata costs
        milliseconds that loading a flow does not need.
        """
        distribution = self.entry_point.dist
        if distribution is None:
            return "an unknown distribution"
        return f"{distribution.name} {distribution.version}"

    def load(self) -> Callable[..., Any]:
        """Import the plugin and return its task class (or task factory).

        :raises flow2.PluginError: when its module fails to import, or the
            attribute is missing or cannot make tasks
        """
        try:
            loaded = self.entry_point.load()
        except Exception as error:
            raise PluginError(
                f"plugin {self.name!r} ({self.target}, from {self.distribution}) failed to "
                f"import: {type(error).__name__}: {error}; reinstall or fix that distribution, "
                f"or use another plugin",
                plugin=self.name,
            ) from error
        if not callable(loaded):
            raise PluginError(
                f"plugin {self.name!r} ({self.target}, from {self.distribution}) is "
                f"{type(loaded).__name__}, not a flow2.Task class; its entry point must name "
                f"a Task subclass",
                plugin=self.name,
            )
        return loaded  # type: ignore[no-any-return]

    def locate(self) -> Callable[..., Any]:
        """Check that the plugin's ``module:attribute`` is defined, running none of its code.

        What the check commands use instead of :meth:`load`: the module is
        found on ``sys.path`` and its source parsed (see :func:`locate_reference`).
        flow2's own plugins, and a module imported already, are loaded as they are.

        :returns: a stand-in factory with the signature the source declares
            (``__init__``'s for a class) that builds a :class:`flow2.Task` of
            the node's name, Task options and children, for the checks
        :raises flow2.PluginError: when the module cannot be found or read,
            or does not define the attribute
        """
        module_name, _, attribute_path = self.target.partition(":")
        module_name, attribute_path = module_name.strip(), attribute_path.strip()
        # flow2's own plugins are flow2's code, running already: loaded as
        # they are, so a dry run's plan compares their tasks' definitions (see
        # test_a_dry_run_of_a_resume_says_what_it_reuses_and_why_the_rest_runs).
        own = module_name.partition(".")[0] == "flow2"
        if own or module_name in sys.modules or not attribute_path:
            return self.load()
        try:
            _, definition, _ = _find_definition(module_name, attribute_path)
        except _NotFound as error:
            raise PluginError(
                f"plugin {self.name!r} ({self.target}, from {self.distribution}): {error}; "
                f"reinstall or fix that distribution, or use another plugin",
                plugin=self.name,
            ) from None
        return _plugin_stand_in(self.name, definition)

    def summary(self) -> str:
        """The first line of the plugin's docstring, or why it cannot be imported."""
        try:
            loaded = self.load()
        except PluginError as error:
            return f"BROKEN: {error.__cause__ or error}"
        doc = inspect.getdoc(loaded) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


def installed_plugins() -> dict[str, Plugin]:
    """Every installed plugin by name, sorted.

    The first distribution wins a name clash, except over flow2's own
    plugins (:data:`OWN_PLUGINS`), which always keep their names.
    """
    from importlib.metadata import entry_points

    plugins: dict[str, Plugin] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        is_own = OWN_PLUGINS.get(entry_point.name) == entry_point.value
        if entry_point.name in plugins and not is_own:
            continue
        plugins[entry_point.name] = Plugin(entry_point.name, entry_point.value, entry_point)
    return dict(sorted(plugins.items()))


def load_own_plugin(name: str) -> Callable[..., Any]:
    """The task class of flow2's own plugin ``name`` (a key of :data:`OWN_PLUGINS`)."""
    module, _, attribute = OWN_PLUGINS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]


def find_plugin(name: str, plugins: dict[str, Plugin] | None = None) -> Plugin:
    """The installed plugin called ``name``.

    :raises flow2.PluginError: when none is, listing the installed ones and the closest name
    """
    if plugins is None:
        plugins = installed_plugins()
    plugin = plugins.get(name)
    if plugin is not None:
        return plugin
    installed = ", ".join(plugins) or "none"
    closest = difflib.get_close_matches(name, list(plugins), n=1, cutoff=0.6)
    hint = f"did you mean {closest[0]!r}? " if closest else ""
    raise PluginError(
        f"no plugin named {name!r}; {hint}installed plugins: {installed} "
        f"(a distribution adds one with an entry point in the {ENTRY_POINT_GROUP!r} group)",
        plugin=name,
    )


@dataclass(frozen=True)
class PluginOptions:
    """The keys a plugin's node may have, read from its signature.

    :ivar accepted: the option keys, the plugin's own first, then Task's
    :ivar required: the keys without a default
    :ivar takes_tasks: whether it takes child tasks (``*tasks``), so ``tasks:``
    :ivar takes_any_key: a factory taking ``**options`` it does not declare
    """

    accepted: list[str]
    required: list[str]
    takes_tasks: bool
    takes_any_key: bool


def plugin_options(factory: Callable[..., Any]) -> PluginOptions:
    """The keys ``factory`` (a Task class or a function) takes after the task's name.

    A class's ``__init__`` that passes ``**kwargs`` on is followed up its
    bases, so a plugin accepts :class:`flow2.Task`'s options too.
    """
    options = PluginOptions([], [], takes_tasks=False, takes_any_key=False)
    functions: list[tuple[Callable[..., Any], bool]]
    if isinstance(factory, type):
        functions = [
            (vars(klass)["__init__"], True)
            for klass in factory.__mro__
            if "__init__" in vars(klass)
        ]
    else:
        functions = [(factory, False)]
    passes_on = False
    for depth, (function, is_method) in enumerate(functions):
        if function is object.__init__:
            break
        try:
            parameters = list(inspect.signature(function).parameters.values())
        except (TypeError, ValueError):  # a builtin without a signature
            return replace(options, takes_any_key=True)
        # Skip ``self``, then the task's name.
        parameters = parameters[2:] if is_method else parameters[1:]
        passes_on = False
        for parameter in parameters:
            if parameter.kind is parameter.VAR_POSITIONAL:
                options = replace(options, takes_tasks=True)
            elif parameter.kind is parameter.VAR_KEYWORD:
                passes_on = True
            elif parameter.name not in options.accepted:
                options.accepted.append(parameter.name)
                if parameter.default is parameter.empty and depth == 0:
                    options.required.append(parameter.name)
        if not passes_on:
            break
    # A function passing ``**options`` on to nobody we can see takes any key.
    return replace(options, takes_any_key=passes_on)


class CallbackPlugin(CallbackTask):
    """Call a Python function: ``callback: package.module:function``.

    The function is imported when the flow loads; it receives the context
    dict and its return value is the task's result, as with
    :class:`flow2.CallbackTask` (sync functions run in the task's executor).

    :param name: task name
    :param callback: ``"package.module:function"`` (dots after the colon reach
        attributes: ``module:Class.method``), or the callable itself
    :param kwargs: the options of :class:`flow2.Task`
    :raises flow2.DefinitionError: when the reference is malformed or cannot be imported
    :raises flow2.TaskTypeError: when it names something that is not callable
    """

    def __init__(self, name: str, callback: str | Callable[..., Any], **kwargs: Any) -> None:
        if isinstance(callback, str):
            callback = import_reference(name, callback)
        super().__init__(name, callback, **kwargs)


def import_reference(task_name: str, reference: str) -> Any:
    """Import ``"package.module:attribute.path"`` and return the object it names.

    :raises flow2.DefinitionError: when the reference is malformed or cannot be imported
    :raises flow2.TaskTypeError: when the object is not callable
    """
    module_name, attribute_path = _split_reference(task_name, reference)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as error:
        raise DefinitionError(
            f"task {task_name!r}: callback={reference!r}: module {module_name!r} cannot be "
            f"imported ({type(error).__name__}: {error}); install it or put its folder on "
            f"PYTHONPATH",
            task=task_name,
            option="callback",
            value=reference,
        ) from error
    for attribute in attribute_path.split("."):
        try:
            target = getattr(target, attribute)
        except AttributeError:
            raise DefinitionError(
                f"task {task_name!r}: callback={reference!r}: {module_name!r} has no "
                f"attribute {attribute_path!r}; check the name after the colon",
                task=task_name,
                option="callback",
                value=reference,
            ) from None
    if not callable(target):
        raise TaskTypeError(
            f"task {task_name!r}: callback={reference!r} is {type(target).__name__}, "
            f"not a function; name a function taking the context dict",
            task=task_name,
            option="callback",
            value=reference,
        )
    return target


class _NotImported(RuntimeError):
    """Raised by a callback's stand-in, should anything call it."""


def _stand_in_sync(*arguments: Any, **keywords: Any) -> Any:
    raise _NotImported("a callback located for a check is never called")


async def _stand_in_coroutine(*arguments: Any, **keywords: Any) -> Any:
    raise _NotImported("a callback located for a check is never called")


def _stand_in_generator(*arguments: Any, **keywords: Any) -> Any:
    raise _NotImported("a callback located for a check is never called")
    yield  # a generator function, as the callback is


async def _stand_in_async_generator(*arguments: Any, **keywords: Any) -> Any:
    raise _NotImported("a callback located for a check is never called")
    yield  # an async generator function, as the callback is


def locate_reference(task_name: str, reference: str) -> Callable[..., Any]:
    """Check that ``"package.module:function"`` names something, running none of its code.

    What ``validate``, ``show``, ``graph`` and ``run --dry-run`` use instead of
    :func:`import_reference`: the module's file is found on ``sys.path`` (no
    package's ``__init__`` runs, as it would for ``importlib.util.find_spec``
    of a dotted name), its source is parsed, and the name after the colon must
    be defined at its top level. A module imported already is used as it is.
    A compiled module, or one whose names cannot be read from its source
    (``from … import *``, a module ``__getattr__``), is only found.

    :returns: a stand-in with the function's name, signature and kind (sync,
        async, generator), so that the plan's needs and fingerprints are the
        function's own; calling it raises
    :raises flow2.DefinitionError: when the reference is malformed, the module
        cannot be found or read, or it does not define the name
    """
    module_name, attribute_path = _split_reference(task_name, reference)
    if module_name in sys.modules:  # imported already: looking runs nothing
        return import_reference(task_name, reference)  # type: ignore[no-any-return]

    try:
        path, definition, _ = _find_definition(module_name, attribute_path)
    except _NotFound as error:
        raise DefinitionError(
            f"task {task_name!r}: callback={reference!r}: {error}",
            task=task_name,
            option="callback",
            value=reference,
        ) from None
    if isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef) and "." not in attribute_path:
        return _stand_in(module_name, attribute_path, definition, path)
    return _stand_in(module_name, attribute_path, None, path)


class _NotFound(Exception):
    """A reference's module or name cannot be found in the source; the message says which."""


def _find_definition(module_name: str, attribute_path: str) -> tuple[Path, ast.stmt | None, bool]:
    """Find ``module_name``'s file and the statement defining ``attribute_path``'s first name.

    :returns: the file, the statement (None when the source cannot tell:
        a compiled module, ``import *``, a module ``__getattr__``), and whether
        the module may define names its source does not show
    :raises _NotFound: when the module cannot be found or read, or lacks the name
    """
    path = _module_file(module_name)
    if path is None:
        raise _NotFound(
            f"module {module_name!r} cannot be found; install it or put its folder on PYTHONPATH"
        )
    if path.suffix != ".py":  # compiled, or built into the interpreter
        return path, None, True
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, ValueError, SyntaxError) as error:
        line = f" (line {error.lineno})" if isinstance(error, SyntaxError) else ""
        raise _NotFound(
            f"module {module_name!r} ({path}) cannot be read{line}: {error}; fix the module"
        ) from None
    names, open_ended = _top_level_names(tree)
    first = attribute_path.split(".")[0]
    if first not in names:
        if open_ended:
            return path, None, True
        raise _NotFound(
            f"{module_name!r} has no attribute {attribute_path!r}; check the name after the colon"
        )
    return path, names[first], open_ended


#: The options every task takes, passed on by a plugin's stand-in.
_TASK_OPTIONS = (
    "description",
    "register",
    "output",
    "timeout",
    "retries",
    "retry_delay",
    "executor",
    "needs",
    "when",
)


class _LocatedPlugin(Task):
    """What a located plugin's node becomes in a check: a task that is never run."""

    async def run(self, context: Any) -> Any:
        raise _NotImported("a plugin located for a check is never run")


def _plugin_stand_in(plugin_name: str, definition: ast.stmt | None) -> Callable[..., Any]:
    """A factory standing for a plugin in a check, with the signature its source declares.

    The loader reads the node's accepted keys from that signature: a class's
    ``__init__`` (less ``self``), or a function's parameters. Where the source
    cannot tell (a class without its own ``__init__``, a name assigned or
    imported), it takes any key and child tasks.
    """
    signature = None
    if isinstance(definition, ast.ClassDef):
        signature = _class_signature(definition)
    elif isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef):
        signature = _signature(definition.args)

    def stand_in(name: str, *tasks: Task, **options: Any) -> Task:
        task_options = {key: options[key] for key in _TASK_OPTIONS if key in options}
        if tasks:
            return SerialTaskGroup(name, *tasks, **task_options)
        return _LocatedPlugin(name, **task_options)

    stand_in.__qualname__ = stand_in.__name__ = plugin_name
    if signature is not None:
        stand_in.__signature__ = signature  # type: ignore[attr-defined]
    return stand_in


def _class_signature(definition: ast.ClassDef) -> inspect.Signature | None:
    """What a plugin class takes after ``self``, as its source says.

    A class whose bases are all named ``Task`` (``flow2.Task``, ``Task``)
    and whose ``__init__`` passes ``**options`` on takes :class:`flow2.Task`'s
    options too, as the loaded class would; with other bases the source cannot
    tell which keys reach them, and None (any key) is returned.
    """
    init = next(
        (
            statement
            for statement in definition.body
            if isinstance(statement, ast.FunctionDef) and statement.name == "__init__"
        ),
        None,
    )
    on_task = bool(definition.bases) and all(
        (isinstance(base, ast.Name) and base.id == "Task")
        or (isinstance(base, ast.Attribute) and base.attr == "Task")
        for base in definition.bases
    )
    task_parameters = list(inspect.signature(Task.__init__).parameters.values())[1:]
    if init is None:
        return inspect.Signature(task_parameters) if on_task else None
    own = list(_signature(init.args).parameters.values())[1:]
    passes_on = any(parameter.kind is parameter.VAR_KEYWORD for parameter in own)
    if not passes_on:
        return inspect.Signature(own)
    if not on_task:
        return None
    kept = [parameter for parameter in own if parameter.kind is not parameter.VAR_KEYWORD]
    names = {parameter.name for parameter in kept}
    inherited = [
        parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for parameter in task_parameters[1:]
        if parameter.name not in names
    ]
    return inspect.Signature([*kept, *inherited])


def _split_reference(task_name: str, reference: str) -> tuple[str, str]:
    module_name, colon, attribute_path = reference.partition(":")
    if not colon or not module_name.strip() or not attribute_path.strip():
        raise DefinitionError(
            f"task {task_name!r}: callback={reference!r} is not 'package.module:function'; "
            f"write e.g. callback: mypackage.tasks:build",
            task=task_name,
            option="callback",
            value=reference,
        )
    return module_name.strip(), attribute_path.strip()


def _module_file(module_name: str) -> Path | None:
    """The file ``import module_name`` would load, found without running any package's code."""
    if module_name in sys.builtin_module_names:
        return Path(f"<built-in {module_name}>")
    *packages, last = module_name.split(".")
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    for entry in sys.path:
        folder = Path(entry or os.getcwd())
        for package in packages:
            folder = folder / package
        if packages and not folder.is_dir():
            continue
        candidates = [folder / f"{last}.py", folder / last / "__init__.py"]
        candidates += [folder / f"{last}{suffix}" for suffix in suffixes]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        if (folder / last).is_dir():  # a namespace package: nothing to read
            return folder / last
    return None


def _top_level_names(tree: ast.Module) -> tuple[dict[str, ast.stmt], bool]:
    """The names a module defines at its top level (in ifs and trys too), and whether
    it may define others the source does not show (``import *``, ``__getattr__``)."""
    names: dict[str, ast.stmt] = {}
    open_ended = False
    statements: list[ast.stmt] = list(tree.body)
    while statements:
        statement = statements.pop(0)
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.setdefault(statement.name, statement)
            open_ended = open_ended or statement.name == "__getattr__"
        elif isinstance(statement, ast.Import | ast.ImportFrom):
            for alias in statement.names:
                if alias.name == "*":
                    open_ended = True
                else:
                    names.setdefault(alias.asname or alias.name.split(".")[0], statement)
        elif isinstance(statement, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                for node in ast.walk(target):
                    if isinstance(node, ast.Name):
                        names.setdefault(node.id, statement)
        elif isinstance(statement, ast.If | ast.Try | ast.With | ast.For | ast.While):
            for field in ("body", "orelse", "finalbody"):
                statements.extend(getattr(statement, field, []))
            for handler in getattr(statement, "handlers", []):
                statements.extend(handler.body)
        elif sys.version_info >= (3, 11) and isinstance(statement, ast.TryStar):
            statements.extend([*statement.body, *statement.orelse, *statement.finalbody])
    return names, open_ended


def _stand_in(
    module_name: str, attribute_path: str, definition: ast.stmt | None, path: Path
) -> Callable[..., Any]:
    """A function that stands for the callback in a check: its name, signature and kind."""
    template: Callable[..., Any] = _stand_in_sync
    signature = None
    first_line = 1
    if isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef):
        generator = _is_generator(definition)
        if isinstance(definition, ast.AsyncFunctionDef):
            template = _stand_in_async_generator if generator else _stand_in_coroutine
        elif generator:
            template = _stand_in_generator
        signature = _signature(definition.args)
        first_line = min([definition.lineno, *(item.lineno for item in definition.decorator_list)])
    code = template.__code__
    if definition is not None:
        # The function's own file and first line: the run store's fingerprint
        # reads its source from there, as it does for the imported function.
        code = code.replace(
            co_filename=str(path), co_firstlineno=first_line, co_name=attribute_path
        )
    function = types.FunctionType(code, {}, attribute_path.split(".")[-1])
    function.__qualname__ = attribute_path
    function.__module__ = module_name
    # A dry run's reuse plan leaves the code of a stand-in out (see flow2._store._dry).
    function.__flow2_stand_in__ = True  # type: ignore[attr-defined]
    if signature is not None:
        function.__signature__ = signature  # type: ignore[attr-defined]
    return function


def _is_generator(definition: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether the function's own body yields (not a function nested in it)."""
    pending: list[ast.AST] = list(definition.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Yield | ast.YieldFrom):
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        pending.extend(ast.iter_child_nodes(node))
    return False


def _signature(arguments: ast.arguments) -> inspect.Signature:
    """The parameters of a function as its source declares them; defaults stand in as ``...``."""
    Parameter = inspect.Parameter
    parameters: list[inspect.Parameter] = []
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: list[Any] = [Parameter.empty] * (len(positional) - len(arguments.defaults))
    defaults += [...] * len(arguments.defaults)
    for index, (argument, default) in enumerate(zip(positional, defaults, strict=True)):
        kind = (
            Parameter.POSITIONAL_ONLY
            if index < len(arguments.posonlyargs)
            else Parameter.POSITIONAL_OR_KEYWORD
        )
        parameters.append(Parameter(argument.arg, kind, default=default))
    if arguments.vararg is not None:
        parameters.append(Parameter(arguments.vararg.arg, Parameter.VAR_POSITIONAL))
    for argument, keyword_default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        parameters.append(
            Parameter(
                argument.arg,
                Parameter.KEYWORD_ONLY,
                default=Parameter.empty if keyword_default is None else ...,
            )
        )
    if arguments.kwarg is not None:
        parameters.append(Parameter(arguments.kwarg.arg, Parameter.VAR_KEYWORD))
    return inspect.Signature(parameters)
