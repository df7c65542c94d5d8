"""Bounds on what a flow's templates may cost: time, text size, number size.

A flow file is input, often from someone else: ``{{ 'a' * 10**9 }}``,
``{{ 10**(10**7) }}`` or a loop of loops must end in a clear error, not
hang the command or fill the memory. Every template flow2 renders (the
file at load time, ``${{ … }}`` when a task starts) runs in
:class:`BoundedSandbox` and within :func:`deadline`.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import jinja2.sandbox

#: Seconds a template (or one task's run-time expressions) may take.
TEMPLATE_SECONDS = 10.0
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
    """Raised inside a template that ran longer than its deadline.

    A BaseException so that no ``except Exception`` in Jinja or in a
    filter swallows it.
    """


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


def bounded_sandbox(**options: Any) -> jinja2.sandbox.SandboxedEnvironment:
    """A Jinja sandbox whose operators, methods and filters respect the limits."""
    import jinja2.sandbox

    class BoundedSandbox(jinja2.sandbox.SandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "%"})

        def call_binop(
            self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
        ) -> Any:
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


def render_bounded(template: jinja2.Template, names: dict[str, Any]) -> str:
    """``template`` rendered, refusing output longer than :data:`MAX_TEXT` characters."""
    pieces: list[str] = []
    size = 0
    for piece in template.generate(names):
        size += len(piece)
        if size > MAX_TEXT:
            raise too_big("the rendered text")
        pieces.append(piece)
    return "".join(pieces)


class _Watchdog:
    """One daemon thread that interrupts blocks running past their deadline.

    Starting a timer thread per template costs milliseconds on a busy
    machine; this thread is started once and sleeps until the earliest
    deadline. It injects :class:`TemplateTimeout` into the late thread
    (Python checks for it between bytecodes), which stops a template's loops
    even inside Jinja's generated code; a single huge operation is stopped
    by the size limits instead.
    """

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.waiting: dict[int, tuple[float, int]] = {}
        self.counter = 0
        self.thread: threading.Thread | None = None

    def add(self, seconds: float) -> int:
        with self.condition:
            self.counter += 1
            self.waiting[self.counter] = (time.monotonic() + seconds, threading.get_ident())
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._watch, name="flow2-template-deadline", daemon=True
                )
                self.thread.start()
            self.condition.notify()
            return self.counter

    def remove(self, token: int) -> None:
        """Forget ``token``; withdraw its exception if it was injected but not yet raised."""
        with self.condition:
            entry = self.waiting.pop(token, None)
            if entry is None:
                _inject(threading.get_ident(), None)

    def _watch(self) -> None:
        with self.condition:
            while True:
                now = time.monotonic()
                for token, (end, thread_id) in list(self.waiting.items()):
                    if end <= now:
                        # Removed here, under the lock: remove() then knows
                        # the exception was sent.
                        del self.waiting[token]
                        _inject(thread_id, TemplateTimeout)
                earliest = min((end for end, _ in self.waiting.values()), default=None)
                self.condition.wait(None if earliest is None else max(0.0, earliest - now))


def _inject(thread_id: int, exception: type[BaseException] | None) -> None:
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), None if exception is None else ctypes.py_object(exception)
    )


_watchdog = _Watchdog()


@contextlib.contextmanager
def deadline(seconds: float | None = None) -> Iterator[None]:
    """Raise :class:`TemplateTimeout` in this thread if the block runs past ``seconds``.

    Pinned by tests/test_fuzz.py::test_a_template_loop_that_never_ends_is_stopped
    """
    token = _watchdog.add(TEMPLATE_SECONDS if seconds is None else seconds)
    try:
        yield
    finally:
        _watchdog.remove(token)
