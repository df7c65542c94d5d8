"""Shell tasks: run a command as an asyncio subprocess.

The command runs in a session (process group) of its own with stdin closed.
Its output is read as it comes and handed, in chunks, to the run's output
listener (which attributes every line to the task, keeps its tail, writes
its log file and shows it); a run without one gets each line as a record of
the task's logger. When the task is cancelled
or times out, the whole process group gets SIGTERM, then SIGKILL after a
grace period: the command's own children stop too.
"""

from __future__ import annotations

import asyncio
import codecs
import math
import os
import shlex
import signal
import sys
from typing import TYPE_CHECKING, Any

from .._engine._exceptions import CommandError, DefinitionError
from .._engine._task import Context, Task
from .._listeners._output import write_task_output

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Characters of stdout and of stderr kept in the result (the last ones).
OUTPUT_LIMIT = 1_000_000
#: Longest line logged whole; longer ones are logged in pieces of this size.
MAX_LINE = 65536
#: Lines of stderr quoted when the command fails.
ERROR_LINES = 10
_CHUNK = 65536


class ShellTask(Task):
    """Run a command; the result is ``{"returncode", "stdout", "stderr"}``.

    A non-zero exit code fails the task with :class:`flow2.CommandError`,
    whose message has the exit code and the last lines of stderr. The
    captured output keeps the last ``output_limit`` characters of each
    stream, trailing newlines removed (as ``$(command)`` does in a shell).

    :param name: task name
    :param cmd: a command line run by ``/bin/sh -c`` (``cmd.exe`` on Windows),
        or a list of arguments run directly, without a shell
    :param cwd: the working directory; the current one when None
    :param env: variables added to (or replacing some of) the environment
    :param output_limit: characters of stdout and of stderr kept in the result
    :param kill_grace: seconds between SIGTERM and SIGKILL when the task is
        cancelled or times out
    :param output: print the result under SUCCESS (off: the output was streamed already)
    :param kwargs: the other options of :class:`flow2.Task`
    :raises flow2.DefinitionError: when an option has the wrong type

    Example::

        flow2.ShellTask("Test", ["python", "-m", "pytest", "-q"], timeout=600)
    """

    def __init__(
        self,
        name: str,
        cmd: str | Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        output_limit: int = OUTPUT_LIMIT,
        kill_grace: float = 5.0,
        output: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, output=output, **kwargs)
        self.cmd: str | list[str] = _check_command(name, cmd)
        if cwd is not None and not isinstance(cwd, str | os.PathLike):
            raise DefinitionError(
                f"task {name!r}: cwd={cwd!r} is not a path; use e.g. cwd: build/docs"
            )
        self.cwd = cwd
        self.env = _check_env(name, env)
        if isinstance(output_limit, bool) or not isinstance(output_limit, int) or output_limit < 0:
            raise DefinitionError(
                f"task {name!r}: output_limit={output_limit!r} is not a whole number >= 0"
            )
        self.output_limit = output_limit
        if (
            isinstance(kill_grace, bool)
            or not isinstance(kill_grace, int | float)
            or not math.isfinite(kill_grace)
            or kill_grace < 0
        ):
            raise DefinitionError(
                f"task {name!r}: kill_grace={kill_grace!r} is not a number of seconds >= 0"
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
        try:
            if isinstance(self.cmd, str):
                process = await asyncio.create_subprocess_shell(self.cmd, **options)
            else:
                process = await asyncio.create_subprocess_exec(*self.cmd, **options)
        except OSError as error:
            # subprocess's own frames would be the whole traceback: the
            # message alone says what to fix.
            raise OSError(error.errno, self._start_failure(error)) from None
        stdout = _Capture(self.output_limit)
        stderr = _Capture(self.output_limit)
        assert process.stdout is not None and process.stderr is not None
        try:
            async with asyncio.TaskGroup() as readers:
                readers.create_task(self._stream(process.stdout, stdout, "stdout"))
                readers.create_task(self._stream(process.stderr, stderr, "stderr"))
            returncode = await process.wait()
        except BaseException:
            # Cancelled (timeout, Ctrl-C, a sibling failed) or the readers
            # failed: the command must not outlive its task.
            await _terminate(process, self.kill_grace)
            raise
        if returncode != 0:
            message = _failure_message(self.command_line, returncode, stderr)
            raise CommandError(message, returncode, stderr.text())
        return {"returncode": returncode, "stdout": stdout.text(), "stderr": stderr.text()}

    def _start_failure(self, error: OSError) -> str:
        """What to fix when the command could not start."""
        reason = error.strerror or str(error)
        if self.cwd is not None and not os.path.isdir(self.cwd):
            where = os.fspath(self.cwd)
            return f"cannot start in cwd={where!r}: {reason}; create it or correct cwd"
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
        # The run's output listener splits lines, keeps the tail, writes the
        # task's log file and shows them; a run without one gets log records.
        if write_task_output(text, stream, final=final):
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

    def last_lines(self, count: int) -> list[str]:
        return self.text().splitlines()[-count:]


async def _terminate(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the process group, then SIGKILL it after ``grace`` seconds."""
    _signal_group(process, kill=False)
    try:
        async with asyncio.timeout(grace):
            await process.wait()
    except TimeoutError:
        pass
    finally:
        # Whatever is left of the group (children that ignore SIGTERM, or
        # everything when we are cancelled again while waiting) is killed.
        _signal_group(process, kill=True)
        if process.returncode is None:
            await asyncio.shield(process.wait())


def _signal_group(process: asyncio.subprocess.Process, *, kill: bool) -> None:
    """SIGKILL (``kill``) or SIGTERM the process's group; on Windows, the process."""
    try:
        if sys.platform == "win32":  # pragma: no cover
            process.kill() if kill else process.terminate()
        else:
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass  # the whole group is gone already


def _failure_message(command: str, returncode: int, stderr: _Capture) -> str:
    if returncode < 0:
        try:
            how = f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"was killed by signal {-returncode}"
    else:
        how = f"exited with code {returncode}"
    shown = command if len(command) <= 200 else command[:197] + "..."
    message = f"command {how}: {shown}"
    lines = stderr.last_lines(ERROR_LINES)
    if lines:
        message += "\nlast lines of stderr:\n" + "\n".join(f"  {line}" for line in lines)
    return message


def _check_command(name: str, cmd: object) -> str | list[str]:
    if isinstance(cmd, str):
        if cmd.strip():
            return cmd
    elif isinstance(cmd, list | tuple) and cmd:
        if all(isinstance(part, str | int | float) and not isinstance(part, bool) for part in cmd):
            return [str(part) for part in cmd]
        raise DefinitionError(
            f"task {name!r}: cmd={cmd!r} has an argument that is not a string; "
            f"quote each argument, e.g. cmd: ['python', '-m', 'pytest']"
        )
    raise DefinitionError(
        f"task {name!r}: cmd={cmd!r} is not a command; give a command line "
        f"(cmd: 'make test') or a non-empty argument list (cmd: ['make', 'test'])"
    )


def _check_env(name: str, env: object) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, dict) or not all(isinstance(key, str) for key in env):
        raise DefinitionError(
            f"task {name!r}: env={env!r} is not a mapping of variable names to values; "
            f"write e.g. env: {{PYTHONUNBUFFERED: '1'}}"
        )
    checked = {}
    for key, value in env.items():
        if isinstance(value, bool) or value is None or not isinstance(value, str | int | float):
            raise DefinitionError(
                f"task {name!r}: env[{key!r}]={value!r} is not a string; quote it, "
                f"e.g. {key}: '{value}'"
            )
        checked[key] = str(value)
    return checked
