"""The exceptions flow2 raises.

Everything flow2 raises on its own account derives from :class:`FlowError`;
a user's exception raised inside a task reaches the caller unchanged.

::

    FlowError
    ├── DefinitionError (also ValueError)   the tree or a flow file is wrong; nothing ran
    │   ├── DuplicateKeyError               two leaf tasks store under one key
    │   └── DuplicateTaskError              one task object twice in a tree
    ├── TaskTypeError (also TypeError)      something that is not a Task where a Task belongs,
    │                                       or a callback that cannot be called
    ├── ConfigurationError (also ValueError) a run option or environment variable is wrong
    ├── TaskTimeoutError (also TimeoutError) a task ran past its ``timeout``
    └── ExecutorError                       an executor could not run a task's work
"""

from __future__ import annotations


class FlowError(Exception):
    """Base class of every error flow2 raises on its own account."""


class DefinitionError(FlowError, ValueError):
    """The task tree (or a flow file) is wrong; raised before anything runs."""


class DuplicateKeyError(DefinitionError):
    """Two leaf tasks of one tree would store their result under the same key."""


class DuplicateTaskError(DefinitionError):
    """The same task object appears twice in one tree, or in two running trees."""


class TaskTypeError(FlowError, TypeError):
    """A group child is not a Task, or a CallbackTask's callback is not callable."""


class ConfigurationError(FlowError, ValueError):
    """A run option (or the environment variable that sets it) has a value flow2 cannot use."""


class TaskTimeoutError(FlowError, TimeoutError):
    """A task ran longer than its ``timeout``; its work was cancelled.

    :param task_name: name of the task that timed out
    :param timeout: the timeout, in seconds
    """

    def __init__(self, task_name: str, timeout: float) -> None:
        super().__init__(
            f"task {task_name!r} timed out after {timeout:g}s and was cancelled; "
            f"raise its timeout= if the work needs longer"
        )
        self.task_name = task_name
        self.timeout = timeout


class ExecutorError(FlowError):
    """An executor could not run a task's work (unpicklable data, lost worker, no cluster)."""
