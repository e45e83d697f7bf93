"""Sweep, eval and long-context cases in a plan; score expectations; pooled cluster scores."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fleetbench.controller.aggregate import DatasetScore, judge_scores, pool_scores
from fleetbench.controller.orchestrator import plan_steps
from fleetbench.controller.plan import EvalCase, Expectation, PerfCase, SweepCase, load_plan
from fleetbench.errors import ConfigError
from fleetbench.jobs_schema import JobKind

HEAD = """\
name: kinds
model: DeepSeek-R1
endpoint: {url: http://127.0.0.1:8000/v1/chat/completions}
tokenizer: /models/r1
cases:
"""
CASES = """\
  - id: conc
    type: sweep
    parallel: [1, 2, 4]
    number: [4, 8, 16]
    input_tokens: [128, 1024]
    output_tokens: 256
    loops: 2
    expect: {success_rate: {min: 0.99}}
  - id: acc
    type: eval
    datasets: [aime25, gpqa_diamond]
    dataset_args: {aime25: {local_path: /data/aime25}, gpqa_diamond: {local_path: /data/gpqa}}
    generation_config: {temperature: 0.6, max_tokens: 32000}
    eval_batch_size: 32
    expect:
      score:
        aime25: {official: 93.1, tolerance: 1.0}
        gpqa_diamond: {min: 70}
  - id: long
    type: long_context
    input_tokens: 128000
    output_tokens: 64
"""


def plan_of(tmp_path: Path, cases: str):
    p = tmp_path / "plan.yaml"
    p.write_text(HEAD + cases)
    return load_plan(p)


def test_each_case_type_parses_and_expands_into_steps(tmp_path):
    plan = plan_of(tmp_path, CASES)
    sweep, acc, long = plan.cases
    assert isinstance(sweep, SweepCase) and sweep.number == (4, 8, 16) and sweep.output_tokens == (256,)
    assert isinstance(acc, EvalCase) and acc.eval_batch_size == 32 and acc.limit is None
    assert acc.expect == (Expectation("score:aime25", "official", 93.1, 1.0), Expectation("score:gpqa_diamond",
                                                                                             "min", 70.0))
    assert isinstance(long, PerfCase) and long.type == "long_context" and (long.parallel, long.number) == (1, 1)
    steps = plan_steps(plan)
    assert len(steps) == 2 * 2 * 3 + 2
    assert steps[0].step_id == "conc@in128-out256-p1-n4-loop1" and steps[0].kind == JobKind.PERF
    assert steps[0].job_suffix == "conc.in128-out256-p1-n4-loop1"
    assert steps[-2].kind == JobKind.EVAL and steps[-1].kind == JobKind.LONG_CONTEXT


def test_one_score_bound_applies_to_every_dataset(tmp_path):
    plan = plan_of(tmp_path, "  - {id: e, type: eval, datasets: [gsm8k, math_500], dataset_args: {gsm8k: "
                             "{local_path: /d/g}, math_500: {local_path: /d/m}}, expect: {score: {min: 90}}}\n")
    assert [e.figure for e in plan.cases[0].expect] == ["score:gsm8k", "score:math_500"]


@pytest.mark.parametrize("case, message", [
    ("  - {id: s, type: sweep, parallel: [1, 2], number: [1, 2, 3], input_tokens: 1, output_tokens: 1}",
     "plan.yaml:6: cases[0].number must be one value or a list as long as parallel"),
    ("  - {id: s, type: sweep, parallel: [1, 0], number: 2, input_tokens: 1, output_tokens: 1}",
     "cases[0].parallel[1] must be a positive integer"),
    ("  - {id: s, type: sweep, parallel: 1, number: 2, input_tokens: 1, output_tokens: 1, workers: 0}",
     "cases[0].workers must be a positive integer"),
    ("  - {id: s, type: sweep, parallel: 1, number: 2, lengths: [[1, 2]], input_tokens: 1}",
     "cases[0].lengths replaces input_tokens and output_tokens"),
    ("  - {id: s, type: sweep, parallel: 1, number: 2, lengths: [[1, 2, 3]]}", "cases[0].lengths[0] must be a pair"),
    ("  - {id: s, type: perf, parallel: 1, number: 2, input_tokens: 1, output_tokens: 1, range_ratio: 1.5}",
     "cases[0].range_ratio must be a number in"),
    ("  - {id: e, type: eval}", "cases[0] needs datasets"),
    ("  - {id: e, type: eval, datasets: [a], dataset_args: {b: {}}}", "cases[0].dataset_args.b is not one of"),
    ("  - {id: e, type: eval, datasets: [a]}", "cases[0].dataset_args.a.local_path is required"),
    ("  - {id: e, type: eval, datasets: [a], dataset_args: {a: {local_path: /a}}, expect: {score: {b: {min: 1}}}}",
     "cases[0].expect.score.b is not"),
    ("  - {id: e, type: eval, datasets: [a], dataset_args: {a: {local_path: /a}}, expect: {score: {tolerance: 1}}}",
     "tolerance needs official"),
    ("  - {id: e, type: eval, datasets: [a], dataset_args: {a: {local_path: /a}}, expect: {ttft_avg_s: {max: 1}}}",
     "expect.ttft_avg_s is not a known"),
    ("  - {id: e, type: eval, datasets: [a], parallel: 3}", "cases[0].parallel is not a known key"),
    ("  - {id: x, type: benchmark}", "cases[0].type must be one of perf, sweep, eval, long_context"),
    ("  - {id: p, parallel: 2, number: 2, input_tokens: 1, output_tokens: 1, workers: many}",
     "cases[0].workers must be a positive integer or auto, got 'many'"),
    ("  - {id: p, parallel: 2, number: 2, input_tokens: 1, output_tokens: 1, workers: 3}",
     "cases[0].workers cannot exceed parallel or number"),
])
def test_errors_name_file_line_and_field(tmp_path, case, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        plan_of(tmp_path, case + "\n")


def test_official_score_passes_within_tolerance_below_and_anything_above():
    e = Expectation("score:aime25", "official", 93.1, 1.0)
    assert e.check(92.1) and e.check(93.1) and e.check(99.0)
    assert not e.check(92.0) and not e.check(math.nan)
    assert "official 93.1" in e.describe()


def test_cluster_score_pools_every_nodes_samples():
    # n1: 3/4 correct, n2: 1/2 correct -> the fleet answered 4 of 6: 66.67 %, not the mean of 75 and 50
    pooled = pool_scores({"n1": [DatasetScore("gsm8k", "acc", 75.0, 4)],
                          "n2": [DatasetScore("gsm8k", "acc", 50.0, 2)]})
    assert pooled == [DatasetScore("gsm8k", "acc", pytest.approx(400 / 6), 6)]
    (v,) = judge_scores("cluster", pooled, [Expectation("score:gsm8k", "min", 66.0)])
    assert v.passed and v.measured == pytest.approx(66.6666, abs=1e-3)
    (missing,) = judge_scores("n1", [], [Expectation("score:gsm8k", "min", 66.0)])
    assert not missing.passed and "no score for dataset gsm8k" in missing.note


def test_workers_default_to_auto_which_each_agent_resolves(tmp_path):
    case = "  - {{id: {}, parallel: 84, number: 168, input_tokens: 1, output_tokens: 1{}}}\n"
    cases = case.format("a", "") + case.format("b", ", workers: 2") + case.format("c", ", workers: auto")
    plan = plan_of(tmp_path, cases)
    assert [c.workers for c in plan.cases] == [0, 2, 0]  # 0 on the wire: chosen on the node


def test_sweep_points_get_auto_workers_or_the_pinned_count_capped_at_each_point(tmp_path):
    # seed 001 sweeps to 512 streams: one Python client is CPU-bound there (docs/performance.md)
    case = ("  - {{id: s, type: sweep, parallel: [1, 4, 512], number: [2, 8, 1024], "
            "input_tokens: 1, output_tokens: 1{}}}\n")
    auto = plan_of(tmp_path, case.format("")).cases[0]
    assert [pc.workers for _, pc in auto.points()] == [0, 0, 0]
    pinned = plan_of(tmp_path, case.format(", workers: 2")).cases[0]
    assert [pc.workers for _, pc in pinned.points()] == [1, 2, 2]
