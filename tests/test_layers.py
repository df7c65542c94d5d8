"""The package's layers import one way: a lower layer never imports a higher one."""

from __future__ import annotations

import ast
import pathlib

import flow2

PACKAGE = pathlib.Path(flow2.__file__).parent

#: Each layer and the layers its modules may import (itself included).
ALLOWED = {
    "_engine": {"_engine"},
    "_executors": {"_engine", "_executors"},
    "_listeners": {"_engine", "_listeners"},
    "_store": {"_engine", "_listeners", "_store"},
    "_reports": {"_engine", "_listeners", "_store", "_reports"},
    "_running": {"_engine", "_executors", "_listeners", "_store", "_reports", "_running"},
    "_flows": {"_engine", "_executors", "_listeners", "_store", "_running", "_flows"},
    "_cli": {
        "_engine",
        "_executors",
        "_listeners",
        "_store",
        "_reports",
        "_running",
        "_flows",
        "_cli",
    },
}


def _layer_of(module: str) -> str | None:
    """The layer of a dotted module name under flow2 (``flow2._engine._task`` → ``_engine``)."""
    parts = module.split(".")
    if parts[0] != "flow2" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in ALLOWED else None


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """Every flow2 module ``path`` imports, at any depth (lazy imports included)."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(relative.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names = [f"{module}.{alias.name}" for alias in node.names]
            found += [(node.lineno, module), *((node.lineno, name) for name in names)]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("flow2.")
        ):
            found.append((node.lineno, str(node.args[0].value)))
    return found


def layer_violations() -> list[str]:
    """``file:line: imports module`` for each import that goes up a layer."""
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if layer is None:
            continue
        for line, module in _imports(path):
            target = _layer_of(module)
            if target is not None and target not in ALLOWED[layer]:
                violations.append(f"{path.relative_to(PACKAGE)}:{line}: imports {module}")
    return violations


def test_every_module_belongs_to_a_layer_or_is_the_public_surface() -> None:
    surface = {"__init__.py", "__main__.py", "task.py"}
    for path in PACKAGE.iterdir():
        if path.suffix == ".py":
            assert path.name in surface, f"{path.name} is outside every layer"


def test_no_layer_imports_a_higher_one() -> None:
    assert layer_violations() == []


def test_the_check_sees_an_upward_import(tmp_path: pathlib.Path) -> None:
    # The check itself must be able to fail: an engine module importing a listener.
    module = PACKAGE / "_engine" / "_layer_probe.py"
    module.write_text("from .._listeners._console import PlainConsole\n", encoding="utf-8")
    try:
        assert layer_violations() == [
            "_engine/_layer_probe.py:1: imports flow2._listeners._console",
            "_engine/_layer_probe.py:1: imports flow2._listeners._console.PlainConsole",
        ]
    finally:
        module.unlink()
