"""The package surface: exported names, typing marker, import cost."""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys

import pytest

import flow2

from .conftest import environment_without_coverage


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
    assert {"DaskExecutor", "Flow", "ProcessExecutor", "ShellTask", "load"} <= set(dir(flow2))
    assert flow2.load.__module__ == "flow2"
    assert flow2.ProcessExecutor.__module__ == "flow2"
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
        # Neither does what only a run or an error message needs
        # (benchmarks/bench_engine.py --imports times the difference).
        "pathlib",
        "difflib",
        "queue",
        "importlib.util",
        "flow2._executors._threads",
    ]
    script = f"import sys, flow2; print([m for m in {heavy!r} if m in sys.modules])"
    output = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=environment_without_coverage(),
    ).stdout
    assert output.strip() == "[]"


def run_script(script: str, folder: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """``python -c script`` in ``folder``, outside coverage (which imports more)."""
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment_without_coverage(),
        cwd=folder,
    )


def test_a_run_of_a_flow_without_templates_imports_only_what_it_uses(
    tmp_path: pathlib.Path,
) -> None:
    # What `flow2 run` imports is paid at every start, and what it leaves
    # for the collector at its exit, beside a make doing the same steps
    # (benchmarks/bench_jobs.py).
    unused = [
        "rich",  # the live display: not with --display none
        "jinja2",  # no {{ }} in the file, no ${{ }} in its tasks
        "importlib.metadata",  # flow2's own plugins, and --help's documentation link
        "email",
        "jsonschema",
        "opentelemetry",
        "dask",
        "multiprocessing",
    ]
    (tmp_path / "flow.yml").write_text(
        "plugin: serial\nname: build\ntasks:\n"
        "  - {plugin: shell, name: compile, cmd: 'true'}\n"
        "  - {plugin: parallel, name: checks, tasks: [{cmd: 'true'}, {cmd: 'true'}]}\n"
    )
    # Registered before the command runs, these run after its own exit handlers.
    script = (
        "import atexit, gc, sys\n"
        f"atexit.register(lambda: print([m for m in {unused!r} if m in sys.modules]))\n"
        "atexit.register(lambda: print('frozen' if gc.get_freeze_count() else 'walked'))\n"
        "from flow2._cli import main\n"
        "main(['run', 'flow.yml', '--no-store', '--display', 'none'])\n"
    )
    shown = run_script(script, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-2:] == ["frozen", "[]"]


@pytest.mark.skipif(
    sys.version_info >= (3, 12) or sys.platform != "linux",
    reason="Python 3.12 waits for commands through pidfds by itself",
)
def test_commands_are_waited_for_in_the_loop(tmp_path: pathlib.Path) -> None:
    # Python 3.11's default starts an "asyncio-waitpid-N" thread for every command.
    (tmp_path / "flow.yml").write_text(
        "plugin: parallel\nname: checks\ntasks: [{cmd: 'true'}, {cmd: 'exit 3'}, {cmd: 'true'}]\n"
    )
    script = (
        "import atexit, threading\n"
        "started = []\n"
        "start = threading.Thread.start\n"
        "def recorded(thread):\n"
        "    started.append(thread.name)\n"
        "    start(thread)\n"
        "threading.Thread.start = recorded\n"
        "atexit.register(lambda: print([n for n in started if 'waitpid' in n]))\n"
        "from flow2._cli import main\n"
        "main(['run', 'flow.yml', '--no-store', '--display', 'none'])\n"
    )
    shown = run_script(script, tmp_path)
    assert shown.returncode == 1, shown.stderr  # the failed command is seen failing
    assert shown.stdout.strip().splitlines()[-1] == "[]"


def test_every_public_class_and_function_reports_itself_as_flow2() -> None:
    for name in flow2.__all__:
        value = getattr(flow2, name)
        if isinstance(value, type) or callable(value):
            assert value.__module__ == "flow2", name
    assert repr(flow2.Status.FAILED) == "<Status.FAILED: 'failed'>"
    error = flow2.DuplicateKeyError("x")
    assert type(error).__module__ + "." + type(error).__qualname__ == "flow2.DuplicateKeyError"


def test_version_continues_the_documented_package_line() -> None:
    import importlib.metadata

    assert flow2.__version__ == importlib.metadata.version("flow2")
    major = int(flow2.__version__.split(".")[0])
    assert major >= 7  # the name's 6.0.0rc15 on PyPI is the original package


def test_shell_task_is_public() -> None:
    assert flow2.ShellTask("Echo", cmd="echo hi").key == "echo"


def test_errors_carry_their_facts() -> None:
    first = flow2.CallbackTask("Build wheel", lambda context: None)
    second = flow2.CallbackTask("build-wheel", lambda context: None)
    tree = flow2.ParallelTaskGroup("Root", first, second)
    try:
        asyncio.run(flow2.Runner(display="none").run(tree))
    except flow2.DuplicateKeyError as error:
        assert (error.task, error.key) == ("build-wheel", "build_wheel")
    else:
        raise AssertionError("duplicate keys must be refused")
    try:
        flow2.Task("T", timeout=-1)
    except flow2.DefinitionError as error:
        assert (error.task, error.option) == ("T", "timeout")
    else:
        raise AssertionError("a negative timeout must be refused")


def _without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where ``modules`` cannot be imported."""
    blocker = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        f"    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {modules!r}:\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import importlib.util\n"
        "_find = importlib.util.find_spec\n"
        f"importlib.util.find_spec = lambda n, p=None: None if n.split('.')[0] in {modules!r} "
        "else _find(n, p)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", blocker + code], capture_output=True, text=True, timeout=60
    )


def test_the_command_without_the_cli_extra_names_it_and_exits_2() -> None:
    result = _without(
        ["click"],
        "import sys; sys.argv=['flow2', '--help']; import runpy; "
        "runpy.run_module('flow2', run_name='__main__')",
    )
    assert result.returncode == 2, result.stderr
    assert "install flow2[cli]" in result.stderr
    assert "Traceback" not in result.stderr


def test_load_without_pyyaml_raises_a_configuration_error() -> None:
    result = _without(
        ["yaml"],
        "import flow2\ntry:\n    flow2.load('x.yml')\n"
        "except flow2.ConfigurationError as error:\n    print('refused:', error)\n",
    )
    assert result.returncode == 0, result.stderr
    assert "refused:" in result.stdout and "flow2[cli]" in result.stdout


def test_nothing_private_leaks_into_the_namespace() -> None:
    # ``from __future__ import annotations`` once left ``flow2.annotations``.
    public = {name for name in dir(flow2) if not name.startswith("_")}
    assert public - set(flow2.__all__) == {"task"}  # the documented public module
    assert not hasattr(flow2, "annotations")
    for name in ("RunResult", "RunFailed", "RunPlan", "Context", "run"):
        assert name in flow2.__all__ and getattr(flow2, name).__doc__


def test_the_wheel_ships_the_docs_and_help_names_where_they_are(tmp_path: pathlib.Path) -> None:
    import zipfile

    root = pathlib.Path(__file__).resolve().parent.parent
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if built.returncode != 0 and "hatchling" in built.stderr and "No matching" in built.stderr:
        pytest.skip("the build backend (hatchling) cannot be installed here: no package index")
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("flow2-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for page in sorted((root / "docs").glob("*.md")):
        assert f"flow2/docs/{page.name}" in names, page.name
    target = tmp_path / "installed"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    environment = {**environment_without_coverage(), "PYTHONPATH": str(target)}
    shown = subprocess.run(
        [sys.executable, "-m", "flow2", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    installed = target / "flow2" / "docs" / "flows.md"
    assert installed.is_file()
    assert f"Documentation: {installed}" in shown.stdout
