"""Preflight specs: what each node's preflight job gets from a plan (one request per case shape, the node's
endpoint), the spec's validation and JSON round trip, and the lines a report prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetbench.agent.jobspec import spec_total
from fleetbench.agent.preflight_job import http_hint, one_line, reply_text, request_failure, unusual_fields
from fleetbench.controller.fleet import Node
from fleetbench.controller.plan import load_plan
from fleetbench.controller.preflight import (
    PreflightProblem,
    PreflightReport,
    compatible_version,
    preflight_spec,
    problems_from_checks,
)
from fleetbench.controller.specs import perf_spec
from fleetbench.errors import ConfigError
from fleetbench.jobs_schema import MIN_FREE_BYTES, CheckRow, EvalSpec, JobKind, PerfSpec, PreflightSpec, parse_spec
from fleetbench.v1 import agent_pb2 as pb

KIND_PREFLIGHT = JobKind.PREFLIGHT

PLAN = """\
name: preflight
model: demo
endpoint: {url: http://10.0.0.1:8000/v1/completions, api_key: KEY}
tokenizer: /models/tok
cases:
  - id: perf1
    parallel: 84
    number: 512
    rate: 5
    input_tokens: 6000
    output_tokens: 1000
    extra_args: {ignore_eos: true}
  - id: conc
    type: sweep
    parallel: [1, 2, 4]
    number: [4, 8, 16]
    input_tokens: [128, 1024]
    output_tokens: [512]
    range_ratio: 0.5
    loops: 2
  - id: pairs
    type: sweep
    parallel: [1, 8]
    number: 8
    lengths: [[3500, 1500], [3000, 400], [3500, 1500]]
  - id: long
    type: long_context
    input_tokens: 128000
    output_tokens: 100
  - id: acc
    type: eval
    datasets: [gsm8k]
    dataset_args: {gsm8k: {local_path: /data/gsm8k}}
    generation_config: {max_tokens: 2048, extra_body: {chat_template_kwargs: {thinking: true}}}
    limit: 5
"""
NODE = Node("n1", "10.0.0.1:50051", endpoint="http://127.0.0.1:8001/v1/chat/completions")


@pytest.fixture
def plan(tmp_path: Path):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    return load_plan(path)


def test_one_request_per_case_and_per_distinct_sweep_shape(plan):
    spec = preflight_spec(plan, NODE).model_dump(mode="json")
    ids = [e["case_id"] for e in spec["perf"]]
    # the sweep's 3 parallels × 2 loops collapse to one shape per (input, output); a repeated pair once
    assert ids == ["perf1", "conc@in128-out512", "conc@in1024-out512", "pairs@in3500-out1500",
                   "pairs@in3000-out400", "long"]
    assert [e["case_id"] for e in spec["evals"]] == ["acc"]
    assert spec["node"] == "n1" and spec["min_free_bytes"] == MIN_FREE_BYTES == 1 << 30
    for entry in spec["perf"]:
        s = entry["spec"]
        assert (s["number"], s["parallel"], s["workers"], s["rate"]) == (1, 1, 1, -1)
        assert s["url"] == NODE.endpoint  # the node's override, like the run's own jobs
        assert s["api_key"] == "KEY" and s["model"] == "demo" and s["tokenizer_path"] == "/models/tok"
    assert spec["evals"][0]["spec"]["url"] == "http://127.0.0.1:8001/v1"  # the node's, as the eval's base URL


def test_a_shape_is_the_case_job_spec_but_for_the_load(plan):
    """The body fields (lengths, extra_args, stream, range ratio, key) are exactly what the case's job gets."""
    spec = preflight_spec(plan, NODE).model_dump(mode="json")
    load = {"number", "parallel", "workers", "rate"}
    job = perf_spec(plan, plan.cases[0], NODE).model_dump(mode="json")
    shape = spec["perf"][0]["spec"]
    assert {k: v for k, v in shape.items() if k not in load} == {k: v for k, v in job.items() if k not in load}
    assert shape["extra_args"] == {"ignore_eos": True} and shape["output_tokens"] == 1000
    conc = spec["perf"][1]["spec"]
    assert conc["range_ratio"] == 0.5 and conc["input_tokens"] == 128


def test_without_a_node_endpoint_the_plan_endpoint_is_used(plan):
    spec = preflight_spec(plan, Node("n2", "10.0.0.2:50051"), min_free_bytes=5,
                          request_timeout_s=7).model_dump(mode="json")
    assert {e["spec"]["url"] for e in spec["perf"]} == {"http://10.0.0.1:8000/v1/completions"}
    assert spec["min_free_bytes"] == 5 and spec["request_timeout_s"] == 7


def test_spec_parses_and_round_trips(plan):
    sent = preflight_spec(plan, NODE)
    parsed = parse_spec(KIND_PREFLIGHT, sent.model_dump_json())  # what the controller sends, as the agent reads it
    assert isinstance(parsed, PreflightSpec) and parsed == sent
    assert all(isinstance(e.spec, PerfSpec) for e in parsed.perf)
    assert all(isinstance(e.spec, EvalSpec) for e in parsed.evals)
    assert parsed.evals[0].spec.url == "http://127.0.0.1:8001/v1"  # cut back to the base URL, as the eval job
    assert parsed.tokenizer_paths() == ["/models/tok"]
    assert parse_spec(KIND_PREFLIGHT, parsed.model_dump_json()) == parsed
    assert parse_spec(KIND_PREFLIGHT, json.loads(parsed.model_dump_json())) == parsed
    assert spec_total(parsed) == parsed.total == 6 + 1
    assert KIND_PREFLIGHT.name == "PREFLIGHT" and KIND_PREFLIGHT == pb.JOB_KIND_PREFLIGHT


def test_empty_spec_still_checks_the_node():
    spec = parse_spec(KIND_PREFLIGHT, "{}")
    assert spec == PreflightSpec() and spec.total == 0 and spec.min_free_bytes == 1 << 30


@pytest.mark.parametrize("raw, message", [
    ({"perf": [], "extra": 1}, "unknown preflight spec field(s): extra"),
    ({"perf": {}}, "perf must be a list"),
    ({"perf": [3]}, "perf[0] must be an object with case_id and spec"),
    ({"perf": [{"case_id": "a"}]}, "perf[0]: preflight entry field spec is required"),
    ({"perf": [{"case_id": "", "spec": {}}]}, "perf[0].case_id must be a non-empty string"),
    ({"perf": [{"case_id": "a", "spec": {}, "x": 1}]}, "perf[0]: unknown preflight entry field(s): x"),
    ({"perf": [{"case_id": "a", "spec": {"url": "ftp://x", "model": "m", "number": 1, "parallel": 1}}]},
     "perf[0].spec.url must be an http:// or https:// URL"),
    ({"perf": [{"case_id": "a", "spec": {"url": "http://x", "model": "m", "number": 1, "parallel": 1,
                                         "tokenizer_path": "/t", "input_tokens": 8, "nmuber": 2}}]},
     "perf[0].spec: unknown job spec field(s): nmuber"),
    ({"evals": [{"case_id": "e", "spec": {"url": "http://x/v1", "model": "m", "datasets": ["gsm8k"],
                                          "dataset_args": {"gsm8k": {"local_path": "rel"}}}}]},
     "evals[0].spec.dataset_args.gsm8k.local_path must be an absolute path"),
    ({"min_free_bytes": -1}, "min_free_bytes must be a non-negative integer"),
    ({"request_timeout_s": 0}, "request_timeout_s must be a positive integer"),
    ({"node": 3}, "node must be a string"),
])
def test_invalid_specs_name_the_field(raw, message):
    with pytest.raises(ConfigError) as err:
        parse_spec(KIND_PREFLIGHT, raw)
    assert message in str(err.value)


def test_report_lines_name_node_case_status_body_and_hint():
    checks = [
        {"name": "free_space", "ok": True, "detail": "9 GiB free"},
        {"name": "request", "ok": False, "case_id": "perf1", "detail": "endpoint answered HTTP 422", "status": 422,
         "body": '{"detail": "Unexpected fields: min_tokens"}', "hint": "remove them"},
        {"name": "tokenizer", "ok": False, "case_id": "", "detail": "tokenizer path /t does not exist on node n1",
         "status": None, "body": "", "hint": "copy it"},
    ]
    problems = problems_from_checks("n1", [CheckRow.model_validate(c) for c in checks])
    report = PreflightReport(("n1", "n2"), problems + [PreflightProblem("n2", "", "agent", "the agent is busy")])
    assert not report.ok and report.failed_nodes() == ["n1", "n2"]
    assert report.lines() == [
        'n1: case perf1: endpoint answered HTTP 422: {"detail": "Unexpected fields: min_tokens"}; hint: remove them',
        "n1: tokenizer: tokenizer path /t does not exist on node n1; hint: copy it",
        "n2: agent: the agent is busy",
    ]
    assert problems[0].status == 422 and report.to_dict()["problems"][0]["case_id"] == "perf1"
    assert PreflightReport(("n1",)).ok


def test_version_compatibility():
    assert compatible_version("0.1.0", "0.1.7")
    assert not compatible_version("0.1.0", "0.2.0")
    assert compatible_version("1.2.0", "1.9.1")
    assert not compatible_version("1.2.0", "2.0.0")
    assert not compatible_version("0.1.0", "")


def test_hints_say_what_to_do():
    body = {"model": "m", "prompt": "hi", "max_tokens": 8, "min_tokens": 8, "ignore_eos": True, "stream": True}
    sent = unusual_fields(body)
    assert sent == ["ignore_eos", "min_tokens"]
    hint = http_hint(422, "Unexpected fields: min_tokens", "http://h/v1/completions", "m", sent)
    assert hint.startswith("the engine rejects fields the case sends (min_tokens)")
    assert "set `fixed_output: false` on the case to send only max_tokens" in hint
    assert "(ignore_eos, min_tokens)" in http_hint(422, "validation error", "u", "m", sent)
    assert "does not serve model 'm'" in http_hint(404, "The model `m` does not exist.", "u", "m", [])
    assert "api_key" in http_hint(401, "", "u", "m", [])
    assert "log on node n3" in http_hint(503, "", "u", "m", [], node="n3")
    detail, hint = request_failure("Cannot connect to host 127.0.0.1:9 [Connection refused]",
                                   "http://127.0.0.1:9/v1/completions", 60, "n2")
    assert detail == "no connection to the endpoint"
    assert hint == "is the engine listening at http://127.0.0.1:9/v1/completions on node n2?"
    assert request_failure("", "u", 30, "n1")[0] == "no complete reply within 30 s"
    assert one_line("a\n  b\tc") == "a b c" and len(one_line("x" * 1000)) == 300


def test_reply_text_is_content_only():
    """An HTTP 200 counts only with content; evalscope turns an empty JSON body into the text "None"."""
    assert reply_text([]) == "" and reply_text(["None", None]) == ""
    assert reply_text([{"choices": [{"index": 0, "text": ""}]}, {"choices": [], "usage": {}}]) == ""
    assert reply_text([{"choices": [{"index": 0, "text": "Hello"}]}, {"choices": [{"text": " there"}]}]) == \
        "Hello there"
    assert reply_text([{"choices": [{"delta": {"role": "assistant", "content": ""}}]}]) == ""
    assert reply_text([{"choices": [{"delta": {"reasoning_content": "hm"}}]}]) == "hm"
    assert reply_text([{"object": "chat.completion", "choices": [{"message": {"content": "Hi"}}]}]) == "Hi"
