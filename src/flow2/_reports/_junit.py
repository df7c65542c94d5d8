"""JUnit XML, as GitLab, Jenkins and the common GitHub actions read it.

One ``testsuite`` for the run, one ``testcase`` per leaf task: ``classname``
the path of its group (``Release › Build``), ``name`` the task's name,
``time`` its duration. A failed task has a ``failure`` (the error's type,
message and the user's traceback); a skipped or cancelled one has
``skipped`` (the reason as its message and its text); a task the run
stopped before finishing has an ``error``. The tail of a task's output goes
in ``system-out``. The suite's ``tests``,
``failures``, ``errors`` and ``skipped`` count exactly those elements; the
``testsuites`` around it repeats them but ``skipped``, which Jenkins' schema
(``junit-10.xsd``) does not allow there. The file validates against that
schema (``tests/test_junit_schema.py``).
"""

from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ElementTree
from typing import TYPE_CHECKING

from .._engine._events import Status
from ._source import format_path, masked, record_of

if TYPE_CHECKING:
    from ._source import ReportSource

# Characters XML 1.0 cannot carry, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def junit_report(source: ReportSource, *, run: str = "last") -> str:
    """A run as JUnit XML: one test case per leaf task.

    :param source: a :class:`flow2.RunRecord`, or the path of a JSON event file
    :param run: with an event file, which of its runs: an id, a unique prefix, or "last"
    :raises flow2.ReportError: the event file cannot be read
    """
    record = masked(record_of(source, run))
    suite = ElementTree.Element("testsuite")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for task in record.leaves():
        counts["tests"] += 1
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=_text(format_path(task.parent_path)),
            name=_text(task.name),
            time=f"{task.duration or 0.0:.6f}",
        )
        status = task.status
        if status is Status.FAILED:
            counts["failures"] += 1
            error = task.error
            failure = ElementTree.SubElement(
                case,
                "failure",
                type=_text(error.type if error else "Error"),
                message=_text(error.message if error else "failed"),
            )
            if error is not None:
                failure.text = _text(
                    "\n".join(part for part in (error.describe(), error.traceback) if part)
                )
        elif status in (Status.SKIPPED, Status.CANCELLED):
            counts["skipped"] += 1
            why = task.reason or (task.error.describe() if task.error else "")
            message = status.value + (f": {why}" if why else "")
            # The reason as text too: GitLab shows the element's text.
            ElementTree.SubElement(case, "skipped", message=_text(message)).text = _text(message)
        elif not task.is_finished:
            counts["errors"] += 1
            ElementTree.SubElement(
                case,
                "error",
                type="Unfinished",
                message="the run's record stops before this task ended (the run was killed)",
            )
        output = task.output
        if status is Status.REUSED or status is Status.CACHED:
            output = f"{status.value}: {task.reason}" + (f"\n{output}" if output else "")
        if output:
            ElementTree.SubElement(case, "system-out").text = _text(output)
    started = datetime.datetime.fromtimestamp(record.start, datetime.UTC)
    suite.attrib = {
        "name": _text(record.name),
        "tests": str(counts["tests"]),
        "failures": str(counts["failures"]),
        "errors": str(counts["errors"]),
        "skipped": str(counts["skipped"]),
        "time": f"{record.duration:.6f}",
        "timestamp": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "id": record.id,
    }
    # <testsuites> takes no "skipped" in Jenkins' schema (junit-10.xsd):
    # the suite inside carries it.
    suites = ElementTree.Element(
        "testsuites",
        name=_text(record.name),
        tests=suite.attrib["tests"],
        failures=suite.attrib["failures"],
        errors=suite.attrib["errors"],
        time=suite.attrib["time"],
    )
    suites.append(suite)
    ElementTree.indent(suites)
    body = ElementTree.tostring(suites, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
