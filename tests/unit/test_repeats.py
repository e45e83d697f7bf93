"""Repeats (issue 18, item 5): mean and 95 % confidence interval of each figure over a case's runs, checked by
hand on fixed data; spread over 5 % flagged; a `repeat: N` case is N judged steps; the report's table."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fleetbench.controller.orchestrator import plan_steps
from fleetbench.controller.plan import load_plan
from fleetbench.controller.report import content as c
from fleetbench.controller.report.model import CaseReport, repeat_stats
from fleetbench.figures import compute_figures
from fleetbench.records import RequestRecord
from fleetbench.repeats import SPREAD_LIMIT, repeat_stat, t975


def test_interval_by_hand():
    st = repeat_stat([10.0, 12.0, 14.0])
    assert (st.n, st.mean, st.sd, st.low, st.high) == (3, 12.0, 2.0, 10.0, 14.0)
    assert st.ci95 == pytest.approx(4.303 * 2.0 / math.sqrt(3), rel=1e-12)  # t(0.975, 2) = 4.303
    assert st.spread == pytest.approx(4 / 12) and st.flagged
    st = repeat_stat([100.0, 101.0, 102.0, 103.0])
    assert st.sd == pytest.approx(math.sqrt(5 / 3), rel=1e-12)
    assert st.ci95 == pytest.approx(3.182 * math.sqrt(5 / 3) / 2, rel=1e-12)  # t(0.975, 3) = 3.182
    assert st.spread == pytest.approx(3 / 101.5) and not st.flagged
    st = repeat_stat([200.0, 210.0])  # spread 10 / 205 = 4.9 %: within 5 %
    assert st.ci95 == pytest.approx(12.706 * math.sqrt(50) / math.sqrt(2)) and not st.flagged
    assert SPREAD_LIMIT == 0.05


def test_edge_cases():
    one = repeat_stat([5.0])
    assert one.n == 1 and one.mean == 5.0 and math.isnan(one.ci95) and not one.flagged
    none = repeat_stat([math.nan, math.nan])
    assert none.n == 0 and math.isnan(none.mean)
    assert repeat_stat([1.0, math.nan, 3.0]).n == 2  # a run that could not measure it is left out
    assert (t975(1), t975(30), t975(35), t975(60), t975(1000)) == (12.706, 2.042, 2.042, 2.000, 1.960)


def recs(n: int, ttft: float, start: float) -> list[RequestRecord]:
    return [RequestRecord(index=i, start_time=start + i, end_time=start + i + ttft + 0.1, success=True, ttft_s=ttft,
                          latency_s=ttft + 0.1, input_tokens=10, output_tokens=11, tpot_s=0.01) for i in range(n)]


def test_repeat_stats_over_runs_figures_and_the_table():
    runs = [{"n1": compute_figures(recs(4, ttft, 0.0)), "cluster": compute_figures(recs(4, ttft, 0.0))}
            for ttft in (0.1, 0.2, 0.3)]
    stats = repeat_stats(runs, [])
    assert list(stats) == ["n1", "cluster"]
    ttft = stats["cluster"]["ttft_avg_s"]
    assert ttft.mean == pytest.approx(0.2) and ttft.ci95 == pytest.approx(4.303 * 0.1 / math.sqrt(3))
    assert ttft.flagged and "goodput_tpm" not in stats["cluster"]
    tpm = stats["cluster"]["tpm_total"]
    assert tpm.mean == pytest.approx(sum(r["cluster"].tpm_total for r in runs) / 3, rel=1e-12)
    case = CaseReport(case_id="r", purpose="", command="", node_figures={}, cluster=None,
                      sum_node_tpm_total=math.nan, sum_node_tpm_output=math.nan, start_skew_s=math.nan, stragglers=[],
                      node_states={}, evalscope_summaries={}, verdicts=[], repeats=stats, repeat_runs=3)
    table = c.repeat_table(case, "en")
    row = next(r for r in table.rows if r[0] == "Average time to first token (ms)")  # the catalogue's label and unit
    assert row[2] == f"200.00 ± {4.303 * 0.1 / math.sqrt(3) * 1000:.2f} (spread 100.0 %) ⚠ > 5 %"
    assert "Spread over 5 %:" in c.repeat_title(case, "en")


PLAN = """\
name: p
model: m
endpoint: {url: http://127.0.0.1:8000/v1/completions}
tokenizer: /t
cases:
  - {id: again, parallel: 2, number: 4, input_tokens: 8, output_tokens: 8, repeat: 3}
  - {id: once, parallel: 2, number: 4, input_tokens: 8, output_tokens: 8}
"""


def test_a_repeated_case_is_n_steps(tmp_path: Path):
    p = tmp_path / "plan.yaml"
    p.write_text(PLAN)
    steps = plan_steps(load_plan(p))
    assert [(s.step_id, s.point, s.rep) for s in steps] == [("again@rep1", "rep1", 1), ("again@rep2", "rep2", 2),
                                                            ("again@rep3", "rep3", 3), ("once", "", 0)]
    assert steps[0].perf.parallel == 2 and steps[0].perf.id == "again@rep1"
    p.write_text(PLAN.replace("repeat: 3", "repeat: 0"))
    from fleetbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"cases\[0\].repeat must be a whole number from 1 to 100"):
        load_plan(p)


def test_the_definition_is_in_docs_figures_md():
    from fleetbench.repeats import DEFINITION

    assert DEFINITION in (Path(__file__).parents[2] / "docs" / "figures.md").read_text()
