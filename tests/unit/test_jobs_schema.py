"""The job contract (fleetbench/jobs_schema.py): every spec and result survives its JSON, the wire format is the
one agents and controllers already speak, and a bad field is refused naming the field and its bound."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import pytest

from fleetbench.controller.fleet import Node
from fleetbench.controller.plan import load_plan
from fleetbench.controller.specs import eval_spec, perf_spec
from fleetbench.errors import ConfigError
from fleetbench.jobs_schema import (
    CheckRow,
    EvalSpec,
    JobKind,
    JobOutcome,
    LongContextResult,
    LongContextSpec,
    PerfSpec,
    PreflightSpec,
    Saturation,
    ScoreRow,
    SubsetScoreRow,
    parse_spec,
)

PERF = {"url": "http://10.0.0.5:8000/v1/completions", "model": "m", "tokenizer_path": "/tok", "number": 64,
        "parallel": 8, "input_tokens": 1000, "output_tokens": 200}
EVAL = {"url": "http://10.0.0.5:8000/v1", "model": "m", "datasets": ["gsm8k"],
        "dataset_args": {"gsm8k": {"local_path": "/data/gsm8k"}}}
# A perf spec as the hand-written PerfSpec.to_json() of the previous release wrote it (every field, sorted).
OLD_PERF_WIRE = {
    "api": "openai", "api_key": "k", "connect_timeout_s": None, "dataset": "random", "dataset_offset": 0,
    "dataset_path": "", "extra_args": {"ignore_eos": True}, "headers": {}, "input_tokens": 1000, "model": "m",
    "number": 64, "output_tokens": 200, "parallel": 8, "prefix_length": 0, "range_ratio": 0.5, "rate": -1.0,
    "read_timeout_s": None, "seed": None, "stream": True, "tokenizer_path": "/tok",
    "url": "http://10.0.0.5:8000/v1/completions", "workers": 0,
}


def round_trip(model: Any) -> None:
    wire = model.model_dump_json()
    again = type(model).from_wire(wire)
    assert again == model and again.model_dump_json() == wire
    assert type(model).from_wire(json.loads(wire)) == model


def test_every_spec_round_trips_through_json():
    perf = parse_spec(JobKind.PERF, {**PERF, "rate": 4, "range_ratio": 0.5, "extra_args": {"ignore_eos": True},
                                     "headers": {"X-A": "1"}, "seed": 7, "read_timeout_s": 60, "workers": 0})
    long = parse_spec(JobKind.LONG_CONTEXT, {**PERF, "number": 1, "parallel": 1, "input_tokens": 128000})
    ev = parse_spec(JobKind.EVAL, {**EVAL, "limit": 5, "repeats": 2, "seed": 1, "ignore_errors": True,
                                   "generation_config": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 100,
                                                         "extra_body": {"chat_template_kwargs": {"thinking": True}}},
                                   "dataset_args": {"gsm8k": {"local_path": "/d", "subset_list": ["main"],
                                                              "few_shot_num": 0, "review_timeout": 30}}})
    pre = PreflightSpec.from_wire({"perf": [{"case_id": "p", "spec": PERF}], "evals": [{"case_id": "e", "spec": EVAL}],
                                   "min_free_bytes": 5, "request_timeout_s": 7, "node": "n1"})
    assert isinstance(perf, PerfSpec) and isinstance(long, LongContextSpec) and isinstance(ev, EvalSpec)
    assert perf.rate == 4.0 and isinstance(perf.rate, float)
    for model in (perf, long, ev, pre, PreflightSpec()):
        round_trip(model)
    assert parse_spec(JobKind.PREFLIGHT, pre.model_dump_json()) == pre


def test_every_result_round_trips_through_json():
    sat = Saturation(saturated=True, cpu_max=0.97, lag_max_s=0.3, lag_p95_s=0.2, windows=4, saturated_windows=2,
                     cpu_threshold=0.9, lag_threshold_s=0.05)
    merged = Saturation(saturated=True, cpu_max=0.97, lag_max_s=0.3, lag_p95_s=0.2, windows=4, workers=(sat, sat))
    outcomes = [
        JobOutcome(),
        JobOutcome(saturation=merged, worker_summaries=({"Total Requests": 4},)),
        JobOutcome(saturation=sat, long_context=LongContextResult(
            requests=2, succeeded=1, passed=False, ttft_s=(0.5, math.nan), input_tokens=(128000, 128000),
            output_tokens=(16, 0), errors=("HTTP 500: boom",))),
        JobOutcome(scores=(ScoreRow(dataset="gsm8k", subset="main", metric="accuracy", score=60.0, samples=5,
                                    subsets=(SubsetScoreRow(subset="main", score=60.0, samples=5),)),)),
        JobOutcome(preflight=(CheckRow(name="request", ok=False, detail="HTTP 422", case_id="p", status=422,
                                       body="{}", hint="remove them", elapsed_s=0.1),
                              CheckRow(name="free_space", ok=True, detail="9 GiB free"))),
    ]
    for outcome in outcomes:
        again = JobOutcome.from_wire(outcome.to_wire())
        if outcome.long_context is not None:  # NaN is no equal of itself: compare what is said
            assert again.long_context is not None and math.isnan(again.long_context.ttft_s[1])
            assert again.model_dump_json() == outcome.model_dump_json()
        else:
            assert again == outcome
    # only what the job has: the same object the agent always sent
    assert json.loads(JobOutcome(saturation=sat).to_wire()) == {"saturation": {
        "saturated": True, "cpu_max": 0.97, "lag_max_s": 0.3, "lag_p95_s": 0.2, "windows": 4, "saturated_windows": 2,
        "cpu_threshold": 0.9, "lag_threshold_s": 0.05}}


def test_results_of_the_previous_release_are_read():
    """result_json as the hand-written agent wrote it: the controller reads it through JobOutcome."""
    old = {"saturation": {"cpu_max": 0.4, "lag_max_s": 0.01, "lag_p95_s": 0.004, "windows": 12, "saturated_windows": 0,
                          "saturated": False, "cpu_threshold": 0.9, "lag_threshold_s": 0.05},
           "scores": [{"dataset": "gsm8k", "subset": "main", "metric": "accuracy", "score": 60.0, "samples": 5,
                       "unit": "%", "subsets": [{"subset": "main", "score": 60.0, "samples": 5}]}],
           "preflight": [{"name": "free_space", "ok": True, "detail": "9 GiB free", "case_id": "", "status": None,
                          "body": "", "hint": "", "elapsed_s": 0.0}]}
    outcome = JobOutcome.from_wire(json.dumps(old))
    assert outcome.saturation is not None and not outcome.saturation.saturated
    assert outcome.scores is not None and outcome.scores[0].score == 60.0
    assert outcome.preflight is not None and outcome.preflight[0].ok
    assert json.loads(outcome.to_wire()) == old | {
        "preflight": [{k: v for k, v in old["preflight"][0].items() if v is not None}]}
    with pytest.raises(ConfigError, match="unknown job result field"):
        JobOutcome.from_wire({"scorez": []})


def test_the_wire_format_of_the_previous_release_is_accepted():
    spec = parse_spec(JobKind.PERF, json.dumps(OLD_PERF_WIRE))
    assert json.loads(spec.model_dump_json()) == OLD_PERF_WIRE  # same names, same values: both ways
    old_eval = {"api_key": "", "dataset_args": {"gsm8k": {"local_path": "/d"}}, "datasets": ["gsm8k"],
                "eval_batch_size": 1, "generation_config": {}, "ignore_errors": False, "limit": None,
                "model": "m", "repeats": 1, "seed": None, "stream": False, "timeout_s": None,
                "url": "http://h:1/v1"}
    assert json.loads(parse_spec(JobKind.EVAL, json.dumps(old_eval)).model_dump_json()) == old_eval


@pytest.mark.parametrize(("kind", "changes", "message"), [
    (JobKind.PERF, {"number": 0}, "number must be a positive integer, got 0"),
    (JobKind.PERF, {"parallel": True}, "parallel must be a positive integer, got True"),
    (JobKind.PERF, {"number": 2.5}, "number must be a positive integer, got 2.5"),
    (JobKind.PERF, {"input_tokens": -1}, "input_tokens must be a non-negative integer, got -1"),
    (JobKind.PERF, {"prefix_length": -1}, "prefix_length must be a non-negative integer, got -1"),
    (JobKind.PERF, {"dataset_offset": -5}, "dataset_offset must be a non-negative integer, got -5"),
    (JobKind.PERF, {"workers": -1}, "workers must be a non-negative integer, got -1"),
    (JobKind.PERF, {"workers": 9}, "workers (9) cannot exceed parallel or number"),
    (JobKind.PERF, {"range_ratio": 0}, "range_ratio must be a number in (0, 1], got 0"),
    (JobKind.PERF, {"range_ratio": 1.01}, "range_ratio must be a number in (0, 1], got 1.01"),
    (JobKind.PERF, {"rate": 0}, "rate must be a positive number of requests/s or -1 (no limit), got 0"),
    (JobKind.PERF, {"rate": -2}, "rate must be a positive number of requests/s or -1 (no limit), got -2"),
    (JobKind.PERF, {"read_timeout_s": 0}, "read_timeout_s must be a positive integer, got 0"),
    (JobKind.PERF, {"api": "anthropic"}, "api must be one of openai, got 'anthropic'"),
    (JobKind.PERF, {"dataset": "hub"}, "dataset must be one of random, openqa, line_by_line, share_gpt"),
    (JobKind.PERF, {"dataset": "openqa"}, "dataset_path is required for the openqa dataset"),
    (JobKind.PERF, {"tokenizer_path": ""}, "tokenizer_path is required for the random dataset"),
    (JobKind.PERF, {"input_tokens": 0}, "input_tokens must be a positive integer for the random dataset"),
    (JobKind.PERF, {"url": "ftp://x"}, "url must be an http:// or https:// URL, got 'ftp://x'"),
    (JobKind.PERF, {"model": ""}, "model must be a non-empty string"),
    (JobKind.PERF, {"stream": 1}, "stream must be true or false"),
    (JobKind.PERF, {"extra_args": []}, "extra_args must be a mapping"),
    (JobKind.PERF, {"nubmer": 1}, "unknown job spec field(s): nubmer"),
    (JobKind.LONG_CONTEXT, {"input_tokens": 1023}, "input_tokens must be at least 1024 for a long-context check"),
    (JobKind.EVAL, {"eval_batch_size": 0}, "eval_batch_size must be a positive integer, got 0"),
    (JobKind.EVAL, {"generation_config": {"temperature": 2.5}},
     "generation_config.temperature must be a number ≥ 0 and ≤ 2, got 2.5"),
    (JobKind.EVAL, {"generation_config": {"top_p": 1.5}}, "generation_config.top_p must be a number > 0 and ≤ 1"),
    (JobKind.EVAL, {"generation_config": {"top_k": -1}},
     "generation_config.top_k must be a non-negative integer, got -1"),
    (JobKind.EVAL, {"generation_config": {"n": 2}}, "generation_config.n is set through the spec's repeats field"),
    (JobKind.PREFLIGHT, {"min_free_bytes": -1}, "min_free_bytes must be a non-negative integer, got -1"),
    (JobKind.PREFLIGHT, {"request_timeout_s": 0}, "request_timeout_s must be a positive integer, got 0"),
])
def test_a_bad_field_is_refused_naming_the_field_and_its_bound(kind, changes, message):
    base = {JobKind.PERF: PERF, JobKind.LONG_CONTEXT: {**PERF, "input_tokens": 2048}, JobKind.EVAL: EVAL,
            JobKind.PREFLIGHT: {}}[kind]
    with pytest.raises(ConfigError) as err:
        parse_spec(kind, json.dumps({**base, **changes}))
    assert message in str(err.value)


PLAN = """\
name: wire
model: demo
endpoint: {url: http://10.0.0.1:8000/v1/completions, api_key: KEY}
tokenizer: /models/tok
cases:
  - {id: p, parallel: 8, number: 64, input_tokens: 100, output_tokens: 10, workers: auto, range_ratio: 0.5}
  - {id: long, type: long_context, input_tokens: 128000, output_tokens: 10}
  - id: acc
    type: eval
    datasets: [gsm8k]
    dataset_args: {gsm8k: {local_path: /data/gsm8k}}
    generation_config: {max_tokens: 64}
"""


def test_the_controller_sends_the_model_the_agent_validates(tmp_path: Path):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    plan = load_plan(path)
    node = Node("n1", "10.0.0.1:50051")
    p, long, acc = plan.cases
    sent = perf_spec(plan, p, node)
    assert isinstance(sent, PerfSpec) and sent.workers == 0 and sent.range_ratio == 0.5
    assert parse_spec(JobKind.PERF, sent.model_dump_json()) == sent
    lc = perf_spec(plan, long, node)
    assert isinstance(lc, LongContextSpec) and parse_spec(JobKind.LONG_CONTEXT, lc.model_dump_json()) == lc
    ev = eval_spec(plan, acc, node)
    assert isinstance(ev, EvalSpec) and parse_spec(JobKind.EVAL, ev.model_dump_json()) == ev
    assert ev.generation_config.max_tokens == 64 and ev.url == "http://10.0.0.1:8000/v1"


def test_the_schema_needs_neither_agent_nor_controller():
    tree = ast.parse((Path(__file__).parents[2] / "fleetbench" / "jobs_schema.py").read_text())
    names = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {n for n in names if n.startswith(("fleetbench.agent", "fleetbench.controller"))}
    assert not {n for n in names if "agent" in n or "controller" in n}
