"""Shell tasks: run a command as an asyncio subprocess.

A command line runs with fail-fast semantics, as in CI: ``bash -e -o
pipefail`` where bash is installed (GitHub Actions' default shell), else
``sh -e -o pipefail``; the ``shell`` option chooses another. A ``sh``
without ``pipefail`` (dash before 0.5.12) cannot fail a pipeline whose
first stage fails: a command line with a pipeline is refused when the task
is defined, with the reason. An argument list runs without any shell.

The script is given to the shell as a file (owner-only, unlinked before the
shell starts, passed as ``/dev/fd/N``) or on standard input (``python``):
``ps`` shows the shell and its flags, never the script's text and the
secrets in it.

A ``${{ … }}`` value in a flow's command line is data, never shell code
(:func:`command_with_values`): each becomes a reference to an environment
variable ``FLOW2_EXPR_n`` holding the value; ``cmd_expressions: raw`` pastes
the values into the text instead, for the rare command built on purpose.

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
import functools
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Literal

from .._engine._children import ChildProcess, forget, track
from .._engine._context import current_record, current_run
from .._engine._exceptions import CommandError, DefinitionError
from .._engine._output import write_output
from .._engine._slots import JOBSERVER_VARIABLES
from .._engine._task import Context, Task

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .._engine._slots import JobSlots

#: Characters of stdout and of stderr kept in the result (the last ones).
OUTPUT_LIMIT = 1_000_000
#: Longest line logged whole; longer ones are logged in pieces of this size.
MAX_LINE = 65536
_CHUNK = 65536

#: The shells ``shell:`` names, as argument lists; the script follows (a
#: ``/dev/fd/N`` path; ``-`` for python, which reads it from stdin; the path
#: of an owner-only ``.ps1`` file after pwsh's ``-File``). ``sh`` gets
#: ``-o pipefail`` where it knows it.
SHELLS: dict[str, list[str]] = {
    "bash": ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail"],
    "sh": ["sh", "-e"],
    "python": ["python"],
    "pwsh": ["pwsh", "-NoLogo", "-NoProfile", "-NonInteractive", "-File"],
}
#: How ``${{ … }}`` values reach a command line: as environment variables
#: the line refers to (the default), or pasted into its text.
CmdExpressions = Literal["environment", "raw"]
#: The variables holding a command line's ``${{ … }}`` values: FLOW2_EXPR_1, ….
EXPRESSION_VARIABLE = "FLOW2_EXPR_{}"
_EXPRESSION = re.compile(r"\$\{\{((?:(?!\}\}).)*)\}\}", re.DOTALL)
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
        --norc -e -o pipefail``), ``"sh"`` (``sh -e``, with ``-o pipefail``
        where it knows it), ``"python"``, ``"pwsh"``, or a template such as
        ``"bash --noprofile --norc -eo pipefail {0}"`` where ``{0}`` becomes
        the path of a file holding the command. None (the default): bash when
        it is installed, else sh, so a failing line or pipeline stage fails
        the task (a pipeline under an sh without pipefail is refused)
    :param cwd: the working directory; the current one when None
    :param env: variables added to (or replacing some of) the environment
    :param output_limit: characters of stdout and of stderr kept in the result
    :param kill_grace: seconds between SIGTERM and SIGKILL when the task is
        cancelled or times out, and for what the command leaves running
    :param output: print the result under SUCCESS (off: the output was streamed already)
    :param cmd_expressions: how a flow's ``${{ … }}`` values reach a command
        line: ``"environment"`` (as environment variables it refers to, never
        shell code) or ``"raw"`` (pasted into its text, as shell code)
    :param jobserver: in a run with job slots (``jobs=N``), give the command
        the run's GNU make jobserver (``MAKEFLAGS``, ``CARGO_MAKEFLAGS``), so
        that make, ninja and cargo share the slots; False: none of those
        variables reach it
    :param kwargs: the other options of :class:`flow2.Task`
    :raises flow2.DefinitionError: when an option has the wrong type

    Example::

        flow2.ShellTask("Test", ["python", "-m", "pytest", "-q"], timeout=600)
        flow2.ShellTask("Lint", "ruff check . | tee lint.txt", shell="bash")
    """

    #: Its ``run`` reads nothing from the context: of the run's variables, it
    #: reads those its ``${{ … }}`` use only (see :attr:`flow2.Task.reads_context`).
    reads_context = False
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
        cmd_expressions: CmdExpressions = "environment",
        jobserver: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, output=output, **kwargs)
        self.cmd: str | list[str] = _check_command(name, cmd)
        self.shell = _check_shell(name, shell, self.cmd)
        if cmd_expressions not in ("environment", "raw"):
            raise DefinitionError(
                f"task {name!r}: cmd_expressions={cmd_expressions!r} is not 'environment' "
                f"(each ${{{{ … }}}} value reaches the command as an environment variable, "
                f"the default) or 'raw' (pasted into the command line as shell code)",
                task=name,
                option="cmd_expressions",
                value=cmd_expressions,
            )
        self.cmd_expressions: CmdExpressions = cmd_expressions
        if not isinstance(jobserver, bool):
            raise DefinitionError(
                f"task {name!r}: jobserver={jobserver!r} is not true or false; "
                f"jobserver: false keeps the run's job slots (MAKEFLAGS) from the command",
                task=name,
                option="jobserver",
                value=jobserver,
            )
        self.jobserver = jobserver
        if isinstance(self.cmd, str):
            _check_values_can_be_data(name, self.cmd, self.shell, cmd_expressions)
            _check_pipelines_fail(name, self.cmd, self.shell)
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

    def definition(self) -> dict[str, Any]:
        """The options that define the task; ``cmd_expressions`` only when ``raw``,
        ``jobserver`` only when false."""
        options = super().definition()
        if self.cmd_expressions != "environment":
            options["cmd_expressions"] = self.cmd_expressions
        if not self.jobserver:
            options["jobserver"] = False
        return options

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
        slots: JobSlots | None = None
        inherited: tuple[int, ...] = ()
        if not self.jobserver:
            environment = _without_jobserver(environment)
        else:
            run = current_run.get()
            slots = run.slots if run is not None else None
            if slots is not None and slots.pool is not None:
                environment = environment or dict(os.environ)
                variables, inherited = slots.pool.environment(environment)
                environment.update(variables)
            else:
                slots = None
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
        descriptor: int | None = None
        try:
            if isinstance(self.cmd, list):
                arguments = self.cmd
            elif sys.platform == "win32" and self.shell is None:  # pragma: no cover
                arguments = []
            else:
                arguments, script, descriptor, on_stdin = _shell_arguments(self.shell, self.cmd)
                if descriptor is not None:
                    if on_stdin:
                        options["stdin"] = descriptor
                    else:
                        options["pass_fds"] = (descriptor,)
            if inherited:
                options["pass_fds"] = (*options.get("pass_fds", ()), *inherited)
            starting = asyncio.ensure_future(_start(arguments or self.command_line, options))
            try:
                process, protocol = await asyncio.shield(starting)
            except OSError as error:
                # subprocess's own frames would be the whole traceback: the
                # message alone says what to fix.
                raise OSError(error.errno, self._start_failure(error, arguments)) from None
            except asyncio.CancelledError:
                # Cancelled while the command starts (a signal as the run
                # begins): its process exists already, and asyncio would
                # kill the shell alone, not what the shell started. Its
                # whole group is stopped before the cancellation goes on.
                # No test pins the moment (it lasts a turn of the loop);
                # tests/test_signal_records.py checks for leftovers.
                await _stop_when_started(starting, self.name, self.kill_grace)
                raise
            group = track(
                process.pid,
                is_group=True,
                description=f"task {self.name!r} (pid {process.pid})",
                grace=self.kill_grace,
            )
            if slots is not None:
                slots.command_started()
            stopped = True
            try:
                result = await self._follow(process, protocol, group)
                stopped = False
                return result
            except CommandError as error:
                stopped = error.returncode < 0
                raise
            finally:
                forget(group)
                if slots is not None:
                    _take_back_tokens(slots, stopped)
        finally:
            if descriptor is not None:
                os.close(descriptor)
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


def _without_jobserver(environment: dict[str, str] | None) -> dict[str, str]:
    """``environment`` (else flow2's own) less the variables naming a jobserver."""
    base = os.environ if environment is None else environment
    return {name: value for name, value in base.items() if name not in JOBSERVER_VARIABLES}


def _take_back_tokens(slots: JobSlots, stopped: bool) -> None:
    """Tell the slots a command ended; say which task kept tokens, when some are missing."""
    record = current_record.get()
    if record is None:  # pragma: no cover - a shell task's run() called outside a run
        return
    leak = slots.command_ended(record, stopped=stopped)
    if leak is None:
        return
    # Data in the tasks' output (their log files, the summary's tail) and in
    # the run's slots (the summary's line), not a print.
    # See tests/test_jobs.py::test_tokens_a_killed_command_kept_are_taken_back.
    names = ", ".join(repr(" › ".join(path)) for path in leak.paths)
    note = (
        f"flow2: {leak.count} jobserver token(s) kept by the stopped command of {names} "
        f"were put back in the pool\n"
    )
    run = record.run
    for suspect in run.record_list():
        if suspect.path in leak.paths:
            run.emit_output(suspect, "stderr", note)


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


async def _stop_when_started(
    starting: asyncio.Future[tuple[asyncio.subprocess.Process, _Protocol]],
    name: str,
    grace: float,
) -> None:
    """Wait for a command that is starting, then stop its process group."""
    while not starting.done():
        try:
            await asyncio.wait([starting])
        except asyncio.CancelledError:
            continue  # cancelled again: the command must still be stopped
    if starting.cancelled() or starting.exception() is not None:
        return  # it never started
    process, protocol = starting.result()
    group = track(
        process.pid, is_group=True, description=f"task {name!r} (pid {process.pid})", grace=grace
    )
    try:
        await _terminate(protocol.exited, group, grace)
    finally:
        forget(group)
        if protocol.transport is not None:
            protocol.transport.close()


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
        cancelled_again = False
        while not exited.done():
            try:
                await asyncio.shield(exited)
            except asyncio.CancelledError:
                # Cancelled once more: the exit of a killed process comes at
                # once, and leaving before it would leave the process to be
                # reaped by someone else (asyncio then prints "Unknown child
                # process pid"). See
                # test_ctrl_c_says_it_is_stopping_and_the_script_ends_in_one_line.
                cancelled_again = True
        if cancelled_again:
            raise asyncio.CancelledError


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


def _shell_arguments(
    shell: str | None, command: str
) -> tuple[list[str], str | None, int | None, bool]:
    """How ``shell`` runs ``command``: the arguments, the script file to delete
    after, the descriptor to pass (and close after), and whether it is stdin.

    The script's text goes to the shell as a file, never as an argument, so
    that ``ps`` does not show it (nor the secrets in it). The file is
    owner-only (as mkstemp makes it) and unlinked before the shell starts:
    the shell reads it through the descriptor it inherits (``/dev/fd/N``),
    and nothing is left behind should flow2 be killed. See
    tests/test_shell_safety.py::test_ps_shows_the_shell_not_the_script.
    """
    if shell is None:
        shell = _default_shell()
    known = SHELLS.get(shell)
    if shell == "sh" and sh_has_pipefail():
        known = [*SHELLS["sh"], "-o", "pipefail"]
    if known is not None and shell == "pwsh":
        # pwsh runs a file only when its name ends in .ps1, and does not read
        # one through /dev/fd: an owner-only file, removed once the command
        # ends. See test_pwsh_gets_its_script_in_an_owner_only_file.
        descriptor, script = tempfile.mkstemp(prefix="flow2-", suffix=".ps1")
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(_PWSH_PROLOGUE + command + _PWSH_EPILOGUE + "\n")
        return [*known, script], script, None, False
    if known is None or not os.path.isdir("/dev/fd"):
        # A template: the command goes into a file (owner-only) whose path
        # replaces {0}, as GitHub Actions runs a step.
        descriptor, script = tempfile.mkstemp(prefix="flow2-", suffix=".script")
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(command if command.endswith("\n") else command + "\n")
        if known is None:
            return [part.replace("{0}", script) for part in shlex.split(shell)], script, None, False
        return [*_program(shell, known), script], script, None, False  # pragma: no cover
    descriptor, script = tempfile.mkstemp(prefix="flow2-", suffix=".script")
    try:
        os.write(descriptor, (command if command.endswith("\n") else command + "\n").encode())
        os.lseek(descriptor, 0, os.SEEK_SET)
    except BaseException:
        os.close(descriptor)
        raise
    finally:
        os.unlink(script)
    if shell == "python":
        # Python reads a script on stdin whole before running it, and keeps
        # the working directory first on sys.path, as ``-c`` does.
        return [*_program(shell, known), "-"], None, descriptor, True
    return [*known, f"/dev/fd/{descriptor}"], None, descriptor, False


def _program(shell: str, known: list[str]) -> list[str]:
    arguments = list(known)
    if shell == "python":
        # "python" where it exists, as the shell would find it; else this
        # interpreter (a machine with only python3).
        arguments[0] = shutil.which("python") or shutil.which("python3") or sys.executable
    return arguments


def _default_shell() -> str:
    return "bash" if shutil.which("bash") else "sh"


@functools.cache
def sh_has_pipefail(program: str = "sh") -> bool:
    """Whether ``program`` knows ``set -o pipefail`` (bash, busybox, dash 0.5.12+); asked once."""
    try:
        return (
            subprocess.run(
                [program, "-o", "pipefail", "-c", ":"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
                check=False,
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def _language(shell: str | None) -> Literal["posix", "python", "pwsh"]:
    """The language a command line is written in, for ``shell``."""
    if shell in ("python", "pwsh"):
        return shell  # type: ignore[return-value]
    if shell is not None and shell not in SHELLS:
        program = os.path.basename(shlex.split(shell)[0]) if shlex.split(shell) else ""
        if program.startswith("python"):
            return "python"
        if program.startswith(("pwsh", "powershell")):
            return "pwsh"
    return "posix"


def _scan(text: str, state: str = "") -> tuple[str, bool]:
    """Follow POSIX quoting through ``text`` from ``state``.

    :returns: the state at its end (``""``, ``"'"`` or ``'"'``) and whether
        a pipe (``|``, not ``||``) stands outside quotes and comments
    """
    piped = False
    position = 0
    while position < len(text):
        character = text[position]
        if state == "'":
            if character == "'":
                state = ""
        elif character == "\\":
            position += 1  # the next character is taken literally
        elif state == '"':
            if character == '"':
                state = ""
        elif character in "'\"":
            state = character
        elif character == "#" and (position == 0 or text[position - 1] in " \t\n;&|()"):
            end = text.find("\n", position)
            position = len(text) if end < 0 else end
            continue
        elif character == "|":
            if text.startswith("||", position):
                position += 1
            else:
                piped = True
        position += 1
    return state, piped


def command_with_values(
    cmd: str, values: Sequence[str | list[str]], shell: str | None
) -> tuple[str, dict[str, str]]:
    """``cmd`` whose ``${{ … }}`` are references to environment variables holding ``values``.

    The shell expands a variable's value as a word (or part of one), never
    parsing it as code: a value such as ``x; rm -rf ~`` stays text. Each
    reference is quoted for where it stands: ``"$FLOW2_EXPR_1"`` outside
    quotes, ``${FLOW2_EXPR_1}`` inside double quotes, and inside single
    quotes the quote is closed around it.

    A list (``${{ args }}``) outside quotes becomes one word per item, each
    in a variable of its own (``FLOW2_EXPR_1_1``, …), as ``"$@"`` does: no
    item is split or parsed, an empty list is no word at all. Inside quotes
    its items are joined with spaces into the one word, as ``"$*"`` does.

    :param values: the text of each expression (or its items), in order
    :returns: the command line and the variables to add to its environment
    """
    language = _language(shell)
    parts = _EXPRESSION.split(cmd)
    pieces: list[str] = []
    environment: dict[str, str] = {}
    state = ""
    for index, literal in enumerate(parts[0::2]):
        pieces.append(literal)
        state, _ = _scan(literal, state)
        if index >= len(values):
            break
        variable = EXPRESSION_VARIABLE.format(index + 1)
        value = values[index]
        if isinstance(value, list) and language == "posix" and state not in ('"', "'"):
            words = [f"{variable}_{position + 1}" for position in range(len(value))]
            environment.update(zip(words, value, strict=True))
            pieces.append(" ".join('"${' + word + '}"' for word in words))
            continue
        environment[variable] = " ".join(value) if isinstance(value, list) else value
        if language == "python":  # pragma: no cover - refused when the task is defined
            pieces.append(f"__import__('os').environ[{variable!r}]")
        elif language == "pwsh":  # pragma: no cover - refused when the task is defined
            pieces.append(f"$env:{variable}")
        elif state == '"':
            pieces.append("${" + variable + "}")
        elif state == "'":
            pieces.append("'\"${" + variable + "}\"'")
        else:
            pieces.append('"${' + variable + '}"')
    return "".join(pieces), environment


def expressions_in(cmd: str) -> list[str]:
    """The ``${{ … }}`` of a command line, each as written."""
    return [match.group(0) for match in _EXPRESSION.finditer(cmd)]


def _check_values_can_be_data(name: str, cmd: str, shell: str | None, cmd_expressions: str) -> None:
    """Refuse ``${{ … }}`` in a python or pwsh command line, where values would be code."""
    if cmd_expressions == "raw" or "${{" not in cmd or _language(shell) == "posix":
        return
    raise DefinitionError(
        f"task {name!r}: cmd holds ${{{{ … }}}} but runs with shell={shell!r}, where a value "
        f"pasted into the text would be code; pass it through env (env: {{VERSION: "
        f"'${{{{ version }}}}'}}, then read the VERSION environment variable), or set "
        f"cmd_expressions: raw if the value is meant to be code",
        task=name,
        option="cmd",
    )


def _check_pipelines_fail(name: str, cmd: str, shell: str | None) -> None:
    """Refuse a pipeline that ``sh`` would let succeed with a failing stage."""
    chosen = _default_shell() if shell is None else shell
    if chosen != "sh" or not _scan(cmd)[1] or sh_has_pipefail():
        return
    raise DefinitionError(
        f"task {name!r}: cmd has a pipeline, and the sh on this machine has no "
        f"'set -o pipefail', so a failing stage before the last would not fail the task; "
        f"use shell: bash (install it), or run the stages as separate commands",
        task=name,
        option="shell" if shell is not None else "cmd",
    )


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
