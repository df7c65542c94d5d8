"""Where sync work executes: threads (the default), processes, a Dask cluster.

Layer rule: modules here import the standard library and ``flow2._engine``
only. Importing this package registers the executor names in the engine's
``EXECUTOR_FACTORIES``.
"""

from __future__ import annotations

from . import _threads as _threads
