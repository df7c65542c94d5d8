"""Plugins: discovery through entry points, third-party ones, broken ones, callbacks."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

import flow2
from flow2._flows._plugins import OWN_PLUGINS, CallbackPlugin, find_plugin, installed_plugins

from .conftest import run

GREET_MODULE = '''
"""Tasks from a third-party distribution."""

import flow2


class Greet(flow2.Task):
    """Say hello to someone."""

    def __init__(self, name, who, *, punctuation="!", **kwargs):
        super().__init__(name, **kwargs)
        self.who = who
        self.punctuation = punctuation

    async def run(self, context):
        return f"hello {self.who}{self.punctuation}"
'''


def make_distribution(site: Path) -> Path:
    """Install ``acme-flow2`` (plugins greet and broken) into ``site``, importlib-style."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "acme_greet.py").write_text(GREET_MODULE)
    (site / "acme_broken.py").write_text("import acme_dependency_that_is_missing\n")
    info = site / "acme_flow2-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-flow2\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[flow2]\ngreet = acme_greet:Greet\nbroken = acme_broken:Thing\n"
        "notaclass = acme_greet:__doc__\n"
    )
    return site


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = make_distribution(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    return site


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_builtin_plugins_are_entry_points_of_flow2() -> None:
    plugins = installed_plugins()
    for name in ("callback", "parallel", "serial", "shell"):
        assert plugins[name].distribution.startswith("flow2 ")
    assert plugins["serial"].load() is flow2.SerialTaskGroup
    assert plugins["parallel"].load() is flow2.ParallelTaskGroup
    assert list(plugins) == sorted(plugins)
    # The flow loader finds these without reading the entry points.
    assert {name: plugins[name].target for name in OWN_PLUGINS} == OWN_PLUGINS


def test_a_distribution_declaring_an_own_plugin_name_does_not_replace_it(
    acme: Path, tmp_path: Path
) -> None:
    # acme's dist-info comes first on sys.path: without the rule, its
    # "shell" would be the first found and win.
    (acme / "acme_flow2-1.0.dist-info" / "entry_points.txt").write_text(
        "[flow2]\nshell = acme_greet:Greet\n"
    )
    assert installed_plugins()["shell"].target == OWN_PLUGINS["shell"]
    path = write(tmp_path, "plugin: shell\nname: Echo\ncmd: echo hi\n")
    assert isinstance(flow2.load(path), flow2.ShellTask)


def test_third_party_plugin_is_found_and_its_keys_come_from_its_signature(
    acme: Path, tmp_path: Path
) -> None:
    plugin = installed_plugins()["greet"]
    assert (plugin.target, plugin.distribution) == ("acme_greet:Greet", "acme-flow2 1.0")
    assert plugin.summary() == "Say hello to someone."
    path = write(
        tmp_path,
        """
        plugin: serial
        tasks:
          - plugin: greet
            name: Hi
            who: world
            punctuation: "?"
            retries: 1
        """,
    )
    context = run(flow2.Runner(display="none", stream=io.StringIO()).run(flow2.load(path)))
    assert context["hi"] == "hello world?"

    bad = write(tmp_path, "plugin: greet\nwho: x\nvolume: 11\n")
    with pytest.raises(flow2.FlowFileError) as caught:
        flow2.load(bad)
    assert caught.value.line == 3
    assert "accepted keys: plugin, name, who, punctuation, description" in str(caught.value)
    missing = write(tmp_path, "plugin: greet\n")
    with pytest.raises(flow2.FlowFileError, match="needs the key who"):
        flow2.load(missing)


def test_plugin_that_fails_to_import_names_its_distribution_and_the_error(
    acme: Path, tmp_path: Path
) -> None:
    path = write(tmp_path, "plugin: serial\ntasks:\n  - plugin: broken\n")
    with pytest.raises(flow2.FlowFileError) as caught:
        flow2.load(path)
    message = str(caught.value)
    assert caught.value.line == 3 and caught.value.key == "plugin"
    assert "acme-flow2 1.0" in message and "acme_broken:Thing" in message
    assert "ModuleNotFoundError" in message and "acme_dependency_that_is_missing" in message
    assert installed_plugins()["broken"].summary().startswith("BROKEN: No module named")


def test_plugin_naming_something_that_is_not_a_task_class(acme: Path, tmp_path: Path) -> None:
    with pytest.raises(flow2.PluginError, match="not a flow2.Task class"):
        installed_plugins()["notaclass"].load()


def test_plugin_returning_something_that_is_not_a_task(
    acme: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (acme / "acme_factory.py").write_text("def make(name, **options):\n    return 'nope'\n")
    (acme / "acme_flow2-1.0.dist-info" / "entry_points.txt").write_text(
        "[flow2]\nfactory = acme_factory:make\n"
    )
    path = write(tmp_path, "plugin: factory\nanything: 1\n")
    with pytest.raises(flow2.FlowFileError, match="returned str, not a flow2.Task"):
        flow2.load(path)


def test_missing_plugin_lists_installed_ones_and_suggests_the_closest() -> None:
    with pytest.raises(flow2.PluginError) as caught:
        find_plugin("paralel")
    assert caught.value.plugin == "paralel"
    message = str(caught.value)
    assert "did you mean 'parallel'" in message
    assert "callback, parallel, serial, shell" in message
    with pytest.raises(flow2.PluginError) as far:
        find_plugin("kubernetes")
    assert "did you mean" not in str(far.value)


def test_callback_plugin_imports_sync_and_async_functions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acme_steps.py").write_text(
        "class Steps:\n"
        "    @staticmethod\n"
        "    def version(context):\n        return '1.0'\n"
        "async def tag(context):\n    return 'v' + context['version']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    task = flow2.SerialTaskGroup(
        "Release",
        CallbackPlugin("Version", "acme_steps:Steps.version"),
        CallbackPlugin("Tag", "acme_steps:tag"),
        CallbackPlugin("Direct", len, register="direct"),
    )
    context = run(flow2.Runner(display="none", stream=io.StringIO()).run(task))
    assert (context["version"], context["tag"]) == ("1.0", "v1.0")
    assert context["direct"] == 2  # len() of the context dict then


def test_callback_reference_errors() -> None:
    with pytest.raises(flow2.DefinitionError, match="package.module:function"):
        CallbackPlugin("X", ":run")
    with pytest.raises(flow2.DefinitionError, match="PYTHONPATH"):
        CallbackPlugin("X", "acme_no_such_module:run")
    with pytest.raises(flow2.DefinitionError, match="no attribute 'path.nothing'"):
        CallbackPlugin("X", "os:path.nothing")
    with pytest.raises(flow2.TaskTypeError, match="not a function"):
        CallbackPlugin("X", "os:sep")
