"""Preflight on real agents (gRPC on loopback), real evalscope and the real simulated endpoint: a good node
passes with one request per case shape; an engine refusing evalscope's fields (HTTP 422), an engine answering
HTTP 200 without content, nothing listening, a missing tokenizer, an unreachable or busy agent and a slow node
each come back as one line naming the node, what failed and what to do."""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.fleets import Fleet
from support.plans import plan_text

from fleetbench.controller.client import AgentClient
from fleetbench.controller.fleet import Node
from fleetbench.controller.localfleet import free_port
from fleetbench.controller.plan import Plan, load_plan
from fleetbench.controller.preflight import PreflightReport, run_preflight
from fleetbench.controller.progress import QuietProgress
from fleetbench.v1 import agent_pb2 as pb

pytestmark = pytest.mark.integration
GSM8K = Path(__file__).parents[1] / "data" / "eval" / "gsm8k"

CASES = """\
  - id: load
    parallel: 8
    number: 64
    input_tokens: 256
    output_tokens: 8
    extra_args: {ignore_eos: true}
  - id: conc
    type: sweep
    parallel: [1, 2, 4]
    number: 4
    input_tokens: [32, 64]
    output_tokens: [4]
    loops: 2
  - id: long
    type: long_context
    input_tokens: 2048
    output_tokens: 4
"""
EVAL_CASE = f"""\
  - id: acc
    type: eval
    datasets: [gsm8k]
    dataset_args: {{gsm8k: {{local_path: {GSM8K}}}}}
    limit: 2
"""
PERF_SHAPES = 4  # load, conc@in32-out4, conc@in64-out4, long


def make_plan(tmp: Path, name: str, tokenizer: Path | str, extra: str = "") -> Plan:
    path = tmp / f"{name}.yaml"
    path.write_text(plan_text("preflight test", tokenizer, CASES + extra))
    return load_plan(path)


@pytest.fixture(scope="module")
def fleet(local_fleet) -> Fleet:
    """n1: a good endpoint; n2: a strict one (422 for min_tokens/ignore_eos); n3: HTTP 200 with [DONE] only.
    Every endpoint logs each request it gets."""
    return local_fleet(3, log_requests=True, node_endpoint_args={"n2": ["--strict"], "n3": ["--fault-done-only", "1"]})


def preflight(plan: Plan, nodes: list[Node], prefix: str, **kw: Any) -> tuple[PreflightReport, str]:
    out = io.StringIO()

    async def go() -> PreflightReport:
        clients = {n.name: AgentClient(n) for n in nodes}
        try:
            return await run_preflight(plan, nodes, clients, prefix, QuietProgress(out), **kw)
        finally:
            for c in clients.values():
                await c.close()

    return asyncio.run(go()), out.getvalue()


def by_node(report: PreflightReport, node: str) -> list[str]:
    return [p.line() for p in report.problems if p.node == node]


def test_good_strict_and_contentless_endpoints(fleet: Fleet, demo_tokenizer: Path) -> None:
    plan = make_plan(fleet.work, "full", demo_tokenizer, EVAL_CASE)
    t0 = time.time()
    report, progress = preflight(plan, fleet.nodes, "pf-full")
    elapsed = time.time() - t0
    print("\n".join(report.lines()), f"\n{elapsed:.1f}s", progress, sep="\n")

    # n1: every check passed, and the endpoint got exactly one request per case shape, of that shape
    assert by_node(report, "n1") == []
    names = {c["name"] for c in report.checks["n1"]}
    assert {"free_space", "evalscope", "tokenizer", "dataset", "endpoint", "request"} <= names
    seen = fleet.requests_seen("n1")
    assert len(seen) == PERF_SHAPES + 1
    completions = [r for r in seen if r["path"] == "/v1/completions"]
    assert len(completions) == PERF_SHAPES
    assert all(r["status"] == "ok" and r["stream"] and r["completion_tokens"] > 0 for r in seen)
    # same max_tokens as the case (ignore_eos: exactly max_tokens), a short prompt instead of 256/2048 tokens
    assert sorted(r["completion_tokens"] for r in completions) == [4, 4, 4, 8]
    assert all(r["prompt_tokens"] < 32 for r in completions)

    # n2: the engine refuses evalscope's fields: the status, its body and what to do, once per perf shape
    n2 = [p for p in report.problems if p.node == "n2"]
    assert {p.case_id for p in n2} == {"load", "conc@in32-out4", "conc@in64-out4", "long"}
    for p in n2:
        assert p.status == 422 and p.check == "request"
        assert "Unexpected fields in the request" in p.body and "min_tokens" in p.body
        assert p.hint.startswith("the engine rejects fields the case sends (ignore_eos, min_tokens)") or \
            p.hint.startswith("the engine rejects fields the case sends (min_tokens")
        assert "set `fixed_output: false` on the case to send only max_tokens" in p.hint
        assert p.line().startswith(f"n2: case {p.case_id}: endpoint answered HTTP 422: ")
    assert len(fleet.requests_seen("n2")) <= PERF_SHAPES + 1

    # n3: HTTP 200 with only `data: [DONE]` is no answer: every shape, and the eval's request too
    n3 = [p for p in report.problems if p.node == "n3"]
    assert {p.case_id for p in n3} == {"load", "conc@in32-out4", "conc@in64-out4", "long", "acc"}
    assert all(p.detail.startswith("empty reply") and p.status == 200 for p in n3)
    assert len(fleet.requests_seen("n3")) == PERF_SHAPES + 1

    assert report.failed_nodes() == ["n2", "n3"] and not report.ok
    assert "case preflight: started on n1, n2, n3" in progress
    assert elapsed < 120


STRICT_CASES = """\
  - {id: up-to, parallel: 2, number: 4, input_tokens: 64, output_tokens: 8, fixed_output: false}
  - {id: exact, parallel: 2, number: 4, input_tokens: 64, output_tokens: 8}
"""


def test_fixed_output_false_is_what_a_strict_engine_takes(fleet: Fleet, demo_tokenizer: Path) -> None:
    """An engine that refuses min_tokens (transformers serve): a case with `fixed_output: false` sends only
    max_tokens and passes preflight there; the same case without it is refused, as before."""
    path = fleet.work / "strict.yaml"
    path.write_text(plan_text("strict engine", demo_tokenizer, STRICT_CASES))
    n2 = [n for n in fleet.nodes if n.name == "n2"]
    report, _ = preflight(load_plan(path), n2, "pf-strict")
    problems = [p for p in report.problems if p.node == "n2"]
    assert [(p.case_id, p.status) for p in problems] == [("exact", 422)]
    assert "min_tokens" in problems[0].body


def test_nothing_listening_and_missing_tokenizer(fleet: Fleet) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1/completions"
    n1 = replace(fleet.nodes[0], endpoint=dead)
    before = len(fleet.requests_seen("n1"))
    plan = make_plan(fleet.work, "notok", fleet.work / "no-such-tokenizer")
    report, _ = preflight(plan, [n1], "pf-dead")
    lines = report.lines()
    print("\n".join(lines))
    assert {p.check for p in report.problems} == {"tokenizer", "endpoint"}
    tok = next(p for p in report.problems if p.check == "tokenizer")
    assert tok.line() == (f"n1: tokenizer: tokenizer path {fleet.work / 'no-such-tokenizer'} does not exist on node "
                          f"n1; hint: copy it to {fleet.work / 'no-such-tokenizer'} on node n1, or fix `tokenizer` in "
                          "the plan")
    ep = next(p for p in report.problems if p.check == "endpoint")
    assert "Connection refused" in ep.detail
    assert ep.hint.startswith(f"is the engine listening at {dead} on node n1?")
    assert len(lines) == 2  # one line for the port, not one per case
    assert len(fleet.requests_seen("n1")) == before


def test_unreachable_busy_and_slow_agents(fleet: Fleet, demo_tokenizer: Path) -> None:
    plan = make_plan(fleet.work, "agents", demo_tokenizer)
    n2, n3 = fleet.nodes[1], fleet.nodes[2]
    gone = Node("n9", f"127.0.0.1:{free_port()}", endpoint=n2.endpoint)

    async def hold(node: Node) -> None:
        """A perf job that waits for a start instant 10 minutes away: the agent is busy, nothing is sent."""
        client = AgentClient(node)
        try:
            spec = {"url": node.endpoint, "model": "demo", "tokenizer_path": str(demo_tokenizer), "number": 1,
                    "parallel": 1, "input_tokens": 8, "output_tokens": 2}
            await client.start_job("holder", pb.JOB_KIND_PERF, spec, time.time() + 600)
        finally:
            await client.close()

    asyncio.run(hold(n3))
    try:
        report, _ = preflight(plan, [n2, n3, gone], "pf-agents")
        print("\n".join(report.lines()))
        (busy,) = [p for p in report.problems if p.node == "n3"]
        assert busy.line() == ("n3: agent: the agent is busy with job holder; hint: one job runs at a time per agent: "
                               "wait for holder to end, or cancel it on n3")
        (unreachable,) = [p for p in report.problems if p.node == "n9"]
        assert unreachable.detail == f"the agent at {gone.address} does not answer"
        assert "is fleetbench-agent running on n9?" in unreachable.hint
        assert {p.status for p in report.problems if p.node == "n2"} == {422}
    finally:
        async def cancel() -> None:
            client = AgentClient(n3)
            try:
                await client.cancel_job("holder")
            finally:
                await client.close()

        asyncio.run(cancel())

    # a deadline shorter than loading evalscope: the slow node is named and its job is cancelled
    report, _ = preflight(plan, [n2], "pf-slow", deadline_s=1.0)
    (slow,) = report.problems
    assert slow.check == "deadline"
    assert slow.detail.startswith("preflight did not finish within 1 s on n2 (last: ")
