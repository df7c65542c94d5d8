"""The JSON Schema of flow files, for editors: ``flow2 schema``, ``flow2/flow.schema.json``.

The schema is made from the loader's own tables — the keys every node has
(``_STRUCTURE_KEYS`` of ``_loader``, ``SCOPE_KEYS`` of ``_scopes``), those of
the top (:data:`TOP_LEVEL_KEYS`) — and the options of the built-in plugins,
read from their signatures as the loader reads them. The packaged file is
this module's output; tests/test_schema.py fails when they differ, and
``python -m flow2._flows._schema > src/flow2/flow.schema.json`` writes it anew.

A node whose ``plugin:`` is a third-party plugin may have any key (its
options are its own); every other node only the keys listed.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

#: The file inside the package.
SCHEMA_FILE = "flow.schema.json"

_TEXT = {"type": "string"}
_NUMBER = {"type": "number", "minimum": 0}
_COUNT = {"type": "integer", "minimum": 0}
_TASKS = {"type": "array", "items": {"$ref": "#/$defs/node"}}
_VARIABLES = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
_DOTENV_FILE = {
    "oneOf": [
        _TEXT,
        {
            "type": "object",
            "properties": {"path": _TEXT, "optional": {"type": "boolean"}},
            "required": ["path"],
            "additionalProperties": False,
        },
    ]
}

#: What each key holds and means. A key the loader accepts that is missing
#: here gets an empty schema (anything): tests/test_schema.py lists it.
KEYS: dict[str, tuple[dict[str, Any], str]] = {
    "plugin": (_TEXT, "What the task does: an installed plugin (flow2 plugins)."),
    "name": (_TEXT, "The task's name; default 'Task N'."),
    "description": (_TEXT, "What the task is for: shown by flow2 list, flow2 show."),
    "tasks": (_TASKS, "The tasks of a group; without plugin:, a serial group."),
    "parallel": (_TASKS, "The tasks of a parallel group, run at once."),
    "cmd": (
        {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}]},
        "A shell task's command line, or its arguments (no shell).",
    ),
    "needs": (
        {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}]},
        "Result keys the task waits for.",
    ),
    "if": ({"type": ["string", "boolean"]}, "A condition evaluated when the task would start."),
    "when": ({"type": ["string", "boolean"]}, "Python's Task(when=…); in a flow, use if:."),
    "env": (_VARIABLES, "Environment variables; on a group, for every task under it."),
    "dir": (_TEXT, "The working directory; on a group, for every task under it."),
    "cwd": (_TEXT, "A shell task's working directory (dir: is the same)."),
    "dotenv": (
        {"oneOf": [_DOTENV_FILE, {"type": "array", "items": _DOTENV_FILE}]},
        "Environment files (NAME=value lines) whose variables the tasks under it get.",
    ),
    "secrets": ({"type": "array", "items": _TEXT}, "Variables whose values are masked."),
    "default": (_TEXT, "The task flow2 run runs when given no name."),
    "on_failure": (
        _TASKS,
        "On a group: tasks run after its tasks when one of them failed (they read failures).",
    ),
    "finally": (
        _TASKS,
        "On a group: tasks run after its tasks whatever happened, also on a signal.",
    ),
    "for_each": (
        _TEXT,
        "On a group: ${{ … }} giving a list; its tasks are made once per item at run time.",
    ),
    "as": (_TEXT, "The item's variable name in a for_each group (default: item)."),
    "cache": (
        {
            "oneOf": [
                {"type": "boolean"},
                {
                    "type": "object",
                    "properties": {
                        "restore_outputs": {
                            "type": "boolean",
                            "description": "Keep the outputs' bytes in the run store and "
                            "put back a missing or modified one instead of running again.",
                        }
                    },
                    "additionalProperties": False,
                },
            ]
        },
        "true: reuse the stored result from any earlier run while the reuse key is unchanged"
        " ({restore_outputs: true}: and restore the outputs from the store).",
    ),
    "sources": (
        {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}]},
        "Files the task reads (paths, globs, directories): part of its reuse key by content.",
    ),
    "outputs": (
        {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}]},
        "Files the task writes: a stored result is reused only while they are as recorded.",
    ),
    "env_inputs": (
        {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}]},
        "Environment variables the task reads: part of its reuse key (as salted digests).",
    ),
    "jobs": (
        {"type": "integer", "minimum": 1},
        "At most this many tasks work at once across the run (flow2 run -j N wins).",
    ),
    "jobserver": (
        {"type": "boolean"},
        "false: the command gets no GNU make jobserver (MAKEFLAGS) from flow2 run -j.",
    ),
    "register": (_TEXT, "The key the result is stored under."),
    "output": ({"type": "boolean"}, "Print the result after SUCCESS."),
    "timeout": (_NUMBER, "Seconds per attempt."),
    "retries": (_COUNT, "Attempts after a failure."),
    "retry_delay": (_NUMBER, "Seconds before the first retry, doubled at each."),
    "executor": (_TEXT, "Where sync work runs: thread, process, dask, …"),
    "max_parallel": ({"type": "integer", "minimum": 1}, "How many children run at once."),
    "on_error": ({"enum": ["continue", "raise", "cancel"]}, "What a child's failure does."),
    "callback": (_TEXT, "The function to call: package.module:function."),
    "shell": (_TEXT, "What runs a command line: bash, sh, python, pwsh or a template."),
    "cmd_expressions": (
        {"enum": ["environment", "raw"]},
        "How ${{ … }} values reach a command line.",
    ),
    "output_limit": (_COUNT, "Characters of stdout and of stderr kept in the result."),
    "kill_grace": (_NUMBER, "Seconds between SIGTERM and SIGKILL."),
}


def accepted_keys() -> tuple[list[str], list[str]]:
    """The keys of any node and those of the top only, as the loader accepts them."""
    from .._engine._groups import ParallelTaskGroup, SerialTaskGroup
    from ._loader import _STRUCTURE_KEYS, TOP_LEVEL_KEYS
    from ._plugins import CallbackPlugin, plugin_options
    from ._scopes import SCOPE_KEYS
    from ._shell import ShellTask

    node_keys = list(dict.fromkeys(["plugin", *_STRUCTURE_KEYS, *SCOPE_KEYS]))
    for factory in (SerialTaskGroup, ParallelTaskGroup, CallbackPlugin, ShellTask):
        node_keys += [
            key
            for key in plugin_options(factory).accepted
            # A group's finally_tasks option is written finally: in a flow.
            if key not in node_keys and key != "finally_tasks"
        ]
    return node_keys, [key for key in TOP_LEVEL_KEYS if key not in node_keys]


def flow_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a flow file."""
    from ._loader import SHORT_FORMS

    node_keys, top_keys = accepted_keys()

    def properties(keys: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key in keys:
            schema, description = KEYS.get(key, ({}, ""))
            found[key] = {**schema, "description": description} if description else schema
        return found

    def node(keys: list[str]) -> dict[str, Any]:
        built_in = ["serial", "parallel", "shell", "callback"]
        return {
            "type": "object",
            "properties": properties(keys),
            # A third-party plugin takes its own keys; every other node these only.
            "if": {"required": ["plugin"], "properties": {"plugin": {"not": {"enum": built_in}}}},
            "else": {
                "propertyNames": {"enum": keys},
                "anyOf": [{"required": [key]} for key in ["plugin", *SHORT_FORMS]],
            },
        }

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "flow2 flow file",
        "description": "A flow2 workflow: one task, a node; see docs/flows.md.",
        "$defs": {"node": node(node_keys)},
        **node(node_keys + top_keys),
    }


def schema_text() -> str:
    """The packaged schema file's text."""
    return (resources.files("flow2") / SCHEMA_FILE).read_text(encoding="utf-8")


def generated_text() -> str:
    """What the packaged schema file must hold."""
    return json.dumps(flow_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # pragma: no cover - writes the packaged file
    print(generated_text(), end="")
