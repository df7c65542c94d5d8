"""The runner: run settings, the listeners they choose, and the way into the engine.

:class:`Runner` reads its options (falling back to ``FLOW2_*`` environment
variables) and the environment it runs in (a terminal, CI, GitHub Actions,
``TERM=dumb``), builds the listeners they ask for (what tasks print, console
lines or the live view, the summary, logging, the event file, the user's
own), all sharing one :class:`~flow2._listeners._secrets.SecretMasker`, and
hands the tree to the engine, which checks it, runs it and closes everything.
``task.run()`` on a root uses a default :class:`Runner`.

With ``handle_signals=True`` (what ``flow2 run`` uses) a run also takes
SIGINT, SIGTERM and SIGHUP for as long as it runs: the first cancels the
tree, so every task is reported, the summary printed and the event file
closed; shell commands and worker processes get SIGTERM, and whatever still
runs after the grace period gets SIGKILL, at once on a second signal. The
run then raises :class:`Interrupted`, exit code 128 + the signal's number.
Without it flow2 installs no handler: a library must not take an
application's signals.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

from ._engine._children import kill_children, terminate_children
from ._engine._events import RunEvent
from ._engine._exceptions import ConfigurationError
from ._engine._run import execute, set_default_runner, validate_tree
from ._listeners._settings import Display, Verbosity

if TYPE_CHECKING:
    import logging
    import sqlite3
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from types import FrameType

    from ._engine._events import EventListener
    from ._engine._partial import PartialRun, RunPlan
    from ._engine._state import Decision, Plan, TaskRun
    from ._engine._task import Context, Task
    from ._listeners._console import PlainConsole
    from ._listeners._event_file import EventTarget
    from ._listeners._live import LiveView
    from ._listeners._output import TaskOutput
    from ._store._database import Store
    from ._store._recorder import StoreRecorder
    from ._store._resume import ResumePlan


def _from_environment(
    variable: str, enum_type: type[enum.Enum], value: Any, default: Any = None
) -> Any:
    """``value`` as ``enum_type``, else the environment variable's, else ``default``.

    ``default`` is the enum's first member when None.
    """
    source = "argument"
    if value is None:
        if default is None:
            default = next(iter(enum_type))
        value = os.environ.get(variable) or default.value
        source = f"environment variable {variable}"
    try:
        return enum_type(value.lower() if isinstance(value, str) else value)
    except ValueError:
        accepted = ", ".join(member.value for member in enum_type)
        raise ConfigurationError(
            f"{source} {variable.removeprefix('FLOW2_').lower()}={value!r} is not one of: "
            f"{accepted}"
        ) from None


#: Variables whose presence says a CI service runs us (besides ``CI``).
CI_MARKERS = (
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "BUILDKITE",
    "CIRCLECI",
    "TRAVIS",
    "JENKINS_URL",
    "TF_BUILD",
    "TEAMCITY_VERSION",
    "BITBUCKET_BUILD_NUMBER",
    "APPVEYOR",
    "DRONE",
    "CODEBUILD_BUILD_ID",
    "BUILDKITE_BUILD_ID",
)


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    import importlib.util

    return importlib.util.find_spec(module) is not None


def is_ci() -> bool:
    """True when a CI service runs us: ``CI`` set (not to false or 0), or another CI's marker."""
    value = os.environ.get("CI", "").strip().lower()
    if value and value not in ("0", "false", "no"):
        return True
    return any(os.environ.get(marker) for marker in CI_MARKERS)


def is_github_actions() -> bool:
    """True under GitHub Actions (``GITHUB_ACTIONS=true``)."""
    return os.environ.get("GITHUB_ACTIONS", "").lower() == "true"


def _check_secrets(secrets: Sequence[str]) -> list[str]:
    if isinstance(secrets, str) or not all(isinstance(value, str) for value in secrets):
        raise ConfigurationError(
            f"secrets={secrets!r} is not a list of strings; pass the secret values, "
            f"e.g. secrets=[os.environ['DEPLOY_KEY']]"
        )
    return list(secrets)


def _tracing_from_environment(value: bool | None) -> bool:
    """``value``, else ``FLOW2_OTEL`` (1/true/yes/on or 0/false/no/off), else False.

    :raises flow2.ConfigurationError: on another value, or when tracing is
        asked for and opentelemetry-api is not installed
    """
    if value is None:
        raw = os.environ.get("FLOW2_OTEL", "").strip().lower()
        if raw in ("", "0", "false", "no", "off"):
            return False
        if raw not in ("1", "true", "yes", "on"):
            raise ConfigurationError(
                f"environment variable FLOW2_OTEL={raw!r} is not one of: 1, true, yes, on, "
                f"0, false, no, off"
            )
        value = True
    elif not isinstance(value, bool):
        raise ConfigurationError(f"tracing={value!r} is not True or False")
    if value and not _installed("opentelemetry"):
        raise ConfigurationError(
            "tracing needs opentelemetry-api, which is not installed; install flow2[otel] "
            "(pip install '<your flow2 clone or wheel>[otel]')"
        )
    return value


def _max_threads_from_environment(value: int | None) -> int | None:
    if value is None:
        raw = os.environ.get("FLOW2_MAX_THREADS")
        if not raw:
            return None
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 1:
            raise ConfigurationError(
                f"environment variable FLOW2_MAX_THREADS={raw!r} is not a whole number >= 1"
            )
    elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"max_threads={value!r} is not a whole number >= 1")
    return value


def _task_references(option: str, value: object) -> tuple[str, ...]:
    references = (value,) if isinstance(value, str) else value
    if isinstance(references, list | tuple) and all(
        isinstance(reference, str) and reference for reference in references
    ):
        return tuple(references)
    raise ConfigurationError(
        f"{option}={value!r} is not a list of task keys or group paths; "
        f"write e.g. {option}=['deploy', 'release/checks']"
    )


#: Seconds between SIGTERM and SIGKILL when a run is interrupted, by default (as ``docker stop``).
DEFAULT_GRACE = 5.0

#: The signals ``handle_signals=True`` takes during a run (SIGHUP: the terminal closed).
HANDLED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(SystemExit):
    """A signal interrupted a run of ``Runner(handle_signals=True)``; raised once it ended.

    A :class:`SystemExit`: a script that does not catch it exits, without a
    traceback, with the code a shell reports for that signal.

    :ivar signal: the signal (:class:`signal.Signals`)
    :ivar code: 128 + the signal's number: 130 for SIGINT (Ctrl-C), 143 for
        SIGTERM, 129 for SIGHUP
    """

    def __init__(self, signal_number: int) -> None:
        super().__init__(128 + signal_number)
        self.signal = signal.Signals(signal_number)

    def __str__(self) -> str:
        return f"interrupted by {self.signal.name}"


def _grace_from_environment(value: float | None) -> float:
    source = f"grace={value!r}"
    if value is None:
        raw = os.environ.get("FLOW2_GRACE")
        if not raw:
            return DEFAULT_GRACE
        source = f"environment variable FLOW2_GRACE={raw!r}"
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigurationError(f"{source} is not a number of seconds >= 0, e.g. 5")
    return float(value)


class _SignalHandling:
    """The signal handlers of one run: cancel it, then kill what outlives the grace period."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.signal: int | None = None
        self.killed: list[str] = []  # what still ran when the grace period ended
        self._count = 0  # signals the loop handled
        self._received = 0  # signals received, handled or not
        self._first: int | None = None
        self._previous: dict[int, Any] = {}
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._installed = False
        from ._listeners._interrupt import SignalWakeup  # with the first run, not at import

        self._wakeup = SignalWakeup()

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise ConfigurationError(
                "handle_signals=True needs the main thread (Python delivers signals there); "
                "run the runner in the main thread, or leave handle_signals off"
            )
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._installed = True
        for number in HANDLED_SIGNALS:
            # An ignored signal stays ignored: ``nohup flow2 run …`` must
            # survive the terminal closing, as any program started so would.
            if signal.getsignal(number) is signal.SIG_IGN:
                continue
            self._previous[number] = signal.signal(number, self._on_signal)
        self._wakeup.install(self._loop)

    def uninstall(self) -> None:
        self._installed = False
        self._wakeup.uninstall()
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous.clear()
        if self._deadline is not None:
            self._deadline.cancel()

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        # A Python-level handler runs in the main thread between bytecodes:
        # hand the work to the loop, which may be waiting in select().
        assert self._loop is not None
        self._received += 1
        if self._first is None:
            self._first = number
        if self._received >= 3:
            # Third time: the loop never got to the first two (a task blocks
            # it, or swallows cancellation). Stop everything now, without the
            # summary. See test_a_third_signal_exits_even_when_the_loop_is_blocked.
            kill_children()
            _tell(
                f"flow2: {signal.Signals(number).name}, the third signal: exiting at once",
                sys.__stderr__,  # not a task's captured stderr
            )
            os._exit(128 + self._first)
        self._loop.call_soon_threadsafe(self._interrupt, number)

    def _interrupt(self, number: int) -> None:
        if not self._installed:
            return  # arrived as the run ended: the caller's code is not ours to cancel
        self._count += 1
        assert self._task is not None and self._loop is not None
        if self._count == 1:
            self.signal = number
            # Cancelling the run reports every task and stops every command
            # (SIGTERM to its group); processes get SIGTERM here too, so one
            # a task does not own (an executor's worker) stops as well. See
            # test_sigterm_stops_the_run_and_every_process_it_started.
            self._task.cancel()
            terminate_children()
            self._deadline = self._loop.call_later(self.grace, self._kill)
        else:
            # Again: no more waiting. See test_a_second_signal_kills_at_once.
            self._task.cancel()
            self._kill()

    def _kill(self) -> None:
        self.killed += [child.description for child in kill_children()]


class Runner:
    """Runs a task tree with chosen settings; ``task.run()`` uses the defaults.

    Every argument left None takes its environment variable, then the default.

    :param display: :class:`Display` or its value; ``FLOW2_DISPLAY``, else "auto"
        (the live view when ``stream`` is a terminal and rich is installed,
        plain lines otherwise)
    :param verbosity: :class:`Verbosity` or its value; ``FLOW2_VERBOSITY``, else "normal"
    :param events: a file path or text stream receiving every event as a JSON
        line (lines whole, written at every task's end and at least every 0.2 s;
        a new file is owner-only); ``FLOW2_EVENTS`` (a path), else none
    :param listeners: more event listeners, called after the built-in ones
    :param max_threads: size of the thread pool for sync callbacks;
        ``FLOW2_MAX_THREADS``, else Python's default
    :param stream: where the console writes; ``sys.stdout`` when None
    :param color: force color on or off; decided from the stream, ``NO_COLOR``,
        ``FORCE_COLOR`` and ``TERM=dumb`` when None
    :param log_dir: a directory for one log file per task, with everything the
        task printed (``{run_id}`` in it becomes the run's id);
        ``FLOW2_LOG_DIR``, else none (no file is written)
    :param secrets: values never shown: replaced by ``***`` in everything the
        run writes (console, live view, summary, log records and files, event
        file). Values of environment variables named like secrets (TOKEN,
        SECRET, PASSWORD, ...) and of such context entries are masked anyway.
    :param color: force color on or off; decided from the stream, ``NO_COLOR``
        and ``FORCE_COLOR`` when None
    :param store: the run store directory to record the run in; True for
        ``FLOW2_STORE`` else ``.flow2``; False for none; None for ``FLOW2_STORE``
        when it is set, else none (a library call records nothing unless asked)
    :param resume: a recorded run to resume (its id, a unique prefix, or
        ``"last"``): tasks that succeeded in it are reused, unless something
        they depend on changed (see docs/store.md); needs a store
    :param pickle_results: store results that JSON cannot hold exactly as
        pickles, and load pickled results when resuming (only for stores you trust)
    :param flow_file: the flow file the tree was loaded from, recorded with
        the run; ``resume="last"`` picks the newest run of this file (else of
        a root with the same name)
    :param only: run only these tasks (result keys or group paths such as
        ``"release/checks"``) and the tasks they need; the rest are SKIPPED
    :param skip: leave these tasks out (SKIPPED, and so are the tasks needing them)
    :param until: run the tasks up to this one and what it needs, none after it
    :param start_from: start at this task (a result key or a group's path):
        the tasks before it do not run, their results are taken from the
        latest recorded run of the same flow file (else of a root with the
        same name); needs a store
    :param handle_signals: take SIGINT, SIGTERM and SIGHUP while a run runs:
        cancel it cleanly, then raise :class:`Interrupted` (the exit code
        128 + the signal); off by default, so flow2 installs no handler
    :param grace: seconds stopped commands and worker processes get between
        SIGTERM and SIGKILL when a signal interrupts the run, and that worker
        threads get to finish before the process may exit without them;
        ``FLOW2_GRACE``, else 5
    :param tracing: emit OpenTelemetry spans (a span per run and per task) to
        the application's tracer provider; ``FLOW2_OTEL``, else off. Needs
        ``flow2[otel]``; when off, nothing of OpenTelemetry is imported
    :raises flow2.ConfigurationError: on a bad option or environment variable

    ``display="auto"`` is the live view on a terminal; plain lines under CI
    (``CI`` or another CI's marker variable set), with ``TERM=dumb``, and
    when the stream is not a terminal. Under GitHub Actions each task's
    output is folded in a group and a Markdown summary is appended to
    ``$GITHUB_STEP_SUMMARY``.

    Example::

        context = await flow2.Runner(display="none").run(workflow, {"env": "prod"})
    """

    def __init__(
        self,
        *,
        display: Display | str | None = None,
        listeners: Sequence[EventListener] = (),
        max_threads: int | None = None,
        stream: TextIO | None = None,
        color: bool | None = None,
        verbosity: Verbosity | str | None = None,
        events: EventTarget | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        secrets: Sequence[str] = (),
        only: Sequence[str] = (),
        skip: Sequence[str] = (),
        until: str | None = None,
        start_from: str | None = None,
        tracing: bool | None = None,
        store: str | os.PathLike[str] | bool | None = None,
        resume: str | None = None,
        pickle_results: bool = False,
        flow_file: str | os.PathLike[str] | None = None,
        handle_signals: bool = False,
        grace: float | None = None,
    ) -> None:
        self.only = _task_references("only", only)
        self.skip = _task_references("skip", skip)
        if until is not None and not isinstance(until, str):
            raise ConfigurationError(f"until={until!r} is not a task's key or a group's path")
        self.until = until
        if start_from is not None and (not isinstance(start_from, str) or not start_from):
            raise ConfigurationError(
                f"start_from={start_from!r} is not a task's key or a group's path"
            )
        self.start_from = start_from
        self.display: Display = _from_environment("FLOW2_DISPLAY", Display, display)
        self.verbosity: Verbosity = _from_environment(
            "FLOW2_VERBOSITY", Verbosity, verbosity, Verbosity.NORMAL
        )
        from ._listeners._event_file import events_target_from_environment  # json: only when used

        self.events = events_target_from_environment(events)
        self.listeners = list(listeners)
        self.max_threads = _max_threads_from_environment(max_threads)
        self.stream = stream
        self.color = color
        self.handle_signals = bool(handle_signals)
        self.grace = _grace_from_environment(grace)
        #: Why the event file of the last run stopped being written (a full disk), or None.
        self.events_error: OSError | None = None
        if log_dir is None:
            log_dir = os.environ.get("FLOW2_LOG_DIR") or None
        elif not isinstance(log_dir, str | os.PathLike) or not os.fspath(log_dir).strip():
            raise ConfigurationError(
                f"log_dir={log_dir!r} is not a directory path; give e.g. log_dir='logs'"
            )
        self.log_dir = log_dir
        self.secrets = _check_secrets(secrets)
        self.tracing = _tracing_from_environment(tracing)
        self.store: Path | None = None
        if store is not None or os.environ.get("FLOW2_STORE"):
            from ._store._database import store_directory  # sqlite3: only when used

            self.store = store_directory(store)
        if resume is not None and (not isinstance(resume, str) or not resume.strip()):
            raise ConfigurationError(
                f"resume={resume!r} is not a run; give a run id, a unique prefix, or 'last'"
            )
        if resume is not None and self.store is None:
            raise ConfigurationError(
                f"resume={resume!r} needs a run store; pass store='.flow2' (or another "
                f"directory), or set FLOW2_STORE"
            )
        if start_from is not None and self.store is None:
            raise ConfigurationError(
                f"start_from={start_from!r} takes the results of the tasks before it from the "
                f"run store; pass store='.flow2' (or another directory), or set FLOW2_STORE"
            )
        self.resume = resume
        self.pickle_results = bool(pickle_results)
        self.flow_file = os.path.abspath(flow_file) if flow_file is not None else None

    async def run(
        self, task: Task, context: Context | None = None, *, raises: bool = True
    ) -> Context:
        """Validate the tree under ``task``, run it, and return the filled context.

        :param task: the root of the tree
        :param context: the dict to start from; a new one when None
        :param raises: raise the failed task's exception, unchanged (else store it and return)
        :raises flow2.DefinitionError: when the tree is wrong; nothing ran
        :raises flow2.TaskTypeError: when something in the tree is not a Task
        :raises flow2.StoreError: when the store cannot be written, or the run to
            resume is not in it; nothing ran
        :raises Interrupted: with ``handle_signals=True``, when a signal
            interrupted the run (after it ended and reported everything)
        """
        if not self.handle_signals:
            return await self._run(task, context, raises)
        handling = _SignalHandling(self.grace)
        current = asyncio.current_task()
        cancelling = current.cancelling() if current is not None else 0
        handling.install()
        try:
            filled = await self._run(task, context, raises)
        except asyncio.CancelledError:
            if handling.signal is None:
                raise  # cancelled by its caller, not by a signal
        except Exception:
            if handling.signal is None:
                raise
            # The run's error is reported already; the signal decides the outcome.
        finally:
            handling.uninstall()
            if handling.killed:
                _tell(
                    f"flow2: killed what still ran {self.grace:g}s after the signal: "
                    + ", ".join(handling.killed)
                )
        if handling.signal is not None:
            # The cancellations were ours: the caller's task goes on.
            while current is not None and current.cancelling() > cancelling:
                current.uncancel()
            raise Interrupted(handling.signal)
        return filled

    async def _run(self, task: Task, context: Context | None, raises: bool) -> Context:
        self.events_error = None
        stored = None
        if self.start_from is not None:
            validate_tree(task)
            stored = await asyncio.to_thread(self._stored_results, task)
        plan: Plan | None = self._partial_run(task, stored)
        if self.store is None:
            return await execute(
                task,
                context,
                raises=raises,
                listeners=self.listeners_for_run,
                settings=self,
                plan=plan,
            )
        # Opening the store and reading the run to resume touch the disk:
        # done in a thread, never on the loop.
        recorder, resume_plan = await asyncio.to_thread(self._open_store, task, context)

        def listeners() -> list[EventListener]:
            from ._listeners._logging import TaskRecordRouter

            router = TaskRecordRouter(recorder.add_output, logging.INFO)
            return [*self.listeners_for_run(), router, recorder]

        try:
            if resume_plan is not None:
                if self.display is not Display.NONE:
                    stream = self.stream if self.stream is not None else sys.stdout
                    stream.write(resume_plan.announcement() + "\n")
                    stream.flush()
                plan = resume_plan if plan is None else _BothPlans(plan, resume_plan)
            return await execute(
                task, context, raises=raises, listeners=listeners, settings=self, plan=plan
            )
        finally:
            await recorder.wait_closed()

    def _open_store(
        self, task: Task, context: Context | None
    ) -> tuple[StoreRecorder, ResumePlan | None]:
        """The recorder of the run, and the plan when it resumes one (in a worker thread)."""
        from ._listeners._secrets import SecretMasker, is_secret_name
        from ._store._database import Store, keep_from_environment
        from ._store._recorder import StoreRecorder

        assert self.store is not None
        store = Store(self.store)
        keep = keep_from_environment()
        # Secret-named variables are secrets too: their values are masked
        # wherever they appear in what is stored.
        masker = SecretMasker.from_environment(
            [
                *self.secrets,
                *(
                    str(value)
                    for name, value in (context if isinstance(context, dict) else {}).items()
                    if is_secret_name(name) and isinstance(value, str | int | float)
                ),
            ]
        )
        # Not writable: fails before the run. The recorder's writer thread
        # goes on with this connection.
        connection = store.connect(create=True, shared=True)
        try:
            plan = self._resume_plan(store, connection, task, context)
        except BaseException:
            connection.close()
            raise
        recorder = StoreRecorder(
            store,
            flow_file=self.flow_file,
            pickle_results=self.pickle_results,
            masker=masker,
            plan=plan,
            keep=keep,
            connection=connection,
        )
        return recorder, plan

    def _resume_plan(
        self, store: Store, connection: sqlite3.Connection, task: Task, context: Context | None
    ) -> ResumePlan | None:
        """The plan of the resume asked for; None when there is nothing to resume."""
        from ._store._resume import ResumePlan

        previous = None
        if self.resume == "last":
            # Nothing to resume yet: the run runs every task, as a first run.
            previous = store.latest_run(connection, flow=self.flow_file, name=task.name)
        elif self.resume is not None:
            previous = store.find_run(connection, self.resume)
        if previous is None:
            return None
        return ResumePlan(
            previous,
            task,
            context if context is not None else {},
            pickle_results=self.pickle_results,
        )

    def dry_run(self, task: Task, context: Context | None = None) -> RunPlan:
        """What :meth:`run` would do with ``task``: each task run, skipped or reused, and why.

        Nothing runs. Conditions that read only the starting context (a flow's
        variables) are decided; the others are noted. With ``resume=``, the
        plan says which tasks the resume would reuse, and why the others run.

        :raises flow2.DefinitionError: when the tree is wrong, as :meth:`run` would
        """
        from ._engine._partial import plan_run

        validate_tree(task)
        stored = self._stored_results(task) if self.start_from is not None else None
        resume_plan = None
        if self.resume is not None:
            from ._store._database import Store

            assert self.store is not None
            store = Store(self.store)
            if store.path.is_file() or self.resume != "last":
                connection = store.connect()
                try:
                    resume_plan = self._resume_plan(store, connection, task, context)
                finally:
                    connection.close()
        return plan_run(
            task, dict(context or {}), self._partial_run(task, stored), resume=resume_plan
        )

    def _partial_run(
        self, task: Task, stored: tuple[str, dict[str, Any]] | None = None
    ) -> PartialRun | None:
        if not (self.only or self.skip or self.until is not None or self.start_from is not None):
            return None
        from ._engine._partial import PartialRun

        validate_tree(task)  # the references are resolved in a well-formed tree
        return PartialRun(
            task,
            only=self.only,
            skip=self.skip,
            until=self.until,
            start_from=self.start_from,
            stored_results=stored[1] if stored is not None else None,
            source=stored[0] if stored is not None else "the latest recorded run",
        )

    def _stored_results(self, task: Task) -> tuple[str, dict[str, Any]]:
        """The results ``start_from`` takes: those of the latest recorded run of this flow,
        with the name of that run.

        :raises flow2.StoreError: no store, or no run of this flow in it
        """
        from ._store._database import Store, StoreError
        from ._store._values import decode_result

        assert self.store is not None
        store = Store(self.store)
        of = self.flow_file if self.flow_file is not None else repr(task.name)
        if not store.path.is_file():
            raise StoreError(
                f"--from {self.start_from!r} takes the results of the tasks before it from the "
                f"latest recorded run of {of}, and there is no run store in {store.directory}; "
                f"run the whole flow first, or choose the store with --store or FLOW2_STORE",
                path=str(store.path),
            )
        connection = store.connect()
        try:
            previous = store.latest_run(connection, flow=self.flow_file, name=task.name)
        finally:
            connection.close()
        if previous is None:
            raise StoreError(
                f"--from {self.start_from!r}: no run of {of} is recorded in {store.directory} "
                f"to take the results before it from; run the whole flow first",
                path=str(store.path),
            )
        results: dict[str, Any] = {}
        for stored in previous.tasks:
            if stored.is_group or stored.status not in ("succeeded", "reused"):
                continue
            usable, value, _ = decode_result(
                stored.result_format, stored.result, pickle_results=self.pickle_results
            )
            if usable:
                results[stored.key] = value
        return f"run {previous.id}", results

    def listeners_for_run(self) -> list[EventListener]:
        """The listeners of one run: output, a display, the summary, logging, the event file,
        the user's."""
        # The listeners load with the first run, not with ``import flow2``.
        from ._listeners._closable import closable
        from ._listeners._console import PlainConsole
        from ._listeners._interrupt import InterruptNotice
        from ._listeners._logging import LoggingListener, TaskRecordRouter
        from ._listeners._output import TaskOutput
        from ._listeners._secrets import MaskLogRecords, SecretMasker

        masker = SecretMasker.from_environment(self.secrets)
        display = self._choose_display()
        verbosity = self.verbosity
        github = is_github_actions()
        # First: it puts each task's output on the event that ends the task.
        output = TaskOutput(
            masker,
            log_dir=self.log_dir,
            capture_prints=display is not Display.NONE,
            log_lines=display is Display.NONE,
        )
        listeners: list[EventListener] = [output, MaskLogRecords(masker)]
        shown: PlainConsole | LiveView | None = None
        # One stream for the display and the summary, which turns quiet when
        # its reader goes away (``| head``): see test_a_closed_stdout_fails_no_task.
        stream = closable(self.stream) if display is not Display.NONE else None
        if display is Display.LIVE:
            from ._listeners._live import LiveView  # imports rich: only when used

            shown = LiveView(
                stream,
                color=self.color,
                verbosity=verbosity,
                force_terminal=self.display is Display.LIVE,
                masker=masker,
                output=output,
            )
        elif display is Display.PLAIN:
            shown = PlainConsole(
                stream,
                color=self.color,
                verbosity=verbosity,
                masker=masker,
                output=output,
                github=github,
            )
        if shown is not None:
            output.display = shown
            listeners += [
                TaskRecordRouter(_show_record(output, shown), verbosity.log_level),
                shown,
                InterruptNotice([shown]),
            ]
            from ._listeners._summary import SummaryListener

            events = self.events if isinstance(self.events, str | os.PathLike) else None
            listeners.append(
                SummaryListener(
                    stream,
                    color=self.color,
                    verbosity=verbosity,
                    masker=masker,
                    output=output,
                    events=os.fspath(events) if events is not None else None,
                )
            )
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if github and step_summary:
            from ._listeners._github import StepSummary

            listeners.append(StepSummary(step_summary, masker=masker, output=output))
        listeners.append(LoggingListener())
        if self.events is not None:
            from ._listeners._event_file import EventFile

            event_file = EventFile(self.events, masker=masker)
            event_file.open()  # a path that cannot be written fails before the run
            listeners += [event_file, _EventFileWatch(self, event_file)]
        if self.tracing:
            from ._reports._otel import TracingListener  # imports opentelemetry: only when used

            listeners.append(TracingListener())
        listeners.extend(self.listeners)
        return listeners

    def _choose_display(self) -> Display:
        """The display to use: AUTO becomes LIVE on a terminal with rich, else PLAIN.

        :raises flow2.ConfigurationError: LIVE was asked for and rich is missing
        """
        has_rich = _installed("rich")
        if self.display is Display.LIVE:
            if not has_rich:
                raise ConfigurationError(
                    "display='live' needs rich, which is not installed; "
                    "install flow2[live] (pip install '<your flow2 clone or wheel>[live]'), "
                    "or use display='plain'"
                )
            return Display.LIVE
        if self.display is Display.AUTO:
            stream = self.stream if self.stream is not None else sys.stdout
            isatty = getattr(stream, "isatty", None)
            is_dumb = os.environ.get("TERM") == "dumb"  # cannot move the cursor
            # Under CI a pseudo-terminal is no person watching: plain lines
            # make a log that reads well afterwards.
            if has_rich and isatty is not None and isatty() and not is_dumb and not is_ci():
                return Display.LIVE
            return Display.PLAIN
        return self.display


def _show_record(
    output: TaskOutput, display: PlainConsole | LiveView
) -> Callable[[logging.LogRecord], None]:
    """What the task record router calls: keep the record with the task's output, show it."""

    def show(record: logging.LogRecord) -> None:
        output.add_record(record, record_text(record))
        display.show_record(record)

    from ._listeners._text import record_text

    return show


class _BothPlans:
    """A partial run's plan first (what it leaves out stays out), then a resume's."""

    def __init__(self, first: Plan, second: Plan) -> None:
        self.first = first
        self.second = second

    def decide(self, record: TaskRun, context: Context) -> Decision | None:
        decision = self.first.decide(record, context)
        return decision if decision is not None else self.second.decide(record, context)


class _EventFileWatch:
    """Keeps on the runner why the run's event file stopped being written (for the exit code)."""

    def __init__(self, runner: Runner, event_file: Any) -> None:
        self.runner = runner
        self.event_file = event_file

    def __call__(self, event: object) -> None:
        if type(event) is RunEvent and event.status.is_finished:
            self.runner.events_error = self.event_file.error


def _tell(message: str, stream: TextIO | None = None) -> None:
    """A line for the person on stderr; nothing when stderr is closed."""
    try:
        print(message, file=stream or sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


set_default_runner(Runner)
