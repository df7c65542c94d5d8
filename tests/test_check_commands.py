"""Check commands (validate, show, graph, render, run --dry-run) run none of a flow's code:
they find each callback in its module's source; only `flow2 run` imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import write_flow
from .test_cli import flow2 as cli

pytestmark = pytest.mark.usefixtures("python_first_on_path")


MODULE_WITH_SIDE_EFFECTS = """
import pathlib
pathlib.Path("imported-{name}").touch()

def build(context, *, version, level=1):
    return version

async def fetch(context):
    return 1

def items(context):
    yield 1
"""


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A module and a package whose import leaves a file behind, and a flow naming them."""
    (tmp_path / "sidefx.py").write_text(MODULE_WITH_SIDE_EFFECTS.format(name="module"))
    package = tmp_path / "sidepkg"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text(MODULE_WITH_SIDE_EFFECTS.format(name="package"))
    (package / "inner" / "__init__.py").write_text("")
    (package / "inner" / "tasks.py").write_text(MODULE_WITH_SIDE_EFFECTS.format(name="inner"))
    write_flow(
        tmp_path,
        """
        plugin: serial
        tasks:
          - {plugin: callback, name: Version, callback: "sidefx:fetch", register: version}
          - {plugin: callback, name: Build, callback: "sidefx:build"}
          - {plugin: callback, name: Items, callback: "sidepkg.inner.tasks:items"}
          - {plugin: callback, name: Top, callback: "sidepkg:fetch"}
        """,
    )
    return tmp_path


@pytest.mark.parametrize(
    "command",
    [["validate"], ["show"], ["graph"], ["graph", "--dot"], ["render"], ["run", "--dry-run"]],
    ids=lambda command: " ".join(command),
)
def test_check_commands_import_no_callback_module(planted: Path, command: list[str]) -> None:
    completed = cli(command[0], "flow.yml", *command[1:], cwd=planted)
    assert completed.returncode == 0, completed.stderr
    assert sorted(path.name for path in planted.glob("imported-*")) == []


def test_only_run_imports_the_callback_modules(planted: Path) -> None:
    completed = cli("run", "flow.yml", "--no-store", "--no-log-files", cwd=planted)
    assert completed.returncode == 0, completed.stderr
    assert sorted(path.name for path in planted.glob("imported-*")) == [
        "imported-inner",
        "imported-module",
        "imported-package",
    ]


def test_the_dry_run_plan_keeps_a_located_callbacks_needs(planted: Path) -> None:
    completed = cli("run", "flow.yml", "--dry-run", "--only", "Build", cwd=planted)
    # Build's required keyword-only parameter 'version' is a need, read from the source.
    assert completed.returncode == 0, completed.stderr
    assert "Version → version  RUN" in completed.stdout
    assert "needs: version" in completed.stdout


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("sidefx:missing", "'sidefx' has no attribute 'missing'"),
        ("nosuchmodule_flow2:run", "module 'nosuchmodule_flow2' cannot be found"),
        ("sidepkg.nothing:run", "module 'sidepkg.nothing' cannot be found"),
        ("broken:run", "cannot be read (line 1)"),
    ],
)
def test_validate_reports_a_callback_it_cannot_find(
    planted: Path, reference: str, message: str
) -> None:
    (planted / "broken.py").write_text("def run(:\n")
    write_flow(planted, f"plugin: callback\nname: Go\ncallback: '{reference}'\n", "bad.yml")
    completed = cli("validate", "bad.yml", cwd=planted)
    assert completed.returncode == 2
    assert "bad.yml:3" in completed.stderr and message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not list(planted.glob("imported-*"))


def test_a_located_callback_has_the_fingerprint_of_the_imported_one(
    planted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dry run's plan of a resume compares fingerprints with the stored ones.
    import importlib
    import sys

    from flow2._flows._plugins import locate_reference
    from flow2._store._values import callable_text

    monkeypatch.syspath_prepend(str(planted))
    monkeypatch.chdir(planted)
    located = locate_reference("Build", "sidefx:build")
    assert not list(planted.glob("imported-*"))
    imported = importlib.import_module("sidefx")
    monkeypatch.delitem(sys.modules, "sidefx")
    assert callable_text(located) == callable_text(imported.build)


PLUGIN_MODULE = """
import pathlib

import flow2

pathlib.Path("imported-plugin").touch()


class Deploy(flow2.Task):
    \"\"\"Deploy to a target.\"\"\"

    def __init__(self, name, target, **options):
        super().__init__(name, **options)
        self.target = target

    async def run(self, context):
        return f"deployed to {self.target}"
"""


@pytest.fixture
def planted_plugin(tmp_path: Path) -> tuple[Path, str]:
    """An installed plugin distribution (a .dist-info with an entry point) whose
    module leaves a file behind when imported, and a flow using it."""
    site = tmp_path / "site"
    (site / "acme_deploy-1.0.dist-info").mkdir(parents=True)
    (site / "acme_deploy.py").write_text(PLUGIN_MODULE)
    (site / "acme_deploy-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-deploy\nVersion: 1.0\n"
    )
    (site / "acme_deploy-1.0.dist-info" / "entry_points.txt").write_text(
        "[flow2]\ndeploy = acme_deploy:Deploy\nmissing = acme_deploy:Nowhere\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    write_flow(
        work,
        """
        plugin: serial
        tasks:
          - {plugin: deploy, name: Ship, target: prod, timeout: 30}
          - {plugin: callback, name: After, callback: "math:floor", needs: [ship]}
        """,
    )
    return work, str(site)


@pytest.mark.parametrize(
    "command",
    [["validate"], ["show"], ["graph"], ["render"], ["run", "--dry-run"]],
    ids=lambda command: " ".join(command),
)
def test_check_commands_import_no_plugin(
    planted_plugin: tuple[Path, str], command: list[str]
) -> None:
    work, site = planted_plugin
    completed = cli(command[0], "flow.yml", *command[1:], cwd=work, PYTHONPATH=site)
    assert completed.returncode == 0, completed.stderr
    assert not list(work.glob("imported-*"))


def test_only_run_imports_the_plugin(planted_plugin: tuple[Path, str]) -> None:
    work, site = planted_plugin
    write_flow(work, "plugin: deploy\nname: Ship\ntarget: prod\n")
    completed = cli("run", "flow.yml", "--no-store", "--no-log-files", cwd=work, PYTHONPATH=site)
    assert completed.returncode == 0, completed.stderr
    assert [path.name for path in work.glob("imported-*")] == ["imported-plugin"]


@pytest.mark.parametrize(
    ("flow", "message"),
    [
        ("plugin: deploy\nname: Ship\ntarget: prod\ntargte: x\n", "unknown key 'targte'"),
        ("plugin: deploy\nname: Ship\n", "needs the key target"),
        ("plugin: missing\nname: Gone\n", "'acme_deploy' has no attribute 'Nowhere'"),
    ],
)
def test_validate_checks_a_plugin_from_its_source(
    planted_plugin: tuple[Path, str], flow: str, message: str
) -> None:
    work, site = planted_plugin
    write_flow(work, flow)
    completed = cli("validate", "flow.yml", cwd=work, PYTHONPATH=site)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not list(work.glob("imported-*"))
