"""Verdicts an operator can sign, in every report format and both languages: the five states of the run, each
case, node and cluster as the store keeps them; every reason with its measured value and threshold formatted for
people; the validity checks; failed requests by error class; partial clusters ("n of N nodes"); long-context cases
without throughput tables; eval scores that count each question once. All on the sample store
(tests/support/report_sample.py), loaded as `ctl report` loads it."""

from __future__ import annotations

import json
import re

import pytest
from openpyxl import load_workbook
from support.report_sample import HTTP_422, RUN_ID

from fleetbench.controller.report.html import render_html
from fleetbench.controller.report.i18n import t
from fleetbench.controller.report.json_report import render_json, report_document
from fleetbench.controller.report.markdown import render_markdown
from fleetbench.controller.report.model import load_report
from fleetbench.controller.report.xlsx import raw_requests, write_xlsx
from fleetbench.controller.verdict import State

NAN = re.compile(r"\bnan\b", re.IGNORECASE)


@pytest.fixture
def store(sample_store):
    return sample_store


@pytest.fixture
def report(store):
    return load_report(store, RUN_ID)


def _case(report, case_id):
    return next(c for c in report.cases if c.case_id == case_id)


def _section(md: str, case_id: str) -> str:
    """The Markdown of one case, from its heading to the next case or the conclusion."""
    start = md.index(f"`{case_id}` —")
    ends = [i for i in (md.find("\n### 2.", start), md.find("\n## 3.", start)) if i > 0]
    return md[start:min(ends)]


def test_states_come_from_the_store(report):
    assert report.verdict == "error"  # perf-extra-args: n2's agent was unreachable
    assert [(c.case_id, c.verdict) for c in report.cases] == [
        ("perf-6k-1k", "invalid"), ("sweep-128", "pass"), ("gsm8k", "fail"), ("long-128k", "fail"),
        ("perf-extra-args", "error")]
    perf = _case(report, "perf-6k-1k")
    assert perf.scope_states == {"n1": "fail", "n2": "invalid", "cluster": "fail"}
    assert _case(report, "perf-extra-args").scope_states == {"n1": "fail", "n2": "error", "cluster": "invalid"}
    assert len(report.reasons) == 16 and {r.state for r in report.reasons} == {State.FAIL, State.INVALID,
                                                                                State.ERROR}


def test_sweep_state_is_the_worst_over_its_points(store):
    point = "sweep-128@in128-out512-p2-n4-loop2"
    store.set_case_verdict(RUN_ID, point, "case", State.INVALID)
    store.set_case_verdict(RUN_ID, point, "n1", State.INVALID)
    sweep = _case(load_report(store, RUN_ID), "sweep-128")
    assert sweep.verdict == "invalid" and sweep.scope_states["n1"] == "invalid" and sweep.scope_states["n2"] == "pass"
    # a point never judged (the run was interrupted before it): the sweep is INCOMPLETE
    store.db.execute("DELETE FROM case_verdicts WHERE case_id = ?", [point])
    store.db.conn.commit()
    assert _case(load_report(store, RUN_ID), "sweep-128").verdict == "incomplete"


def test_an_interrupted_run_is_incomplete_with_its_badge(store):
    store.db.table("runs").update(RUN_ID, {"state": "interrupted", "verdict": "incomplete",
                                           "error": "interrupted by the operator"})
    report = load_report(store, RUN_ID)
    assert report.verdict == "incomplete" and report.run_state == "interrupted"
    html = render_html(report, "zh")
    assert '<span class="verdict incomplete">未完成</span>' in html
    assert "Overall verdict: **INCOMPLETE** — interrupted before every case finished" in render_markdown(report)


def test_every_reason_is_listed_formatted_for_people(report):
    md = render_markdown(report, "en")
    conclusion = md[md.index("## 3. Conclusion"):md.index("## 4.")]
    for line in ("- **FAIL** `perf-6k-1k` node n1: ttft_avg_s — measured 949.85 ms, expected ≤ 900 ms",
                 "- **INVALID** `perf-6k-1k` node n2: load generator not saturated — measured saturated, "
                 "expected not saturated",
                 "- **FAIL** `perf-6k-1k` cluster: tpot_avg_s — measured 23.40 ms, expected ≤ 20 ms",
                 "- **ERROR** `perf-extra-args` node n2: job failed: connection refused:",
                 "- **FAIL** `perf-extra-args` cluster (1 of 2 nodes): tpm_total — measured 0 tok/min, expected "
                 "≥ 100,000 tok/min"):
        assert line in conclusion, line
    assert conclusion.count("\n- **") == len(report.reasons)
    assert "e+0" not in md and "0.0234001" not in md  # 1,000,000 not 1e+06; 23.40 ms not 0.0234001
    zh = render_markdown(report, "zh")
    assert "- **无效** `perf-6k-1k` 节点 n2：压测客户端未饱和 — 实测 饱和，预期 未饱和" in zh
    assert "总体结论：**错误**" in zh


def test_invalid_case_shows_its_failing_check_with_what_it_measured(report):
    section = _section(render_markdown(report, "en"), "perf-6k-1k")
    assert "verdict: **INVALID**" in section
    assert "Failed: load generator not saturated (n2): measured saturated, bound not saturated." in section
    assert ("| n2 | load generator not saturated | saturated | not saturated | FAIL (INVALID) | CPU 98% of a core, "
            "event-loop lag p95 60 ms") in section
    assert "| cluster | start skew between nodes | 200.0 ms | ≤ 1.136 s | PASS |  |" in section
    assert "| n2 | INVALID | **INVALID**: load generator not saturated" in section
    html = render_html(report, "en")
    assert '<td class="invalid">FAIL (INVALID)</td>' in html and '<span class="verdict invalid">INVALID</span>' in html
    doc = report_document(report)
    perf = doc["cases"][0]
    assert perf["state"] == "invalid" and perf["node_states"]["n2"]["verdict"] == "invalid"
    check = next(v for v in perf["validity"] if v["name"] == "load_generator")
    assert (check["scope"], check["measured"], check["bound"], check["passed"]) == ("n2", "saturated",
                                                                                   "not saturated", False)


def test_failures_table_counts_requests_by_error_class(report, store, tmp_path):
    section = _section(render_markdown(report, "en"), "perf-extra-args")
    assert f"| n1 | HTTP 422 | 384 | {HTTP_422} |" in section
    assert "| n2 | HTTP 503 | 2 | HTTP 503: Service Unavailable |" in _section(render_markdown(report), "perf-6k-1k")
    long_row = next(f for f in _case(report, "long-128k").failures if f.node == "n2")
    assert long_row.error_class == "HTTP 400" and long_row.count == 1 and long_row.example.endswith("…")
    assert len(long_row.example) == 160
    assert "<td>HTTP 422</td><td class=\"num\">384</td>" in render_html(report, "en")
    zh = _section(render_markdown(report, "zh"), "perf-extra-args")
    assert "| 节点 | 错误类别 | 次数 | 示例 |" in zh and "| n1 | HTTP 422 | 384 |" in zh
    doc = report_document(report)
    assert doc["cases"][4]["failures"] == [{"node": "n1", "error_class": "HTTP 422", "count": 384,
                                            "example": HTTP_422}]
    path = write_xlsx(report, tmp_path / "r.xlsx", "en", raw_requests(store, RUN_ID))
    rows = list(load_workbook(path, read_only=True)["Failures"].iter_rows(values_only=True))
    assert rows[0] == ("Case", "Node", "Error class", "Count", "Example")
    assert ("perf-extra-args", "n1", "HTTP 422", 384, HTTP_422) in rows[1:]


def test_partial_cluster_reads_n_of_n_nodes(report):
    case = _case(report, "perf-extra-args")
    assert case.error_nodes == ["n2"] and case.cluster_nodes == ["n1"] and case.partial() == (1, 2)
    section = _section(render_markdown(report, "en"), "perf-extra-args")
    assert "| Key | n1 | cluster (1 of 2 nodes) |" in section
    assert "Cluster percentiles (1 of 2 nodes: the union of their successful requests):" in section
    assert "| cluster (1 of 2 nodes) | tpm_total | ≥ | 100,000 tok/min | 0 tok/min | FAIL |" in section
    assert "| cluster (1 of 2 nodes) | INVALID |" in section
    assert "| cluster | " not in section  # every cluster heading names its nodes
    assert "the cluster figures hold 1 of 2 nodes; left out (their job failed): n2." in render_markdown(report)
    assert "| 集群（2 个节点中的 1 个） | tpm_total |" in render_markdown(report, "zh")
    doc = report_document(report)["cases"][4]
    assert doc["partial_cluster"] == {"": {"nodes": 1, "of": 2}} and doc["error_nodes"] == ["n2"]
    assert doc["node_count"] == 2
    # a full cluster is just "cluster"
    assert "| Key | n1 | n2 | cluster |" in _section(render_markdown(report), "perf-6k-1k")


def test_long_context_says_who_answered_without_throughput_tables(report, store, tmp_path):
    case = _case(report, "long-128k")
    n1, n2 = case.long_context
    assert (n1.node, n1.answered, n1.ttft_s, n1.input_tokens, n1.output_tokens) == ("n1", True, 24.2, 128000, 1000)
    assert (n2.node, n2.answered) == ("n2", False) and n2.error.startswith("HTTP 400: This model's maximum")
    md = render_markdown(report, "en")
    section = _section(md, "long-128k")
    assert "| n1 | yes | 24.200 s | 38.685 s | 128,000 | 1,000 | — |" in section
    assert "| n2 | no | n/a | n/a | n/a | n/a | HTTP 400:" in section
    assert "Cluster: 1 of 2 nodes answered; slowest TTFT 24.200 s (n1)." in section
    for word in ("TPM", "throughput", "Percentile", "percentile", "tok/s"):
        assert word not in section, word
    conclusion = md[md.index("## 3. Conclusion"):md.index("## 4.")]
    assert "- `long-128k`: Cluster: 1 of 2 nodes answered; slowest TTFT 24.200 s (n1)." in conclusion
    assert "`long-128k`: cluster TPM" not in conclusion and "`long-128k`: stragglers" not in conclusion
    zh = _section(render_markdown(report, "zh"), "long-128k")
    assert "集群：2 个节点中 1 个返回了结果；最慢的首 token 时延为 24.200 s（n1）。" in zh and "TPM" not in zh
    html = render_html(report, "en")
    lc_html = html[html.index('id="case-long-128k"'):html.index('id="case-perf-extra-args"')]
    assert "TPM" not in lc_html and "percentile" not in lc_html.lower() and "TTFT of the long prompt" in lc_html
    doc = report_document(report)["cases"][3]
    assert [(r["node"], r["answered"]) for r in doc["long_context"]] == [("n1", True), ("n2", False)]
    assert doc["long_context"][1]["ttft_s"] is None
    path = write_xlsx(report, tmp_path / "r.xlsx", "en", raw_requests(store, RUN_ID))
    wb = load_workbook(path, read_only=True)
    for sheet in ("Per-node results", "Percentiles"):
        assert all(r[0] != "long-128k" for r in wb[sheet].iter_rows(values_only=True)), sheet
    summary = next(r for r in wb["Summary"].iter_rows(values_only=True) if r and r[0] == "long-128k")
    assert summary[3] is None and summary[4] is None  # no cluster TPM
    lc = [r for r in wb["Long context"].iter_rows(values_only=True)][1:]
    assert lc[0][:9] == ("long-128k", "n1", 1, 1, 1, 24.2, n1.latency_s, 128000, 1000)
    assert lc[1][:5] == ("long-128k", "n2", 0, 1, 0)


def test_eval_cluster_counts_questions_once_and_names_its_nodes(report):
    cluster = next(s for s in _case(report, "gsm8k").scores if s.scope == "cluster")
    assert cluster.nodes == ("n1", "n2") and cluster.questions == 5 and cluster.samples == 10
    md = render_markdown(report, "en")
    assert "cluster score 40.00 over 5 questions × 2 nodes (n1, n2) (official 60, tolerance 0.5): **FAIL**" in md
    assert "15 samples" not in md and "10 samples" not in md
    assert "5 题 × 2 个节点（n1, n2）" in render_markdown(report, "zh")
    row = next(s for s in report_document(report)["cases"][2]["scores"] if s["scope"] == "cluster")
    assert (row["nodes"], row["questions"], row["samples"]) == (["n1", "n2"], 5, 10)


def test_json_carries_states_reasons_validity_and_failures(report):
    doc = json.loads(render_json(report))
    assert doc["verdict"] == "error" and doc["state"] == "finished"
    assert doc["reasons"][0] == {"state": "fail", "case_id": "perf-6k-1k", "scope": "n1", "what": "ttft_avg_s",
                                 "measured": "949.85 ms", "threshold": "≤ 900 ms"}
    assert [c["state"] for c in doc["cases"]] == ["invalid", "pass", "fail", "fail", "error"]
    extra = doc["cases"][4]
    assert extra["node_states"]["n2"] == {"state": "error", "error": extra["node_states"]["n2"]["error"],
                                          "verdict": "error"}
    assert extra["cluster_state"] == "invalid"
    sweep = doc["cases"][1]
    assert len(sweep["validity"]) == 4 * 6 and {v["point"] for v in sweep["validity"]} == {
        r["point"] for r in sweep["sweep"]}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_no_console_nan_anywhere(report, lang):
    for text in (render_markdown(report, lang), render_html(report, lang), render_json(report)):
        assert not NAN.search(text), NAN.search(text)


def test_html_badges_have_a_colour_per_state(report):
    html = render_html(report, "en")
    assert '<h1>Acceptance report: 2×H200 demo acceptance <span class="verdict error">ERROR</span></h1>' in html
    for state in ("pass", "fail", "error", "invalid", "incomplete"):
        assert f".verdict.{state} {{ background: var(--{state if state != 'fail' else 'fail'}); }}" in html
    assert '<td class="error">ERROR' in html and '<td class="fail">FAIL</td>' in html
    zh = render_html(report, "zh")
    assert '<span class="verdict invalid">无效</span>' in zh and '<span class="verdict error">错误</span>' in zh


def test_five_states_in_both_languages():
    assert [t(f"verdict.{s}", "zh") for s in ("pass", "fail", "error", "invalid", "incomplete")] == [
        "通过", "不通过", "错误", "无效", "未完成"]
    assert [t(f"verdict.{s}", "en") for s in ("pass", "fail", "error", "invalid", "incomplete")] == [
        "PASS", "FAIL", "ERROR", "INVALID", "INCOMPLETE"]


def test_a_store_without_states_falls_back_to_its_verdicts(store):
    """A run stored before states were: no case_verdicts or validity rows, no reasons, verdict pass/fail."""
    for table in ("case_verdicts", "validity"):
        store.db.execute(f"DELETE FROM {table}")
    store.db.execute("UPDATE runs SET verdict = 'fail', reasons_json = NULL")
    store.db.conn.commit()
    report = load_report(store, RUN_ID)
    assert report.verdict == "fail"
    assert [c.verdict for c in report.cases] == ["fail", "pass", "fail", "fail", "fail"]
    assert _case(report, "perf-6k-1k").scope_states == {"n1": "fail", "n2": "fail", "cluster": "fail"}
    assert all(c.validity == [] for c in report.cases)
    lines = [r.line() for r in report.reasons]
    assert "FAIL perf-6k-1k n1: ttft_avg_s: measured 949.85 ms, expected ≤ 900 ms" in lines
    assert "FAIL perf-extra-args cluster: tpm_total: measured 0 tok/min, expected ≥ 100,000 tok/min" in lines
    assert any(r.scope == "n2" and r.case_id == "perf-extra-args" and "job error" in r.what for r in report.reasons)
    md = render_markdown(report, "en")
    assert "Overall verdict: **FAIL**" in md and not NAN.search(md)
