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


# Inside a layer --------------------------------------------------------------------


def _module_of(path: pathlib.Path) -> str:
    """``flow2._listeners._console`` for ``…/flow2/_listeners/_console.py``."""
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def import_circles(layer: str) -> list[list[str]]:
    """Each import circle among the modules of ``layer``, as the path that closes it.

    Every import counts, at any depth: lazy ones inside functions and those
    under ``TYPE_CHECKING`` too, as in :func:`_imports`.
    """
    prefix = f"flow2.{layer}."
    modules = {
        _module_of(path): path
        for path in sorted((PACKAGE / layer).glob("*.py"))
        if path.name != "__init__.py"
    }
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        graph[module] = {
            target
            for _, imported in _imports(path)
            if imported.startswith(prefix)
            for target in [".".join(imported.split(".")[:3])]
            if target in modules and target != module
        }
    circles: list[list[str]] = []
    finished: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph[module]):
            if target in path:
                circles.append([*path[path.index(target) :], target])
            elif target not in finished:
                visit(target, [*path, target])
        finished.add(module)

    for module in sorted(graph):
        if module not in finished:
            visit(module, [module])
    return circles


def test_no_import_circle_among_the_listeners() -> None:
    assert import_circles("_listeners") == []


def test_the_check_sees_an_import_circle() -> None:
    # The check itself must be able to fail: two modules importing each other,
    # one of them lazily inside a function. A one-way import is no circle.
    module = PACKAGE / "_listeners" / "_circle_probe.py"
    module.write_text(
        "def probe():\n    from ._console import PlainConsole\n",
        encoding="utf-8",
    )
    (PACKAGE / "_listeners" / "_circle_probe_back.py").write_text(
        "from ._circle_probe import probe\n", encoding="utf-8"
    )
    try:
        assert import_circles("_listeners") == []  # one way: no circle yet
        module.write_text(
            "def probe():\n    from ._circle_probe_back import probe\n", encoding="utf-8"
        )
        assert import_circles("_listeners") == [
            [
                "flow2._listeners._circle_probe",
                "flow2._listeners._circle_probe_back",
                "flow2._listeners._circle_probe",
            ]
        ]
    finally:
        module.unlink()
        (PACKAGE / "_listeners" / "_circle_probe_back.py").unlink()


#: The longest a module of the command line may be, in lines.
MAX_CLI_LINES = 400


def long_cli_modules() -> list[str]:
    """``_cli/module.py: N lines`` for each command-line module over :data:`MAX_CLI_LINES`."""
    return [
        f"{path.relative_to(PACKAGE)}: {count} lines"
        for path in sorted((PACKAGE / "_cli").rglob("*.py"))
        for count in [len(path.read_text(encoding="utf-8").splitlines())]
        if count > MAX_CLI_LINES
    ]


def test_no_command_line_module_is_longer_than_400_lines() -> None:
    assert long_cli_modules() == []


def test_the_check_sees_a_long_command_line_module() -> None:
    module = PACKAGE / "_cli" / "_length_probe.py"
    module.write_text("pass\n" * (MAX_CLI_LINES + 1), encoding="utf-8")
    try:
        assert long_cli_modules() == [f"_cli/_length_probe.py: {MAX_CLI_LINES + 1} lines"]
    finally:
        module.unlink()
