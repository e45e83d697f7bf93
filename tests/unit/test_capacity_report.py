"""How a capacity case reads (controller/capacity.py's result through content.py, html.py, json_report.py): the
answer per scope with TPM and goodput TPM there, the probe table, the charts with the SLO line and the found
point; an invalid probe (run again) is listed but not counted."""

from __future__ import annotations

import math
import re

from fleetbench.controller.capacity import CapacitySearch, capacity_result, probe_row
from fleetbench.controller.report import content as c
from fleetbench.controller.report import html as h
from fleetbench.controller.report.model import CaseReport

KNEE = 4


def row(scope: str, parallel: int, attempt: int, state: str, within: bool) -> dict:
    figures = {"requests": parallel * 2, "success_rate": 1.0, "tpm_total": 1000.0 * min(parallel, KNEE) + attempt,
               "tpm_output": 500.0, "percentiles": {"ttft_s": {"99": 0.16 if within else 0.4},
                                                    "tpot_s": {"99": 0.01}}}
    extra = {"goodput": {"goodput_tpm": 900.0 * min(parallel, KNEE) + attempt, "goodput_ratio": 0.9}}
    return probe_row(scope, parallel, attempt, state, within, figures, extra, [])


def capacity_case(knee: int = KNEE) -> CaseReport:
    search = CapacitySearch(1, 16, ["cluster", "n1"])
    rows, tries = [], {}
    while (p := search.next_probe()) is not None:
        attempt = tries[p] = tries.get(p, 0) + 1
        if p == 8 and attempt == 1:  # invalid (a saturated client): listed, run again, not counted
            rows += [row(s, p, attempt, "invalid", False) for s in ("cluster", "n1")]
            continue
        ok = {"cluster": p <= knee, "n1": p <= knee}
        rows += [row(s, p, attempt, "pass" if ok[s] else "fail", ok[s]) for s in ok]
        search.record(p, ok)
    return CaseReport(case_id="cap", purpose="", command="", node_figures={}, cluster=None,
                      sum_node_tpm_total=math.nan, sum_node_tpm_output=math.nan, start_skew_s=math.nan, stragglers=[],
                      node_states={}, evalscope_summaries={}, verdicts=[], case_type="capacity",
                      capacity=capacity_result(search, rows),
                      capacity_slo=[{"figure": "ttft_p99_s", "op": "max", "threshold": 0.3}])


def test_result_per_scope_is_the_lowest_run_at_the_answer():
    case = capacity_case()
    cl = case.capacity["cluster"]
    assert cl["max_parallel"] == KNEE and not cl["at_top"]
    assert (cl["tpm_total"], cl["goodput_tpm"]) == (4001.0, 3601.0)  # attempts 1 and 2 at 4: the lower
    assert [(p["parallel"], p["attempt"], p["state"]) for p in cl["probes"]][3:5] == [(8, 1, "invalid"),
                                                                                      (8, 2, "fail")]


def test_tables_and_conclusion():
    case = capacity_case()
    assert c.capacity_table(case, "en").rows == [["cluster", "4", "4,001", "3,601"], ["n1", "4", "4,001", "3,601"]]
    probes = c.capacity_probe_table(case, "en").rows
    assert probes[0][:5] == ["1", "1", "PASS", "yes", "n1"] and probes[0][7] == "160.00 ms"
    assert [r[0] for r in probes] == ["1", "2", "4", "8", "8", "6", "5", "4"]
    points = c.capacity_points(case)
    assert [(p["value"], p["within"]) for p in points] == [(1, 1), (2, 1), (4, 1), (5, 0), (6, 0), (8, 0)]
    assert points[2]["tpm_total"] == 4001.0  # the worst of the two runs at 4
    assert c.capacity_slo_text(case, "en") == "ttft_p99_s <= 300 ms"


def test_an_answer_at_the_top_of_the_range_says_it_may_be_higher_everywhere_it_is_stated():
    """The conclusions and the console said "capacity 16" where the table said "16 (the range's max: may be
    higher)": every probe held the SLO, so the engine's capacity was never found, only bounded below."""
    from fleetbench.controller.orchestrator import RunOutcome
    from fleetbench.controller.report.model import RunReport
    from fleetbench.controller.runner import conclusion_lines

    top, inside = capacity_case(knee=64), capacity_case()
    assert top.capacity["cluster"]["at_top"] and top.capacity["cluster"]["max_parallel"] == 16
    assert c.capacity_table(top, "en").rows[0][1] == "16 (the range's max: may be higher)"
    for case, caveat in ((top, True), (inside, False)):
        report = RunReport(run_id="r1", plan_name="p", model="m", started_at=0.0, finished_at=1.0, verdict="pass",
                           fleetbench_version="", nodes=[], cases=[case])
        (line,) = c.conclusion_lines(report, "en")
        assert ("capacity **16** concurrent requests per node (the range's max: may be higher) within the SLO"
                in line) is caveat and ("may be higher" in line) is caveat, line
        assert ("may be higher" in "".join(c.conclusion_lines(report, "zh"))) is False  # zh words it its own way
        assert ("实际可能更高" in "".join(c.conclusion_lines(report, "zh"))) is caveat
        console = [ln for ln in conclusion_lines(report, RunOutcome("r1"), 1) if "capacity" in ln]
        assert console and ("(the range's max: may be higher)" in console[0]) is caveat, console


def test_charts_draw_the_slo_line_and_the_found_point():
    charts = h.capacity_charts(capacity_case(), "en")
    titles = [re.findall(r"<title>([^<]*)</title>", ch)[0] for ch in charts]
    assert titles == ["cap: TPM against concurrency per node (cluster)",
                      "cap: p99 TTFT against concurrency per node (cluster)",
                      "cap: p99 TPOT against concurrency per node (cluster)"]
    assert "SLO ttft_p99_s ≤ 300 ms" in charts[1] and "SLO" not in charts[0]
    assert all("found: 4" in ch for ch in charts)


RATE_KNEE = 12.0


def rate_case(load: str = "each") -> CaseReport:
    """A rate search (0.5 .. 64 req/s, 5 %) on a knee at 12 req/s: the cluster only under `load: split`."""
    scopes = ["cluster"] if load == "split" else ["cluster", "n1"]
    search = CapacitySearch(0.5, 64.0, scopes, step=0.0, ratio=0.05)
    rows, tries = [], {}
    while (r := search.next_probe()) is not None:
        attempt = tries[r] = tries.get(r, 0) + 1
        ok = {s: r <= RATE_KNEE for s in scopes}
        figures = {"requests": int(r * 10), "success_rate": 1.0, "tpm_total": 100.0 * min(r, RATE_KNEE),
                   "percentiles": {"ttft_s": {"99": 0.2 if ok["cluster"] else 3.0}, "tpot_s": {"99": 0.01}}}
        rows += [probe_row(s, int(r * 10), attempt, "pass" if ok[s] else "fail", ok[s], figures,
                           {"goodput": {"goodput_tpm": 90.0 * min(r, RATE_KNEE)}}, [], rate=r, value=r)
                 for s in scopes]
        search.record(r, ok)
    return CaseReport(case_id="cap", purpose="", command="", node_figures={}, cluster=None,
                      sum_node_tpm_total=math.nan, sum_node_tpm_output=math.nan, start_skew_s=math.nan, stragglers=[],
                      node_states={}, evalscope_summaries={}, verdicts=[], case_type="capacity",
                      capacity=capacity_result(search, rows, "rate"), capacity_axis="rate", load=load, node_count=3,
                      capacity_slo=[{"figure": "ttft_p99_s", "op": "max", "threshold": 2.0}])


def test_a_rate_search_reads_in_requests_per_second():
    case = rate_case()
    cl = case.capacity["cluster"]
    assert "max_parallel" not in cl and RATE_KNEE / 1.05 <= cl["max_rate"] <= RATE_KNEE
    found = f"{cl['max_rate']:g}"
    assert c.capacity_table(case, "en").header[1] == "Max request rate per node (req/s)"
    assert c.capacity_table(case, "en").rows[0][1] == found
    probes = c.capacity_probe_table(case, "en")
    assert probes.header[0] == "Probed: request rate per node (req/s)"
    assert [r[0] for r in probes.rows][:8] == ["0.5", "1", "2", "4", "8", "16", "12", "14"]
    charts = h.capacity_charts(case, "en")
    assert "cap: p99 TTFT against request rate per node (req/s) (cluster)" in charts[1]
    assert f"found: {found}" in charts[1]
    ticks = re.findall(r'text-anchor="middle" font-size="11">([0-9.]+)</text>', charts[1])
    # each rate as probed: 12 and 12.5 are two ticks, not "12" twice
    assert ticks == ["0.5", "1", "2", "4", "8", "12", "12.5", "13", "14", "16"]
    assert c.capacity_amount(case, cl["max_rate"], "en") == f"**{found}** requests/s per node"


def test_a_split_search_is_the_clusters_total_on_one_endpoint():
    case = rate_case("split")
    assert list(case.capacity) == ["cluster"]
    assert c.capacity_what(case, "en") == "request rate in total (req/s; one endpoint, load from 3 agents)"
    probes = c.capacity_probe_table(case, "en")
    assert "Nodes within SLO" not in probes.header and len(probes.rows[0]) == len(probes.header)
    assert c.capacity_amount(case, 12, "zh") == "总计 **12** 请求/秒（同一端点，负载来自 3 个代理）"
