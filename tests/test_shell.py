"""Shell tasks: results, streamed output, failures, and no process left behind."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import flow2
from flow2._flows._shell import ShellTask

from .conftest import run

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")

PYTHON = sys.executable


def quiet() -> flow2.Runner:
    return flow2.Runner(display="none", stream=io.StringIO())


def python(code: str) -> list[str]:
    return [PYTHON, "-c", textwrap.dedent(code)]


def test_result_has_the_exit_code_and_the_output_without_trailing_newlines() -> None:
    task = ShellTask("Hello", python("import sys; print('out'); print('err', file=sys.stderr)"))
    context = run(quiet().run(task))
    assert context["hello"] == {"returncode": 0, "stdout": "out", "stderr": "err"}


def test_a_string_runs_through_the_shell_with_cwd_and_env(tmp_path: Path) -> None:
    task = ShellTask(
        "Shell", 'echo "$GREETING from $(basename "$PWD")"', cwd=str(tmp_path), env={"GREETING": 7}
    )
    context = run(quiet().run(task))
    assert context["shell"]["stdout"] == f"7 from {tmp_path.name}"


def test_lines_stream_while_the_command_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flag = tmp_path / "go"
    task = ShellTask(
        "Stream",
        python(
            f"""
            import os, sys, time
            print("first", flush=True)
            while not os.path.exists({str(flag)!r}):
                time.sleep(0.01)
            print("second", file=sys.stderr, flush=True)
            print("partial line without newline", end="")
            """
        ),
    )

    async def main() -> dict[str, object]:
        seen_first = asyncio.Event()

        class Watch(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.getMessage() == "first":
                    seen_first.set()

        handler = Watch()
        logging.getLogger("flow2.tasks").addHandler(handler)
        try:
            running = asyncio.ensure_future(quiet().run(task))
            await asyncio.wait_for(seen_first.wait(), 60)
            assert not running.done()  # the line came before the command ended
            flag.touch()
            return await running
        finally:
            logging.getLogger("flow2.tasks").removeHandler(handler)

    with caplog.at_level(logging.INFO, logger="flow2.tasks"):
        context = run(main())
    records = [record for record in caplog.records if record.name == "flow2.tasks"]
    lines = [(record.getMessage(), record.stream, record.task) for record in records]  # type: ignore[attr-defined]
    assert ("first", "stdout", "Stream") in lines
    assert ("second", "stderr", "Stream") in lines
    assert ("partial line without newline", "stdout", "Stream") in lines
    assert context["stream"]["stdout"] == "first\npartial line without newline"


def test_non_zero_exit_fails_with_the_code_and_keeps_stderr_on_the_error() -> None:
    task = ShellTask(
        "Broken",
        python(
            """
            import sys
            for number in range(30):
                print(f"problem {number}", file=sys.stderr)
            sys.exit(3)
            """
        ),
    )
    with pytest.raises(flow2.CommandError) as caught:
        run(quiet().run(task))
    error = caught.value
    assert error.returncode == 3
    # One line: the code and the command's first line; the output is not repeated.
    message = str(error)
    assert message.startswith("command exited with code 3: ") and message.endswith("(6 lines)")
    assert "\n" not in message and "problem" not in message
    assert error.stderr.endswith("problem 29")


def test_a_failed_script_is_named_by_its_first_line() -> None:
    script = "echo start\n" + "echo step\n" * 40 + "exit 4"
    with pytest.raises(flow2.CommandError) as caught:
        run(quiet().run(ShellTask("Script", script)))
    assert str(caught.value) == "command exited with code 4: echo start … (42 lines)"


def test_killed_command_names_the_signal() -> None:
    task = ShellTask("Killed", python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    with pytest.raises(flow2.CommandError, match="killed by SIGKILL"):
        run(quiet().run(task))


def test_missing_program_fails_the_task_with_os_error() -> None:
    task = ShellTask("Missing", ["flow2-no-such-program-here"])
    with pytest.raises(FileNotFoundError, match="cannot run 'flow2-no-such-program-here'.*PATH"):
        run(quiet().run(task))


def test_missing_working_directory_is_named() -> None:
    task = ShellTask("Elsewhere", python("pass"), cwd="/flow2-no-such-directory")
    with pytest.raises(FileNotFoundError, match="cwd='/flow2-no-such-directory'") as caught:
        run(quiet().run(task))
    # No frames of subprocess's internals to show the user.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_captured_output_is_capped_to_its_last_characters() -> None:
    task = ShellTask(
        "Chatty",
        python("import sys; sys.stdout.write('x' * 300000 + 'END')"),
        output_limit=1000,
    )
    result = run(quiet().run(task))["chatty"]["stdout"]
    assert result.startswith("[… 299003 characters dropped]\n")
    assert result.endswith("xEND") and len(result.splitlines()[1]) == 1000


def _start_child_and_wait(ignore_term: bool) -> list[str]:
    """A command starting a grandchild, printing both pids, then sleeping."""
    return python(
        f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import signal, time; "
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN); " if {ignore_term!r} else "")
            + "time.sleep(600)"])
        print("pids", os.getpid(), child.pid, flush=True)
        time.sleep(600)
        """
    )


class PidWatcher(logging.Handler):
    """Catches the "pids …" line a shell task logs."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = asyncio.Event()
        self.pids: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        words = record.getMessage().split()
        if words and words[0] == "pids":
            self.pids = [int(word) for word in words[1:]]
            self.ready.set()


def _is_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie has stopped; only its parent's wait is missing


async def _wait_gone(pids: list[int]) -> None:
    async with asyncio.timeout(30):
        # Another process's end cannot be awaited: poll /proc.
        while not all(_is_gone(pid) for pid in pids):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@pytest.fixture
def pid_watcher(caplog: pytest.LogCaptureFixture) -> Iterator[PidWatcher]:
    watcher = PidWatcher()
    tasks_logger = logging.getLogger("flow2.tasks")
    tasks_logger.addHandler(watcher)
    with caplog.at_level(logging.INFO, logger="flow2.tasks"):
        yield watcher
    tasks_logger.removeHandler(watcher)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_cancelling_the_task_kills_the_command_and_its_children(pid_watcher: PidWatcher) -> None:
    task = ShellTask("Sleepy", _start_child_and_wait(ignore_term=False))

    async def main() -> None:
        running = asyncio.ensure_future(quiet().run(task))
        await asyncio.wait_for(pid_watcher.ready.wait(), 60)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await _wait_gone(pid_watcher.pids)

    run(main())
    assert len(pid_watcher.pids) == 2
    assert all(_is_gone(pid) for pid in pid_watcher.pids)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_timeout_terminates_then_kills_a_child_that_ignores_sigterm(
    pid_watcher: PidWatcher,
) -> None:
    # The timeout leaves the command ample time to print the pids first.
    task = ShellTask("Stubborn", _start_child_and_wait(ignore_term=True), timeout=4, kill_grace=0.2)

    async def main() -> None:
        running = asyncio.ensure_future(quiet().run(task))
        try:
            await asyncio.wait_for(pid_watcher.ready.wait(), 60)
            with pytest.raises(flow2.TaskTimeoutError):
                await running
        finally:
            running.cancel()
        await _wait_gone(pid_watcher.pids)

    run(main())
    assert len(pid_watcher.pids) == 2
    assert all(_is_gone(pid) for pid in pid_watcher.pids)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"cmd": ""}, "not a command"),
        ({"cmd": []}, "not a command"),
        ({"cmd": ["ls", None]}, "not a string"),
        ({"cmd": "ls", "cwd": 3}, "cwd=3"),
        ({"cmd": "ls", "env": ["A"]}, "env="),
        ({"cmd": "ls", "env": {"A": None}}, "env['A']"),
        ({"cmd": "ls", "output_limit": -1}, "output_limit=-1"),
        ({"cmd": "ls", "kill_grace": "soon"}, "kill_grace='soon'"),
    ],
)
def test_bad_options_are_definition_errors(options: dict[str, object], fragment: str) -> None:
    with pytest.raises(flow2.DefinitionError) as caught:
        ShellTask("Bad", **options)  # type: ignore[arg-type]
    assert fragment in str(caught.value)


def test_command_line_quotes_argument_lists() -> None:
    assert ShellTask("Q", ["echo", "a b"]).command_line == "echo 'a b'"
    assert ShellTask("Q", "echo a b").command_line == "echo a b"


def test_characters_split_across_reads_are_decoded_whole() -> None:
    # 1 + 2 * 50,000 bytes: the 65,536-byte reads cut an "é" in two.
    task = ShellTask(
        "Accents", python("import sys; sys.stdout.buffer.write(('x' + 'é' * 50000).encode())")
    )
    stdout = run(quiet().run(task))["accents"]["stdout"]
    assert stdout == "x" + "é" * 50000


def test_a_huge_line_is_logged_in_pieces(caplog: pytest.LogCaptureFixture) -> None:
    task = ShellTask("Bar", python("import sys; sys.stdout.write('#' * 200000)"))
    with caplog.at_level(logging.INFO, logger="flow2.tasks"):
        run(quiet().run(task))
    pieces = [len(record.getMessage()) for record in caplog.records if record.name == "flow2.tasks"]
    assert sum(pieces) == 200000 and len(pieces) > 1


def test_a_command_too_long_to_start_is_shown_shortened() -> None:
    # Over the system's argument limit (a command line goes to the shell as a file).
    task = ShellTask("Huge", ["echo", "x" * 3_000_000])
    with pytest.raises(OSError, match=r"cannot run 'echo'") as caught:
        run(quiet().run(task))
    assert len(str(caught.value)) < 400


# Fail-fast shells ----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["echo one\nfalse\necho after", "false | cat", "cat /flow2-no-such-file | sort"],
    ids=["a failing line", "a failing pipeline stage", "a failing first stage"],
)
def test_a_command_line_fails_at_its_first_failing_line_or_stage(command: str) -> None:
    task = ShellTask("Script", command)
    with pytest.raises(flow2.CommandError) as caught:
        run(quiet().run(task))
    assert caught.value.returncode != 0
    assert "after" not in str(caught.value).split("last lines")[-1]


def test_the_error_names_the_script_by_its_first_line_without_its_output() -> None:
    task = ShellTask("Script", "echo preparing\necho 'ERROR: bad config'\nexit 3")
    with pytest.raises(flow2.CommandError, match="exited with code 3") as caught:
        run(quiet().run(task))
    # What it printed is in the summary, under the error: not repeated in it.
    assert str(caught.value) == "command exited with code 3: echo preparing … (3 lines)"


def test_shell_sh_python_and_a_template(tmp_path: Path, python_first_on_path: None) -> None:
    sh = ShellTask("Sh", "false\necho not reached", shell="sh")
    with pytest.raises(flow2.CommandError):
        run(quiet().run(sh))
    py = ShellTask("Py", "import sys\nprint(sys.version_info[0])", shell="python")
    assert run(quiet().run(py))["py"]["stdout"] == "3"
    template = ShellTask("Tpl", "echo from $0", shell="bash --noprofile --norc -eo pipefail {0}")
    result = run(quiet().run(template))["tpl"]["stdout"]
    assert result.startswith("from ") and "flow2-" in result
    script = Path(result.removeprefix("from "))
    assert not script.exists()  # the script file is removed after the run


def test_without_pipefail_a_template_lets_the_pipeline_pass() -> None:
    # The template is the user's choice: no option is added to it.
    task = ShellTask("Lenient", "false | cat", shell="bash {0}")
    assert run(quiet().run(task))["lenient"]["returncode"] == 0


@pytest.mark.parametrize(
    ("cmd", "shell", "message"),
    [
        ("echo", "zsh", "shell='zsh' is not a shell flow2 knows"),
        (["echo", "hi"], "bash", "cmd is a list of arguments, which runs without a shell"),
        ("echo", "bash -c '{0}", "cannot be split into arguments"),
    ],
)
def test_a_wrong_shell_is_a_definition_error(cmd: object, shell: str, message: str) -> None:
    with pytest.raises(flow2.DefinitionError, match=message) as caught:
        ShellTask("Bad", cmd, shell=shell)  # type: ignore[arg-type]
    assert caught.value.option == "shell"


def test_a_list_cmd_runs_without_a_shell() -> None:
    task = ShellTask("Literal", ["echo", "$HOME", "a | b"])
    assert run(quiet().run(task))["literal"]["stdout"] == "$HOME a | b"


def test_a_missing_shell_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/flow2-nothing-here")
    task = ShellTask("Pwsh", "Write-Output hi", shell="pwsh")
    with pytest.raises(OSError, match="cannot run the shell 'pwsh'"):
        run(quiet().run(task))


# What a command leaves running ----------------------------------------------------


def test_background_children_of_a_successful_command_are_stopped(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    task = ShellTask(
        "Spawner",
        # One child keeps the output pipe open, one ignores SIGTERM.
        f"sleep 600 & echo $! >> {pids}\n"
        f"(trap '' TERM; exec sleep 601) > /dev/null 2>&1 & echo $! >> {pids}\n"
        "echo started",
        kill_grace=0.5,
    )
    result = run(quiet().run(task))["spawner"]
    assert result == {"returncode": 0, "stdout": "started", "stderr": ""}
    children = [int(line) for line in pids.read_text().split()]
    assert len(children) == 2
    run(_wait_gone(children))


def test_a_command_that_leaves_nothing_behind_is_not_slowed_down() -> None:
    # No grace period is spent when the group is empty: a 600 s kill_grace
    # would time the test out.
    task = ShellTask("Quick", "echo done", kill_grace=600, timeout=60)
    assert run(quiet().run(task))["quick"]["stdout"] == "done"
