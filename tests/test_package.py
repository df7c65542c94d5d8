"""The package surface: exported names, typing marker, import cost."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import flow2


def test_all_is_sorted_and_exports_exactly_the_public_names() -> None:
    assert flow2.__all__ == sorted(flow2.__all__, key=lambda name: (not name.isupper(), name))
    public = {
        name
        for name in dir(flow2)
        if not name.startswith("_")
        and not isinstance(getattr(flow2, name), type(sys))
        and name != "annotations"
    }
    assert public == set(flow2.__all__)


def test_optional_parts_load_on_first_use_and_are_listed() -> None:
    assert {"DaskExecutor", "Flow", "ProcessExecutor", "load"} <= set(dir(flow2))
    assert flow2.load.__module__ == "flow2._flows._loader"
    assert flow2.ProcessExecutor.__module__ == "flow2._executors._processes"
    try:
        flow2.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as error:
        assert "no attribute 'no_such_name'" in str(error)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_every_exported_class_and_function_has_a_docstring() -> None:
    for name in flow2.__all__:
        value = getattr(flow2, name)
        if isinstance(value, type) or callable(value):
            assert (value.__doc__ or "").strip(), name


def test_typed_package() -> None:
    assert (pathlib.Path(flow2.__file__).parent / "py.typed").exists()


def test_import_flow2_loads_no_heavy_dependency() -> None:
    heavy = [
        "rich",
        "yaml",
        "jinja2",
        "click",
        "distributed",
        "dask",
        "json",
        "pickle",
        "multiprocessing",
        "flow2._flows._loader",
    ]
    script = f"import sys, flow2; print([m for m in {heavy!r} if m in sys.modules])"
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert output.strip() == "[]"
