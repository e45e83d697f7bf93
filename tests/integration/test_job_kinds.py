"""Job kinds on a real agent over gRPC: a long-context check says plainly whether the request went through
(read back through the result model, as the controller reads it); the sweep kind is refused."""

from __future__ import annotations

import json

import grpc
import pytest
from support.processes import DONE, fetch, wait_state

from fleetbench.jobs_schema import JobOutcome
from fleetbench.v1 import agent_pb2 as pb

pytestmark = pytest.mark.integration


def test_long_context_reports_success_and_ttft_then_a_plain_failure(start_agent, start_endpoint, demo_tokenizer):
    url, bad_url = start_endpoint().completions, start_endpoint("--fault-500", "1.0").completions
    agent = start_agent()
    spec = {"url": url, "model": "demo", "tokenizer_path": str(demo_tokenizer), "number": 1, "parallel": 1,
            "input_tokens": 8192, "output_tokens": 4}
    agent.stub.StartJob(pb.StartJobRequest(job_id="lc", kind=pb.JOB_KIND_LONG_CONTEXT,
                                           spec_json=json.dumps(spec)))
    assert wait_state(agent.stub, "lc", DONE, 180).state == pb.JOB_STATE_SUCCEEDED
    summary, records = fetch(agent, "lc")
    lc = json.loads(summary.result_json)["long_context"]
    assert lc["passed"] is True and lc["succeeded"] == 1 and lc["errors"] == []
    assert lc["ttft_s"] == [records[0].ttft_s] and records[0].ttft_s > 0
    assert lc["input_tokens"] == [records[0].input_tokens] and records[0].input_tokens >= 8000
    outcome = JobOutcome.from_wire(summary.result_json)  # as the controller reads it
    assert outcome.long_context is not None and outcome.long_context.passed
    assert outcome.saturation is not None and not outcome.saturation.saturated
    assert JobOutcome.from_wire(outcome.to_wire()) == outcome

    agent.stub.StartJob(pb.StartJobRequest(job_id="lc-bad", kind=pb.JOB_KIND_LONG_CONTEXT,
                                           spec_json=json.dumps({**spec, "url": bad_url})))
    assert wait_state(agent.stub, "lc-bad", DONE, 180).state == pb.JOB_STATE_SUCCEEDED  # the job ran
    lc = json.loads(fetch(agent, "lc-bad")[0].result_json)["long_context"]
    assert lc["passed"] is False and lc["succeeded"] == 0 and "500" in lc["errors"][0]
    with pytest.raises(grpc.RpcError) as err:  # too short for a long-context check: refused, the bound named
        agent.stub.StartJob(pb.StartJobRequest(job_id="lc-short", kind=pb.JOB_KIND_LONG_CONTEXT,
                                               spec_json=json.dumps({**spec, "input_tokens": 100})))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input_tokens must be at least 1024 for a long-context check, got 100" in err.value.details()


def test_the_sweep_kind_is_refused_naming_what_to_send(start_agent):
    """The controller runs a sweep point by point as perf jobs (one expansion, controller/plan.py); the agent
    keeps no second one and refuses kind 2 (JOB_KIND_SWEEP stays reserved in the proto)."""
    agent = start_agent()
    spec = {"url": "http://127.0.0.1:1/v1/completions", "model": "m", "tokenizer_path": "/x",
            "input_tokens": [16], "output_tokens": [8], "parallel": [1, 2], "number": [2, 4]}
    with pytest.raises(grpc.RpcError) as err:
        agent.stub.StartJob(pb.StartJobRequest(job_id="sw", kind=pb.JOB_KIND_SWEEP, spec_json=json.dumps(spec)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "job kind 2 (sweep) is not supported by this agent" in err.value.details()
    assert "perf jobs (kind 1)" in err.value.details()
