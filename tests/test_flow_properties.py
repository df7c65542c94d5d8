"""Property: any YAML document loads as a valid flow or fails with one clean FlowFileError."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import flow2

PLUGINS = ["serial", "parallel", "shell", "callback", "shel", "", "nope"]
# Only harmless references: a callback is imported when the flow loads.
CALLBACKS = ["os.path:join", "builtins:len", "acme_missing_module:run", "os:sep", "bad", ":x"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 1000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["continue", "raise", "cancel", "thread", "process", "{{ x }}", "${{ x }}"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _node() -> st.SearchStrategy[Any]:
    """Mostly plausible nodes (real plugins, sensible values), some wild ones."""
    sensible = st.fixed_dictionaries(
        {"plugin": st.sampled_from(["serial", "parallel", "shell"])},
        optional={
            "name": st.text(min_size=1, max_size=8),
            "tasks": st.lists(NODES, max_size=3),
            "cmd": st.text(min_size=1, max_size=10) | st.lists(st.text(max_size=5), max_size=3),
            "timeout": st.integers(1, 100) | scalars,
            "retries": st.integers(0, 3),
            "on_error": st.sampled_from(["continue", "raise", "cancel"]),
            "max_parallel": st.integers(1, 4),
            "env": st.dictionaries(st.text(min_size=1, max_size=4), st.text(max_size=4)),
        },
    )
    wild = st.fixed_dictionaries(
        {},
        optional={
            "plugin": st.sampled_from(PLUGINS) | scalars,
            "name": st.text(max_size=8) | scalars,
            "tasks": st.lists(NODES, max_size=3) | values,
            "cmd": st.text(max_size=10) | values,
            "callback": st.sampled_from(CALLBACKS),
            "timeout": scalars,
            "retry_delay": scalars,
            "register": scalars,
            "output": scalars,
            "on_error": scalars,
            "executor": scalars,
            "env": values,
            "cwd": scalars,
            "colour": scalars,
        },
    )
    return sensible | sensible | wild | values


NODES: st.SearchStrategy[Any] = st.deferred(_node)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(document=NODES)
def test_random_documents_load_as_a_flow_or_fail_cleanly(document: Any) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "flow.yml"
        path.write_text(text, encoding="utf-8")
        try:
            root = flow2.load(path, x=1)
        except flow2.FlowFileError as error:
            event("definition error")
            assert str(error).startswith(f"{path}"), str(error)
            assert error.line is None or error.line >= 1
            assert "Traceback" not in str(error)
            return
    event("valid flow")
    assert isinstance(root, flow2.Task)
    stack = [root]
    while stack:
        task = stack.pop()
        assert isinstance(task, flow2.Task) and task.name.strip()
        stack.extend(task.children)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=80))
def test_random_text_loads_as_a_flow_or_fails_cleanly(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "flow.yml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            flow2.load(path)
        except flow2.FlowFileError as error:
            assert str(error).startswith(f"{path}")
