"""The runner: the one owner of a run, and :func:`flow2.run` for synchronous code.

:class:`Runner` holds a run's :class:`~flow2._running._settings.RunSettings`
(read once), and :meth:`Runner.execute` goes one way through a run: the
store and the plans it asks for, the listeners built from the settings,
the signals, the engine, and back with a :class:`~flow2.RunResult`.
``task.run()`` on a root uses a default :class:`Runner`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from signal import SIGINT
from typing import TYPE_CHECKING, Any, TextIO

from .._engine._exceptions import TaskTypeError
from .._engine._run import create_run, drive, set_default_runner, validate_tree
from .._engine._task import Task
from ._assembly import RunListeners
from ._plans import open_recorder, planned_resume, stored_results
from ._result import RunResult
from ._settings import RunSettings
from ._signals import Interrupted, SignalHandling, takes_keyboard_interrupt, tell

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .._engine._caching import Cache
    from .._engine._events import EventListener
    from .._engine._executor import Executor
    from .._engine._partial import PartialRun, RunPlan
    from .._engine._run import Run
    from .._engine._selection import Selection
    from .._engine._slots import JobSlots
    from .._engine._task import Context
    from .._listeners._event_file import EventTarget
    from .._listeners._settings import Display, Verbosity


class Runner:
    """Runs task trees with chosen settings; ``task.run()`` uses the defaults.

    Every argument left None takes its environment variable, then the
    default. The settings are read once, when the runner is made; one
    runner may run many trees, one after another or at once.

    :param display: :class:`Display` or its value; ``FLOW2_DISPLAY``, else "auto":
        the live view when ``stream`` is a terminal and rich is installed;
        plain lines under CI, for a run that owns the process (``flow2 run``,
        :func:`flow2.run`) and when a person at a terminal reads the
        redirected output; nothing for a run embedded in a process with no
        terminal (a service, a worker)
    :param verbosity: :class:`Verbosity` or its value; ``FLOW2_VERBOSITY``, else "normal"
    :param events: a file path or text stream receiving every event as a JSON
        line (lines whole, written at every task's end and at least every 0.2 s;
        a new file is owner-only); ``FLOW2_EVENTS`` (a path), else none
    :param listeners: more event listeners, called after the built-in ones
    :param max_threads: size of a thread pool of the run's own for sync
        callbacks; ``FLOW2_MAX_THREADS``, else the pool that every run of
        the process shares (sized once, CPU count + 4 and at most 32)
    :param jobs: at most this many leaf tasks work at once, across the whole
        run (a task waiting for its needs holds no slot); shell tasks share
        the slots with the make, ninja and cargo they run, through a GNU make
        jobserver (docs/flows.md); ``FLOW2_JOBS``, else no limit. A run
        started by a make serving a jobserver (``flow2 run``, :func:`flow2.run`,
        or with ``jobs``) takes its slots from that make's pool
    :param executor: where sync callbacks run by default: any
        :class:`concurrent.futures.Executor` (a ``ThreadPoolExecutor`` of the
        application's, say) or a :class:`flow2.Executor`; a task's own
        ``executor=`` still wins
    :param stream: where the console writes; ``sys.stdout`` when None
    :param color: force color on or off; decided from the stream, ``NO_COLOR``,
        ``FORCE_COLOR`` and ``TERM=dumb`` when None
    :param log_dir: a directory for one log file per task, with everything the
        task printed (``{run_id}`` in it becomes the run's id);
        ``FLOW2_LOG_DIR``, else none (no file is written)
    :param secrets: values never shown: replaced by ``***`` in everything the
        run writes (console, live view, summary, log records and files, event
        file, store). Values of environment variables named like secrets (TOKEN,
        SECRET, PASSWORD, ...) and of such context entries are masked anyway.
    :param store: the run store directory to record the run in; True for
        ``FLOW2_STORE`` else ``.flow2``; False for none; None for ``FLOW2_STORE``
        when it is set, else none (a library call records nothing unless asked)
    :param resume: a recorded run to resume (its id, a unique prefix, or
        ``"last"``): tasks that succeeded in it are reused, unless something
        they depend on changed (see docs/store.md); needs a store
    :param pickle_results: store results that JSON cannot hold exactly as
        pickles, and load pickled results when resuming (only for stores you trust)
    :param cache: True: reuse the stored result of any earlier run of the same
        flow whose reuse key equals the task's (a task's or group's ``cache``
        attribute says otherwise for it); needs a store (see docs/store.md).
        Or how far the tasks that ask for the cache use it: ``"on"`` (reuse and
        write entries), ``"read-only"`` (reuse, write none: for CI) or ``"off"``
        (neither; a resume still reuses its lineage). With None, True or
        False, the mode is ``FLOW2_CACHE``'s, else ``"on"``. A
        :class:`flow2.Cache` is True with options: ``Cache(restore_outputs=True)``
        keeps every cached task's outputs and puts them back when missing
    :param force: tasks that run even when a stored result could be reused
        (result keys, paths such as ``"release/wheel"``, or names; a group
        forces every task in it); the reason says "forced"
    :param flow_file: the flow file the tree was loaded from, recorded with
        the run; ``resume="last"`` picks the newest run of this file (else of
        a root with the same name)
    :param select: run these tasks (result keys or group paths such as
        ``"release/checks"``) and the tasks they need, and nothing else: the
        other tasks are not part of the run (no event, record or count names
        them), as ``flow2 run NAME`` does; their reuse keys are those of a run
        of the whole tree
    :param only: run only these tasks (result keys or group paths such as
        ``"release/checks"``) and the tasks they need; the rest are SKIPPED
    :param skip: leave these tasks out (SKIPPED, and so are the tasks needing them)
    :param until: run the tasks up to this one and what it needs, none after it
    :param start_from: start at this task (a result key or a group's path):
        the tasks before it do not run, their results are taken from the
        latest recorded run of the same flow file (else of a root with the
        same name); needs a store
    :param handle_signals: take SIGINT, SIGTERM and SIGHUP while a run runs:
        cancel it cleanly (the result's ``signal`` and ``exit_code`` say so;
        :meth:`run` raises :class:`flow2.Interrupted`); off by default, so
        flow2 installs no handler, except for SIGINT where Python's own
        handler would raise KeyboardInterrupt anywhere (IPython, a notebook):
        there Ctrl-C cancels the run, which ends whole, and KeyboardInterrupt
        is raised after it
    :param grace: seconds stopped commands and worker processes get between
        SIGTERM and SIGKILL when a signal interrupts the run, and that worker
        threads get to finish before the process may exit without them;
        ``FLOW2_GRACE``, else 5
    :param tracing: emit OpenTelemetry spans (a span per run and per task) to
        the application's tracer provider; ``FLOW2_OTEL``, else off. Needs
        ``flow2[otel]``; when off, nothing of OpenTelemetry is imported
    :param report: write the HTML timeline report of each run to this file
        when it ends, however it ends (``flow2 run --report``)
    :param variables: the variables a flow was loaded with, shown in the report
    :param environ: the environment to read the settings from; ``os.environ`` when None
    :raises flow2.ConfigurationError: on a bad option or environment variable

    Example::

        result = await flow2.Runner(display="none").execute(workflow, {"env": "prod"})
        if not result.succeeded:
            print(result.failures)
    """

    def __init__(
        self,
        *,
        display: Display | str | None = None,
        listeners: Sequence[EventListener] = (),
        max_threads: int | None = None,
        jobs: int | None = None,
        executor: Executor | concurrent.futures.Executor | None = None,
        stream: TextIO | None = None,
        color: bool | None = None,
        verbosity: Verbosity | str | None = None,
        events: EventTarget | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        secrets: Sequence[str] = (),
        select: Sequence[str] = (),
        only: Sequence[str] = (),
        skip: Sequence[str] = (),
        until: str | None = None,
        start_from: str | None = None,
        tracing: bool | None = None,
        store: str | os.PathLike[str] | bool | None = None,
        resume: str | None = None,
        pickle_results: bool = False,
        cache: bool | str | Cache | None = None,
        force: Sequence[str] = (),
        flow_file: str | os.PathLike[str] | None = None,
        handle_signals: bool = False,
        grace: float | None = None,
        report: str | os.PathLike[str] | None = None,
        variables: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = RunSettings.from_options(
            environ=environ,
            display=display,
            verbosity=verbosity,
            events=events,
            listeners=listeners,
            max_threads=max_threads,
            jobs=jobs,
            executor=executor,
            stream=stream,
            color=color,
            log_dir=log_dir,
            secrets=secrets,
            select=select,
            only=only,
            skip=skip,
            until=until,
            start_from=start_from,
            tracing=tracing,
            store=store,
            resume=resume,
            pickle_results=pickle_results,
            cache=cache,
            force=force,
            flow_file=flow_file,
            handle_signals=handle_signals,
            grace=grace,
            report=report,
            variables=variables,
        )

    @classmethod
    def from_settings(cls, settings: RunSettings) -> Runner:
        """A runner with settings already read (what :func:`flow2.run` and the CLI use)."""
        runner = cls.__new__(cls)
        runner.settings = settings
        return runner

    async def execute(self, tree: Task, context: Context | None = None) -> RunResult:
        """Run the tree under ``tree`` and return how it went; a task's failure is not raised.

        :param tree: the root of the tree
        :param context: the dict to start from; a new one when None
        :returns: the :class:`flow2.RunResult`: status, counts, failures, exit code
        :raises flow2.DefinitionError: when the tree is wrong; nothing ran
        :raises flow2.TaskTypeError: when something in the tree is not a Task
        :raises flow2.StoreError: when the store cannot be opened, or the run to
            resume is not in it; nothing ran
        :raises KeyboardInterrupt: after the run ended whole, when Ctrl-C
            interrupted it where Python's own SIGINT handler was in place (IPython,
            a notebook, a loop run with ``run_until_complete``)
        """
        run, signal, problems = await self._execute(tree, context, raises=False)
        return RunResult.of(run, signal=signal, recording_errors=problems)

    async def run(
        self, task: Task, context: Context | None = None, *, raises: bool = True
    ) -> Context:
        """Run the tree under ``task`` and return the filled context (see :meth:`execute`).

        :param raises: raise the failed task's exception, unchanged (else store it and return)
        :raises Interrupted: with ``handle_signals=True``, when a signal
            interrupted the run (after it ended and reported everything)
        """
        # Only the context: what a run returns is not counted here.
        run, signal, _ = await self._execute(task, context, raises=raises)
        if signal is not None:
            raise Interrupted(signal)
        return run.context

    async def _execute(
        self, task: Task, context: Context | None, *, raises: bool
    ) -> tuple[Run, int | None, list[str]]:
        """Drive one run; return it, the signal that stopped it, and what it could not record."""
        settings = self.settings
        if not isinstance(task, Task):
            raise TaskTypeError(
                f"Runner.execute() needs a flow2.Task, got {task!r} ({type(task).__name__})",
                value=task,
            )
        selection = _selected(task, settings)
        if selection is not None:
            task = selection.root
        handling = None
        if settings.handle_signals:
            handling = SignalHandling(settings.grace)
        elif takes_keyboard_interrupt():
            # Ctrl-C would raise KeyboardInterrupt at any bytecode (IPython,
            # a notebook): taken while the run runs, it cancels the run,
            # which ends whole, and KeyboardInterrupt is raised after. See
            # test_ctrl_c_in_a_loop_run_until_complete_ends_the_run_whole.
            handling = SignalHandling(settings.grace, (SIGINT,))
        if handling is not None:
            handling.install()
        run: Run | None = None
        problems: list[str] = []
        try:
            stored = None
            if settings.start_from is not None:
                stored = await asyncio.to_thread(stored_results, settings, task)
            recorder = resume = None
            if settings.store is not None:
                # Opening the store and reading the run to resume touch the
                # disk: done in a thread, never on the loop.
                recorder, resume = await asyncio.to_thread(
                    open_recorder, settings, task, context, selection
                )
            try:
                # The tree is checked, and its needs analysed, once: here.
                run = create_run(task, context, settings)
                run.slots = job_slots(settings)
                listeners = RunListeners(settings, recorder)
                run.listeners = listeners.listeners
                run.plan = self._partial_run(run, stored)
                run.reuser = resume
                for notice in resume.notices if resume is not None else ():
                    tell(f"flow2: {notice}")
                if (
                    resume is not None
                    and resume.previous is not None
                    and listeners.display.value != "none"
                ):
                    _announce(settings.stream, resume.announcement())
                if handling is not None:
                    handling.watch(run)
                try:
                    await drive(run, raises=raises)
                finally:
                    event_file = listeners.event_file
                    if event_file is not None and event_file.error is not None:
                        problems.append(
                            f"the events file {settings.events!r} could not be written "
                            f"({event_file.error}); its events are incomplete"
                        )
            finally:
                if run is not None and run.slots is not None:
                    run.slots.close()
                if recorder is not None:
                    failure = await recorder.wait_closed()
                    for notice in recorder.notices:
                        tell(f"flow2: {notice}")
                    if failure is not None:
                        problems.append(failure)
        except asyncio.CancelledError:
            if handling is None or handling.signal is None or run is None:
                raise  # cancelled by its caller, not by a signal
        except Exception:
            if handling is None or handling.signal is None or run is None:
                raise
            # The run's error is reported already; the signal decides the outcome.
        finally:
            if handling is not None:
                handling.uninstall()
        for problem in problems:
            tell(f"flow2: {problem}")
        assert run is not None
        if handling is not None and handling.keyboard_interrupt:
            raise KeyboardInterrupt  # the run has ended whole: the caller's turn
        return run, handling.signal if handling is not None else None, problems

    def dry_run(self, task: Task, context: Context | None = None) -> RunPlan:
        """What :meth:`execute` would do with ``task``: each task run, skipped or reused, and why.

        Nothing runs. Conditions that read only the starting context (a flow's
        variables) are decided; the others are noted. With ``resume=`` (or the
        cache: ``cache=True``, a task's ``cache``), the plan says which tasks
        would be reused, and why the others run: keys are computed from what is
        known before the run (see docs/store.md).

        :returns: a :class:`flow2.RunPlan`
        :raises flow2.DefinitionError: when the tree is wrong, as :meth:`execute` would
        """
        from .._engine._partial import PartialRun, plan_run

        settings = self.settings
        selection = _selected(task, settings)
        if selection is not None:
            task = selection.root
        needs = validate_tree(task, context=context)[1]
        partial = None
        if settings.is_partial:
            stored = stored_results(settings, task) if settings.start_from is not None else None
            partial = PartialRun(task, needs=needs, **_partial_options(settings, stored))
        return plan_run(
            task,
            dict(context or {}),
            partial,
            resume=planned_resume(settings, task, context, selection),
            needs=needs,
        )

    def _partial_run(
        self, run: Run, stored: tuple[str, dict[str, Any]] | None
    ) -> PartialRun | None:
        if not self.settings.is_partial:
            return None
        from .._engine._partial import PartialRun

        return PartialRun(run.root, needs=run.needs, **_partial_options(self.settings, stored))


def _selected(task: Task, settings: RunSettings) -> Selection | None:
    """The tree under ``task`` pruned to the tasks ``select`` names, or None to run it whole.

    :raises flow2.DefinitionError: the tree is wrong, or a name names no task or several
    """
    if not settings.select:
        return None
    from .._engine._selection import select_tasks

    # The whole tree is checked (the run checks the pruned one again, with
    # its context): a named run refuses a wrong file as a full one does.
    needs = validate_tree(task)[1]
    selection = select_tasks(task, settings.select, needs=needs)
    for option, references in (
        ("--only", settings.only),
        ("--skip", settings.skip),
        ("--until", (settings.until,) if settings.until is not None else ()),
        ("--from", (settings.start_from,) if settings.start_from is not None else ()),
    ):
        for reference in references:
            selection.check_reference(reference, option)
    return selection


def _partial_options(
    settings: RunSettings, stored: tuple[str, dict[str, Any]] | None
) -> dict[str, Any]:
    return {
        "only": settings.only,
        "skip": settings.skip,
        "until": settings.until,
        "start_from": settings.start_from,
        "stored_results": stored[1] if stored is not None else None,
        "source": stored[0] if stored is not None else "the latest recorded run",
    }


def job_slots(settings: RunSettings) -> JobSlots | None:
    """The job slots of a run with these settings: a jobserver of its own for
    ``jobs``, or the pool of the make that started flow2; None for no limit."""
    from .._engine._slots import JobSlots, TokenPool, jobserver_auth

    makeflags = settings.makeflags
    if makeflags is not None and (settings.owns_process or settings.jobs is not None):
        auth = jobserver_auth(makeflags)
        assert auth is not None
        joined = TokenPool.join(auth, makeflags)
        if joined is not None:
            return JobSlots(settings.jobs, joined)
    if settings.jobs is None:
        return None
    try:
        pool = TokenPool.serve(settings.jobs)
    except OSError:  # no fifo here (a read-only temporary directory): slots without make
        pool = None
    return JobSlots(settings.jobs, pool)


def _announce(stream: TextIO | None, text: str) -> None:
    import sys

    stream = stream if stream is not None else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def run(tree: Task, context: Context | None = None, **runner_options: Any) -> RunResult:
    """Run the tree under ``tree`` from synchronous code and return its :class:`flow2.RunResult`.

    Like :func:`asyncio.run`: it starts an event loop, runs, and closes the
    loop; it is the program's run, so it behaves like ``flow2 run``: in the
    main thread it takes SIGINT, SIGTERM and SIGHUP (``handle_signals=False``
    to leave them to the application), and with ``display="auto"`` it prints
    plain lines when stdout is not a terminal. A task's failure is in the
    result, never raised; end a script the way the command ends::

        result = flow2.run(workflow)
        raise SystemExit(result.exit_code)

    :param tree: the root of the tree
    :param context: the dict to start from; a new one when None
    :param runner_options: any of :class:`flow2.Runner`'s options
    :raises flow2.DefinitionError: when the tree is wrong; nothing ran
    :raises flow2.ConfigurationError: on a bad option or environment variable
    """
    import threading

    runner_options.setdefault(
        "handle_signals", threading.current_thread() is threading.main_thread()
    )
    settings = RunSettings.from_options(owns_process=True, **runner_options)
    return asyncio.run(Runner.from_settings(settings).execute(tree, context))


set_default_runner(Runner)
