"""A run's settings: the options a caller gives, the environment read once, checked.

:class:`RunSettings` is a frozen value object: the only reader of the
``FLOW2_*`` variables and of what the environment says about where a run
is (``CI`` and other CI services' markers, ``GITHUB_*``, ``NO_COLOR``,
``FORCE_COLOR``, ``TERM``). Everything downstream (the listener assembly,
the executors, the store) reads the settings, never ``os.environ``; a test
hands :meth:`RunSettings.from_options` an environment mapping of its own.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from .._engine._caching import Cache
from .._engine._exceptions import ConfigurationError
from .._engine._executor import Executor
from .._listeners._settings import Display, Verbosity

if TYPE_CHECKING:
    from pathlib import Path

    from .._engine._events import EventListener
    from .._listeners._event_file import EventTarget

#: Seconds between SIGTERM and SIGKILL when a run is interrupted, by default (as ``docker stop``).
DEFAULT_GRACE = 5.0

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

_TRUE = ("1", "true", "yes", "on")


class CacheMode(enum.Enum):
    """What a run does with the cache (``--cache``, ``Runner(cache=)``, ``FLOW2_CACHE``).

    The tasks (and ``Runner(cache=True)``) say which tasks use the cache;
    the mode says how far.
    """

    #: Reuse entries and write new ones.
    ON = "on"
    #: Reuse entries, write none (CI that must not grow or change the cache).
    READ_ONLY = "read-only"
    #: Neither reuse nor write cache entries (``--no-cache``); a resume still works.
    OFF = "off"


_FALSE = ("", "0", "false", "no", "off")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """Everything one run is started with, checked; built by :meth:`from_options`.

    The fields are those of :class:`flow2.Runner` (see there), resolved:
    each option left None took its environment variable, then its default.
    The facts about the environment the run is in come last.
    """

    display: Display = Display.AUTO
    verbosity: Verbosity = Verbosity.NORMAL
    events: EventTarget | None = None
    listeners: tuple[EventListener, ...] = ()
    max_threads: int | None = None
    jobs: int | None = None
    executor: Executor | concurrent.futures.Executor | None = None
    stream: TextIO | None = None
    color: bool | None = None
    log_dir: str | os.PathLike[str] | None = None
    secrets: tuple[str, ...] = ()
    #: The tasks run by name (``flow2 run NAME…``): the tree is pruned to them.
    select: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    until: str | None = None
    start_from: str | None = None
    tracing: bool = False
    store: Path | None = None
    store_keep: int | None = None
    resume: str | None = None
    pickle_results: bool = False
    cache: bool = False
    #: ``Runner(cache=flow2.Cache(restore_outputs=True))``: every task keeps and
    #: restores its outputs unless its own ``cache=`` says otherwise.
    cache_restore: bool = False
    #: How far the run uses the cache: ``cache=`` as a mode, else ``FLOW2_CACHE``, else on.
    cache_mode: CacheMode = CacheMode.ON
    #: Tasks that run even when reusable (``force=``, ``--force``): keys, paths or names.
    force: tuple[str, ...] = ()
    #: ``FLOW2_CACHE_SALT``: part of every reuse key (change it to reuse nothing stored before).
    cache_salt: str = ""
    flow_file: str | None = None
    handle_signals: bool = False
    grace: float = DEFAULT_GRACE
    report: str | None = None
    variables: Mapping[str, Any] | None = None
    #: The run owns the process (``flow2 run``, :func:`flow2.run`): with
    #: ``display="auto"`` it prints plain lines when nobody watches a terminal,
    #: where a run embedded in a service prints nothing.
    owns_process: bool = False
    # What the environment says, read once.
    is_ci: bool = False
    is_github_actions: bool = False
    github_step_summary: str | None = None
    is_dumb_terminal: bool = False
    dask_address: str | None = None
    #: ``MAKEFLAGS`` when it names a make's jobserver (``--jobserver-auth``)
    #: that a run owning the process joins (see :func:`flow2._engine._slots.jobserver_auth`).
    makeflags: str | None = None
    #: The environment the settings were read from (secret-named variables are masked).
    environ: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def from_options(
        cls,
        *,
        environ: Mapping[str, str] | None = None,
        display: Display | str | None = None,
        verbosity: Verbosity | str | None = None,
        events: EventTarget | None = None,
        listeners: Sequence[EventListener] = (),
        max_threads: int | None = None,
        jobs: int | None = None,
        executor: Executor | concurrent.futures.Executor | None = None,
        stream: TextIO | None = None,
        color: bool | None = None,
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
        cache: bool | str | CacheMode | Cache | None = None,
        force: Sequence[str] = (),
        flow_file: str | os.PathLike[str] | None = None,
        handle_signals: bool = False,
        grace: float | None = None,
        report: str | os.PathLike[str] | None = None,
        variables: Mapping[str, Any] | None = None,
        owns_process: bool = False,
    ) -> RunSettings:
        """Check the options, fill the ones left None from ``environ``.

        :param environ: the environment to read; ``os.environ`` (copied) when None
        :raises flow2.ConfigurationError: on a bad option or environment variable,
            naming it (``error.option``, ``error.value``)
        """
        environ = dict(os.environ if environ is None else environ)
        from .._listeners._event_file import check_events_target  # json: only when used

        raw_events = environ.get("FLOW2_EVENTS") or None
        if events is None and raw_events is not None:
            events = check_events_target(raw_events, "FLOW2_EVENTS")
        elif events is not None:
            events = check_events_target(events, None)
        if until is not None and not isinstance(until, str):
            raise ConfigurationError(
                f"until={until!r} is not a task's key or a group's path",
                option="until",
                value=until,
            )
        if start_from is not None and (not isinstance(start_from, str) or not start_from):
            raise ConfigurationError(
                f"start_from={start_from!r} is not a task's key or a group's path",
                option="start_from",
                value=start_from,
            )
        if log_dir is None:
            log_dir = environ.get("FLOW2_LOG_DIR") or None
        elif not isinstance(log_dir, str | os.PathLike) or not os.fspath(log_dir).strip():
            raise ConfigurationError(
                f"log_dir={log_dir!r} is not a directory path; give e.g. log_dir='logs'",
                option="log_dir",
                value=log_dir,
            )
        store_path = _store_directory(store, environ)
        if resume is not None and (not isinstance(resume, str) or not resume.strip()):
            raise ConfigurationError(
                f"resume={resume!r} is not a run; give a run id, a unique prefix, or 'last'",
                option="resume",
                value=resume,
            )
        restore = isinstance(cache, Cache) and cache.restore_outputs
        if isinstance(cache, Cache):
            cache = True
        cache_mode = _cache_mode(cache, environ)
        if cache is True and store_path is None:
            raise ConfigurationError(
                f"cache={'flow2.Cache(…)' if restore else 'True'} needs a run store to keep "
                "results in; pass store='.flow2' "
                "(or another directory), or set FLOW2_STORE",
                option="cache",
                value=cache,
            )
        if resume is not None and store_path is None:
            raise ConfigurationError(
                f"resume={resume!r} needs a run store; pass store='.flow2' (or another "
                f"directory), or set FLOW2_STORE",
                option="resume",
                value=resume,
            )
        if start_from is not None and store_path is None:
            raise ConfigurationError(
                f"start_from={start_from!r} takes the results of the tasks before it from the "
                f"run store; pass store='.flow2' (or another directory), or set FLOW2_STORE",
                option="start_from",
                value=start_from,
            )
        if executor is not None and not isinstance(
            executor, Executor | concurrent.futures.Executor
        ):
            raise ConfigurationError(
                f"executor={executor!r} is neither a flow2.Executor nor a "
                f"concurrent.futures.Executor; pass e.g. "
                f"concurrent.futures.ThreadPoolExecutor(8)",
                option="executor",
                value=executor,
            )
        if report is not None:
            if not isinstance(report, str | os.PathLike) or not os.fspath(report).strip():
                raise ConfigurationError(
                    f"report={report!r} is not a file path; give e.g. report='run.html'",
                    option="report",
                    value=report,
                )
            from .._reports._writing import check_writable

            # Fails now, not after the run.
            check_writable(os.fspath(report), "report", option="report")
        return cls(
            display=_choice("display", Display, display, environ),
            verbosity=_choice("verbosity", Verbosity, verbosity, environ, Verbosity.NORMAL),
            events=events,
            listeners=tuple(listeners),
            max_threads=_max_threads(max_threads, environ),
            jobs=_jobs(jobs, environ),
            executor=executor,
            stream=stream,
            color=_color(color, environ),
            log_dir=log_dir,
            secrets=_secrets(secrets),
            select=_task_references("select", select) if select else (),
            only=_task_references("only", only),
            skip=_task_references("skip", skip),
            until=until,
            start_from=start_from,
            tracing=_tracing(tracing, environ),
            store=store_path,
            store_keep=_store_keep(environ) if store_path is not None else None,
            resume=resume,
            pickle_results=bool(pickle_results),
            cache=cache is True,
            cache_restore=restore,
            cache_mode=cache_mode,
            force=_task_references("force", force) if force else (),
            cache_salt=environ.get("FLOW2_CACHE_SALT", ""),
            flow_file=os.path.abspath(flow_file) if flow_file is not None else None,
            handle_signals=bool(handle_signals),
            grace=_grace(grace, environ),
            report=os.fspath(report) if report is not None else None,
            variables=dict(variables) if variables is not None else None,
            owns_process=owns_process,
            is_ci=_is_ci(environ),
            is_github_actions=environ.get("GITHUB_ACTIONS", "").lower() == "true",
            github_step_summary=environ.get("GITHUB_STEP_SUMMARY") or None,
            is_dumb_terminal=environ.get("TERM") == "dumb",
            dask_address=environ.get("FLOW2_DASK_ADDRESS") or None,
            makeflags=_makeflags(environ),
            environ=environ,
        )

    @property
    def is_partial(self) -> bool:
        """Whether the run leaves tasks out or starts from one (``only``, ``skip``, …)."""
        return bool(self.only or self.skip or self.until is not None or self.start_from)

    def chosen_display(self) -> Display:
        """The display to use: AUTO decided from the stream, the terminal and CI.

        AUTO is the live view on a terminal (plain lines under CI or with
        ``TERM=dumb``, and without rich). Away from a terminal it is plain
        lines when the run owns the process or a person or a CI service
        reads what the process prints, and nothing for a run embedded in a
        process with no terminal (a service, a worker).

        :raises flow2.ConfigurationError: LIVE was asked for and rich is missing
        """
        if self.display is Display.LIVE:
            if not _installed("rich"):
                raise ConfigurationError(
                    "display='live' needs rich, which is not installed; "
                    "install flow2[live] (pip install '<your flow2 clone or wheel>[live]'), "
                    "or use display='plain'",
                    option="display",
                    value="live",
                )
            return Display.LIVE
        if self.display is not Display.AUTO:
            return self.display
        stream = self.stream if self.stream is not None else sys.stdout
        if _is_terminal(stream):
            # Under CI a pseudo-terminal is no person watching: plain lines
            # make a log that reads well afterwards.
            if not self.is_dumb_terminal and not self.is_ci and _installed("rich"):
                return Display.LIVE
            return Display.PLAIN
        if self.owns_process or self.is_ci or self.stream is not None:
            return Display.PLAIN
        # Embedded: a person at a terminal whose stdout is redirected still
        # reads the lines; a service or a worker has no terminal at all.
        # See test_an_embedded_run_writes_nothing_to_stdout.
        if any(_is_terminal_descriptor(descriptor) for descriptor in (0, 1, 2)):
            return Display.PLAIN
        return Display.NONE


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except (OSError, ValueError):  # closed
        return False


def _is_terminal_descriptor(descriptor: int) -> bool:
    try:
        return os.isatty(descriptor)
    except OSError:
        return False


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _is_ci(environ: Mapping[str, str]) -> bool:
    """True when a CI service runs us: ``CI`` set (not to false or 0), or another CI's marker."""
    value = environ.get("CI", "").strip().lower()
    if value and value not in ("0", "false", "no"):
        return True
    return any(environ.get(marker) for marker in CI_MARKERS)


def _choice(
    option: str,
    enum_type: type[enum.Enum],
    value: Any,
    environ: Mapping[str, str],
    default: enum.Enum | None = None,
) -> Any:
    """``value`` as ``enum_type``, else ``FLOW2_<OPTION>``'s, else ``default`` (the first)."""
    variable = f"FLOW2_{option.upper()}"
    source = None
    if value is None:
        value = environ.get(variable) or (default or next(iter(enum_type))).value
        source = variable
    try:
        return enum_type(value.lower() if isinstance(value, str) else value)
    except ValueError:
        accepted = ", ".join(member.value for member in enum_type)
        where = f"environment variable {source}" if source else "argument"
        raise ConfigurationError(
            f"{where} {option}={value!r} is not one of: {accepted}",
            option=option,
            value=value,
            variable=source,
        ) from None


def _color(value: bool | None, environ: Mapping[str, str]) -> bool | None:
    """``value``, else off for ``NO_COLOR`` or ``TERM=dumb``, on for ``FORCE_COLOR``;
    None leaves it to the stream (color on a terminal)."""
    if value is not None:
        return bool(value)
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR"):
        return True
    if environ.get("TERM") == "dumb":
        return False
    return None


def _secrets(secrets: Sequence[str]) -> tuple[str, ...]:
    if isinstance(secrets, str) or not all(isinstance(value, str) for value in secrets):
        raise ConfigurationError(
            f"secrets={secrets!r} is not a list of strings; pass the secret values, "
            f"e.g. secrets=[os.environ['DEPLOY_KEY']]",
            option="secrets",
        )
    return tuple(secrets)


def _tracing(value: bool | None, environ: Mapping[str, str]) -> bool:
    """``value``, else ``FLOW2_OTEL`` (1/true/yes/on or 0/false/no/off), else False.

    :raises flow2.ConfigurationError: on another value, or when tracing is
        asked for and opentelemetry-api is not installed
    """
    if value is None:
        raw = environ.get("FLOW2_OTEL", "").strip().lower()
        if raw in _FALSE:
            return False
        if raw not in _TRUE:
            raise ConfigurationError(
                f"environment variable FLOW2_OTEL={raw!r} is not one of: 1, true, yes, on, "
                f"0, false, no, off",
                option="tracing",
                value=raw,
                variable="FLOW2_OTEL",
            )
        value = True
    elif not isinstance(value, bool):
        raise ConfigurationError(
            f"tracing={value!r} is not True or False", option="tracing", value=value
        )
    if value and not _installed("opentelemetry"):
        raise ConfigurationError(
            "tracing needs opentelemetry-api, which is not installed; install flow2[otel] "
            "(pip install '<your flow2 clone or wheel>[otel]')",
            option="tracing",
            value=True,
        )
    return value


def _max_threads(value: int | None, environ: Mapping[str, str]) -> int | None:
    if value is None:
        raw = environ.get("FLOW2_MAX_THREADS")
        if not raw:
            return None
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 1:
            raise ConfigurationError(
                f"environment variable FLOW2_MAX_THREADS={raw!r} is not a whole number >= 1",
                option="max_threads",
                value=raw,
                variable="FLOW2_MAX_THREADS",
            )
    elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"max_threads={value!r} is not a whole number >= 1",
            option="max_threads",
            value=value,
        )
    return value


def _jobs(value: object, environ: Mapping[str, str]) -> int | None:
    """``jobs=``, else ``FLOW2_JOBS``, else None (no limit): a whole number >= 1."""
    source, variable = f"jobs={value!r}", None
    if value is None:
        raw = environ.get("FLOW2_JOBS")
        if not raw:
            return None
        source, variable = f"environment variable FLOW2_JOBS={raw!r}", "FLOW2_JOBS"
        try:
            value = int(raw)
        except ValueError:
            value = raw
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{source} is not a number of job slots; give a whole number >= 1, e.g. "
            f"jobs=4 (flow2 run -j 4), or leave it out for no limit",
            option="jobs",
            value=value,
            variable=variable,
        )
    return value


def _makeflags(environ: Mapping[str, str]) -> str | None:
    """``MAKEFLAGS`` when it names a jobserver: flow2 was started by a make serving one."""
    from .._engine._slots import jobserver_auth

    makeflags = environ.get("MAKEFLAGS")
    return makeflags if jobserver_auth(makeflags) is not None else None


def _grace(value: float | None, environ: Mapping[str, str]) -> float:
    source, variable = f"grace={value!r}", None
    if value is None:
        raw = environ.get("FLOW2_GRACE")
        if not raw:
            return DEFAULT_GRACE
        source, variable = f"environment variable FLOW2_GRACE={raw!r}", "FLOW2_GRACE"
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
        raise ConfigurationError(
            f"{source} is not a number of seconds >= 0, e.g. 5",
            option="grace",
            value=value,
            variable=variable,
        )
    return float(value)


def _cache_mode(value: object, environ: Mapping[str, str]) -> CacheMode:
    """The cache mode ``cache=`` names, else (None, True, False) ``FLOW2_CACHE``'s, else on."""
    if value is None or isinstance(value, bool):
        return _choice("cache", CacheMode, None, environ, CacheMode.ON)  # type: ignore[no-any-return]
    if isinstance(value, CacheMode):
        return value
    try:
        return CacheMode(value.lower() if isinstance(value, str) else value)
    except ValueError:
        raise ConfigurationError(
            f"cache={value!r} is not one of: True, False, 'on', 'read-only', 'off'",
            option="cache",
            value=value,
        ) from None


def _task_references(option: str, value: object) -> tuple[str, ...]:
    references = (value,) if isinstance(value, str) else value
    if isinstance(references, list | tuple) and all(
        isinstance(reference, str) and reference for reference in references
    ):
        return tuple(references)
    raise ConfigurationError(
        f"{option}={value!r} is not a list of task keys or group paths; "
        f"write e.g. {option}=['deploy', 'release/checks']",
        option=option,
        value=value,
    )


#: How many runs a store keeps when ``FLOW2_STORE_KEEP`` is not set.
DEFAULT_KEEP = 100


def _store_directory(
    value: str | os.PathLike[str] | bool | None, environ: Mapping[str, str]
) -> Path | None:
    """The store directory a run records into (see ``store=``), or None for no store."""
    if value is None and not environ.get("FLOW2_STORE"):
        return None  # a library call records nothing unless asked: sqlite3 stays unloaded
    if value is not None and not isinstance(value, bool | str | os.PathLike):
        raise ConfigurationError(
            f"store={value!r} is not a directory; give e.g. store='.flow2', True or False",
            option="store",
            value=value,
        )
    from .._store._database import store_directory  # sqlite3: only when used

    return store_directory(value, environ)


def _store_keep(environ: Mapping[str, str]) -> int | None:
    """How many runs the store keeps: ``FLOW2_STORE_KEEP`` (0: all), else :data:`DEFAULT_KEEP`."""
    raw = environ.get("FLOW2_STORE_KEEP")
    if not raw:
        return DEFAULT_KEEP
    try:
        keep = int(raw)
    except ValueError:
        keep = -1
    if keep < 0:
        from .._store._database import StoreError

        raise StoreError(
            f"environment variable FLOW2_STORE_KEEP={raw!r} is not a whole number >= 0 "
            f"(0 keeps every run)",
            option="store_keep",
            value=raw,
            variable="FLOW2_STORE_KEEP",
        )
    return keep or None
