"""The exceptions flow2 raises.

Everything flow2 raises on its own account derives from :class:`FlowError`;
a user's exception raised inside a task reaches the caller unchanged. Each
error carries what it is about as attributes (``task``, ``task_definition``,
``key``, ``option``, ``value``, ``file``, ``line``; see :class:`FlowError`),
and code that needs a fact reads the attribute, never the message.

::

    FlowError
    ├── DefinitionError (also ValueError)   the tree or a flow file is wrong; nothing ran
    │   ├── DuplicateKeyError               two leaf tasks store under one key
    │   ├── DuplicateTaskError              one task object twice in a tree
    │   ├── NeedsError                      a need no task produces, a cycle, an impossible order
    │   ├── PluginError                     a flow names a plugin that is missing or broken
    │   └── FlowFileError                   a flow file is wrong; names its file, line and key
    ├── TaskTypeError (also TypeError)      something that is not a Task where a Task belongs,
    │                                       or a callback that cannot be called
    ├── ConfigurationError (also ValueError) a run option or environment variable is wrong
    │   └── StoreError                      the run store cannot be used, or a run reference
    │                                       matches no recorded run or several
    ├── TaskTimeoutError (also TimeoutError) a task ran past its ``timeout``
    ├── StrayCancellationError              a task's work raised CancelledError unasked
    ├── MissingResultError (also KeyError)  a task read a result another task had not stored yet
    ├── TaskExitError                       a task's code raised SystemExit, KeyboardInterrupt
    │                                       or another BaseException that is not an Exception
    ├── CommandError                        a shell task's command exited with a non-zero code
    ├── ExpressionError                     a flow's run-time ``${{ … }}`` expression failed
    ├── ExecutorError                       an executor could not run a task's work
    └── ReportError (also ValueError)       a report's source cannot be read: an event file
                                            that is truncated before its start or not
                                            flow2's, a run that is not in it
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._task import Task


class FlowError(Exception):
    """Base class of every error flow2 raises on its own account.

    An error carries what it is about as attributes, None where they do not
    apply, so code reads the facts instead of parsing the message.

    :param message: what is wrong and how to fix it
    :ivar task: the name of the task it is about
    :ivar task_definition: the :class:`~flow2.Task` object it is about, so
        that two tasks with one name stay apart (the flow loader finds a
        task's line from it)
    :ivar key: the result key or flow-file key it is about
    :ivar option: the task or run option it is about (``timeout``, ``executor`` …)
    :ivar value: the value found wrong, where one was
    :ivar file: the file it is about (a flow file, an event file, a report)
    :ivar line: the line (1-based) in :attr:`file`, when it is about one line
    """

    def __init__(
        self,
        message: str = "",
        *,
        task: str | None = None,
        task_definition: Task | None = None,
        key: str | None = None,
        option: str | None = None,
        value: Any = None,
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        if task is None and task_definition is not None:
            # From the instance: a task whose __init__ set no name is an
            # error about that very fact (see test_subclass_without_a_name_…).
            task = vars(task_definition).get("name")
        self.task = task
        self.task_definition = task_definition
        self.key = key
        self.option = option
        self.value = value
        self.file = file
        self.line = line

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (to or from a worker process), an error keeps its facts but
        # not the task object, which may not pickle and is another object there;
        # and it is rebuilt without calling __init__, whose parameters differ
        # by class. See test_an_error_pickles_with_its_facts.
        state = {**self.__dict__, "task_definition": None}
        return _rebuild, (type(self), self.args, state)


def _rebuild(kind: type[FlowError], args: tuple[Any, ...], state: dict[str, Any]) -> FlowError:
    error = kind.__new__(kind, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class DefinitionError(FlowError, ValueError):
    """The task tree (or a flow file) is wrong; raised before anything runs."""


class DuplicateKeyError(DefinitionError):
    """Two leaf tasks of one tree would store their result under the same key.

    :attr:`key` is the key, :attr:`task_definition` the second task storing under it.
    """


class DuplicateTaskError(DefinitionError):
    """The same task object appears twice in one tree (one tree may run many times at once).

    :attr:`task_definition` is that task object.
    """


class PluginError(DefinitionError):
    """A flow names a plugin that is not installed, or whose module fails to import.

    :param message: what is wrong and how to fix it
    :param plugin: the plugin name the flow uses
    :ivar plugin: the plugin name; :attr:`option` is ``"plugin"`` and
        :attr:`value` the name too
    """

    def __init__(self, message: str, plugin: str, *, task: str | None = None) -> None:
        super().__init__(message, task=task, option="plugin", value=plugin)
        self.plugin = plugin


class FlowFileError(DefinitionError):
    """A flow file cannot become a task tree: bad YAML, a template error, a wrong node.

    The message is built as ``file:line: reason``; the parts are attributes.

    :param message: what is wrong and how to fix it (:attr:`reason`)
    :param file: the flow file
    :param line: the line (1-based) in the file, None when it is about the whole file
    :param key: the key of the node the error is about, when there is one
    :ivar reason: the message without its location; an error the task's
        plugin raised is the message, and its ``task``, ``task_definition``,
        ``option`` and ``value`` are this error's
    """

    file: str

    def __init__(
        self,
        message: str,
        *,
        file: str,
        line: int | None = None,
        key: str | None = None,
        **facts: Any,
    ) -> None:
        location = file if line is None else f"{file}:{line}"
        super().__init__(f"{location}: {message}", key=key, file=file, line=line, **facts)
        self.reason = message


class TaskTypeError(FlowError, TypeError):
    """A group child is not a Task, or a CallbackTask's callback is not callable.

    :attr:`value` is the object found where a Task or a callable belongs.
    """


class ConfigurationError(FlowError, ValueError):
    """A run option (or the environment variable that sets it) has a value flow2 cannot use.

    :param message: what is wrong and how to fix it
    :ivar variable: the environment variable the value came from, when it did
    """

    def __init__(self, message: str = "", *, variable: str | None = None, **facts: Any) -> None:
        super().__init__(message, **facts)
        self.variable = variable


class TaskTimeoutError(FlowError, TimeoutError):
    """A task ran longer than its ``timeout``; its work was cancelled.

    The message is built from the attributes.

    :param task_name: name of the task that timed out (also :attr:`task`)
    :param timeout: the timeout, in seconds (also :attr:`value`; :attr:`option`
        is ``"timeout"``)
    :param task_definition: the task object that timed out
    :param left_running: the work ignored its cancellation for the run's grace
        period, and was left running until the run ends (also :attr:`left_running`)
    """

    def __init__(
        self,
        task_name: str,
        timeout: float,
        *,
        task_definition: Task | None = None,
        left_running: bool = False,
    ) -> None:
        if left_running:
            message = (
                f"task {task_name!r} timed out after {timeout:g}s; its work ignored the "
                f"cancellation and is stopped when the run ends; let CancelledError "
                f"propagate in its code, or raise its timeout= if the work needs longer"
            )
        else:
            message = (
                f"task {task_name!r} timed out after {timeout:g}s and was cancelled; "
                f"raise its timeout= if the work needs longer"
            )
        super().__init__(
            message,
            task=task_name,
            task_definition=task_definition,
            option="timeout",
            value=timeout,
        )
        self.task_name = task_name
        self.timeout = timeout
        self.left_running = left_running


class MissingResultError(FlowError, KeyError):
    """A task read a result key from the context before the task storing it had stored it.

    What a bare ``KeyError: 'build'`` from reading ``context['build']``
    becomes when another task of the run stores ``build`` and has not yet
    (they run in parallel, it runs later, or it was skipped): a KeyError
    still, caused by the original one, whose message names both tasks and
    the fix (``needs:``).

    :attr:`task` is the reading task, :attr:`key` the key, :attr:`producer`
    the name of the task that stores it.
    """

    def __init__(
        self,
        message: str,
        *,
        task_definition: Task | None = None,
        key: str | None = None,
        producer: str | None = None,
    ) -> None:
        super().__init__(message, task_definition=task_definition, key=key)
        self.producer = producer

    def __str__(self) -> str:
        # KeyError's own __str__ shows its argument's repr: quotes around the message.
        return BaseException.__str__(self)


class CommandError(FlowError):
    """A shell task's command exited with a non-zero code.

    :param message: what ran and how it ended, with the last lines of its stderr
    :param returncode: the exit code (negative: killed by that signal)
    :param stderr: the captured standard error (size-capped)
    :ivar command: the command line that ran
    """

    def __init__(
        self,
        message: str,
        returncode: int,
        stderr: str = "",
        *,
        command: str | None = None,
        **facts: Any,
    ) -> None:
        super().__init__(message, **facts)
        self.returncode = returncode
        self.stderr = stderr
        self.command = command


class ExpressionError(FlowError):
    """A run-time ``${{ … }}`` expression of a flow file failed when its task started.

    The message is built as ``file:line: task 'name', option: reason`` from
    the attributes given.

    :param reason: what went wrong (:attr:`reason`)
    :ivar expression: the expression (or the option's text) that failed
    :ivar option: the flow-file key holding it (``cmd``, ``if`` …)
    :ivar reason: the message without its location
    """

    def __init__(self, reason: str, *, expression: Any = None, **facts: Any) -> None:
        super().__init__(_located(reason, facts), **facts)
        self.reason = reason
        self.expression = expression


def _located(reason: str, facts: dict[str, Any]) -> str:
    """``file:line: task 'name', option: reason``, with the parts that are known."""
    location = [str(facts["file"])] if facts.get("file") is not None else []
    if location and facts.get("line") is not None:
        location[0] += f":{facts['line']}"
    about = []
    if facts.get("task") is not None:
        about.append(f"task {facts['task']!r}")
    elif facts.get("task_definition") is not None:
        about.append(f"task {facts['task_definition'].name!r}")
    if facts.get("option") is not None:
        about.append(str(facts["option"]))
    where = ": ".join([*location, ", ".join(about)] if about else location)
    return f"{where}: {reason}" if where else reason


class StrayCancellationError(FlowError):
    """A task's work raised CancelledError although nothing cancelled the task.

    Typically the work awaited a future or task that something else
    cancelled. It is a failure of the task, not a cancellation of the run.
    """


class TaskExitError(FlowError):
    """A task's own code raised SystemExit, KeyboardInterrupt or GeneratorExit.

    Such an exception would stop the whole event loop; raised by a task's
    code (not by a real Ctrl-C, which reaches tasks as a cancellation) it
    fails that task instead. The original is the ``__cause__``.

    :param task_name: the task whose code raised it (also :attr:`task`)
    :param error: the exception raised (also :attr:`value`)
    :param task_definition: the task object whose code raised it
    """

    def __init__(
        self, task_name: str, error: BaseException, *, task_definition: Task | None = None
    ) -> None:
        shown = f"{type(error).__name__}({_shown_args(error)})"
        super().__init__(
            f"task {task_name!r} raised {shown}, which would stop the whole run; a task "
            f"signals failure by raising an Exception (e.g. RuntimeError), not by exiting",
            task=task_name,
            task_definition=task_definition,
            value=error,
        )
        self.error = error


def _shown_args(error: BaseException) -> str:
    try:
        return ", ".join(repr(argument) for argument in error.args)
    except Exception:
        return "…"


class ExecutorError(FlowError):
    """An executor could not run a task's work (unpicklable data, lost worker, no cluster).

    :attr:`option` is ``"executor"`` and :attr:`value` the executor's name.
    """


class ReportError(FlowError, ValueError):
    """A report cannot be built: the event file is missing, not flow2's, or lacks the run.

    :param message: what is wrong and how to fix it
    :param file: the event file it is about, when there is one
    :param line: the line (1-based) in that file, when it is about one line
    """

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, **facts: Any
    ) -> None:
        super().__init__(message, file=file, line=line, **facts)
