"""The two context variables that tell running code where it is.

``current_run`` is set for the duration of a run, so a task started inside it
joins it instead of starting a run of its own; ``current_record`` is the
per-run record of the task whose code is running, so a task created on the
fly learns its parent in this run and a log record learns its task. asyncio
copies both into every child task and flow2 copies them into worker threads.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._run import Run
    from ._state import TaskRun

current_run: ContextVar[Run | None] = ContextVar("flow2_current_run", default=None)
current_record: ContextVar[TaskRun | None] = ContextVar("flow2_current_record", default=None)
