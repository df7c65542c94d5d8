"""Shell tasks: run a command as an asyncio subprocess.

A command line runs with fail-fast semantics, as in CI: ``bash -e -o
pipefail`` where bash is installed (GitHub Actions' default shell), else
``sh -e``; the ``shell`` option chooses another. An argument list runs
without any shell.

The command runs in a session (process group) of its own with stdin closed.
Its output is read as it comes and handed, in chunks, to the task's run as
output events (the run keeps the task's last lines for its end event; the
output listener writes the task's log file and shows the lines); a run
without a listener taking output gets each line as a record of the task's
logger. When the task ends, however it ends, the whole process
group gets SIGTERM, then SIGKILL after a grace period: the command's own
children (a server started with ``&``, a build's workers) stop too.
"""

from __future__ import annotations

import asyncio
import codecs
import math
import os
import shlex
import shutil
import signal
import sys
import tempfile
from typing import TYPE_CHECKING, Any

from .._engine._children import ChildProcess, forget, track
from .._engine._exceptions import CommandError, DefinitionError
from .._engine._output import write_output
from .._engine._task import Context, Task

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Characters of stdout and of stderr kept in the result (the last ones).
OUTPUT_LIMIT = 1_000_000
#: Longest line logged whole; longer ones are logged in pieces of this size.
MAX_LINE = 65536
_CHUNK = 65536

#: The shells ``shell:`` names, as argument lists; the command line follows ``-c``.
SHELLS: dict[str, list[str]] = {
    "bash": ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c"],
    "sh": ["sh", "-e", "-c"],
    "python": ["python", "-c"],
    "pwsh": ["pwsh", "-NoLogo", "-NoProfile", "-NonInteractive", "-Command"],
}
#: What PowerShell runs around the command, as GitHub Actions does: stop at
#: the first error, and exit with the last native command's code.
_PWSH_PROLOGUE = "$ErrorActionPreference = 'Stop'\n"
_PWSH_EPILOGUE = "\nif ((Test-Path -LiteralPath variable:\\LASTEXITCODE)) { exit $LASTEXITCODE }"


class ShellTask(Task):
    """Run a command; the result is ``{"returncode", "stdout", "stderr"}``.

    A non-zero exit code fails the task with :class:`flow2.CommandError`,
    whose message is one line: the exit code (or the signal) and the
    command's first line. What it printed is not repeated there: the run
    shows it as it comes and keeps its last lines for the summary, and the
    error's ``stderr`` holds the captured standard error. The captured output keeps the last
    ``output_limit`` characters of each stream, trailing newlines removed
    (as ``$(command)`` does in a shell).

    :param name: task name
    :param cmd: a command line, run by ``shell``, or a list of arguments run
        directly, without a shell
    :param shell: what runs a command line: ``"bash"`` (``bash --noprofile
        --norc -e -o pipefail -c``), ``"sh"`` (``sh -e -c``), ``"python"``,
        ``"pwsh"``, or a template such as ``"bash --noprofile --norc -eo
        pipefail {0}"`` where ``{0}`` becomes the path of a file holding the
        command. None (the default): bash when it is installed, else sh, so a
        failing line or pipeline stage fails the task
    :param cwd: the working directory; the current one when None
    :param env: variables added to (or replacing some of) the environment
    :param output_limit: characters of stdout and of stderr kept in the result
    :param kill_grace: seconds between SIGTERM and SIGKILL when the task is
        cancelled or times out, and for what the command leaves running
    :param output: print the result under SUCCESS (off: the output was streamed already)
    :param kwargs: the other options of :class:`flow2.Task`
    :raises flow2.DefinitionError: when an option has the wrong type

    Example::

        flow2.ShellTask("Test", ["python", "-m", "pytest", "-q"], timeout=600)
        flow2.ShellTask("Lint", "ruff check . | tee lint.txt", shell="bash")
    """

    #: The options of :class:`flow2.Task` and the command with what it runs in.
    definition_options = (
        *Task.definition_options,
        "cmd",
        "shell",
        "cwd",
        "env",
        "output_limit",
        "kill_grace",
    )

    def __init__(
        self,
        name: str,
        cmd: str | Sequence[str],
        *,
        shell: str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        output_limit: int = OUTPUT_LIMIT,
        kill_grace: float = 5.0,
        output: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, output=output, **kwargs)
        self.cmd: str | list[str] = _check_command(name, cmd)
        self.shell = _check_shell(name, shell, self.cmd)
        if cwd is not None and not isinstance(cwd, str | os.PathLike):
            raise DefinitionError(
                f"task {name!r}: cwd={cwd!r} is not a path; use e.g. cwd: build/docs",
                task=name,
                option="cwd",
                value=cwd,
            )
        self.cwd = cwd
        self.env = _check_env(name, env)
        if isinstance(output_limit, bool) or not isinstance(output_limit, int) or output_limit < 0:
            raise DefinitionError(
                f"task {name!r}: output_limit={output_limit!r} is not a whole number >= 0",
                task=name,
                option="output_limit",
                value=output_limit,
            )
        self.output_limit = output_limit
        if (
            isinstance(kill_grace, bool)
            or not isinstance(kill_grace, int | float)
            or not math.isfinite(kill_grace)
            or kill_grace < 0
        ):
            raise DefinitionError(
                f"task {name!r}: kill_grace={kill_grace!r} is not a number of seconds >= 0",
                task=name,
                option="kill_grace",
                value=kill_grace,
            )
        self.kill_grace = float(kill_grace)

    @property
    def command_line(self) -> str:
        """The command as one line, quoted as a POSIX shell would need it."""
        return self.cmd if isinstance(self.cmd, str) else shlex.join(self.cmd)

    async def run(self, context: Context) -> dict[str, Any]:
        """Run the command to its end and return its exit code and output.

        :raises flow2.CommandError: when it exits with a non-zero code
        :raises OSError: when it cannot start (no such program or directory)
        """
        environment = None if not self.env else {**os.environ, **self.env}
        options: dict[str, Any] = {
            "stdin": asyncio.subprocess.DEVNULL,
            "stdout": asyncio.subprocess.PIPE,
            "stderr": asyncio.subprocess.PIPE,
            "cwd": self.cwd,
            "env": environment,
        }
        if sys.platform == "win32":  # pragma: no cover - no process groups
            options["creationflags"] = 0x200  # CREATE_NEW_PROCESS_GROUP
        else:
            # A process group of its own: it and every child it starts can be
            # signalled at once, and a terminal's Ctrl-C reaches flow2 only.
            options["start_new_session"] = True
        self.logger.debug("running: %s", self.command_line)
        script: str | None = None
        try:
            if isinstance(self.cmd, list):
                arguments = self.cmd
            elif sys.platform == "win32" and self.shell is None:  # pragma: no cover
                arguments = []
            else:
                arguments, script = _shell_arguments(self.shell, self.cmd)
            try:
                process, protocol = await _start(arguments or self.command_line, options)
            except OSError as error:
                # subprocess's own frames would be the whole traceback: the
                # message alone says what to fix.
                raise OSError(error.errno, self._start_failure(error, arguments)) from None
            group = track(
                process.pid, is_group=True, description=f"task {self.name!r} (pid {process.pid})"
            )
            try:
                return await self._follow(process, protocol, group)
            finally:
                forget(group)
        finally:
            if script is not None:
                os.unlink(script)

    async def _follow(
        self,
        process: asyncio.subprocess.Process,
        protocol: _Protocol,
        group: ChildProcess,
    ) -> dict[str, Any]:
        """Read the command's output until it ends, then stop what it left running."""
        try:
            return await self._read_to_the_end(process, protocol.exited, group)
        finally:
            # The pipes are closed now, not when the transport is collected,
            # perhaps after its loop closed ("Event loop is closed" at exit).
            if protocol.transport is not None:
                protocol.transport.close()

    async def _read_to_the_end(
        self,
        process: asyncio.subprocess.Process,
        exited: asyncio.Future[None],
        group: ChildProcess,
    ) -> dict[str, Any]:
        stdout = _Capture(self.output_limit)
        stderr = _Capture(self.output_limit)
        assert process.stdout is not None and process.stderr is not None
        readers = [
            asyncio.ensure_future(self._stream(process.stdout, stdout, "stdout")),
            asyncio.ensure_future(self._stream(process.stderr, stderr, "stderr")),
        ]
        try:
            # The command's own exit, not its pipes' end: what it started in
            # the background (``server &``) may hold them open.
            waiting: set[asyncio.Future[None]] = {exited, *readers}
            while not exited.done():
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    finished.result()  # a reader failed: raise its error
            # What it left running must not outlive the task. See
            # test_background_children_of_a_successful_command_are_stopped.
            await _end_group(group, self.kill_grace)
            _, pending = await asyncio.wait(readers, timeout=self.kill_grace)
            if pending:
                # Something that left the group (setsid) holds the pipes:
                # stop reading them.
                for reader in pending:
                    reader.cancel()
            await asyncio.gather(*readers, return_exceptions=bool(pending))
            returncode = await process.wait()
        except BaseException:
            # Cancelled (timeout, Ctrl-C, a sibling failed) or the readers
            # failed: the command must not outlive its task.
            for reader in readers:
                reader.cancel()
            await _terminate(exited, group, self.kill_grace)
            await asyncio.gather(*readers, return_exceptions=True)
            raise
        if returncode != 0:
            message = _failure_message(self.command_line, returncode)
            raise CommandError(
                message,
                returncode,
                stderr.text(),
                command=self.command_line,
                task_definition=self,
                value=returncode,
            )
        return {"returncode": returncode, "stdout": stdout.text(), "stderr": stderr.text()}

    def _start_failure(self, error: OSError, arguments: list[str]) -> str:
        """What to fix when the command could not start."""
        reason = error.strerror or str(error)
        if self.cwd is not None and not os.path.isdir(self.cwd):
            where = os.fspath(self.cwd)
            return f"cannot start in cwd={where!r}: {reason}; create it or correct cwd"
        if isinstance(self.cmd, str) and arguments and not shutil.which(arguments[0]):
            return (
                f"cannot run the shell {arguments[0]!r} for the command {_shorten(self.cmd)!r}: "
                f"{reason}; install it, or choose another with shell: (bash, sh, python, "
                f"pwsh or a template such as 'bash -e {{0}}')"
            )
        program = self.cmd[0] if isinstance(self.cmd, list) else self.command_line
        if len(program) > 200:  # an argument list too long for the system, say
            program = program[:197] + "..."
        return (
            f"cannot run {program!r}: {reason}; check that it is installed and on PATH "
            f"(or give its path)"
        )

    async def _stream(self, stream: asyncio.StreamReader, capture: _Capture, name: str) -> None:
        """Hand ``stream``'s output to the run as it arrives (chunks, not lines), and capture it."""
        # Incremental: a character split across two reads is decoded whole.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""  # a partial line, when there is no output listener
        while True:
            chunk = await stream.read(_CHUNK)
            text = decoder.decode(chunk, final=not chunk)
            if text:
                capture.add(text)
                pending = self._show(pending, text, name, final=False)
            if not chunk:
                break
        self._show(pending, "", name, final=True)

    def _show(self, pending: str, text: str, stream: str, *, final: bool) -> str:
        """Pass ``text`` on; return the partial line kept here (see :func:`_log_lines`)."""
        # An output event of the task's run: its listeners split the lines,
        # write the task's log file and show them; a run without a listener
        # taking output gets log records.
        if write_output(text, stream, final=final):
            return ""
        return _log_lines(self, pending + text, stream, final)


def _log_lines(task: ShellTask, text: str, stream: str, final: bool) -> str:
    """Log each complete line of ``text``; return the partial line left."""
    *lines, pending = text.split("\n")
    if final or len(pending) > MAX_LINE:  # a line without end (a progress bar): log it
        if pending:
            lines.append(pending)
        pending = ""
    for line in lines:
        task.logger.info("%s", line.rstrip("\r"), extra={"stream": stream})
    return pending


class _Capture:
    """The last ``limit`` characters written to one stream."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > 2 * self.limit + _CHUNK:  # compact now and then, not per chunk
            self._compact()

    def _compact(self) -> None:
        joined = "".join(self.parts)
        keep = joined[len(joined) - self.limit :] if self.limit else ""
        self.dropped += len(joined) - len(keep)
        self.parts = [keep]
        self.size = len(keep)

    def text(self) -> str:
        self._compact()
        text = self.parts[0].rstrip("\n") if self.parts else ""
        if self.dropped:
            return f"[… {self.dropped} characters dropped]\n{text}"
        return text


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's subprocess protocol, telling when the process itself exits.

    ``Process.wait()`` also waits for the output pipes to close, which a
    background child of the command may keep open for ever.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def _start(
    command: list[str] | str, options: dict[str, Any]
) -> tuple[asyncio.subprocess.Process, _Protocol]:
    """Start ``command`` (arguments, or a line for the system shell); its process and exit."""
    loop = asyncio.get_running_loop()
    protocol = _Protocol(loop)
    if isinstance(command, list):
        transport, _ = await loop.subprocess_exec(lambda: protocol, *command, **options)
    else:  # pragma: no cover - Windows: cmd.exe
        transport, _ = await loop.subprocess_shell(lambda: protocol, command, **options)
    return asyncio.subprocess.Process(transport, protocol, loop), protocol


async def _terminate(exited: asyncio.Future[None], group: ChildProcess, grace: float) -> None:
    """SIGTERM the process group, then SIGKILL it after ``grace`` seconds."""
    group.terminate()
    try:
        async with asyncio.timeout(grace):
            await asyncio.shield(exited)
    except TimeoutError:
        pass
    finally:
        # Whatever is left of the group (children that ignore SIGTERM, or
        # everything when we are cancelled again while waiting) is killed.
        group.kill()
        if not exited.done():
            await asyncio.shield(exited)


#: Seconds between two looks at whether a process group is empty: the first, the longest.
_GROUP_POLL = (0.005, 0.2)


async def _end_group(group: ChildProcess, grace: float) -> None:
    """Stop what is left in the group of a command that exited.

    SIGTERM, up to ``grace`` seconds for the group to empty, then SIGKILL.
    Nothing to do, and no wait, when the command left nothing behind.
    """
    if not group.terminate():
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    pause, longest = _GROUP_POLL
    # A group's end cannot be awaited (its members are not our children):
    # look again and again, less and less often.
    while group.is_alive() and loop.time() < deadline:
        await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
        pause = min(pause * 2, longest)
    # Always: a member that ignores SIGTERM, or one the look missed (a fork
    # in flight), must not outlive the task.
    group.kill()


def _shorten(command: str) -> str:
    """A command as one short line: the first line of a script, 200 characters at most."""
    lines = command.strip().splitlines() or [""]
    shown = lines[0] if len(lines) == 1 else f"{lines[0]} … ({len(lines)} lines)"
    return shown if len(shown) <= 200 else shown[:197] + "..."


def _failure_message(command: str, returncode: int) -> str:
    """One line: how the command ended and its first line.

    Its output is not quoted: the summary shows the task's last lines once,
    under the error (see test_summary_shows_each_line_of_output_once).
    """
    if returncode < 0:
        try:
            how = f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"was killed by signal {-returncode}"
    else:
        how = f"exited with code {returncode}"
    return f"command {how}: {_shorten(command)}"


def _check_shell(name: str, shell: object, cmd: str | list[str]) -> str | None:
    if shell is None:
        return None
    if not isinstance(shell, str) or not (shell in SHELLS or "{0}" in shell):
        raise DefinitionError(
            f"task {name!r}: shell={shell!r} is not a shell flow2 knows; use one of "
            f"{', '.join(SHELLS)}, or a template with {{0}} where the path of the script "
            f"goes, e.g. shell: 'bash --noprofile --norc -eo pipefail {{0}}'",
            task=name,
            option="shell",
        )
    if isinstance(cmd, list):
        raise DefinitionError(
            f"task {name!r}: shell={shell!r} is given but cmd is a list of arguments, which "
            f"runs without a shell; write cmd as one command line, or remove shell",
            task=name,
            option="shell",
        )
    if shell not in SHELLS:
        try:
            shlex.split(shell)
        except ValueError as error:
            raise DefinitionError(
                f"task {name!r}: shell={shell!r} cannot be split into arguments ({error}); "
                f"check its quotes",
                task=name,
                option="shell",
            ) from None
    return shell


def _shell_arguments(shell: str | None, command: str) -> tuple[list[str], str | None]:
    """The arguments running ``command`` with ``shell``, and the script file to delete after."""
    if shell is None:
        shell = "bash" if shutil.which("bash") else "sh"
    known = SHELLS.get(shell)
    if known is not None:
        arguments = list(known)
        if shell == "python":
            # "python" where it exists, as the shell would find it; else this
            # interpreter (a machine with only python3).
            arguments[0] = shutil.which("python") or shutil.which("python3") or sys.executable
        elif shell == "pwsh":
            command = _PWSH_PROLOGUE + command + _PWSH_EPILOGUE
        return [*arguments, command], None
    # A template: the command goes into a file (owner-only, as mkstemp makes
    # it) whose path replaces {0}, as GitHub Actions runs a step.
    descriptor, script = tempfile.mkstemp(prefix="flow2-", suffix=".script")
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(command if command.endswith("\n") else command + "\n")
    return [part.replace("{0}", script) for part in shlex.split(shell)], script


def _check_command(name: str, cmd: object) -> str | list[str]:
    if isinstance(cmd, str):
        if cmd.strip():
            return cmd
    elif isinstance(cmd, list | tuple) and cmd:
        if all(isinstance(part, str | int | float) and not isinstance(part, bool) for part in cmd):
            return [str(part) for part in cmd]
        raise DefinitionError(
            f"task {name!r}: cmd={cmd!r} has an argument that is not a string; "
            f"quote each argument, e.g. cmd: ['python', '-m', 'pytest']",
            task=name,
            option="cmd",
            value=cmd,
        )
    raise DefinitionError(
        f"task {name!r}: cmd={cmd!r} is not a command; give a command line "
        f"(cmd: 'make test') or a non-empty argument list (cmd: ['make', 'test'])",
        task=name,
        option="cmd",
        value=cmd,
    )


def _check_env(name: str, env: object) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, dict) or not all(isinstance(key, str) for key in env):
        raise DefinitionError(
            f"task {name!r}: env={env!r} is not a mapping of variable names to values; "
            f"write e.g. env: {{PYTHONUNBUFFERED: '1'}}",
            task=name,
            option="env",
            value=env,
        )
    checked = {}
    for key, value in env.items():
        if isinstance(value, bool) or value is None or not isinstance(value, str | int | float):
            raise DefinitionError(
                f"task {name!r}: env[{key!r}]={value!r} is not a string; quote it, "
                f"e.g. {key}: '{value}'",
                task=name,
                option="env",
                key=key,
                value=value,
            )
        checked[key] = str(value)
    return checked
