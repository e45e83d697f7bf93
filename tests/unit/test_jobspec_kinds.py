"""Job kinds on the agent: long-context specs, the sweep kind refused (the controller runs a sweep point by
point as perf jobs), point labels, and the kinds and states as one enum each, equal to the proto's."""

from __future__ import annotations

import pytest

from fleetbench.agent.jobspec import spec_total
from fleetbench.errors import ConfigError
from fleetbench.jobs_schema import (
    JobKind,
    JobState,
    LongContextSpec,
    PerfSpec,
    parse_point_label,
    parse_spec,
    point_label,
)
from fleetbench.v1 import agent_pb2 as pb

BASE = {"url": "http://127.0.0.1:8000/v1/completions", "model": "m", "tokenizer_path": "/tok"}


def test_point_label_round_trips():
    assert parse_point_label(point_label(128, 1024, 8, 80, 2)) == (128, 1024, 8, 80, 2)
    assert parse_point_label("worker-0") is None


def test_the_sweep_kind_is_refused_with_what_to_send_instead():
    with pytest.raises(ConfigError, match=r"job kind 2 \(sweep\) is not supported by this agent: the controller "
                                          r"runs a sweep point by point as perf jobs \(kind 1\)"):
        parse_spec(JobKind.SWEEP, {**BASE, "input_tokens": [16], "output_tokens": [8], "parallel": [1, 2],
                                   "number": [2, 4]})


def test_long_context_is_a_perf_run_with_a_long_prompt():
    spec = parse_spec(JobKind.LONG_CONTEXT, {**BASE, "number": 1, "parallel": 1, "input_tokens": 128000,
                                             "output_tokens": 16})
    assert isinstance(spec, LongContextSpec) and isinstance(spec, PerfSpec) and spec.input_tokens == 128000
    assert spec_total(spec) == 1
    with pytest.raises(ConfigError, match="input_tokens must be at least 1024 for a long-context check, got 100"):
        parse_spec(JobKind.LONG_CONTEXT, {**BASE, "number": 1, "parallel": 1, "input_tokens": 100})


def test_unknown_kind_is_refused():
    with pytest.raises(ConfigError, match="job kind 9 is not supported"):
        parse_spec(9, {})
    with pytest.raises(ConfigError, match="job kind 0 is not supported"):
        parse_spec(0, {})


def test_kinds_and_states_are_the_protos():
    assert {k.name: int(k) for k in JobKind} == {
        pb.JobKind.Name(v).removeprefix("JOB_KIND_"): v for v in pb.JobKind.values() if v}
    assert {s.name: int(s) for s in JobState} == {
        pb.JobState.Name(v).removeprefix("JOB_STATE_"): v for v in pb.JobState.values() if v}
    assert {s for s in JobState if s.terminal} == {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED,
                                                   JobState.INTERRUPTED}
