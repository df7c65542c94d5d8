"""The JSON Schema of flow files: packaged, printed, in step with the loader, and the
example and documentation flows follow it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import flow2
from flow2._flows._schema import accepted_keys, flow_schema, generated_text, schema_text

from .conftest import write_flow
from .test_docs_run import DOCUMENTS, blocks_of

ROOT = Path(__file__).resolve().parent.parent
PACKAGED = Path(flow2.__file__).parent / "flow.schema.json"


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(PACKAGED.read_text(encoding="utf-8")))


def test_the_packaged_schema_is_the_one_the_loader_tables_make() -> None:
    # Regenerate with: python -m flow2._flows._schema > src/flow2/flow.schema.json
    assert PACKAGED.read_text(encoding="utf-8") == generated_text()
    assert schema_text() == generated_text()
    jsonschema.Draft202012Validator.check_schema(flow_schema())


def test_every_key_the_loader_accepts_is_described_and_no_other() -> None:
    schema = flow_schema()
    node_keys, top_keys = accepted_keys()
    assert list(schema["$defs"]["node"]["properties"]) == node_keys
    assert list(schema["properties"]) == node_keys + top_keys
    undescribed = [
        key for key, value in schema["properties"].items() if not value.get("description")
    ]
    assert not undescribed, "add these keys to flow2._flows._schema.KEYS"


@pytest.mark.parametrize("key", accepted_keys()[0])
def test_each_schema_key_is_accepted_by_the_loader(tmp_path: Path, key: str) -> None:
    """A key the schema offers never meets "unknown key" in the loader."""
    group_keys = {"tasks", "parallel", "max_parallel", "on_error", "on_failure", "finally"}
    values: dict[str, Any] = {
        "plugin": "shell",
        "name": "Probe",
        "tasks": [{"cmd": "true"}],
        "parallel": [{"cmd": "true"}],
        "needs": [],
        "if": True,
        "when": True,
        "env": {"A": "1"},
        "dir": ".",
        "cwd": ".",
        "dotenv": [{"path": "missing.env", "optional": True}],
        "max_parallel": 1,
        "on_error": "raise",
        "callback": "os:getcwd",
        "cmd_expressions": "raw",
        "timeout": 5,
        "retries": 0,
        "retry_delay": 0,
        "kill_grace": 1,
        "output_limit": 100,
        "output": False,
        "register": "probe",
        "executor": "thread",
        "shell": "bash",
        "description": "probe",
        "jobserver": False,
        "cache": {"restore_outputs": True},
        "for_each": "${{ [1, 2] }}",
        "on_failure": [{"cmd": "true"}],
        "finally": [{"cmd": "true"}],
        "as": "number",
        "sources": ["*.py"],
        "outputs": ["dist"],
        "env_inputs": ["MODE"],
    }
    node: dict[str, Any] = {key: values.get(key, "x")}
    if key in group_keys:
        node.setdefault("tasks" if key != "parallel" else "parallel", [{"cmd": "true"}])
        if key in ("max_parallel", "on_error"):
            node["plugin"] = "parallel"
    elif key == "callback":
        node["plugin"] = "callback"
    elif key != "plugin":
        node.setdefault("cmd", "true")
    if key == "plugin":
        node["cmd"] = "true"
    path = write_flow(tmp_path, json.dumps(node))
    try:
        flow2.load(path)
    except flow2.FlowFileError as error:
        assert "unknown key" not in error.reason, error.reason
    validator().validate(node)


def test_the_schema_catches_a_misspelt_key_but_not_a_third_party_plugins_keys() -> None:
    check = validator()
    assert not check.is_valid({"cmd": "make", "tiemout": 5})
    assert not check.is_valid({"name": "nothing said"})
    assert not check.is_valid({"tasks": [{"cmd": "x", "on_error": "explode"}]})
    assert check.is_valid({"tasks": [{"plugin": "greet", "who": "world", "anything": [1]}]})
    assert check.is_valid({"default": "a", "tasks": [{"name": "a", "cmd": "true"}]})
    assert check.is_valid({"cmd": "make", "cache": True})
    assert not check.is_valid({"cmd": "make", "cache": {"restore_outputs": "yes-please"}})
    assert not check.is_valid({"cmd": "make", "cache": {"restore": True}})
    # default: and secrets: belong to the top only.
    assert not check.is_valid({"tasks": [{"cmd": "x", "default": "a"}]})


def _flow_documents() -> list[tuple[str, Any]]:
    """Each example flow and each flow (or list of nodes) the documentation shows."""
    from flow2._flows._loader import render

    found: list[tuple[str, Any]] = []
    for path in sorted([*ROOT.glob("examples/*.yml"), *ROOT.glob("examples/ports/*.yml")]):
        text = render(path, {"version": "1.0.0"})
        found.append((str(path.relative_to(ROOT)), yaml.safe_load(text)))
    for document in DOCUMENTS:
        for block in blocks_of(document):
            # Templates are YAML once rendered; "..." marks a shortened flow.
            if block.language != "yaml" or "{%" in block.body or "..." in block.body:
                continue
            data = yaml.safe_load(block.body)
            if isinstance(data, dict):
                found.append((block.where(), data))
            elif isinstance(data, list):
                found += [(block.where(), item) for item in data]
    return found


@pytest.mark.parametrize(("where", "data"), _flow_documents(), ids=lambda value: str(value)[:60])
def test_example_and_documentation_flows_follow_the_schema(where: str, data: Any) -> None:
    errors = [error.message for error in validator().iter_errors(data)]
    assert not errors, f"{where}: {errors}"


def test_flow2_schema_prints_the_packaged_schema(capsys: pytest.CaptureFixture[str]) -> None:
    from flow2._cli._app import main

    with pytest.raises(SystemExit) as exited:
        main(["schema"])
    assert exited.value.code == 0
    assert json.loads(capsys.readouterr().out) == json.loads(PACKAGED.read_text())
