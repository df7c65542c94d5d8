"""What a group hands down to the tasks under it: ``env:``, ``dir:`` and ``dotenv:``.

A group's ``env:`` reaches every task under it that takes an ``env``
option (shell tasks), merged from the outside in, a task's own winning; its
``dir:`` is the working directory (``cwd``) of those tasks, an inner
relative one joined to the outer. ``dotenv:`` (on any node) reads
environment files (``_dotenv``) relative to the flow file, their values
under the same level's ``env:``; the values whose names mark them secret are
collected, for the run to mask.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._yaml import type_name

if TYPE_CHECKING:
    from .._engine._exceptions import FlowFileError
    from ._yaml import LineDict

#: Keys a group hands down to the tasks under it, not options of its plugin.
SCOPE_KEYS = ("env", "dir", "dotenv")


@dataclass(frozen=True)
class Scope:
    """What a group hands down to the tasks under it: ``env:`` (``dotenv:`` files'
    values under it) and ``dir:``. Inner groups and a task's own keys win."""

    env: Mapping[str, Any] = field(default_factory=dict)
    dir: str | None = None


class ScopeReader:
    """Reads the ``env:``, ``dir:`` and ``dotenv:`` keys of a flow file's nodes.

    :param file: the flow file (``dotenv:`` paths are relative to its folder)
    :param error: makes the file's error: ``error(message, line, key, **facts)``
    :ivar secrets: the values read from ``dotenv:`` files under secret-looking names
    """

    def __init__(self, file: str, error: Callable[..., FlowFileError]) -> None:
        self.file = file
        self.error = error
        self.secrets: list[str] = []

    def scope_of(self, data: LineDict, outer: Scope, label: str, *, handed_down: bool) -> Scope:
        """What the node hands down: ``outer`` itself when it hands nothing down.

        :param handed_down: the node is a group whose plugin has no ``env`` of
            its own: its ``env:`` and ``dir:`` are for the tasks under it
        """
        if "dotenv" not in data and not (handed_down and ("env" in data or "dir" in data)):
            return outer
        env = dict(outer.env)
        if "dotenv" in data:
            env.update(self.read_dotenv(data["dotenv"], data.key_lines["dotenv"]))
        if not handed_down:
            return Scope(env, outer.dir)
        own_env = data.get("env")
        if own_env is not None:
            if not isinstance(own_env, dict):
                raise self.error(
                    f"{label}: env: must be a mapping of variable names to values, got "
                    f"{type_name(own_env)}; write e.g. env: {{PYTHONUNBUFFERED: '1'}}",
                    data.key_lines["env"],
                    "env",
                )
            env.update(own_env)
        directory = outer.dir
        if "dir" in data:
            directory = self.joined_dir(data["dir"], outer, label, data.key_lines["dir"])
        return Scope(env, directory)

    def joined_dir(self, value: Any, outer: Scope, label: str, line: int) -> str:
        """``dir:`` ``value``, under the outer group's when relative."""
        if not isinstance(value, str) or not value.strip():
            raise self.error(
                f"{label}: dir: must be a directory, got {type_name(value)}; write e.g. dir: docs",
                line,
                "dir",
            )
        return value if outer.dir is None else os.path.join(outer.dir, value)

    def with_scope(
        self,
        options: dict[str, Any],
        scope: Scope,
        accepted: list[str],
        label: str,
        data: LineDict,
    ) -> dict[str, Any]:
        """A task's options with what its groups hand down; its own keys win.

        ``dir:`` is the group-level name of a task's ``cwd:``; a task may use
        either (not both). Tasks whose plugin has no ``env``/``cwd`` option
        (callbacks) are left as they are.
        """
        options = dict(options)
        if "dir" in options and "cwd" in accepted:
            if "cwd" in options:
                raise self.error(
                    f"{label} has both dir: and cwd:, which say the same; keep one",
                    data.key_lines["dir"],
                    "dir",
                )
            options["cwd"] = options.pop("dir")
        if "cwd" in accepted and scope.dir is not None:
            own = options.get("cwd")
            if own is None:
                options["cwd"] = scope.dir
            elif isinstance(own, str) and "${{" not in own:
                options["cwd"] = os.path.join(scope.dir, own)
        own_env = options.get("env")
        if "env" in accepted and scope.env and (own_env is None or isinstance(own_env, dict)):
            options["env"] = {**scope.env, **(own_env or {})}
        return options

    def read_dotenv(self, value: Any, line: int) -> dict[str, str]:
        """The variables of the ``dotenv:`` files ``value`` names, later files winning.

        A relative path is relative to the flow file's folder. A missing file
        is an error, unless written ``{path: …, optional: true}``.
        """
        from .._listeners._secrets import is_secret_name
        from ._dotenv import DotenvError, parse_dotenv

        entries = value if isinstance(value, list) else [value]
        env: dict[str, str] = {}
        for entry in entries:
            optional = False
            path = entry
            if isinstance(entry, dict) and set(entry) <= {"path", "optional"}:
                path, optional = entry.get("path"), entry.get("optional", False)
            if not isinstance(path, str) or not path.strip() or not isinstance(optional, bool):
                raise self.error(
                    f"dotenv: must be a file, a list of files, or {{path: FILE, optional: "
                    f"true}}, got {type_name(entry)}; write e.g. dotenv: [.env, {{path: "
                    f".env.local, optional: true}}]",
                    line,
                    "dotenv",
                )
            location = os.path.join(os.path.dirname(self.file), os.path.expanduser(path))
            try:
                text = Path(location).read_text(encoding="utf-8")
            except FileNotFoundError:
                if optional:
                    continue
                raise self.error(
                    f"dotenv: the file {path!r} does not exist ({location}); create it, or "
                    f"mark it optional: dotenv: [{{path: {path}, optional: true}}]",
                    line,
                    "dotenv",
                    value=path,
                ) from None
            except (OSError, UnicodeDecodeError) as error:
                reason = getattr(error, "strerror", None) or type(error).__name__
                raise self.error(
                    f"dotenv: cannot read {path!r}: {reason}", line, "dotenv", value=path
                ) from None
            try:
                values = parse_dotenv(text)
            except DotenvError as error:
                raise self.error(
                    f"dotenv: {path}: {error} (the value is not shown)",
                    line,
                    "dotenv",
                    value=path,
                ) from None
            self.secrets += [text for name, text in values.items() if is_secret_name(name) and text]
            env.update(values)
        return env
