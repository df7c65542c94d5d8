"""The JUnit file against the schemas CI services read it with, by a validating parser.

Jenkins validates against its xUnit plugin's ``junit-10.xsd`` (kept in
``tests/schemas/`` with its source). GitLab publishes no schema: its
documentation lists the elements and attributes it parses, which the last
test checks are where GitLab looks for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

import flow2

from .test_reports import event_lines

SCHEMAS = Path(__file__).parent / "schemas"


@pytest.fixture(scope="module")
def jenkins_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / "jenkins-junit-10.xsd")))


def _validate(schema: etree.XMLSchema, text: str) -> etree._Element:
    document = etree.fromstring(text.encode("utf-8"))
    if not schema.validate(document):
        raise AssertionError(
            "the JUnit file does not validate:\n"
            + "\n".join(str(error) for error in schema.error_log)
            + "\n"
            + text
        )
    return document


def test_a_run_with_failures_skips_and_cancels_validates(
    report_events: Path, jenkins_schema: etree.XMLSchema
) -> None:
    document = _validate(jenkins_schema, flow2.junit_report(report_events))
    assert document.find("testsuite/testcase/failure") is not None
    assert document.find("testsuite/testcase/skipped") is not None


def test_a_killed_run_and_odd_text_validate(
    tmp_path: Path, jenkins_schema: etree.XMLSchema
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        event_lines(
            {"path": ["Root"], "status": "running", "time": 100.0},
            {"path": ["Root", "Done <&>"], "status": "running", "time": 100.0},
            {
                "path": ["Root", "Done <&>"],
                "status": "succeeded",
                "time": 101.0,
                "duration": 1.0,
                "output": "a \x1b[31mred\x1b[0m line\n\x00 and a NUL",
            },
            {"path": ["Root", "Killed"], "status": "running", "time": 100.5},
            end=None,
        )
    )
    document = _validate(jenkins_schema, flow2.junit_report(path))
    assert document.find("testsuite/testcase/error") is not None


def test_the_counts_are_where_the_schema_allows_them(report_events: Path) -> None:
    document = etree.fromstring(flow2.junit_report(report_events).encode("utf-8"))
    # <testsuites> takes name, time, tests, failures and errors: not skipped.
    assert set(document.attrib) <= {"name", "time", "tests", "failures", "errors"}
    suite = document.find("testsuite")
    assert suite is not None and suite.get("skipped") == "3"


def test_what_gitlab_parses_is_where_it_looks(report_events: Path) -> None:
    # docs.gitlab.com/ci/testing/unit_test_reports: testsuites/@time,
    # testsuite/@name and @time, testcase/@classname, @name and @time, the
    # text of failure, error and skipped, and system-out inside testcase.
    document = etree.fromstring(flow2.junit_report(report_events).encode("utf-8"))
    assert document.tag == "testsuites" and document.get("time")
    suite = document.find("testsuite")
    assert suite is not None and suite.get("name") == "Release" and suite.get("time")
    for case in suite.iter("testcase"):
        assert case.get("classname") and case.get("name") and case.get("time")
        for element in ("failure", "skipped"):
            found = case.find(element)
            if found is not None:
                assert (found.text or "").strip(), etree.tostring(case)
    # Output only inside a testcase: GitLab reads system-out nowhere else.
    assert all(element.getparent().tag == "testcase" for element in document.iter("system-out"))
