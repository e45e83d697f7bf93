"""Bounds (issue 15, item 2): every number and string of a spec has a maximum, refused naming the field and
the bound, at StartJob and at `ctl plan check` alike (fleetbench/bounds.py is the one source); a spec's
JSON is refused for its size or depth before it is parsed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from fleetbench import bounds as B
from fleetbench.controller.fleet import Node
from fleetbench.controller.plan import load_plan
from fleetbench.controller.specs import eval_spec, perf_spec
from fleetbench.errors import ConfigError
from fleetbench.jobs_schema import JobKind, parse_spec

PERF = {"url": "http://127.0.0.1:8000/v1/completions", "model": "m", "tokenizer_path": "/tok", "number": 64,
        "parallel": 8, "input_tokens": 1000, "output_tokens": 200}
EVAL = {"url": "http://127.0.0.1:8000/v1", "model": "m", "datasets": ["gsm8k"],
        "dataset_args": {"gsm8k": {"local_path": "/data/gsm8k"}}}
NODE = Node("n1", "127.0.0.1:50051", "")


def refused(kind: JobKind, spec: dict[str, Any] | str, wire: bool = True) -> str:
    """The sentence refusing `spec`, sent as JSON text (as StartJob does) or, `wire=False`, as an object."""
    with pytest.raises(ConfigError) as err:
        parse_spec(kind, json.dumps(spec) if wire and not isinstance(spec, str) else spec)
    return str(err.value)


@pytest.mark.parametrize(("kind", "field", "bound"), [
    (JobKind.PERF, "parallel", B.MAX_PARALLEL),
    (JobKind.PERF, "number", B.MAX_NUMBER),
    (JobKind.PERF, "input_tokens", B.MAX_TOKENS),
    (JobKind.PERF, "output_tokens", B.MAX_TOKENS),
    (JobKind.PERF, "prefix_length", B.MAX_TOKENS),
    (JobKind.PERF, "dataset_offset", B.MAX_NUMBER),
    (JobKind.PERF, "read_timeout_s", B.MAX_SECONDS),
    (JobKind.PERF, "connect_timeout_s", B.MAX_SECONDS),
    (JobKind.EVAL, "limit", B.MAX_LIMIT),
    (JobKind.EVAL, "eval_batch_size", B.MAX_PARALLEL),
    (JobKind.EVAL, "repeats", B.MAX_COUNT),
    (JobKind.EVAL, "timeout_s", B.MAX_SECONDS),
])
def test_every_count_has_a_maximum_named_with_its_field(kind, field, bound):
    base = PERF if kind == JobKind.PERF else EVAL
    parse_spec(kind, json.dumps({**base, field: bound}))  # the bound itself is allowed
    assert refused(kind, {**base, field: bound + 1}) == f"{field} must be at most {bound}, got {bound + 1}"


def test_the_trials_billion_request_spec_is_refused_naming_the_field():
    message = refused(JobKind.PERF, {**PERF, "parallel": 10**9, "number": 10**9})
    assert message == f"number must be at most {B.MAX_NUMBER}, got 1000000000"
    assert refused(JobKind.PERF, {**PERF, "input_tokens": 10**9}) == \
        f"input_tokens must be at most {B.MAX_TOKENS}, got 1000000000"


@pytest.mark.parametrize("text", ['"rate": Infinity', '"rate": NaN', '"rate": -Infinity'])
def test_rate_infinity_or_nan_is_not_json(text):
    raw = json.dumps(PERF)[:-1] + ", " + text + "}"
    assert "is not valid JSON" in refused(JobKind.PERF, raw)


def test_rate_has_a_finite_maximum():
    assert refused(JobKind.PERF, {**PERF, "rate": 1e12}) == \
        f"rate must be at most {int(B.MAX_RATE)}, got 1000000000000.0"
    assert refused(JobKind.PERF, {**PERF, "rate": float("inf")}, wire=False) == \
        f"rate must be at most {int(B.MAX_RATE)}, got inf"
    parse_spec(JobKind.PERF, {**PERF, "rate": B.MAX_RATE})


def test_a_ten_megabyte_model_name_is_refused_before_parsing_and_not_echoed():
    raw = json.dumps({**PERF, "model": "m" * 10_000_000})
    t = time.perf_counter()
    message = refused(JobKind.PERF, raw)
    assert time.perf_counter() - t < 2
    assert message == f"job spec is {len(raw)} bytes; the limit is {B.MAX_SPEC_BYTES} bytes"
    # under the size limit, the field's own bound names it (and quotes its length, not the name)
    message = refused(JobKind.PERF, {**PERF, "model": "m" * 100_000})
    assert message == f"model must be at most {B.MAX_NAME} characters, got 100000"


def test_a_hundred_thousand_deep_array_is_refused_without_recursion():
    deep = "[" * 100_000 + "]" * 100_000
    assert refused(JobKind.PERF, deep) == f"job spec is nested more than {B.MAX_JSON_DEPTH} deep"
    t = time.perf_counter()
    for text in ("[" * 524_000 + "]" * 524_000, "[]" * 524_000, '{"a": "' + "x[" * 500_000 + '"}'):
        assert len(text) <= B.MAX_SPEC_BYTES
        B.check_json_text(text)
    assert time.perf_counter() - t < 5  # tens of milliseconds each on an idle core; generous for a loaded CI
    nested: Any = 1
    for _ in range(B.MAX_JSON_DEPTH + 5):
        nested = [nested]
    assert "nested" in refused(JobKind.PERF, {**PERF, "extra_args": {"x": nested}})


def test_depth_is_read_without_parsing_and_skips_brackets_inside_strings():
    text = '{"a": "[[[[{{{{", "b": [1, {"c": "]]]\\"[["}]}'
    assert not B.deeper_than(text, 3) and B.deeper_than(text, 2)
    assert not B.deeper_than("[]", 1) and B.deeper_than("[[]]", 1) and not B.deeper_than('"x"', 0)
    assert not B.deeper_than('{"a": [1, 2', 2)  # unbalanced (truncated): the parser names that
    assert B.deeper_than("[{" * 17 + "}]" * 17, 33) and not B.deeper_than("[{" * 17 + "}]" * 17, 34)
    at_limit = "[" * B.MAX_JSON_DEPTH + "]" * B.MAX_JSON_DEPTH
    assert B.check_json_text(at_limit) is None and B.check_json_text("[" + at_limit + "]") is not None


@pytest.mark.parametrize(("spec", "message"), [
    ({**PERF, "headers": {f"h{i}": "v" for i in range(B.MAX_HEADERS + 1)}},
     f"headers must have at most {B.MAX_HEADERS} headers, got {B.MAX_HEADERS + 1}"),
    ({**PERF, "headers": {"Authorization": "x" * (B.MAX_SECRET + 1)}},
     f"headers: header 'Authorization' must be at most {B.MAX_SECRET} characters, got {B.MAX_SECRET + 1}"),
    ({**PERF, "headers": {"X-N": 5}}, "headers: header 'X-N' must be a string, got 5"),
    ({**PERF, "api_key": "k" * (B.MAX_SECRET + 1)},
     f"api_key must be at most {B.MAX_SECRET} characters, got {B.MAX_SECRET + 1}"),
    ({**PERF, "tokenizer_path": "/" + "t" * B.MAX_PATH},
     f"tokenizer_path must be at most {B.MAX_PATH} characters, got {B.MAX_PATH + 1}"),
    ({**PERF, "url": "http://h/" + "u" * B.MAX_URL},
     f"url must be at most {B.MAX_URL} characters, got {B.MAX_URL + 9}"),
    ({**PERF, "extra_args": {"x": "y" * B.MAX_MAPPING_JSON}}, f"extra_args must be at most {B.MAX_MAPPING_JSON} "
                                                              f"bytes as JSON, got {B.MAX_MAPPING_JSON + 9}"),
    ({**PERF, "seed": 1 << 70}, f"seed must be between -{B.MAX_SEED} and {B.MAX_SEED}, got 1180591620717411303424"),
    ({**PERF, "workers": B.MAX_WORKERS + 1, "parallel": 5000, "number": 5000},
     f"workers must be at most {B.MAX_WORKERS}, got {B.MAX_WORKERS + 1}"),
])
def test_strings_mappings_and_headers_have_maximums(spec, message):
    assert refused(JobKind.PERF, spec) == message


def test_eval_and_preflight_lists_have_maximums():
    names = [f"d{i}" for i in range(B.MAX_DATASETS + 1)]
    spec = {**EVAL, "datasets": names, "dataset_args": {n: {"local_path": "/d"} for n in names}}
    assert refused(JobKind.EVAL, spec) == f"datasets must have at most {B.MAX_DATASETS} benchmarks"
    big = {**EVAL, "dataset_args": {"gsm8k": {"local_path": "/d", "prompt_template": "p" * (B.MAX_TEXT + 1)}}}
    assert refused(JobKind.EVAL, big).endswith(f"must be at most {B.MAX_TEXT} characters, got {B.MAX_TEXT + 1}")
    gen = {**EVAL, "generation_config": {"max_tokens": B.MAX_TOKENS + 1}}
    assert refused(JobKind.EVAL, gen) == f"generation_config.max_tokens must be at most {B.MAX_TOKENS}, " \
                                         f"got {B.MAX_TOKENS + 1}"
    pre = {"perf": [{"case_id": "c", "spec": PERF}] * (B.MAX_PREFLIGHT_ENTRIES + 1)}
    assert refused(JobKind.PREFLIGHT, pre, wire=False) == f"perf must have at most {B.MAX_PREFLIGHT_ENTRIES} entries"


# --- one source of truth: the plan refuses what the agent would --------------------------------------

PLAN = """\
name: bounds
model: m
endpoint: {{url: "http://127.0.0.1:8000/v1/completions"}}
tokenizer: /tok
cases:
{case}
"""


def plan_of(tmp_path: Path, case: str) -> Any:
    p = tmp_path / "plan.yaml"
    p.write_text(PLAN.format(case=case))
    return load_plan(p)


@pytest.mark.parametrize(("key", "bound"), [
    ("parallel", B.MAX_PARALLEL), ("number", B.MAX_NUMBER), ("input_tokens", B.MAX_TOKENS),
    ("output_tokens", B.MAX_TOKENS), ("rate", int(B.MAX_RATE)), ("workers", B.MAX_WORKERS),
])
def test_plan_check_refuses_the_bounds_the_agent_refuses(tmp_path, key, bound):
    values = {"parallel": 4096, "number": 4096, "input_tokens": 8, "output_tokens": 8, "rate": 5, "workers": 1}
    case = "  - {{id: p, type: perf, {fields}}}"
    at = {**values, key: bound}
    plan = plan_of(tmp_path, case.format(fields=", ".join(f"{k}: {v}" for k, v in at.items())))
    if key != "workers":  # a worker count beyond parallel is refused for its own reason
        perf_spec(plan, plan.cases[0], NODE)  # at the bound: the plan passes and so does its spec
    over = {**values, key: bound + 1}
    with pytest.raises(ConfigError) as err:
        plan_of(tmp_path, case.format(fields=", ".join(f"{k}: {v}" for k, v in over.items())))
    assert f"cases[0].{key} must be at most {bound}" in str(err.value)


def test_plan_check_refuses_eval_bounds_and_infinite_expectations(tmp_path):
    case = ("  - {{id: e, type: eval, datasets: [gsm8k], dataset_args: {{gsm8k: {{local_path: /d}}}}, "
            "limit: {limit}, timeout_s: {timeout}}}")
    plan = plan_of(tmp_path, case.format(limit=B.MAX_LIMIT, timeout=B.MAX_SECONDS))
    eval_spec(plan, plan.cases[0], NODE)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=f"cases\\[0\\].limit must be at most {B.MAX_LIMIT}"):
        plan_of(tmp_path, case.format(limit=B.MAX_LIMIT + 1, timeout=60))
    with pytest.raises(ConfigError, match=f"cases\\[0\\].timeout_s must be at most {B.MAX_SECONDS}"):
        plan_of(tmp_path, case.format(limit=5, timeout=B.MAX_SECONDS + 1))
    perf = "  - {id: p, parallel: 1, number: 1, input_tokens: 8, output_tokens: 8, expect: {ttft_avg_s: {max: .inf}}}"
    with pytest.raises(ConfigError, match=r"expect.ttft_avg_s.max must be a finite number"):
        plan_of(tmp_path, perf)
    rate = "  - {id: p, parallel: 1, number: 1, input_tokens: 8, output_tokens: 8, rate: .inf}"
    with pytest.raises(ConfigError, match=f"rate must be at most {int(B.MAX_RATE)}"):
        plan_of(tmp_path, rate)


def test_plan_check_refuses_a_sweep_of_too_many_points_and_a_huge_name(tmp_path):
    sweep = ("  - {id: s, type: sweep, parallel: [1, 2, 3, 4], number: 4, input_tokens: [8, 16], "
             "output_tokens: [8], loops: 5000}")
    with pytest.raises(ConfigError, match=f"has 40000 points .*the limit is {B.MAX_SWEEP_POINTS}"):
        plan_of(tmp_path, sweep)
    p = tmp_path / "plan.yaml"
    p.write_text(PLAN.format(case="  - {id: p, parallel: 1, number: 1, input_tokens: 8, output_tokens: 8}")
                 .replace("model: m", "model: " + "m" * (B.MAX_NAME + 1)))
    with pytest.raises(ConfigError, match=f"model must be at most {B.MAX_NAME} characters"):
        load_plan(p)


def test_a_huge_or_deeply_nested_plan_file_is_one_line(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("name: x\n" + "# padding\n" * (B.MAX_PLAN_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match=f"plan file .*big.yaml is \\d+ bytes; the limit is {B.MAX_PLAN_BYTES}"):
        load_plan(big)
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 20_000 + "]" * 20_000 + "\n")
    with pytest.raises(ConfigError, match="nested too deep to be a plan file"):
        load_plan(deep)
