"""Every command and code block in the README and docs/ runs as written.

Each document runs in its own fresh directory holding a copy of ``examples/``
(what a clone of the repository has), its blocks in order:

- ``python`` blocks run with this interpreter, one session per document: a
  block sees what the blocks before it defined, and may ``await`` at the top
  level as in ``python -m asyncio``;
- ``sh`` blocks run with bash, with the interpreter's ``bin`` folder (the one
  holding ``flow2``) first on PATH;
  ``console`` blocks run their ``$ `` lines with bash;
- ``text``, ``json`` and ``toml`` blocks show output and are not run, and a
  ``yaml`` block must parse;
- an HTML comment right before a block changes that:
  ``<!-- file: NAME -->`` writes the block to NAME instead of running it,
  ``<!-- exit: N -->`` expects exit code N instead of 0,
  ``<!-- skip: REASON -->`` does not run it (it needs a network or a terminal).

A ``yaml`` block that is a Jinja template (it holds ``{%``) is checked only
when written to a file and run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?P<markers>(?:^[ \t]*<!--[^>]*-->[ \t]*\n)*)"
    r"^[ \t]*```(?P<language>[\w-]*)[ \t]*\n(?P<body>.*?)^[ \t]*```[ \t]*$",
    re.DOTALL | re.MULTILINE,
)
MARKER = re.compile(r"<!--\s*(?P<name>file|exit|skip):\s*(?P<value>.*?)\s*-->")
RUNNABLE = {"python", "sh", "console"}
SHOWN_ONLY = {"text", "json", "toml", ""}
BLOCK_TIMEOUT = 120


@dataclass(frozen=True)
class Block:
    """One fenced block of a document and the markers right before it."""

    document: Path
    line: int
    language: str
    body: str
    file: str | None
    exit_code: int
    skip: str | None

    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line} ({self.language})"


def blocks_of(document: Path) -> list[Block]:
    text = document.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        markers = {m["name"]: m["value"] for m in MARKER.finditer(match["markers"])}
        found.append(
            Block(
                document=document,
                line=text.count("\n", 0, match.start("language")) + 1,
                language=match["language"],
                body=textwrap.dedent(match["body"]),
                file=markers.get("file"),
                exit_code=int(markers.get("exit", "0")),
                skip=markers.get("skip"),
            )
        )
    return found


#: Runs the python blocks of one document in one namespace: reads a block's
#: file name from stdin, runs it, prints its exit code after a marker line.
SESSION = r"""
import ast, asyncio, inspect, sys, traceback
namespace = {"__name__": "__main__"}
for name in sys.stdin:
    with open(name.strip(), encoding="utf-8") as file:
        source = file.read()
    code = 0
    try:
        compiled = compile(source, name.strip(), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        if compiled.co_flags & inspect.CO_COROUTINE:
            asyncio.run(eval(compiled, namespace))
        else:
            exec(compiled, namespace)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stderr.flush()
    print("\n\x00end of block " + str(code), flush=True)
"""
END = "\x00end of block "


class PythonSession:
    """One interpreter that runs a document's python blocks in order."""

    def __init__(self, folder: Path, environment: dict[str, str], scratch: Path) -> None:
        self.scratch = scratch
        self.process = subprocess.Popen(
            [sys.executable, "-c", SESSION],
            cwd=folder,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, block: Block) -> tuple[int, str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        source = self.scratch / f"{block.document.stem}-{block.line}.py"
        source.write_text(block.body, encoding="utf-8")
        self.process.stdin.write(f"{source}\n")
        self.process.stdin.flush()
        output = []
        for line in self.process.stdout:
            if line.startswith(END):
                return int(line[len(END) :]), "".join(output)
            output.append(line)
        return self.process.wait(), "".join(output)

    def close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self.process.wait(timeout=BLOCK_TIMEOUT)


def command_of(block: Block) -> list[str]:
    if block.language == "console":
        lines = [line[2:] for line in block.body.splitlines() if line.startswith("$ ")]
        return ["bash", "-e", "-c", "\n".join(lines)]
    return ["bash", "-e", "-c", block.body]


def environment_for(folder: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    environment["PYTHONPATH"] = str(folder)
    environment.pop("FORCE_COLOR", None)
    environment["NO_COLOR"] = "1"
    return environment


def run_document(document: Path, folder: Path, scratch: Path) -> None:
    """Run the blocks of ``document`` in order in ``folder``; fail at the first that misbehaves."""
    shutil.copytree(ROOT / "examples", folder / "examples")
    environment = environment_for(folder)
    session = PythonSession(folder, environment, scratch)
    try:
        for block in blocks_of(document):
            if block.skip is None:
                run_block(block, folder, environment, session)
    finally:
        session.close()


def run_block(
    block: Block, folder: Path, environment: dict[str, str], session: PythonSession
) -> None:
    if block.file is not None:
        target = folder / block.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.body, encoding="utf-8")
        return
    if block.language == "yaml":
        if "{%" not in block.body:  # a template is YAML only once rendered
            yaml.safe_load(block.body)
        return
    if block.language in SHOWN_ONLY:
        return
    assert block.language in RUNNABLE, f"{block.where()}: unknown block language"
    if block.language == "python":
        returncode, output = session.run(block)
    else:
        completed = subprocess.run(
            command_of(block),
            cwd=folder,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
        returncode, output = completed.returncode, completed.stdout
    assert returncode == block.exit_code, (
        f"{block.where()} exited {returncode}, expected {block.exit_code}\n"
        f"--- block ---\n{block.body}--- output ---\n{output}"
    )


@pytest.mark.timeout(600)
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_document_runs_as_written(document: Path, tmp_path: Path) -> None:
    (tmp_path / "fresh").mkdir()
    (tmp_path / "blocks").mkdir()
    run_document(document, tmp_path / "fresh", tmp_path / "blocks")


def test_every_skip_gives_a_reason() -> None:
    for document in DOCUMENTS:
        for block in blocks_of(document):
            assert block.skip != "", f"{block.where()}: say why the block is skipped"


def test_flows_doc_lists_every_command_and_key() -> None:
    from flow2._cli._app import cli
    from flow2._flows._loader import _STRUCTURE_KEYS

    text = (ROOT / "docs" / "flows.md").read_text(encoding="utf-8")
    for command in cli.list_commands(None):  # type: ignore[arg-type]
        assert f"| `flow2 {command}" in text, f"docs/flows.md does not list flow2 {command}"
    for key in (*_STRUCTURE_KEYS, "secrets"):
        assert f"| `{key}:` |" in text, f"docs/flows.md does not list the key {key}:"
    assert "flow2.ShellTask" in text


def test_help_names_where_the_documentation_is() -> None:
    from click.testing import CliRunner

    from flow2._cli._app import cli, documentation

    where = documentation()
    assert where.startswith("http") or Path(where.rsplit(" ", 1)[-1]).is_file(), where
    output = CliRunner().invoke(cli, ["--help"]).output
    assert f"Documentation: {where}" in output
    # Never a path relative to a checkout the user may not have.
    assert where.startswith("http") or Path(where.rsplit(" ", 1)[-1]).is_absolute(), where


def test_help_prefers_the_documentation_url(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from flow2._cli._app import documentation

    class Distribution:
        metadata = _Metadata(["Homepage, https://h.example", "Documentation, https://d.example"])
        files = ()

    distribution = Distribution()
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: distribution)
    assert documentation() == "https://d.example"


class _Metadata:
    def __init__(self, urls: list[str]) -> None:
        self.urls = urls

    def get_all(self, name: str) -> list[str]:
        return self.urls if name == "Project-URL" else []
