"""Bounds on what a flow's templates may cost: time, text size, number size.

A flow file is input, often from someone else: ``{{ 'a' * 10**9 }}``,
``{{ 10**(10**7) }}`` or a loop of loops must end in a clear error, not
hang the command or fill the memory. Every template flow2 renders (the
file at load time, ``${{ … }}`` when a task starts) runs in
:func:`bounded_sandbox` and through :func:`call_within`.

Time is enforced without ever interrupting a thread from outside (an
exception raised at an arbitrary bytecode can leave a lock held, and hangs
a run under ``pytest --cov``): the template itself checks its deadline at
the points the sandbox controls (each item of a ``{% for %}`` loop, each
call, each operator it bounds, each piece of output) and stops there. What
the template calls but does not control (a variable's method, an include
that never ends) runs in a daemon thread that is left behind when it
overruns; the caller gets :class:`TemplateTimeout` all the same.
"""

from __future__ import annotations

import contextvars
import math
import os
import queue
import re
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from types import FrameType

    import jinja2.sandbox

_T = TypeVar("_T")

#: Seconds a template (or one task's run-time expressions) may take.
TEMPLATE_SECONDS = 10.0
#: Seconds :func:`call_within` waits past the deadline for the template to stop
#: itself (and name its line) before it leaves the thread behind.
GRACE_SECONDS = 1.0
#: Longest text, list or rendered file a template may make, in characters or items.
MAX_TEXT = 10_000_000
#: Most digits a number made by a template may have (Python's own limit for printing one).
MAX_DIGITS = 4300
_MAX_BITS = int(MAX_DIGITS * math.log2(10))
#: The string methods and filters whose numeric arguments are sizes.
_SIZED_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_SIZED_FILTERS = ("center", "indent", "wordwrap", "truncate", "batch", "slice")
_FORMAT_METHODS = frozenset({"format", "format_map"})
_DIGITS = re.compile(r"\d{8,}")


class LimitExceeded(Exception):
    """A template tried to make something bigger than flow2 allows (see :data:`MAX_TEXT`)."""


class TemplateTimeout(BaseException):
    """A template ran longer than its deadline.

    Raised inside the template at its next safe point, then by
    :func:`call_within` to its caller with what it knows of where the
    template was. A BaseException so that no ``except Exception`` in Jinja
    or in a filter swallows it.

    :ivar seconds: the limit the template ran past
    :ivar file: the included file it was in, or None for the flow file itself
    :ivar line: the template line it was at, when known
    :ivar abandoned: whether the template was stuck in a call it does not
        control, left running in a daemon thread
    """

    def __init__(
        self,
        seconds: float = 0.0,
        *,
        file: str | None = None,
        line: int | None = None,
        abandoned: bool = False,
    ) -> None:
        super().__init__(seconds)
        self.seconds = seconds
        self.file = file
        self.line = line
        self.abandoned = abandoned


def too_big(what: str) -> LimitExceeded:
    return LimitExceeded(
        f"{what} would exceed flow2's template limits ({MAX_TEXT:,} characters or items, "
        f"numbers of {MAX_DIGITS:,} digits); make big data in a task, not in a template"
    )


def check_size(value: Any, what: str) -> Any:
    """``value`` unchanged, or :class:`LimitExceeded` when it is too big."""
    if isinstance(value, str | bytes | list | tuple) and len(value) > MAX_TEXT:
        raise too_big(what)
    if isinstance(value, int) and value.bit_length() > _MAX_BITS:
        raise too_big(what)
    return value


def _check_format(text: object, what: str) -> None:
    # A width or precision of eight digits or more ("%099999999d",
    # "{:>999999999}") would build the text before any check could see it.
    if isinstance(text, str) and any(int(digits) > MAX_TEXT for digits in _DIGITS.findall(text)):
        raise too_big(what)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    what = f"{type(left).__name__} {operator} {type(right).__name__}"
    if operator == "*":
        for sized, count in ((left, right), (right, left)):
            if isinstance(count, int) and isinstance(sized, str | bytes | list | tuple):
                if len(sized) * count > MAX_TEXT:
                    raise too_big(what)
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > _MAX_BITS:
                raise too_big(what)
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
            if math.log2(abs(left)) * right > _MAX_BITS:
                raise too_big(what)
    elif operator == "%":
        _check_format(left, what)


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args[1:], *kwargs.values()):
            if isinstance(value, int) and value > MAX_TEXT:
                raise too_big(f"the {name} filter")
        return check_size(function(*args, **kwargs), f"the {name} filter")

    # Jinja passes the environment or context to filters marked for it.
    bounded.__dict__.update(function.__dict__)
    return bounded


def _checked_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, whose assertions on its arguments become Jinja's FilterArgumentError.

    Some of Jinja's filters check their arguments with ``assert``
    (``'abc' | truncate(-1)``); the AssertionError would say neither which
    filter nor where. See
    tests/test_fuzz.py::test_a_filter_refusing_its_argument_is_one_message.
    """
    import jinja2.exceptions

    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except AssertionError as error:
            raise jinja2.exceptions.FilterArgumentError(
                f"the {name} filter refuses its arguments: {error}"
            ) from None

    # Jinja passes the environment or context to filters marked for it.
    checked.__dict__.update(getattr(function, "__dict__", {}))
    return checked


def bounded_sandbox(**options: Any) -> jinja2.sandbox.SandboxedEnvironment:
    """A Jinja sandbox whose operators, methods, filters and loops respect the limits.

    Its loops, calls, bounded operators and output check the deadline set by
    :func:`call_within` and raise :class:`TemplateTimeout` there once it has passed.
    """
    import jinja2.runtime
    import jinja2.sandbox

    class BoundedSandbox(jinja2.sandbox.SandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "%"})
        code_generator_class = _loop_checking_generator()

        # Named in the code _loop_checking_generator writes.
        iterate_within_deadline = staticmethod(iterate_within_deadline)

        def call_binop(
            self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
        ) -> Any:
            check_deadline()
            _check_binop(operator, left, right)
            result = super().call_binop(context, operator, left, right)
            return check_size(result, f"{type(left).__name__} {operator} …")

        def call(
            __self,  # Jinja's own spelling: no clash with a call's keyword arguments
            __context: jinja2.runtime.Context,
            __obj: Any,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            # Macros, caller() and recursive loops all come through here.
            check_deadline()
            if isinstance(__obj, jinja2.runtime.LoopContext) and args:
                # loop(children) in a recursive loop: the code iterates it directly.
                args = (iterate_within_deadline(args[0]), *args[1:])
            target = getattr(__obj, "__wrapped__", __obj)
            owner = getattr(target, "__self__", None)
            name = getattr(target, "__name__", "")
            if isinstance(owner, str):
                if name in _SIZED_METHODS and any(
                    isinstance(value, int) and value > MAX_TEXT
                    for value in (*args, *kwargs.values())
                ):
                    raise too_big(f"str.{name}()")
                if name in _FORMAT_METHODS:
                    _check_format(owner, f"str.{name}()")
            result = super().call(__context, __obj, *args, **kwargs)
            return check_size(result, f"{name or 'a call'}()")

    environment = BoundedSandbox(**options)
    for name in _SIZED_FILTERS:
        environment.filters[name] = _bounded_filter(name, environment.filters[name])
    for name, function in list(environment.filters.items()):
        environment.filters[name] = _checked_filter(name, function)
    original_format = environment.filters["format"]

    def bounded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_format(value, "the format filter")
        return check_size(original_format(value, *args, **kwargs), "the format filter")

    environment.filters["format"] = bounded_format
    lipsum = environment.globals["lipsum"]

    def bounded_lipsum(n: int = 5, *args: Any, **kwargs: Any) -> Any:
        if isinstance(n, int) and n > 1000:
            raise too_big("lipsum()")
        return lipsum(n, *args, **kwargs)  # type: ignore[operator]

    environment.globals["lipsum"] = bounded_lipsum
    return environment


def _loop_checking_generator() -> type[Any]:
    """Jinja's code generator, writing every ``{% for %}`` to iterate within the deadline."""
    import jinja2.compiler
    import jinja2.nodes

    class LoopCheckingGenerator(jinja2.compiler.CodeGenerator):
        def visit_For(self, node: jinja2.nodes.For, frame: jinja2.compiler.Frame) -> None:
            # for x in environment.call(context, environment.iterate_within_deadline, …)
            iterable = node.iter
            checker = jinja2.nodes.EnvironmentAttribute("iterate_within_deadline")
            node.iter = jinja2.nodes.Call(checker, [iterable], [], None, None)
            node.iter.set_lineno(iterable.lineno)
            try:
                super().visit_For(node, frame)
            finally:
                node.iter = iterable

    return LoopCheckingGenerator


def render_bounded(template: jinja2.Template, names: dict[str, Any]) -> str:
    """``template`` rendered, refusing output longer than :data:`MAX_TEXT` characters."""
    pieces: list[str] = []
    size = 0
    for piece in template.generate(names):
        check_deadline()
        size += len(piece)
        if size > MAX_TEXT:
            raise too_big("the rendered text")
        pieces.append(piece)
    return "".join(pieces)


# Time ----------------------------------------------------------------------------

#: When the template running in this thread must stop (time.monotonic()), if ever.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "flow2_template_deadline", default=None
)


def check_deadline() -> None:
    """Raise :class:`TemplateTimeout` if the deadline of this thread's template has passed.

    Called only at points where the template can stop cleanly: nothing
    outside the template is running, so no lock is held half-way.
    """
    end = _deadline.get()
    if end is not None and time.monotonic() > end:
        raise TemplateTimeout


def iterate_within_deadline(iterable: Iterable[_T]) -> Iterator[_T]:
    """The items of ``iterable``, checking the deadline before each one."""
    for item in iterable:
        check_deadline()
        yield item


def call_within(seconds: float, function: Callable[[], _T]) -> _T:
    """``function()``, run in a daemon thread under a deadline of ``seconds``.

    A template that runs past its deadline stops itself at its next safe
    point (see :func:`check_deadline`). One stuck in a call it does not
    control (a variable's method, an include that never ends) cannot be
    stopped safely: :data:`GRACE_SECONDS` later it is left running in its
    daemon thread, where it stops at its next safe point if it ever reaches
    one, and the caller goes on.

    :raises TemplateTimeout: past the deadline, with the template's line
        when it is known
    :raises BaseException: whatever ``function`` raised, unchanged

    Pinned by tests/test_fuzz.py::test_a_template_loop_that_never_ends_is_stopped
    and tests/test_template_limits.py
    """
    job = _Job(function, time.monotonic() + seconds)
    _workers.submit(job)
    if not job.done.wait(seconds + GRACE_SECONDS):
        # Stuck outside the template: nothing is raised into that thread, which
        # may hold a lock of the code it called. Only its place is read. See
        # tests/test_template_limits.py::test_a_stuck_call_is_left_behind_uninterrupted
        frame = sys._current_frames().get(job.thread_id or 0)
        stack = [] if frame is None else list(traceback.walk_stack(frame))[::-1]
        file, line = _template_location(stack)
        raise TemplateTimeout(seconds, file=file, line=line, abandoned=True)
    error, job.error = job.error, None
    if isinstance(error, TemplateTimeout):
        file, line = _template_location(traceback.walk_tb(error.__traceback__))
        raise TemplateTimeout(seconds, file=file, line=line) from None
    if error is not None:
        raise error
    result: _T = job.result
    return result


def _template_location(
    frames: Iterable[tuple[FrameType, int]],
) -> tuple[str | None, int | None]:
    """The file (None: the main template) and line of the innermost template frame."""
    file: str | None = None
    line: int | None = None
    for frame, lineno in frames:
        template = frame.f_globals.get("__jinja_template__")
        if template is not None:
            name = template.filename
            file = None if name in (None, "<template>") else name
            line = template.get_corresponding_lineno(lineno)
    return file, line


class _Job:
    """One call of :func:`call_within`: the function, its deadline, its outcome."""

    __slots__ = ("done", "end", "error", "function", "result", "thread_id")

    def __init__(self, function: Callable[[], Any], end: float) -> None:
        self.function = function
        self.end = end
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread_id: int | None = None

    def run(self) -> None:
        self.thread_id = threading.get_ident()
        token = _deadline.set(self.end)
        try:
            self.result = self.function()
        except BaseException as error:
            self.error = error
        finally:
            _deadline.reset(token)
            self.done.set()


class _Workers:
    """Daemon threads that render templates, started as needed and reused.

    Handing a template to an idle thread costs a tenth of a millisecond;
    starting one costs twice that, more on a busy machine, and every task
    with a ``${{ … }}`` pays it when it starts. A thread left behind by
    :func:`call_within` counts as busy until it ends, then serves again.
    """

    def __init__(self) -> None:
        self.forget_threads()

    def forget_threads(self) -> None:
        """Start afresh, with no idle thread (after a fork: the child has none)."""
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.idle = 0

    def submit(self, job: _Job) -> None:
        with self.lock:
            has_idle = self.idle > 0
            if has_idle:
                self.idle -= 1
        if not has_idle:
            threading.Thread(target=self._work, name="flow2-template", daemon=True).start()
        self.jobs.put(job)

    def _work(self) -> None:
        while True:
            self.jobs.get().run()
            with self.lock:
                self.idle += 1


_workers = _Workers()
# A forked child has none of the parent's threads: the idle count would send
# its templates to a queue nobody reads.
os.register_at_fork(after_in_child=_workers.forget_threads)
