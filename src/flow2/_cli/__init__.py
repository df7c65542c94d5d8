"""The ``flow2`` command line: the top layer, free to import everything below it.

:func:`main` is the console script and ``python -m flow2``. The command
needs the ``cli`` extra (click, PyYAML, Jinja2); without it, it says so in
one line and exits 2 instead of failing with an import traceback.
"""

from __future__ import annotations

import atexit
import gc
import importlib.util
import sys
from typing import NoReturn

#: The distributions the command needs, by the module each provides.
_NEEDED = {"click": "click", "yaml": "PyYAML", "jinja2": "Jinja2"}


def main(arguments: list[str] | None = None) -> NoReturn:
    """Run the ``flow2`` command (exits with its exit code)."""
    missing = [name for module, name in _NEEDED.items() if importlib.util.find_spec(module) is None]
    if missing:
        print(
            f"flow2: the command needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed; "
            f"install flow2[cli] (pip install 'flow2[cli]' from your clone or wheel)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    from ._app import main as run_command

    # Once the command is over, what it leaves is freed with the process:
    # set aside from the collector (the last thing before the interpreter
    # ends), it is not walked again by the full collections of the
    # interpreter's exit, tens of milliseconds beside a run of short steps.
    # Registered once however often the command runs in one process.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    run_command(arguments)
