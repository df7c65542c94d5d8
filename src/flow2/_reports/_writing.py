"""Writing a report where it was asked: a file, or stdout for ``-``."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from .._engine._exceptions import ConfigurationError
from .._listeners._files import open_private
from ._model import RunCollector

if TYPE_CHECKING:
    from .._listeners._secrets import SecretMasker
    from ._model import RunRecord


def check_writable(target: str, what: str, *, option: str | None = None) -> None:
    """Fail now, not after the run, when ``target`` cannot be written.

    :param what: how the message names the path (``"--report"``)
    :param option: the run option it was given as, for the error's facts

    :raises flow2.ConfigurationError: the path is a directory, or its folder
        does not exist or cannot be written
    """
    if target == "-":
        return
    folder = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(target):
        problem = "is a directory"
    elif not os.path.isdir(folder):
        problem = f"is in a folder that does not exist ({folder})"
    elif not os.access(folder, os.W_OK) or (
        os.path.exists(target) and not os.access(target, os.W_OK)
    ):
        problem = "cannot be written (permission denied)"
    else:
        return
    raise ConfigurationError(
        f"the {what} path {target!r} {problem}; choose a writable file path",
        file=target,
        option=option,
        value=target,
    )


def write_text(text: str, target: str, what: str) -> None:
    """Write ``text`` to the file ``target``, or to stdout when it is ``-``.

    :raises flow2.ConfigurationError: the file cannot be written
    """
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        with open_private(target) as stream:
            stream.write(text)
    except OSError as error:
        raise ConfigurationError(
            f"cannot write the {what} to {target!r}: {error.strerror}; choose a writable file path",
            file=target,
        ) from None


class HtmlReportWriter(RunCollector):
    """An event listener that writes the HTML report when the run ends, however it ends.

    :param target: the HTML file to write
    :param flow: the flow file, shown in the report
    :param variables: the flow's variables (secrets are masked in the report)
    :param masker: the run's secrets (the environment's, the flow's
        ``secrets:``, ``Runner(secrets=)``), masked everywhere in the report
    """

    def __init__(
        self,
        target: str,
        *,
        flow: str | None = None,
        variables: dict[str, Any] | None = None,
        masker: SecretMasker | None = None,
    ) -> None:
        super().__init__(flow=flow, variables=variables, on_end=self._write)
        self.target = target
        self.masker = masker
        self.written = False

    def _write(self, record: RunRecord) -> None:
        from ._html import html_report
        from ._source import masked

        write_text(html_report(masked(record, self.masker)), self.target, "HTML report")
        self.written = True
