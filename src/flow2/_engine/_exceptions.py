"""The exceptions flow2 raises.

Everything flow2 raises on its own account derives from :class:`FlowError`;
a user's exception raised inside a task reaches the caller unchanged.

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


class FlowError(Exception):
    """Base class of every error flow2 raises on its own account.

    An error carries what it is about as attributes, None where they do not
    apply, so code reads the facts instead of parsing the message:

    :param message: what is wrong and how to fix it
    :param task: the name of the task it is about
    :param key: the result key or flow-file key it is about
    :param option: the task or run option it is about (``timeout``, ``executor`` …)
    :param value: the value that is wrong, when there is one
    """

    def __init__(
        self,
        message: str = "",
        *,
        task: str | None = None,
        key: str | None = None,
        option: str | None = None,
        value: object = None,
    ) -> None:
        super().__init__(message)
        self.task = task
        self.key = key
        self.option = option
        self.value = value


class DefinitionError(FlowError, ValueError):
    """The task tree (or a flow file) is wrong; raised before anything runs."""


class DuplicateKeyError(DefinitionError):
    """Two leaf tasks of one tree would store their result under the same key."""


class DuplicateTaskError(DefinitionError):
    """The same task object appears twice in one tree (one tree may run many times at once)."""


class PluginError(DefinitionError):
    """A flow names a plugin that is not installed, or whose module fails to import.

    :param plugin: the plugin name the flow uses
    """

    def __init__(self, message: str, plugin: str, *, task: str | None = None) -> None:
        super().__init__(message, task=task, option="plugin")
        self.plugin = plugin


class FlowFileError(DefinitionError):
    """A flow file cannot become a task tree: bad YAML, a template error, a wrong node.

    The message starts with ``file:line:``; the parts are also attributes.

    :param message: what is wrong and how to fix it
    :param file: the flow file
    :param line: the line (1-based) in the file, None when it is about the whole file
    :param key: the key of the node the error is about, when there is one
    """

    def __init__(
        self, message: str, *, file: str, line: int | None = None, key: str | None = None
    ) -> None:
        location = file if line is None else f"{file}:{line}"
        super().__init__(f"{location}: {message}", key=key)
        self.reason = message
        self.file = file
        self.line = line


class TaskTypeError(FlowError, TypeError):
    """A group child is not a Task, or a CallbackTask's callback is not callable."""


class ConfigurationError(FlowError, ValueError):
    """A run option (or the environment variable that sets it) has a value flow2 cannot use.

    :param variable: the environment variable the value came from, when it did
    """

    def __init__(
        self,
        message: str = "",
        *,
        task: str | None = None,
        key: str | None = None,
        option: str | None = None,
        value: object = None,
        variable: str | None = None,
    ) -> None:
        super().__init__(message, task=task, key=key, option=option, value=value)
        self.variable = variable


class TaskTimeoutError(FlowError, TimeoutError):
    """A task ran longer than its ``timeout``; its work was cancelled.

    :param task_name: name of the task that timed out
    :param timeout: the timeout, in seconds
    """

    def __init__(self, task_name: str, timeout: float) -> None:
        super().__init__(
            f"task {task_name!r} timed out after {timeout:g}s and was cancelled; "
            f"raise its timeout= if the work needs longer",
            task=task_name,
            option="timeout",
        )
        self.task_name = task_name
        self.timeout = timeout


class CommandError(FlowError):
    """A shell task's command exited with a non-zero code.

    :param message: what ran and how it ended, with the last lines of its stderr
    :param returncode: the exit code (negative: killed by that signal)
    :param stderr: the captured standard error (size-capped)
    """

    def __init__(self, message: str, returncode: int, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class ExpressionError(FlowError):
    """A run-time ``${{ … }}`` expression of a flow file failed when its task started."""


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

    :param task_name: the task whose code raised it
    :param error: the exception raised
    """

    def __init__(self, task_name: str, error: BaseException) -> None:
        shown = f"{type(error).__name__}({_shown_args(error)})"
        super().__init__(
            f"task {task_name!r} raised {shown}, which would stop the whole run; a task "
            f"signals failure by raising an Exception (e.g. RuntimeError), not by exiting",
            task=task_name,
        )
        self.error = error


def _shown_args(error: BaseException) -> str:
    try:
        return ", ".join(repr(argument) for argument in error.args)
    except Exception:
        return "…"


class ExecutorError(FlowError):
    """An executor could not run a task's work (unpicklable data, lost worker, no cluster)."""


class ReportError(FlowError, ValueError):
    """A report cannot be built: the event file is missing, not flow2's, or lacks the run.

    :param message: what is wrong and how to fix it
    :param file: the event file it is about, when there is one
    :param line: the line (1-based) in that file, when it is about one line
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
