"""Secrets planted in the environment, in a flow's ``secrets:`` and in ``Runner(secrets=)``
are searched in every output: what each command prints, the event file, the log files, the
run store's raw bytes and every report, plain and in their common transformed forms."""

from __future__ import annotations

import base64
import io
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

import flow2
from flow2._listeners._secrets import SecretMasker

from .conftest import run, write_flow
from .test_cli import flow2 as cli

#: In the environment, under a secret-like name.
ENVIRONMENT_SECRET = "env-tok-Q7xv93LmPz"
#: Given on the command line to a variable the flow declares under ``secrets:``.
FLOW_SECRET = "flow-key/Hn28 xWq41"
#: Passed to ``Runner(secrets=)``.
RUNNER_SECRET = "runner-pw-Zt61kBn0"


def forms(secret: str) -> list[str]:
    """The secret and the forms it commonly travels in."""
    data = secret.encode()
    return [
        secret,
        base64.b64encode(data).decode(),
        base64.b64encode(b"x" + data + b"y").decode()[4:-4],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
    ]


def assert_clean(where: str, text: str | bytes, *secrets: str) -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, f"{form!r} ({secret!r}) leaks in {where}"


FLOW = """\
plugin: serial
name: Release
secrets: [deploy_key]
tasks:
  - name: print
    plugin: shell
    cmd: |
      echo "plain $DEPLOY_TOKEN and {{ deploy_key }}"
      printf '%s' "$DEPLOY_TOKEN" | base64
      printf 'inside %s\\n' "$(printf 'x%sy' "$DEPLOY_TOKEN" | base64)"
      python3 -c "import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=''))" \\
        '{{ deploy_key }}'
      printf 'split: %s' "${DEPLOY_TOKEN%????????}"; sleep 0.3; \\
        printf '%s end\\n' "${DEPLOY_TOKEN#??????????}"
  - name: fail
    plugin: shell
    cmd: echo "bad {{ deploy_key }} $DEPLOY_TOKEN" >&2; exit 3
"""


def test_a_run_leaks_no_secret_in_any_output_file_or_report(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, FLOW)
    store = tmp_path / "store"
    events, report = tmp_path / "events.jsonl", tmp_path / "run.html"
    secrets = (ENVIRONMENT_SECRET, FLOW_SECRET)
    ran = cli(
        "run", flow, f"deploy_key={FLOW_SECRET}", "--display", "plain", "--store", store,
        "--events", events, "--report", report, cwd=tmp_path, DEPLOY_TOKEN=ENVIRONMENT_SECRET,
    )  # fmt: skip
    assert ran.returncode == 1, ran.stderr
    # The output did come out, masked: whole lines, the split one included.
    assert "split: ***" in ran.stdout and "inside " in ran.stdout
    assert_clean("stdout", ran.stdout, *secrets)
    assert_clean("stderr", ran.stderr, *secrets)
    assert_clean("the event file", events.read_bytes(), *secrets)
    assert_clean("the HTML report written during the run", report.read_bytes(), *secrets)
    files = [path for path in store.rglob("*") if path.is_file()]
    assert any(path.suffix == ".log" for path in files)
    for path in files:  # the SQLite file's raw bytes, its journal, the log files
        assert_clean(str(path), path.read_bytes(), *secrets)
    reports = {name: tmp_path / name for name in ("r.html", "r.json", "r.xml", "r.md")}
    for source in (["--store", store], ["--events", events]):
        made = cli(
            "report", *source, "--html", reports["r.html"], "--trace", reports["r.json"],
            "--junit", reports["r.xml"], "--markdown", reports["r.md"], cwd=tmp_path,
            DEPLOY_TOKEN=ENVIRONMENT_SECRET,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        for name, path in reports.items():
            assert_clean(name, path.read_bytes(), *secrets)
    for command in (["runs", "show", "last"], ["runs", "logs", "last", "print"]):
        shown = cli(*command, "--store", store, cwd=tmp_path)
        assert_clean(" ".join(command), shown.stdout + shown.stderr, *secrets)


def test_commands_that_look_at_a_flow_print_no_secret(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        "plugin: serial\n"
        "name: Deploy {{ environ.DEPLOY_TOKEN }}\n"
        "secrets: [deploy_key, REGISTRY_LOGIN]\n"
        "tasks:\n"
        "  - name: push {{ deploy_key }} {{ environ.REGISTRY_LOGIN }}\n"
        "    plugin: shell\n"
        "    cmd: echo {{ deploy_key }}\n",
    )
    secrets = (ENVIRONMENT_SECRET, FLOW_SECRET, RUNNER_SECRET)
    for command in (["validate"], ["show"], ["render"], ["graph"], ["graph", "--dot"]):
        shown = cli(
            *command, flow, f"deploy_key={FLOW_SECRET}",
            DEPLOY_TOKEN=ENVIRONMENT_SECRET, REGISTRY_LOGIN=RUNNER_SECRET,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert "***" in shown.stdout
        assert_clean(" ".join(command), shown.stdout + shown.stderr, *secrets)
    planned = cli(
        "run", "--dry-run", flow, f"deploy_key={FLOW_SECRET}",
        DEPLOY_TOKEN=ENVIRONMENT_SECRET, REGISTRY_LOGIN=RUNNER_SECRET,
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    assert "nothing ran" in planned.stdout
    assert_clean("--dry-run", planned.stdout + planned.stderr, *secrets)


def test_load_time_errors_mask_the_secrets_they_quote(tmp_path: Path) -> None:
    # Two tasks named after a declared secret store their results under one key.
    flow = write_flow(
        tmp_path,
        "plugin: serial\n"
        "secrets: [deploy_key]\n"
        "tasks:\n"
        "  - {plugin: shell, name: 'push {{ deploy_key }}', cmd: 'true'}\n"
        "  - {plugin: shell, name: 'push {{ deploy_key }}', cmd: 'true'}\n",
    )
    for command in (["validate"], ["show"], ["graph"], ["run"], ["run", "--dry-run"]):
        failed = cli(
            *command, flow, "deploy_key=Kq81mZx0wPl3", API_TOKEN=ENVIRONMENT_SECRET, cwd=tmp_path
        )
        assert failed.returncode == 2, failed.stdout
        assert "flow.yml:" in failed.stderr and "***" in failed.stderr
        assert_clean(" ".join(command), failed.stdout + failed.stderr, "Kq81mZx0wPl3")
        assert "Traceback" not in failed.stderr


def test_variable_parse_errors_name_the_variable_not_its_value(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, "plugin: shell\ncmd: 'true'\n")
    for value in ("[Pw-9f3kQ", "{Pw-9f3kQ: [", "[*alias Pw-9f3kQ]"):
        failed = cli("validate", flow, f"api_token={value}")
        assert failed.returncode == 2
        assert "api_token=…" in failed.stderr
        assert "Pw-9f3kQ" not in failed.stderr


@pytest.mark.parametrize("name", [".env", ".env.local", "flow.yml"])
def test_an_environment_file_is_never_printed(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(
        f"# the deployment\nAPI_TOKEN={ENVIRONMENT_SECRET}\nexport DB_URL=postgres://u:pw@db\n"
    )
    for command in (["run"], ["validate"], ["show"], ["render"], ["graph"], ["run", "--dry-run"]):
        failed = cli(*command, path, cwd=tmp_path)
        assert failed.returncode == 2
        assert "environment file" in failed.stderr and name in failed.stderr
        assert ENVIRONMENT_SECRET not in failed.stdout + failed.stderr
        assert "postgres" not in failed.stdout + failed.stderr


def test_the_summary_and_a_runners_secrets_are_masked_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", ENVIRONMENT_SECRET)

    async def leak(context: dict[str, Any]) -> None:
        print("half", RUNNER_SECRET[:6], end="", flush=True)
        print(RUNNER_SECRET[6:], "and", ENVIRONMENT_SECRET)
        raise RuntimeError(f"refused {RUNNER_SECRET} {ENVIRONMENT_SECRET}")

    tree = flow2.SerialTaskGroup("Ship", flow2.CallbackTask(f"use {RUNNER_SECRET}", leak))
    stream = io.StringIO()
    result = run(
        flow2.Runner(display="plain", stream=stream, secrets=[RUNNER_SECRET]).execute(tree)
    )
    assert result.exit_code == 1
    text = stream.getvalue()
    assert "Failed: Ship › use ***" in text and "refused *** ***" in text
    assert_clean("the console and the summary", text, RUNNER_SECRET, ENVIRONMENT_SECRET)


# -- the masker's forms -----------------------------------------------------------


@pytest.mark.parametrize("before", ["", "a", "ab", "abc"])
@pytest.mark.parametrize("after", ["", "z", "zz"])
def test_a_secret_is_masked_inside_base64_at_any_offset(before: str, after: str) -> None:
    masker = SecretMasker([FLOW_SECRET])
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(f"{before}{FLOW_SECRET}{after}".encode()).decode()
        masked = masker.mask(f"token: {encoded}")
        assert "***" in masked
        # What is left of the encoding is at most the characters the
        # neighbouring bytes share with the secret's first and last ones.
        assert len(masked) <= len("token: ***") + 2 * 3 + 2


def test_a_secret_is_masked_url_encoded_and_as_a_result_key() -> None:
    masker = SecretMasker([FLOW_SECRET])
    for text in (urllib.parse.quote(FLOW_SECRET, safe=""), urllib.parse.quote_plus(FLOW_SECRET)):
        assert masker.mask(f"?key={text}&x=1") == "?key=***&x=1"
    # A task named after the secret stores its result under a key made of it.
    key = flow2.CallbackTask(f"push {FLOW_SECRET}", print).key
    assert FLOW_SECRET not in key
    assert masker.mask(key) == "push_***"


def test_an_unfinished_line_holds_back_what_could_start_a_secret() -> None:
    masker = SecretMasker([RUNNER_SECRET])
    assert masker.mask_partial("uploading " + RUNNER_SECRET[:5]) == "uploading "
    assert masker.mask_partial("uploading " + RUNNER_SECRET) == "uploading ***"
    assert masker.mask_partial("50% done") == "50% done"
