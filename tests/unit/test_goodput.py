"""Goodput (issue 18, item 1): the share of requests meeting a per-request SLO and what they carried, checked
against a hand count on fixed records; the plan's `slo` (limits or an MLPerf preset) and `expect` on goodput."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fleetbench.controller.aggregate import aggregate_case, judge
from fleetbench.controller.orchestrator import scope_goodput
from fleetbench.controller.plan import Expectation, load_plan
from fleetbench.errors import ConfigError
from fleetbench.goodput import DEFINITIONS, SLO_PRESETS, Slo, compute_goodput, meets, preset_slo
from fleetbench.records import RequestRecord

DOCS = Path(__file__).parents[2] / "docs"


def rec(i: int, start: float, ttft: float, tpot: float, out: int = 11, ok: bool = True, inp: int = 100,
        latency: float | None = None) -> RequestRecord:
    lat = latency if latency is not None else ttft + tpot * (out - 1)
    return RequestRecord(index=i, start_time=start, end_time=start + lat, success=ok, ttft_s=ttft if ok else 0.0,
                         latency_s=lat if ok else 0.0, input_tokens=inp if ok else 0, output_tokens=out if ok else 0,
                         tpot_s=tpot if ok else 0.0)


# SLO: TTFT <= 1.0 s, TPOT <= 0.05 s. By hand:
FIXED = [
    rec(0, 100.0, 0.50, 0.040),  # good: 100 + 11 tokens
    rec(1, 100.0, 1.00, 0.050),  # good: both exactly at the limit (limits are inclusive)
    rec(2, 100.5, 1.20, 0.030),  # miss: TTFT
    rec(3, 101.0, 0.40, 0.060),  # miss: TPOT
    rec(4, 101.0, 0.30, 0.040, ok=False),  # miss: failed
    rec(5, 102.0, 0.90, 9.999, out=1, inp=50),  # good: one output token, TPOT not defined so not limited
]
SLO = Slo(ttft_s=1.0, tpot_s=0.05)


def test_goodput_equals_a_hand_count_on_fixed_records():
    assert [meets(r, SLO) for r in FIXED] == [True, True, False, False, False, True]
    wall = max(r.end_time for r in FIXED) - min(r.start_time for r in FIXED)
    g = compute_goodput(FIXED, SLO, wall)
    assert (g.requests, g.good) == (6, 3)
    assert g.ratio == 0.5
    assert (g.input_tokens, g.output_tokens) == (100 + 100 + 50, 11 + 11 + 1)
    assert g.tps == pytest.approx(23 / wall, rel=1e-15)
    assert g.tpm == pytest.approx(273 / wall * 60, rel=1e-15)
    assert g.rps == pytest.approx(3 / wall, rel=1e-15)


def test_latency_limit_and_no_limits():
    assert compute_goodput(FIXED, Slo(latency_s=0.9), 10.0).good == 2  # records 0 (0.5 + 0.4) and 5 (0.9)
    assert compute_goodput(FIXED, Slo(), 10.0).good == 5  # no limit: every successful request
    empty = compute_goodput([], SLO, math.nan)
    assert empty.requests == 0 and math.isnan(empty.ratio) and math.isnan(empty.tpm)


def test_node_and_cluster_goodput_use_the_figures_windows_and_never_exceed_tpm():
    by_node = {"n1": FIXED[:3], "n2": FIXED[3:]}
    agg = aggregate_case(by_node)
    good = scope_goodput(by_node, agg, SLO)
    assert (good["n1"].good, good["n2"].good, good["cluster"].good) == (2, 1, 3)
    assert good["cluster"].wall_time_s == agg.cluster.wall_time_s
    assert good["n2"].wall_time_s == agg.nodes["n2"].wall_time_s
    for scope, figs in {**agg.nodes, "cluster": agg.cluster}.items():
        assert good[scope].tpm <= figs.tpm_total
    assert scope_goodput(by_node, agg, None) == {}


def test_goodput_is_judged_like_any_figure():
    by_node = {"n1": FIXED}
    agg = aggregate_case(by_node)
    good = scope_goodput(by_node, agg, SLO)
    (v,) = judge("n1", agg.nodes["n1"], [Expectation("goodput_ratio", "min", 0.99)], good["n1"].values())
    assert not v.passed and v.measured == 0.5
    (v,) = judge("n1", agg.nodes["n1"], [Expectation("goodput_ratio", "min", 0.5)], good["n1"].values())
    assert v.passed
    # without goodput figures (no SLO) the expectation cannot pass
    (v,) = judge("n1", agg.nodes["n1"], [Expectation("goodput_ratio", "min", 0.0)])
    assert not v.passed and "not available" in v.note


def test_round_trip_through_the_store_dict():
    g = compute_goodput(FIXED, SLO, 3.0)
    assert type(g).from_dict(g.to_dict()) == g


PLAN = """\
name: p
model: m
endpoint: {url: http://127.0.0.1:8000/v1/completions}
tokenizer: /t
cases:
  - id: a
    parallel: 4
    number: 8
    input_tokens: 10
    output_tokens: 10
    SLO
    expect:
      goodput_ratio: {min: 0.99}
"""


def test_plan_slo_as_limits_or_an_mlperf_preset(tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text(PLAN.replace("SLO", "slo: {ttft_s: 2.0, tpot_s: 0.02}"))
    (case,) = load_plan(p).cases
    assert case.slo == Slo(ttft_s=2.0, tpot_s=0.02)
    assert case.expect[0].figure == "goodput_ratio"
    p.write_text(PLAN.replace("SLO", "slo: mlperf-llama2-70b-interactive"))
    assert load_plan(p).cases[0].slo == Slo(ttft_s=0.45, tpot_s=0.04) == preset_slo("mlperf-llama2-70b-interactive")
    assert SLO_PRESETS["mlperf-llama2-70b"] == (2.0, 0.2) and SLO_PRESETS["mlperf-deepseek-r1"] == (2.0, 0.08)


@pytest.mark.parametrize(("slo", "message"), [
    ("warmup_requests: 0", r"plan.yaml:\d+: cases\[0\].expect.goodput_ratio needs the case's slo"),
    ("slo: mlperf-gpt-9", r"plan.yaml:11: cases\[0\].slo must be a preset \(mlperf-llama2-70b"),
    ("slo: {}", r"plan.yaml:11: cases\[0\].slo needs ttft_s, tpot_s and/or latency_s"),
    ("slo: {ttft_s: -1}", r"plan.yaml:11: cases\[0\].slo.ttft_s must be a positive number of seconds"),
    ("slo: {ttft: 1}", r"plan.yaml:11: cases\[0\].slo.ttft is not a known key"),
])
def test_plan_slo_errors_name_the_line_and_field(tmp_path, slo, message):
    p = tmp_path / "plan.yaml"
    p.write_text(PLAN.replace("SLO", slo))
    with pytest.raises(ConfigError, match=message):
        load_plan(p)


def test_cluster_goodput_expectation_needs_every_perf_case_to_have_an_slo(tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text(PLAN.replace("SLO", "warmup_requests: 0").replace("    expect:\n      goodput_ratio: {min: 0.99}\n",
                                                                   "") + "cluster:\n  expect:\n    goodput_tpm: "
                                                                         "{min: 1}\n")
    with pytest.raises(ConfigError, match=r"cases\[0\].slo needs an slo: the cluster expects goodput_tpm"):
        load_plan(p)


def test_every_goodput_definition_is_in_docs_figures_md():
    text = (DOCS / "figures.md").read_text()
    for key, sentence in DEFINITIONS.items():
        assert f"- **{key}**: {sentence}" in text, key


def test_a_sweep_with_an_slo_shows_goodput_per_point():
    from fleetbench.controller.report import content as c
    from fleetbench.controller.report.model import CaseReport, SweepPointRow
    from fleetbench.figures import compute_figures

    figs = compute_figures(FIXED)
    good = compute_goodput(FIXED, SLO, figs.wall_time_s)
    rows = [SweepPointRow("n1", "in100-out11-p2-n6-loop1", 100, 11, 2, 6, 1, figs, 2, good)]
    case = CaseReport(case_id="s", purpose="", command="", node_figures={}, cluster=None,
                      sum_node_tpm_total=math.nan, sum_node_tpm_output=math.nan, start_skew_s=math.nan, stragglers=[],
                      node_states={}, evalscope_summaries={}, verdicts=[], case_type="sweep", sweep=rows)
    table = c.sweep_table(case, "n1", "en")
    assert table.header[-2:] == ["Goodput ratio", "Goodput TPM (tok/min)"]
    assert table.rows[0][-2:] == ["50%", f"{good.tpm:,.0f}"]
    rows[0] = SweepPointRow("n1", "in100-out11-p2-n6-loop1", 100, 11, 2, 6, 1, figs, 2)
    assert "Goodput ratio" not in c.sweep_table(case, "n1", "en").header  # no SLO, no goodput columns


def test_columns_count_as_records_and_the_cluster_merge_is_the_union():
    from fleetbench.columns import RecordColumns
    from fleetbench.goodput import Goodput

    nan_ttft = RequestRecord(index=9, start_time=103.0, end_time=104.0, success=True, ttft_s=math.nan, latency_s=1.0,
                             input_tokens=5, output_tokens=5, tpot_s=0.01)
    records = [*FIXED, nan_ttft]  # a NaN TTFT never meets a limit
    for slo in (SLO, Slo(latency_s=0.9), Slo(), Slo(tpot_s=0.045)):
        assert compute_goodput(RecordColumns.from_records(records), slo, 7.0) == compute_goodput(records, slo, 7.0)
    merged = Goodput.merge([compute_goodput(FIXED[:2], SLO, 1.0), compute_goodput(FIXED[2:], SLO, 2.0)], 5.0)
    assert merged == compute_goodput(FIXED, SLO, 5.0)
