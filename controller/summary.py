"""`ctl show RUN`: one screen about a stored run (the Markdown report is `ctl show --full`).

Pure over a RunReport: the verdict and why, then per case its cluster TPM, TTFT and TPOT (avg / p99),
requests succeeded and failed, and whether the measurement is valid. Numbers go through controller/display.
"""

from __future__ import annotations

import math

from .display import fmt_cell, fmt_figure
from .report.content import when
from .report.model import CaseReport, RunReport

MAX_REASONS = 8  # the rest are in the report: `ctl show --full`


def _latency(f_avg: float, f_p99: float) -> str:
    """`512.30 / 600.12 ms` (avg / p99)."""
    a, p = fmt_figure("ttft_avg_s", f_avg), fmt_figure("ttft_avg_s", f_p99)
    return f"{a.removesuffix(' ms')} / {p}" if a.endswith(" ms") and p.endswith(" ms") else f"{a} / {p}"


def _validity(case: CaseReport) -> str:
    bad = case.failed_checks
    if not case.validity:
        return ""
    if not bad:
        return "valid"
    first = bad[0]
    more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"NOT VALID: {first.name} {first.scope} {first.measured}, bound {first.bound}{more}"


def _requests(requests: int, succeeded: int) -> str:
    failed = requests - succeeded
    rate = fmt_figure("success_rate", succeeded / requests) if requests else "n/a"
    return f"{succeeded:,} ok, {failed:,} failed ({rate})"


def case_lines(case: CaseReport) -> list[str]:
    head = f"{case.case_id} ({case.case_type}): {case.verdict.upper()}"
    lines = [head]
    if case.case_type == "sweep":
        lines.append("  point                     TPM (tok/min)   TTFT avg / p99      TPOT avg / p99")
        for r in case.sweep:
            if r.scope != "cluster":
                continue
            f = r.figures
            lines.append(f"  {r.point:<27} {fmt_cell('tpm_total', f.tpm_total):>11}   "
                         f"{_latency(f.ttft_avg_s, f.value('ttft_p99_s')):<19} "
                         f"{_latency(f.tpot_avg_s, f.value('tpot_p99_s'))}")
        cl = [r.figures for r in case.sweep if r.scope == "cluster"]
        if cl:
            lines.append(f"  requests {_requests(sum(f.requests for f in cl), sum(f.succeeded for f in cl))}"
                         + (f" · {v}" if (v := _validity(case)) else ""))
    elif case.case_type == "eval":
        for s in case.scores:
            if s.scope != "cluster":
                continue
            official = "" if s.official is None else \
                f" (official {s.official:.2f}, tolerance {s.tolerance or 0:.2f})"
            score = "n/a" if math.isnan(s.score) else f"{s.score:.2f}"
            lines.append(f"  {s.dataset}: score {score} on {s.samples:,} samples{official}")
    elif case.case_type == "long_context":
        slow = case.slowest_ttft
        answered = f"{len(case.answered)} of {len(case.long_context)} node(s) answered"
        lines.append(f"  {answered}; slowest TTFT {fmt_figure('ttft_avg_s', slow.ttft_s) if slow else 'n/a'}"
                     + (f" ({slow.node})" if slow else ""))
    if case.case_type in ("perf", "long_context") and case.cluster is not None:
        f = case.cluster
        valid = f" · {v}" if (v := _validity(case)) else ""
        if case.case_type == "perf":
            lines.append(f"  cluster TPM {fmt_figure('tpm_total', f.tpm_total)} · requests "
                         f"{_requests(f.requests, f.succeeded)}{valid}")
            lines.append(f"  TTFT {_latency(f.ttft_avg_s, f.value('ttft_p99_s'))} · TPOT "
                         f"{_latency(f.tpot_avg_s, f.value('tpot_p99_s'))} (avg / p99)")
        else:
            lines.append(f"  requests {_requests(f.requests, f.succeeded)}{valid}")
    elif case.case_type == "perf":
        lines.append("  no cluster figures (no node's results)")
    return lines


def show_lines(report: RunReport, full_command: str = "") -> list[str]:
    """The one-screen summary of a run, line by line."""
    nodes = [n.name for n in report.nodes]
    lines = [
        f"run {report.run_id}: {report.verdict.upper()}",
        f"plan {report.plan_name!r}, model {report.model}; {len(nodes)} node(s): {', '.join(nodes)}",
        f"started {when(report.started_at)}, state {report.run_state}"
        + (f"; stopped: {report.error}" if report.error else ""),
    ]
    if report.reasons:
        lines.append(f"{report.verdict.upper()} because:")
        lines += [f"  - {r.line()}" for r in report.reasons[:MAX_REASONS]]
        if len(report.reasons) > MAX_REASONS:
            lines.append(f"  … and {len(report.reasons) - MAX_REASONS} more (the report has them all)")
    for case in report.cases:
        lines.append("")
        lines += case_lines(case)
    if full_command:
        lines += ["", f"the full report: {full_command}"]
    return lines
