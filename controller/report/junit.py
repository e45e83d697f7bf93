"""The acceptance result as JUnit XML (`ctl run --junit FILE`, `ctl report --format junit`), so a CI system
shows it natively: one test case per case × scope (each node, the cluster), a FAIL as a <failure>, an ERROR,
INVALID or INCOMPLETE as an <error> (never a pass and never skipped: a figure we cannot stand behind is not
a success), each with its reasons. Pure over a RunReport."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from ..aggregate import CLUSTER
from .model import CaseReport, RunReport


def _scopes(case: CaseReport) -> dict[str, str]:
    """scope -> state: each node, then the cluster; a case never judged (interrupted) is one test case, and so
    is a case whose state is worse than all of its scopes' (a check of the step as a whole)."""
    scopes = dict(case.scope_states)
    if case.verdict != "pass" and all(v == "pass" for v in scopes.values()):
        scopes["case"] = case.verdict
    return scopes


def _time(case: CaseReport, scope: str) -> float:
    figures = case.cluster if scope == CLUSTER else case.node_figures.get(scope)
    t = figures.wall_time_s if figures is not None else math.nan
    return 0.0 if math.isnan(t) else t


def render_junit(report: RunReport) -> str:
    suites = ET.Element("testsuites", name=f"fleetbench {report.plan_name}")
    suite = ET.SubElement(suites, "testsuite", name=report.plan_name, timestamp=_iso(report.started_at))
    props = ET.SubElement(suite, "properties")
    for k, v in (("run_id", report.run_id), ("model", report.model), ("verdict", report.verdict.upper()),
                 ("fleetbench_version", report.fleetbench_version)):
        ET.SubElement(props, "property", name=k, value=v)
    tests = failures = errors = 0
    total_time = 0.0
    for case in report.cases:
        for scope, state in _scopes(case).items():
            t = _time(case, scope)
            total_time += t
            tc = ET.SubElement(suite, "testcase", classname=f"fleetbench.{case.case_id}",
                               name=f"{case.case_id} [{scope}]", time=f"{t:.3f}")
            tests += 1
            if state == "pass":
                continue
            reasons = [r.line() for r in case.reasons if r.scope in (scope, "")] or \
                [r.line() for r in case.reasons] or [f"{state.upper()} (see the report)"]
            tag = "failure" if state == "fail" else "error"
            failures += tag == "failure"
            errors += tag == "error"
            el = ET.SubElement(tc, tag, message=reasons[0], type=state.upper())
            el.text = "\n".join(reasons)
    if report.verdict != "pass" and not failures and not errors:  # e.g. the run stopped before any case
        tc = ET.SubElement(suite, "testcase", classname="fleetbench.run", name="run", time="0.000")
        tests += 1
        message = [r.line() for r in report.reasons] or [report.error or f"run {report.verdict.upper()}"]
        tag = "failure" if report.verdict == "fail" else "error"
        failures += tag == "failure"
        errors += tag == "error"
        ET.SubElement(tc, tag, message=message[0], type=report.verdict.upper()).text = "\n".join(message)
    for el in (suites, suite):
        el.set("tests", str(tests))
        el.set("failures", str(failures))
        el.set("errors", str(errors))
        el.set("time", f"{total_time:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _iso(ts: float) -> str:
    import datetime as dt

    if ts is None or math.isnan(ts):
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def render_junit_stopped(run_id: str, plan_name: str, state: str) -> str:
    """A run with nothing stored (it stopped before it started): one errored test case."""
    suites = ET.Element("testsuites", name=f"fleetbench {plan_name}", tests="1", failures="0", errors="1")
    suite = ET.SubElement(suites, "testsuite", name=plan_name, tests="1", failures="0", errors="1")
    tc = ET.SubElement(suite, "testcase", classname="fleetbench.run", name="run", time="0.000")
    message = f"run {run_id}: {state.upper()} (could not run; see the controller's output)"
    ET.SubElement(tc, "error", message=message, type=state.upper()).text = message
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
