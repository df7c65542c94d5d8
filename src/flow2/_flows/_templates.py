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

#: A run-time expression; load-time rendering leaves these untouched.
RUNTIME_EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)
_WHOLE_EXPRESSION = re.compile(r"\s*\$\{\{((?:(?!\}\}).)*)\}\}\s*", re.DOTALL)
#: The name templates reach the environment variables under.
ENVIRON = "environ"


@functools.cache
def _load_time_environment() -> jinja2.sandbox.SandboxedEnvironment:
    import jinja2
    import jinja2.sandbox

    return jinja2.sandbox.SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        # A `{% for %}` or `{% if %}` line leaves no blank line behind.
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


@functools.cache
def _run_time_environment() -> jinja2.sandbox.SandboxedEnvironment:
    import jinja2
    import jinja2.sandbox

    return jinja2.sandbox.SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        variable_start_string="${{",
        variable_end_string="}}",
        # Run-time templates are expressions only: these never occur.
        block_start_string="${%",
        block_end_string="%}",
        comment_start_string="${#",
        comment_end_string="#}",
        autoescape=False,
    )


def _protect_runtime_expressions(source: str) -> str:
    # ``{%+ raw %}`` and ``{% endraw +%}``: no whitespace or newline around
    # the expression is eaten by lstrip_blocks / trim_blocks.
    return RUNTIME_EXPRESSION.sub(
        lambda match: "{%+ raw %}" + match.group(0) + "{% endraw +%}", source
    )


def render_file(source: str, file: str, variables: Mapping[str, Any]) -> str:
    """Render the text of a flow file with ``variables`` and ``environ``.

    :param source: the file's text
    :param file: the file's name, for error messages
    :param variables: the template variables
    :raises flow2.FlowFileError: on a syntax error, an undefined variable, a
        forbidden operation or an error raised by the template, naming the line
    """
    import jinja2
    import jinja2.exceptions

    environment = _load_time_environment()
    namespace = {ENVIRON: dict(os.environ), **variables}
    try:
        template = environment.from_string(_protect_runtime_expressions(source))
        # Frames of the compiled template carry this file name: the
        # traceback of a render error leads to the template line.
        return template.render(namespace)
    except jinja2.TemplateSyntaxError as error:
        raise FlowFileError(
            f"template syntax error: {error.message}; check the {{{{ }}}} and {{% %}} "
            f"tags on this line",
            file=file,
            line=error.lineno,
        ) from None
    except jinja2.UndefinedError as error:
        line = _template_line(error)
        raise FlowFileError(
            f"template error: {error.message}; pass the variable on the command line "
            f"(name=value) or to flow2.load(), or give it a default: "
            f"{{{{ name | default('…') }}}}",
            file=file,
            line=line,
        ) from None
    except jinja2.exceptions.SecurityError as error:
        raise FlowFileError(
            f"template error: {error}; flow templates run in Jinja's sandbox, which "
            f"forbids this operation",
            file=file,
            line=_template_line(error),
        ) from None
    except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as error:
        raise FlowFileError(
            f"template error: {type(error).__name__}: {error}",
            file=file,
            line=_template_line(error),
        ) from None


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
    for text in _strings(value):
        if "${{" in text:
            names |= jinja2.meta.find_undeclared_variables(environment.parse(text))
    return names


def render_runtime(value: Any, context: Mapping[str, Any], where: str) -> Any:
    """``value`` with its run-time expressions evaluated against ``context``.

    :param value: a string, or lists and mappings of strings and other values
    :param context: the run's context: results so far and the variables
    :param where: the file, line and key, for error messages
    :raises flow2.ExpressionError: when an expression fails (undefined name, error)
    """
    import jinja2

    try:
        return _render_value(value, {**context, "context": context})
    except jinja2.UndefinedError as error:
        known = ", ".join(sorted(context)) or "none yet"
        raise ExpressionError(
            f"{where}: {error.message} when the task started; results and variables "
            f"available then: {known}; a task can only use the results of tasks that "
            f"finished before it (put it after them in a serial group)"
        ) from None
    except Exception as error:
        raise ExpressionError(f"{where}: {type(error).__name__}: {error}") from None


def _render_value(value: Any, names: dict[str, Any]) -> Any:
    import jinja2

    if isinstance(value, str):
        if "${{" not in value:
            return value
        whole = _WHOLE_EXPRESSION.fullmatch(value)
        if whole is not None:
            result = _compiled_expression(whole.group(1))(**names)
            if isinstance(result, jinja2.Undefined):
                result._fail_with_undefined_error()
            return result
        return _compiled_template(value).render(names)
    if isinstance(value, dict):
        return {
            _render_value(key, names): _render_value(item, names) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_render_value(item, names) for item in value]
    return value


# Compiling costs about 0.7 ms, on the event loop, each time a task starts;
# the options of the tasks of one flow repeat the same few strings.
@functools.lru_cache(maxsize=512)
def _compiled_expression(source: str) -> Callable[..., Any]:
    return _run_time_environment().compile_expression(source, undefined_to_none=False)


@functools.lru_cache(maxsize=512)
def _compiled_template(source: str) -> jinja2.Template:
    return _run_time_environment().from_string(source)


def defer_options(
    task: Task,
    factory: Callable[..., Any],
    name: str,
    options: dict[str, Any],
    deferred: dict[str, Any],
    where: dict[str, str],
) -> None:
    """Make ``task`` evaluate the ``${{ … }}`` of ``deferred`` options when it starts.

    The plugin checked the options as written at load time; when the task
    starts, a task built from the evaluated options does the work in its
    place, under the same name, key and parent, so logs and results are the
    task's own.
    """

    async def run_with_results(context: Context) -> Any:
        evaluated = {
            key: render_runtime(value, context, where[key]) for key, value in deferred.items()
        }
        try:
            worker = factory(name, **{**options, **evaluated})
        except FlowError as error:
            raise ExpressionError(
                f"{where[next(iter(deferred))]}: evaluated to an invalid value: {error}"
            ) from None
        return await worker.run(context)

    task.run = run_with_results  # type: ignore[method-assign]
    # What the run store compares and reads (flow2._store): the expressions
    # as written, and the names they use, the only context keys the task reads.
    task.runtime_options = dict(deferred)  # type: ignore[attr-defined]
    try:
        names = frozenset(runtime_names(list(deferred.values())))
    except Exception:  # malformed: the tree check reports it with its line
        names = frozenset({"context"})
    task.runtime_names = names  # type: ignore[attr-defined]
