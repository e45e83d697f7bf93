"""A plan with a sweep and a long-context case on two real agents: every sweep point is its own
synchronized step with per-node and cluster figures recomputable from the stored requests, loop
averages are the mean of the loops, and the long-context case reports its one request."""

from __future__ import annotations

import json
import sqlite3

import pytest
from support.fleets import Fleet
from support.plans import SWEEP_CASE, plan_text

from fleetbench.controller.report.model import load_report
from fleetbench.controller.store import Store
from fleetbench.figures import compute_figures

pytestmark = pytest.mark.integration

LONG_CASE = """\
  - id: long
    type: long_context
    input_tokens: 2048
    output_tokens: 4
    expect:
      ttft_avg_s: {max: 30}
"""
LABELS = ["in16-out8-p1-n2-loop1", "in16-out8-p2-n4-loop1", "in16-out8-p1-n2-loop2", "in16-out8-p2-n4-loop2"]


@pytest.fixture(scope="module")
def kinds_run(local_fleet, demo_tokenizer):
    fleet: Fleet = local_fleet(2)
    plan = fleet.work / "plan.yaml"
    plan.write_text(plan_text("kinds", demo_tokenizer, SWEEP_CASE + LONG_CASE))
    db = fleet.work / "fb.sqlite"
    proc = fleet.run(plan, db, fleet.work / "out", timeout=400, start_lead_s=5)
    assert proc.returncode == 0, proc.stderr[-3000:]
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    (run_id,) = con.execute("SELECT run_id FROM runs").fetchone()
    assert "case sweep: 4 sweep points; best cluster TPM" in proc.stderr
    return db, con, run_id


def test_every_sweep_point_is_a_synchronized_step_with_recomputable_figures(kinds_run):
    db, con, run_id = kinds_run
    report = load_report(Store(db), run_id)
    sweep = report.cases[0]
    assert sweep.case_type == "sweep" and sweep.verdict == "pass"
    assert [r.point for r in sweep.sweep] == [lb for lb in LABELS for _ in range(3)]
    assert [r.scope for r in sweep.sweep[:3]] == ["n1", "n2", "cluster"]
    store = Store(db)
    for row in sweep.sweep:
        step = f"sweep@{row.point}"
        records = store.records(run_id, step, None if row.scope == "cluster" else row.scope)
        assert len(records) == row.number * (2 if row.scope == "cluster" else 1)
        assert {r.point for r in records} == {row.point}
        expected = compute_figures(records)
        assert row.figures.tpm_total == expected.tpm_total and row.figures.ttft_avg_s == expected.ttft_avg_s
        assert row.avg_tps == pytest.approx(1 / expected.tpot_avg_s, rel=1e-12)
        # per-request throughput divides by every stream behind the figure: 2 nodes' for the cluster
        streams = row.parallel * (2 if row.scope == "cluster" else 1)
        assert row.per_request_tps == pytest.approx(expected.output_throughput_tps / streams, rel=1e-12)
    # every point starts on both nodes at one instant and after the previous point ended
    starts = {r["case_id"]: r["start_at"] for r in con.execute(
        "SELECT case_id, min(start_at) AS start_at, max(start_at) - min(start_at) AS spread FROM case_nodes "
        "WHERE run_id = ? AND case_id LIKE 'sweep@%' GROUP BY case_id", [run_id])}
    assert sorted(starts, key=starts.get) == [f"sweep@{lb}" for lb in LABELS]
    spread = con.execute("SELECT max(s) FROM (SELECT max(start_at) - min(start_at) AS s FROM case_nodes "
                         "WHERE run_id = ? GROUP BY case_id)", [run_id]).fetchone()[0]
    assert spread == 0.0  # one common instant per step
    # loop averages: the plain mean of the two loops
    avg = {(a.scope, a.parallel): a for a in sweep.sweep_averages}
    assert len(avg) == 2 * 3 and all(a.loops == 2 for a in avg.values())
    for (scope, par), a in avg.items():
        rows = [r for r in sweep.sweep if r.scope == scope and r.parallel == par]
        assert a.ttft_avg_s == pytest.approx(sum(r.figures.ttft_avg_s for r in rows) / 2, rel=1e-12)
        assert a.output_throughput_tps == pytest.approx(sum(r.figures.output_throughput_tps for r in rows) / 2,
                                                        rel=1e-12)
    # the expectation is judged at each point, per node and for the cluster
    verdicts = con.execute("SELECT case_id, scope, passed FROM verdicts WHERE run_id = ? AND case_id LIKE "
                           "'sweep@%'", [run_id]).fetchall()
    assert len(verdicts) == 4 * 3 and all(v["passed"] for v in verdicts)
    assert "evalscope perf" in sweep.command and "--parallel 1 2 --number 2 4" in sweep.command


def test_long_context_case_reports_its_request(kinds_run):
    db, con, run_id = kinds_run
    report = load_report(Store(db), run_id)
    long = report.cases[1]
    assert long.case_type == "long_context" and long.verdict == "pass"
    for node in ("n1", "n2"):
        assert long.node_figures[node].requests == 1 and long.node_figures[node].succeeded == 1
        (row,) = con.execute("SELECT result_json FROM case_nodes WHERE run_id = ? AND case_id = 'long' AND "
                             "node = ?", [run_id, node]).fetchall()
        lc = json.loads(row["result_json"])["long_context"]
        assert lc["passed"] is True and lc["ttft_s"][0] == pytest.approx(long.node_figures[node].ttft_avg_s)
        assert lc["input_tokens"][0] >= 2000
