"""How a task uses the cache: ``cache=True``, or a :class:`Cache` with options.

``cache=True`` (``cache: true`` in a flow) reuses a stored result whose
reuse key equals the task's, while its declared ``outputs`` are as they
were recorded. A :class:`Cache` does the same, with options: with
``restore_outputs=True`` the run store also keeps the bytes of those
outputs, and puts back an output found missing or modified instead of
running the task again (see docs/store.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._exceptions import DefinitionError


@dataclass(frozen=True)
class Cache:
    """Reuse a stored result with an equal reuse key, as ``cache=True`` does, with options.

    Given as a task's or a group's ``cache=`` (a group's tasks inherit it,
    as they inherit ``cache=True``), or as ``Runner(cache=…)``.

    :param restore_outputs: keep the bytes of the task's declared ``outputs``
        in the run store after each success (by content, each distinct file
        once), and when a later run finds its key unchanged but an output
        missing or modified, write the kept copy back instead of running the
        task (it is reported CACHED, "outputs restored: PATH"). A copy
        deleted since (``flow2 cache prune``) makes it run, and say so.
    :raises flow2.DefinitionError: when ``restore_outputs`` is not true or false

    Example::

        flow2.CallbackTask(
            "Wheel", build, outputs=["dist"], cache=flow2.Cache(restore_outputs=True)
        )
    """

    restore_outputs: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.restore_outputs, bool):
            raise DefinitionError(
                f"Cache(restore_outputs={self.restore_outputs!r}) is not true or false; "
                f"write Cache(restore_outputs=True)",
                option="restore_outputs",
                value=self.restore_outputs,
            )


def restores_outputs(settings: bool | Cache | None) -> bool | None:
    """What ``settings`` (a ``cache=`` value) says of restoring outputs; None: nothing."""
    return settings.restore_outputs if isinstance(settings, Cache) else None
