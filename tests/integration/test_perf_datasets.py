"""Perf jobs on the datasets and APIs the seeds and users need, fully offline: the chat API, openqa,
line_by_line and a local ShareGPT file; the simulator's own log proves which prompts went out."""

from __future__ import annotations

import json

import pytest
from support.processes import Agent, fetch, wait_state

from fleetbench.v1 import agent_pb2 as pb

pytestmark = pytest.mark.integration
DONE = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}
QUESTIONS = ["What is the capital of France?", "Explain KV cache in one line.", "2+2?", "Name a prime > 10."]


@pytest.fixture
def chat_endpoint(tmp_path, start_endpoint):
    log = tmp_path / "server.jsonl"
    return f"{start_endpoint('--log', str(log), ttft_ms=10, tpot_ms=1).base}/chat/completions", log


def write_datasets(tmp_path):
    openqa = tmp_path / "open_qa.jsonl"
    openqa.write_text("".join(json.dumps({"question": q}) + "\n" for q in QUESTIONS))
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(q + "\n" for q in QUESTIONS))
    sharegpt = tmp_path / "sharegpt.json"
    sharegpt.write_text(json.dumps(
        [{"id": str(i), "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": "ok"}]}
         for i, q in enumerate(QUESTIONS)]
        + [{"id": "no-human", "conversations": [{"from": "gpt", "value": "skipped"}]}]))
    return {"openqa": openqa, "line_by_line": lines, "share_gpt": sharegpt}


def test_chat_api_with_each_local_dataset(tmp_path, chat_endpoint):
    url, log = chat_endpoint
    agent = Agent(tmp_path / "agent").start()
    try:
        for i, (dataset, path) in enumerate(write_datasets(tmp_path).items()):
            spec = {"url": url, "model": "demo", "dataset": dataset, "dataset_path": str(path), "number": 4,
                    "parallel": 2, "output_tokens": 5, "extra_args": {"ignore_eos": True}, "seed": 1}
            job = f"ds{i}"
            agent.stub.StartJob(pb.StartJobRequest(job_id=job, kind=pb.JOB_KIND_PERF, spec_json=json.dumps(spec)))
            st = wait_state(agent.stub, job, DONE, 180)
            assert st.state == pb.JOB_STATE_SUCCEEDED, (dataset, st.error)
            summary, records = fetch(agent, job)
            assert len(records) == 4 and all(r.success and r.output_tokens == 5 for r in records), dataset
            assert json.loads(summary.evalscope_summary_json)["Total Requests"] == 4
        server = [json.loads(line) for line in log.read_text().splitlines()]
        assert len(server) == 12
        # every request went to the chat route and was answered
        assert {r["path"] for r in server} == {"/v1/chat/completions"} and {r["status"] for r in server} == {"ok"}
        # the ShareGPT file became evalscope's line_by_line form: its 4 human turns, the turn-less one skipped
        converted = (tmp_path / "agent" / "jobs" / "ds2" / "sharegpt-prompts.jsonl").read_text().splitlines()
        assert [json.loads(line)[0]["content"] for line in converted] == QUESTIONS
    finally:
        agent.stop()


@pytest.mark.parametrize("dataset", ["openqa", "line_by_line", "share_gpt"])
def test_a_local_dataset_needs_its_path(tmp_path, dataset):
    agent = Agent(tmp_path / "agent").start()
    try:
        spec = {"url": "http://127.0.0.1:1/v1/chat/completions", "model": "m", "dataset": dataset, "number": 1,
                "parallel": 1}
        with pytest.raises(Exception, match=f"dataset_path is required for the {dataset} dataset"):
            agent.stub.StartJob(pb.StartJobRequest(job_id="x", kind=pb.JOB_KIND_PERF, spec_json=json.dumps(spec)))
    finally:
        agent.stop()
