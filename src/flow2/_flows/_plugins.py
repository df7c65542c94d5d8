"""Plugins: the names a flow file's ``plugin:`` keys refer to.

A plugin is an entry point in the ``flow2`` group: a name and the
``module:attribute`` of a :class:`flow2.Task` subclass (or any callable
returning a Task) that a node's keys are passed to. flow2 registers its own
(``serial``, ``parallel``, ``callback``, ``shell``) the same way a third-party
distribution does, in its ``pyproject.toml``::

    [project.entry-points.flow2]
    deploy = "acme_flow2.deploy:DeployTask"

Nothing is imported until a flow names the plugin.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .._engine._callback import CallbackTask
from .._engine._exceptions import DefinitionError, PluginError, TaskTypeError

if TYPE_CHECKING:
    from collections.abc import Callable
    from importlib.metadata import EntryPoint

#: The entry-point group plugins register in.
ENTRY_POINT_GROUP = "flow2"


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

    def summary(self) -> str:
        """The first line of the plugin's docstring, or why it cannot be imported."""
        try:
            loaded = self.load()
        except PluginError as error:
            return f"BROKEN: {error.__cause__ or error}"
        doc = inspect.getdoc(loaded) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


def installed_plugins() -> dict[str, Plugin]:
    """Every installed plugin by name, sorted; the first distribution wins a name clash."""
    from importlib.metadata import entry_points

    plugins: dict[str, Plugin] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in plugins:
            continue
        plugins[entry_point.name] = Plugin(entry_point.name, entry_point.value, entry_point)
    return dict(sorted(plugins.items()))


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
    module_name, colon, attribute_path = reference.partition(":")
    if not colon or not module_name.strip() or not attribute_path.strip():
        raise DefinitionError(
            f"task {task_name!r}: callback={reference!r} is not 'package.module:function'; "
            f"write e.g. callback: mypackage.tasks:build",
            task=task_name,
            option="callback",
            value=reference,
        )
    try:
        target: Any = importlib.import_module(module_name.strip())
    except Exception as error:
        raise DefinitionError(
            f"task {task_name!r}: callback={reference!r}: module {module_name!r} cannot be "
            f"imported ({type(error).__name__}: {error}); install it or put its folder on "
            f"PYTHONPATH",
            task=task_name,
            option="callback",
            value=reference,
        ) from error
    for attribute in attribute_path.strip().split("."):
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
