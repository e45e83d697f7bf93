"""Sweep and long-context specs: the points a sweep expands to, and the errors that name their field."""

from __future__ import annotations

import pytest

from fleetbench.agent.jobspec import (
    KIND_EVAL,
    KIND_LONG_CONTEXT,
    KIND_PERF,
    KIND_SWEEP,
    PerfSpec,
    SweepSpec,
    parse_point_label,
    parse_spec,
    point_label,
    spec_total,
)
from fleetbench.errors import ConfigError

BASE = {"url": "http://127.0.0.1:8000/v1/completions", "model": "m", "tokenizer_path": "/tok"}


def test_seed_002_sweep_expands_input_by_concurrency_by_loops():
    # seed 002: input 128 … 40k × concurrency 1 … 16, output fixed, with loops
    spec = parse_spec(KIND_SWEEP, {**BASE, "input_tokens": [128, 1024, 40000], "output_tokens": 512,
                                   "parallel": [1, 2, 4, 8, 16], "number": [4, 8, 16, 32, 64], "loops": 3})
    assert isinstance(spec, SweepSpec)
    points = spec.points()
    assert len(points) == 3 * 3 * 5
    assert [p.index for p in points] == list(range(45))
    assert points[0].label == "in128-out512-p1-n4-loop1"
    assert points[-1].label == "in40000-out512-p16-n64-loop3"
    assert points[7].spec.parallel == 4 and points[7].spec.number == 16 and points[7].spec.input_tokens == 1024
    assert spec.total == 3 * 3 * (4 + 8 + 16 + 32 + 64) == spec_total(spec)


def test_one_number_is_paired_with_every_parallel():
    spec = parse_spec(KIND_SWEEP, {**BASE, "input_tokens": 16, "output_tokens": 8, "parallel": [1, 2, 4],
                                   "number": 10})
    assert spec.number == (10, 10, 10) and spec.total == 30


def test_point_label_round_trips():
    assert parse_point_label(point_label(128, 1024, 8, 80, 2)) == (128, 1024, 8, 80, 2)
    assert parse_point_label("worker-0") is None


@pytest.mark.parametrize("change, message", [
    ({"workers": 2}, "workers must be 1 in a sweep"),
    ({"input_tokens": []}, "input_tokens must be a non-empty list"),
    ({"output_tokens": [8, -1]}, "output_tokens[] must be a positive integer"),
    ({"url": "ftp://x"}, "url must be an http:// or https:// URL"),
])
def test_bad_sweep_names_the_field(change, message):
    raw = {**BASE, "input_tokens": [16], "output_tokens": [8], "parallel": [1, 2], "number": [2, 4], **change}
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_spec(KIND_SWEEP, raw)


def test_long_context_is_a_perf_run_with_a_long_prompt():
    spec = parse_spec(KIND_LONG_CONTEXT, {**BASE, "number": 1, "parallel": 1, "input_tokens": 128000,
                                          "output_tokens": 16})
    assert isinstance(spec, PerfSpec) and spec.input_tokens == 128000
    with pytest.raises(ConfigError, match="input_tokens must be at least 1024"):
        parse_spec(KIND_LONG_CONTEXT, {**BASE, "number": 1, "parallel": 1, "input_tokens": 100})


def test_unknown_kind_is_refused():
    with pytest.raises(ConfigError, match="job kind 9 is not supported"):
        parse_spec(9, {})
    assert KIND_PERF == 1 and KIND_EVAL == 3
