"""Templating of flow files, at load time and at run time.

Load time: the whole file is a Jinja template, rendered in Jinja's sandbox
with the variables (from the command line or :func:`flow2.load`) and the
environment under ``environ``, before YAML reads it; loops and conditions can
generate tasks. Undefined variables are errors (``StrictUndefined``).

Run time: a string option holding ``${{ expression }}`` is left alone at load
time and evaluated when its task starts, with every result stored so far (and
the variables) as names: ``cmd: git tag v${{ version.stdout }}``. A string that
is exactly one expression takes the expression's value, of any type.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import re
from typing import TYPE_CHECKING, Any

from .._engine._exceptions import ExpressionError, FlowError, FlowFileError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    import jinja2
    import jinja2.sandbox

    from .._engine._task import Context, Task
    from ._limits import TemplateTimeout

#: A run-time expression; load-time rendering leaves these untouched.
RUNTIME_EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)
_WHOLE_EXPRESSION = re.compile(r"\s*\$\{\{((?:(?!\}\}).)*)\}\}\s*", re.DOTALL)
#: What makes a text a load-time template: Jinja's delimiters, as configured below.
_LOAD_TIME_MARKUP = re.compile(r"\{[{%#]")
#: The name templates reach the environment variables under.
ENVIRON = "environ"
#: The variable holding the words after ``--`` (``flow2 run NAME -- ARGS…``): a
#: list of strings, the empty list when the run was given none.
ARGUMENTS = "args"
#: Why an expression nested hundreds deep cannot be read: Jinja's parser and
#: compiler recurse once per level, and Python's stack is finite.
TOO_DEEP = (
    "the expression is nested too deeply to be read (brackets, filters or operators "
    "inside one another, about a hundred levels or more); split it into several "
    "expressions or compute the value in a task"
)


@functools.cache
def _load_time_environment() -> jinja2.sandbox.SandboxedEnvironment:
    import jinja2

    from ._limits import bounded_sandbox

    return bounded_sandbox(
        undefined=_naming_undefined(),
        keep_trailing_newline=True,
        # A `{% for %}` or `{% if %}` line leaves no blank line behind.
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        loader=jinja2.FunctionLoader(_no_include),
    )


@functools.cache
def _run_time_environment() -> jinja2.sandbox.SandboxedEnvironment:
    from ._limits import bounded_sandbox

    return bounded_sandbox(
        undefined=_naming_undefined(),
        variable_start_string="${{",
        variable_end_string="}}",
        # Run-time templates are expressions only: these never occur.
        block_start_string="${%",
        block_end_string="%}",
        comment_start_string="${#",
        comment_end_string="#}",
        autoescape=False,
    )


@functools.cache
def _naming_undefined() -> type[jinja2.StrictUndefined]:
    import jinja2

    class NamingUndefined(jinja2.StrictUndefined):
        """StrictUndefined that also fails, naming the variable, where a number is needed.

        ``range(steps)`` calls ``__index__``, which StrictUndefined leaves to
        Python's generic "cannot be interpreted as an integer" TypeError.
        """

        __slots__ = ()
        __index__ = __int__ = __float__ = __complex__ = __round__ = (
            jinja2.StrictUndefined._fail_with_undefined_error
        )

    return NamingUndefined


def _no_include(name: str) -> None:
    # The default loader: replaced per flow file by one reading its folder.
    return None


class _Protector:
    """Hides ``${{ … }}`` from load-time rendering behind private-use markers.

    Each expression becomes ``<open>N<close>`` (with its newlines, so lines
    keep their numbers): plain text to Jinja, so it survives being inside a
    ``{% set %}`` string, a macro argument or an included file, and is put
    back after rendering. A marker left half or changed means a load-time
    filter or function altered the expression: refused, never run.
    """

    def __init__(self, source: str) -> None:
        opening = 0xE000
        while chr(opening) in source or chr(opening + 1) in source:
            opening += 2
        self.open, self.close = chr(opening), chr(opening + 1)
        self.expressions: list[str] = []
        self.marker = re.compile(f"{self.open}(\\d+)\n*{self.close}")

    def protect(self, source: str) -> str:
        def hide(match: re.Match[str]) -> str:
            self.expressions.append(match.group(0))
            newlines = "\n" * match.group(0).count("\n")
            return f"{self.open}{len(self.expressions) - 1}{newlines}{self.close}"

        return RUNTIME_EXPRESSION.sub(hide, source)

    def restore(self, text: str, file: str) -> str:
        def show(match: re.Match[str]) -> str:
            index = int(match.group(1))
            return self.expressions[index] if index < len(self.expressions) else match.group(0)

        restored = self.marker.sub(show, text)
        for character in (self.open, self.close):
            position = restored.find(character)
            if position >= 0:
                raise FlowFileError(
                    "a ${{ … }} expression was changed by a load-time {{ }} or {% %} "
                    "(a filter, slice or function applied to it); a run-time expression is "
                    "kept as written: move it out of the load-time template",
                    file=file,
                    line=restored.count("\n", 0, position) + 1,
                )
        return restored


class _RecordingEnviron(dict[str, str]):
    """``os.environ`` as templates see it, remembering the values they read.

    Error messages never quote these values (see :func:`hide_values`).
    """

    def __init__(self) -> None:
        super().__init__(os.environ)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        value = super().__getitem__(key)
        self.read.add(value)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            return self[key]
        return default

    def _read_all(self) -> None:
        self.read.update(super().values())

    def items(self) -> Any:
        self._read_all()
        return super().items()

    def values(self) -> Any:
        self._read_all()
        return super().values()

    def __repr__(self) -> str:
        self._read_all()
        return super().__repr__()

    __str__ = __repr__


def hide_values(error: FlowFileError, values: frozenset[str]) -> FlowFileError:
    """``error`` with every one of ``values`` (environment values read) masked in its reason."""
    reason = _hide(error.reason, values)
    if reason == error.reason:
        return error
    # The value is left out: it may be one of them.
    return FlowFileError(
        reason,
        file=error.file,
        line=error.line,
        key=error.key,
        task=error.task,
        task_definition=error.task_definition,
        option=error.option,
    )


def render_file(source: str, file: str, variables: Mapping[str, Any]) -> str:
    """Render the text of a flow file with ``variables`` and ``environ``.

    :param source: the file's text
    :param file: the file's name, for error messages
    :param variables: the template variables
    :raises flow2.FlowFileError: on a syntax error, an undefined variable, a
        forbidden operation, a limit exceeded or an error raised by the
        template, naming the line
    """
    return render_source(source, file, variables)[0]


def render_source(
    source: str, file: str, variables: Mapping[str, Any]
) -> tuple[str, frozenset[str]]:
    """The rendered text, and the environment values the template read.

    :raises flow2.FlowFileError: as :func:`render_file`, never quoting an
        environment value the template read
    """
    environ = _RecordingEnviron()
    try:
        return _render(source, file, variables, environ), frozenset(environ.read)
    except FlowFileError as error:
        raise hide_values(error, frozenset(environ.read)) from None


def _render(
    source: str, file: str, variables: Mapping[str, Any], environ: _RecordingEnviron
) -> str:
    from . import _limits

    if len(source) <= _limits.MAX_TEXT and _LOAD_TIME_MARKUP.search(source) is None:
        # No {{ }}, {% %} or {# #} (nor ${{ }}): Jinja would give the text back
        # as it is (the file was read with its line ends made "\n"). Done
        # here, a flow without templates loads without importing Jinja nor
        # starting the template thread. See
        # test_a_flow_without_templates_is_read_as_jinja_would_render_it.
        return source
    import jinja2
    import jinja2.exceptions

    from ._limits import LimitExceeded, TemplateTimeout, call_within, render_bounded

    protector = _Protector(source)
    folder = os.path.dirname(os.path.abspath(file))
    environment = _load_time_environment().overlay(loader=_IncludeLoader(folder, protector))
    namespace = {ENVIRON: environ, ARGUMENTS: [], **variables}

    def render() -> str:
        template = environment.from_string(protector.protect(source))
        # Frames of the compiled template carry this file name: the
        # traceback of a render error leads to the template line.
        return render_bounded(template, namespace)

    try:
        text = call_within(_limits.TEMPLATE_SECONDS, render)
    except TemplateTimeout as error:
        raise FlowFileError(
            f"template error: rendering took longer than {error.seconds:g} s, the limit "
            f"for a flow's templates; {_overrun_hint(error)}",
            file=error.file or file,
            line=error.line,
        ) from None
    except LimitExceeded as error:
        raise FlowFileError(
            f"template error: {error}", file=file, line=_template_line(error)
        ) from None
    except jinja2.TemplateSyntaxError as error:
        raise FlowFileError(
            f"template syntax error: {error.message}; "
            f"{_syntax_fix(error.message or '', environment)}",
            file=file,
            line=error.lineno,
        ) from None
    except jinja2.UndefinedError as error:
        raise FlowFileError(
            f"template error: {error.message}; "
            f"{_how_to_pass(error.message or '', source, variables)}",
            file=file,
            line=_template_line(error),
        ) from None
    except jinja2.exceptions.SecurityError as error:
        raise FlowFileError(
            f"template error: {error}; flow templates run in Jinja's sandbox, which "
            f"forbids this operation",
            file=file,
            line=_template_line(error),
        ) from None
    except jinja2.TemplateNotFound as error:
        raise FlowFileError(
            f"template error: cannot include {error.name!r}: no such file in {folder} "
            f"(includes are read relative to the flow file's folder)",
            file=file,
            line=_template_line(error),
        ) from None
    except RecursionError:
        raise FlowFileError(
            "template error: the template recurses or nests too deeply (a macro or include "
            "calling itself, or brackets, filters or operators nested a hundred levels deep?)",
            file=file,
        ) from None
    except FlowError:
        raise
    except Exception as error:
        # Whatever else a filter or an operation raised: one message with its line.
        # See tests/test_fuzz.py::test_a_filter_refusing_its_argument_is_one_message.
        raise FlowFileError(
            f"template error: {type(error).__name__}: {_message(error)}",
            file=file,
            line=_template_line(error),
        ) from None
    return protector.restore(text, file)


def _overrun_hint(error: TemplateTimeout) -> str:
    if error.abandoned:
        return (
            "it was stuck in a call flow2 cannot interrupt (a variable's method, an include "
            "that never ends), left running in the background"
        )
    return "look for loops that never end or grow too large"


def _syntax_fix(message: str, environment: jinja2.Environment) -> str:
    """The fix for a template syntax error: a close name for a mistyped filter or test."""
    match = re.match(r"No (filter|test) named '(\w+)'", message)
    if match is not None:
        kind, name = match.groups()
        known = environment.filters if kind == "filter" else environment.tests
        close = difflib.get_close_matches(name, list(known), n=1)
        if close:
            return f"did you mean {close[0]!r}?"
        return f"Jinja's {kind}s are listed at https://jinja.palletsprojects.com/templates/"
    return "check the {{ }} and {% %} tags on this line"


def _how_to_pass(message: str, source: str, variables: Mapping[str, Any]) -> str:
    match = re.match(r"'(\w+)' is undefined", message)
    if match is None:
        return (
            "pass the variable on the command line (name=value) or to flow2.load(), "
            "or give it a default: {{ name | default('…') }}"
        )
    name = match.group(1)
    if _is_task_result(name, source):
        # {{ }} is rendered when the file loads, before any task ran; a task's
        # result exists only at run time, which is what ${{ }} reads.
        return (
            f"{name!r} is a task's result, known only at run time: write "
            f"${{{{ {name}.… }}}} instead of {{{{ {name}.… }}}}"
        )
    close = difflib.get_close_matches(name, [key for key in variables if key != ENVIRON], n=1)
    if close:
        return f"did you mean {close[0]!r}? (variables given: {', '.join(sorted(variables))})"
    return (
        f"pass it on the command line ({name}=…) or to flow2.load(path, {name}=…), "
        f"or give it a default: {{{{ {name} | default('…') }}}}"
    )


def _is_task_result(name: str, source: str) -> bool:
    """Whether the flow names a task (or a register) ``name`` or reads its result fields."""
    escaped = re.escape(name)
    return bool(
        re.search(rf"^\s*-?\s*(name|register)\s*:\s*['\"]?{escaped}['\"]?\s*$", source, re.M)
        or re.search(rf"\b{escaped}\.(stdout|stderr|returncode|result|output)\b", source)
    )


def _message(error: BaseException) -> str:
    try:
        return str(error)[:500]
    except Exception:
        return "(its message cannot be shown)"


def _included_source(folder: str, name: str) -> str:
    import jinja2

    from ._limits import MAX_TEXT

    path = os.path.join(folder, *jinja2.loaders.split_template_path(name))
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(MAX_TEXT + 1)
    except OSError:
        raise jinja2.TemplateNotFound(name) from None


class _IncludeLoader:
    """Reads ``{% include %}`` and ``{% import %}`` files next to the flow file."""

    def __new__(cls, folder: str, protector: _Protector) -> Any:
        import jinja2

        def load(name: str) -> tuple[str, str, Callable[[], bool]]:
            source = _included_source(folder, name)
            return protector.protect(source), os.path.join(folder, name), lambda: False

        return jinja2.FunctionLoader(load)


def _template_line(error: BaseException) -> int | None:
    """The template line an exception was raised at, from Jinja's rewritten traceback."""
    line = None
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def has_runtime_expression(value: object) -> bool:
    """Whether ``value`` (a string, or lists and mappings of them) holds ``${{ … }}``."""
    return any("${{" in text for text in _strings(value))


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def runtime_names(value: object) -> set[str]:
    """The variable names the run-time expressions in ``value`` use.

    :raises jinja2.TemplateSyntaxError: when an expression is malformed
    """
    import jinja2.meta

    environment = _run_time_environment()
    names: set[str] = set()
    with _unreadable_is_malformed():
        for text in _strings(value):
            if "${{" in text:
                names |= jinja2.meta.find_undeclared_variables(environment.parse(text))
    return names


@contextlib.contextmanager
def _unreadable_is_malformed() -> Iterator[None]:
    """Turn what reading an expression raises, besides a syntax error, into one.

    An expression nested too deeply exhausts the stack (RecursionError).
    Jinja evaluates the parts made of constants while it reads them, so
    ``1["a"]`` fails then, whatever the results (UndefinedError).
    See tests/test_fuzz.py::test_a_deeply_nested_run_time_expression_is_one_message
    and test_an_expression_failing_on_constants_is_refused_at_load.
    """
    import jinja2

    try:
        yield
    except RecursionError:
        raise jinja2.TemplateSyntaxError(TOO_DEEP, lineno=1) from None
    except jinja2.TemplateSyntaxError:
        raise
    except Exception as error:
        raise jinja2.TemplateSyntaxError(
            f"it fails whatever the results: {type(error).__name__}: {_message(error)}",
            lineno=1,
        ) from None


def unsafe_attribute(value: object) -> str | None:
    """The first ``_private`` attribute the run-time expressions in ``value`` reach, if any.

    Jinja's sandbox refuses these when the expression runs; finding them
    when the flow loads refuses ``${{ ''.__class__.__mro__ }}`` before
    anything runs.

    :raises jinja2.TemplateSyntaxError: when an expression is malformed
    """
    from jinja2 import nodes

    environment = _run_time_environment()
    with _unreadable_is_malformed():
        for text in _strings(value):
            if "${{" not in text:
                continue
            for node in environment.parse(text).find_all((nodes.Getattr, nodes.Getitem)):
                attribute = node.attr if isinstance(node, nodes.Getattr) else None
                if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
                    attribute = node.arg.value if isinstance(node.arg.value, str) else None
                if attribute is not None and attribute.startswith("_"):
                    return attribute
    return None


def render_runtime(
    value: Any,
    context: Mapping[str, Any],
    where: Mapping[str, Any],
    *,
    seconds: float | None = None,
) -> Any:
    """``value`` with its run-time expressions evaluated against ``context``.

    Runs within :data:`flow2._flows._limits.TEMPLATE_SECONDS` and the size limits,
    in a thread of its own (:func:`flow2._flows._limits.call_within`): one stuck
    in a call the expression does not control is left behind, and the task fails.

    :param value: a string, or lists and mappings of strings and other values
    :param context: the run's context: results so far and the variables
    :param where: the facts of an error about it: ``file``, ``line``,
        ``task_definition`` and ``option`` (the flow-file key)
    :param seconds: a shorter time limit (the task's timeout)
    :raises flow2.ExpressionError: when an expression fails (undefined name,
        error, limit exceeded)
    """
    import jinja2

    from ._limits import TEMPLATE_SECONDS, LimitExceeded, TemplateTimeout, call_within

    limit = TEMPLATE_SECONDS if seconds is None else min(seconds, TEMPLATE_SECONDS)
    names = {ARGUMENTS: [], **context, "context": context}
    try:
        return call_within(limit, lambda: _render_value(value, names))
    except TemplateTimeout as error:
        stuck = (
            "; it was stuck in a call flow2 cannot interrupt, left running in the background"
            if error.abandoned
            else ""
        )
        reason = (
            f"the ${{{{ … }}}} expression took longer than {limit:g} s, the "
            f"limit for an expression (the task's timeout, at most {TEMPLATE_SECONDS:g} s)"
            f"{stuck}"
        )
    except LimitExceeded as error:
        reason = str(error)
    except RecursionError:
        reason = TOO_DEEP
    except jinja2.UndefinedError as error:
        known = ", ".join(sorted(context)) or "none yet"
        reason = _missing_result_reason(error.message, where) or (
            f"{error.message} when the task started; results and variables "
            f"available then: {known}; a task can only use the results of tasks that "
            f"finished before it (put it after them in a serial group)"
        )
    except Exception as error:
        reason = f"{type(error).__name__}: {_message(error)}"
    raise ExpressionError(reason, expression=value, **where) from None


def _missing_result_reason(message: str | None, where: Mapping[str, Any]) -> str | None:
    """Why an undefined name is undefined when it is the result key of a task that
    has not stored it yet (a parallel sibling, a later task), with the fix."""
    from .._engine._missing import missing_result_error

    # ``build`` alone, or ``context.build`` / ``context['build']``.
    match = re.fullmatch(
        r"'(\w+)' is undefined|'dict object' has no attribute '(\w+)'", message or ""
    )
    task = where.get("task_definition")
    if match is None or task is None:
        return None
    missing = missing_result_error(task, match.group(1) or match.group(2))
    return None if missing is None else str(missing)


def _render_value(value: Any, names: dict[str, Any]) -> Any:
    import jinja2

    from ._limits import render_bounded

    if isinstance(value, str):
        if "${{" not in value:
            return value
        whole = _WHOLE_EXPRESSION.fullmatch(value)
        if whole is not None:
            result = _compiled_expression(whole.group(1))(**names)
            if isinstance(result, jinja2.Undefined):
                result._fail_with_undefined_error()
            return result
        return render_bounded(_compiled_template(value), names)
    if isinstance(value, dict):
        return {
            _render_value(key, names): _render_value(item, names) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_render_value(item, names) for item in value]
    return value


# Compiling costs about 0.7 ms each time a task starts; the options of the
# tasks of one flow repeat the same few strings.
@functools.lru_cache(maxsize=512)
def _compiled_expression(source: str) -> Callable[..., Any]:
    return _run_time_environment().compile_expression(source, undefined_to_none=False)


@functools.lru_cache(maxsize=512)
def _compiled_template(source: str) -> jinja2.Template:
    return _run_time_environment().from_string(source)


class RunTimeOptions:
    """The options of a flow task that hold ``${{ … }}``, evaluated when it starts.

    It is the task's :attr:`~flow2.Task.stand_in`. The plugin checked the
    options as written at load time; when the task starts, a task built from
    the evaluated options does the work in its place, under the same name,
    key and parent, so logs and results are the task's own. The flow's
    ``variables`` are names too, under the context's entries, so a tree from
    :func:`flow2.load` evaluates the same whether its run got them in its
    context or not. ``hidden`` are environment values read at load time,
    never quoted in an error.

    :param factory: the plugin's task class (or factory)
    :param name: the task's name
    :param options: every option of the task, as written
    :param deferred: the options holding ``${{ … }}``, as written
    :param where: for each key, the facts of an error about it (``file``,
        ``line``, ``task_definition``, ``option``)
    """

    def __init__(
        self,
        factory: Callable[..., Any],
        name: str,
        options: dict[str, Any],
        deferred: dict[str, Any],
        where: dict[str, dict[str, Any]],
        variables: Mapping[str, Any] | None = None,
        hidden: frozenset[str] = frozenset(),
    ) -> None:
        self.factory = factory
        self.name = name
        self.options = options
        self.deferred = deferred
        self.where = where
        self.defaults = dict(variables or {})
        self.hidden = hidden
        #: Names that stand over the context's: a for-each item's (see _fanout).
        self.scope: dict[str, Any] = {}

    def __repr__(self) -> str:
        # What the run store digests: the expressions as written.
        return f"RunTimeOptions({self.deferred!r})"

    async def run(self, task: Task, context: Context) -> Any:
        """Evaluate the expressions, build the task from them, and run it.

        :raises flow2.ExpressionError: when an expression fails, or the plugin
            refuses what it evaluated to
        """
        import asyncio

        # A snapshot taken on the loop, evaluated in a worker thread: an
        # expression never blocks the other tasks, and the task's timeout
        # (which cancels this await) bounds it too; the deadline in
        # render_runtime stops the thread itself.
        # See tests/test_fuzz.py::test_a_slow_expression_does_not_block_a_sibling
        names = {**self.defaults, **context, **self.scope}
        try:
            evaluated = await asyncio.to_thread(self._evaluate, names, task.timeout)
        except ExpressionError as error:
            raise self._hidden(error) from None
        try:
            worker = self.factory(self.name, **{**self.options, **evaluated})
        except FlowError as error:
            key = error.option if error.option in self.deferred else next(iter(self.deferred))
            raise self._hidden(
                ExpressionError(
                    f"evaluated to an invalid value: {error}",
                    expression=self.deferred[key],
                    **self.where[key],
                )
            ) from None
        return await worker.run(context)

    def _evaluate(self, names: dict[str, Any], seconds: float | None) -> dict[str, Any]:
        # The thread stops by itself at the task's timeout too.
        evaluated = {
            key: render_runtime(value, names, self.where[key], seconds=seconds)
            for key, value in self.deferred.items()
            if not (key == "cmd" and self._values_are_data())
        }
        if "cmd" in self.deferred and self._values_are_data():
            evaluated.update(self._command_with_values(names, seconds, evaluated))
        return evaluated

    def _values_are_data(self) -> bool:
        """Whether the task is a shell command line whose ``${{ … }}`` values are data.

        See tests/test_shell_safety.py::test_a_result_is_never_shell_code.
        """
        from ._shell import ShellTask

        return (
            isinstance(self.factory, type)
            and issubclass(self.factory, ShellTask)
            and isinstance(self.deferred["cmd"], str)
            and self.options.get("cmd_expressions", "environment") == "environment"
        )

    def _command_with_values(
        self, names: dict[str, Any], seconds: float | None, evaluated: dict[str, Any]
    ) -> dict[str, Any]:
        """``cmd`` referring to environment variables that hold its expressions' values."""
        from ._shell import command_with_values, expressions_in

        cmd = self.deferred["cmd"]
        values: list[str | list[str]] = []
        try:
            for expression in expressions_in(cmd):
                value = render_runtime(expression, names, self.where["cmd"], seconds=seconds)
                if isinstance(value, list | tuple) and expression.strip() == cmd.strip():
                    # cmd: ${{ arguments }}: a list of arguments runs without a shell.
                    return {"cmd": value}
                if isinstance(value, list | tuple):
                    # A word each (``${{ args }}``): see command_with_values.
                    values.append([str(item) for item in value])
                else:
                    values.append(str(value))  # as a template writes it
        except ExpressionError:
            # The error about the whole option, as written, as for any other.
            render_runtime(cmd, names, self.where["cmd"], seconds=seconds)
            raise
        command, variables = command_with_values(cmd, values, self.options.get("shell"))
        env = evaluated.get("env", self.options.get("env")) or {}
        if not isinstance(env, dict):
            return {"cmd": command}  # the task refuses the env, naming it
        return {"cmd": command, "env": {**env, **variables}}

    def _hidden(self, error: ExpressionError) -> ExpressionError:
        """``error`` without the environment values read at load time."""
        if not self.hidden:
            return error
        expression = error.expression
        if isinstance(expression, str):
            expression = _hide(expression, self.hidden)
        return ExpressionError(
            _hide(error.reason, self.hidden),
            expression=expression,
            task_definition=error.task_definition,
            option=error.option,
            file=error.file,
            line=error.line,
        )


def defer_options(task: Task, options: RunTimeOptions) -> None:
    """Make ``task`` evaluate the ``${{ … }}`` of its deferred options when it starts."""
    task.stand_in = options
    # What the run store compares and reads (flow2._store): the expressions
    # as written, and the names they use, the only context keys the task reads.
    task.runtime_options = dict(options.deferred)
    try:
        names = frozenset(runtime_names(list(options.deferred.values())))
    except Exception:  # malformed: the tree check reports it with its line
        names = frozenset({"context"})
    task.runtime_names = names  # type: ignore[attr-defined]


def _hide(message: str, values: frozenset[str]) -> str:
    from .._listeners._secrets import MASK, MINIMUM_LENGTH

    for value in sorted(values, key=len, reverse=True):
        if len(value) >= MINIMUM_LENGTH:
            message = message.replace(value, MASK)
    return message
