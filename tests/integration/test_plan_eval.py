"""An eval case through `ctl run` on two real agents: each node's endpoint answers a known subset of
a local gsm8k set (n1: 3 of 5, n2: 1 of 5), so every score, the pooled cluster score and each verdict
against the official score are known exactly."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fleetbench.controller.report.model import load_report
from fleetbench.controller.store import Store

pytestmark = pytest.mark.integration
DATA = Path(__file__).parents[1] / "data" / "eval"

PLAN = """\
name: eval
model: demo
endpoint: {{url: http://127.0.0.1:9/v1/chat/completions}}
cases:
  - id: gsm8k
    type: eval
    datasets: [gsm8k]
    dataset_args: {{gsm8k: {{local_path: {gsm8k}, few_shot_num: 0}}}}
    generation_config: {{max_tokens: 64}}
    eval_batch_size: 2
    expect:
      score: {{official: 60.0, tolerance: 0.5}}
"""


def test_eval_case_scores_per_node_pooled_for_the_cluster_and_judged(tmp_path, fresh_fleet):
    one_right = tmp_path / "answers-1-of-5.jsonl"
    one_right.write_text((DATA / "answers-3-of-5.jsonl").read_text().splitlines()[0] + "\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(gsm8k=DATA / "gsm8k"))
    db = tmp_path / "fb.sqlite"
    common = ["--output-tokens", "8"]
    fleet = fresh_fleet(2, ttft_ms=5, tpot_ms=1, extra_endpoint_args=common, allow_paths=[DATA],
                        node_endpoint_args={"n1": ["--answers", str(DATA / "answers-3-of-5.jsonl")],
                                            "n2": ["--answers", str(one_right)]})
    proc = fleet.run(plan, db, tmp_path / "out", timeout=400)
    fleet.stop()
    assert proc.returncode == 1, proc.stderr[-3000:]  # n2 and the cluster score below the official score
    con = sqlite3.connect(db)
    scores = {r[0]: (r[1], r[2]) for r in con.execute(
        "SELECT scope, score, samples FROM scores WHERE dataset = 'gsm8k'")}
    assert scores == {"n1": (60.0, 5), "n2": (20.0, 5), "cluster": (40.0, 10)}
    verdicts = {r[0]: (r[1], r[2]) for r in con.execute(
        "SELECT scope, measured, passed FROM verdicts WHERE figure = 'score:gsm8k' AND op = 'official'")}
    assert verdicts == {"n1": (60.0, 1), "n2": (20.0, 0), "cluster": (40.0, 0)}
    (run_id,) = con.execute("SELECT run_id FROM runs").fetchone()
    case = load_report(Store(db), run_id).cases[0]
    assert case.case_type == "eval" and case.verdict == "fail"
    rows = {s.scope: s for s in case.scores}
    assert rows["n1"].passed is True and rows["n2"].passed is False and rows["cluster"].official == 60.0
    assert rows["cluster"].tolerance == 0.5 and rows["cluster"].delta == pytest.approx(-20.0)
    assert "evalscope eval" in case.command and "--datasets gsm8k" in case.command
    assert "case gsm8k: cluster score gsm8k 40.00; FAIL" in proc.stderr
    # every node's job result keeps evalscope's per-dataset rows as the agent reported them
    result = json.loads(con.execute("SELECT result_json FROM case_nodes WHERE node = 'n1'").fetchone()[0])
    assert result["scores"][0]["score"] == 60.0
