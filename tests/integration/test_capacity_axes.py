"""The capacity search's other axis and load model (issue 18, item 2), end to end against simulated endpoints that
serve a limited number of requests at once (the rest queue and wait in their TTFT):

- `rate: {min, max}`: open-loop arrivals at a searched request rate; above the endpoint's capacity the queue grows
  and p99 TTFT breaks the SLO. Poisson arrivals make the knee of a finite probe a band, not a point: the search
  brackets it to 5 % (the lowest failing rate within 5 % of the answer), never reports a rate the endpoint cannot
  serve, and takes a bounded number of probes.
- `load: split`: the searched concurrency is the cluster's total, divided across three agents that all send to one
  endpoint; its limit is the answer, exactly, and the endpoint receives exactly the probes' totals.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess

import pytest
from support.fleets import open_store, stored_records
from support.plans import plan_text

from fleetbench.controller.specs import split_share
from fleetbench.figures import compute_figures

pytestmark = pytest.mark.integration

# the rate search: at most 4 requests at once, each 100 ms + 9 × 20 ms = 280 ms: the endpoint serves at most
# 4 / 0.28 = 14.3 requests/s; a p99 TTFT limit of 0.5 s lets a request wait 0.4 s in the queue
LIMIT, SERVICE_S = 4, 0.28
CAPACITY_RPS = LIMIT / SERVICE_S
PROBE_S = 6.0
RATE_CASES = f"""\
  - id: cap
    type: capacity
    input_tokens: 32
    output_tokens: 10
    extra_args: {{ignore_eos: true}}
    rate: {{min: 2, max: 64}}
    probe_duration_s: {PROBE_S}
    slo: {{ttft_p99_s: {{max: 0.5}}, success_rate: {{min: 1.0}}}}
"""

# the split search: one endpoint serving at most 4 at once (150 ms + 9 × 10 ms each), loaded from 3 agents; a
# total of 4 streams never queue (TTFT 150 ms), 5 always have one waiting about 240 ms (TTFT near 0.39 s)
SPLIT_CASES = """\
  - id: shared
    type: capacity
    load: split
    input_tokens: 32
    output_tokens: 10
    extra_args: {ignore_eos: true}
    parallel: {min: 3, max: 12}
    requests_per_stream: 2
    slo: {ttft_p99_s: {max: 0.3}, success_rate: {min: 1.0}}
"""


def _run(tmp, plan_text: str, fleet) -> tuple[subprocess.CompletedProcess[str], sqlite3.Connection, dict]:
    db = tmp / "s.sqlite"
    plan = tmp / "plan.yaml"
    plan.write_text(plan_text)
    proc = fleet.run(plan, db, tmp / "out", timeout=590)
    assert proc.returncode == 0, proc.stderr[-4000:]
    con = open_store(db)
    return proc, con, json.loads(next((tmp / "out").glob("*.json")).read_text())


@pytest.fixture(scope="module")
def by_rate(local_fleet, demo_tokenizer, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("capacity_rate")
    fleet = local_fleet(1, ttft_ms=100, tpot_ms=20, extra_endpoint_args=["--max-concurrency", str(LIMIT)])
    proc, con, doc = _run(tmp, plan_text("capacity by rate", demo_tokenizer, RATE_CASES), fleet)
    return proc, con, doc, tmp


@pytest.fixture(scope="module")
def split(local_fleet, demo_tokenizer, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("capacity_split")
    log = tmp / "n1-endpoint.jsonl"
    fleet = local_fleet(3, ttft_ms=150, tpot_ms=10,
                        node_endpoint_args={"n1": ["--max-concurrency", str(LIMIT), "--log", str(log)]})
    proc, con, doc = _run(tmp, plan_text("capacity split", demo_tokenizer, SPLIT_CASES,
                                         endpoint=fleet.nodes[0].endpoint), fleet)
    return proc, con, doc, log, tmp


def test_a_rate_search_brackets_the_knee_to_five_percent_below_capacity(by_rate):
    proc, _, doc, _ = by_rate
    (case,) = doc["cases"]
    assert case["state"] == "pass"
    cap = case["capacity"]
    assert set(cap) == {"cluster", "n1"} and "max_parallel" not in cap["cluster"]
    found = cap["cluster"]["max_rate"]
    assert found == cap["n1"]["max_rate"]  # one node: its records are the cluster's
    # never a rate the endpoint cannot serve; far enough up that the search found the knee, not noise
    assert 0.4 * CAPACITY_RPS <= found <= CAPACITY_RPS, found
    counted = [p for p in cap["cluster"]["probes"] if p["state"] not in ("invalid", "error")]
    seq = [(p["value"], p["within_slo"], round(p["ttft_p99_s"], 3)) for p in counted]  # shown when one fails
    failed = min(p["value"] for p in counted if not p["within_slo"])
    assert found < failed <= found * 1.05, seq  # the bracket closed to the search's resolution
    # what decided it, as measured: p99 TTFT within 0.5 s at every run of the answer, beyond it where it failed
    assert all(p["within_slo"] and p["ttft_p99_s"] <= 0.5 for p in counted if p["value"] == found), seq
    assert [p["value"] for p in counted].count(found) == 2, seq  # confirmed
    # (a rate that passed once and failed its next run counts as failed: only the failing runs broke the SLO)
    outside = [p for p in counted if p["value"] == failed and not p["within_slo"]]
    assert outside and all(p["ttft_p99_s"] > 0.5 or p["success_rate"] < 1.0 for p in outside), seq
    # bracket 2, 4, 8, 16 (32), bisection to 5 % (at most 5), the confirmation; noise may reopen a bracket once
    assert len(counted) <= 18, seq
    assert f"capacity {found:g} req/s per node within the SLO" in proc.stderr


def test_a_rate_probe_sends_open_loop_arrivals_and_its_tpm_recomputes(by_rate):
    _, con, doc, _ = by_rate
    cl = doc["cases"][0]["capacity"]["cluster"]
    found = cl["max_rate"]
    runs = [p for p in cl["probes"] if p["value"] == found and p["state"] not in ("invalid", "error")]
    tpms = []
    for p in runs:
        n = math.ceil(found * PROBE_S - 1e-9)
        assert (p["rate"], p["parallel"], p["requests"]) == (found, n, n)  # streams never hold an arrival back
        recs = stored_records(con, f"cap@r{found:g}-try{p['attempt']}")
        assert len(recs) == n
        span = max(r.start_time for r in recs) - min(r.start_time for r in recs)
        assert span == pytest.approx(PROBE_S * (n - 1) / n, rel=0.25)  # sent over the probe, not at once
        tpms.append(compute_figures(recs).tpm_total)
    assert cl["tpm_total"] == pytest.approx(min(tpms), rel=1e-12)


def test_a_rate_search_reads_in_requests_per_second_in_every_report(by_rate):
    _, _, doc, tmp = by_rate
    found = f"{doc['cases'][0]['capacity']['cluster']['max_rate']:g}"
    md = next((tmp / "out").glob("*.md")).read_text()
    assert f"`cap`: capacity **{found}** requests/s per node within the SLO" in md
    html = next((tmp / "out").glob("*.html")).read_text()
    assert "p99 TTFT against request rate per node (req/s) (cluster)" in html and f"found: {found}" in html


def test_a_split_search_finds_the_shared_endpoints_limit_as_a_cluster_total(split):
    proc, _, doc, _, tmp = split
    (case,) = doc["cases"]
    assert case["state"] == "pass"
    cap = case["capacity"]
    assert list(cap) == ["cluster"]  # the agents are load generators here: a node's share is no server's answer
    assert cap["cluster"]["max_parallel"] == LIMIT
    counted = [p["value"] for p in cap["cluster"]["probes"] if p["state"] not in ("invalid", "error")]
    assert counted == [3, 6, 4, 5, 4]  # bracket 3, 6; bisection 4, 5; the answer again
    assert "capacity 4 in total on one endpoint within the SLO" in proc.stderr
    md = next((tmp / "out").glob("*.md")).read_text()
    assert "capacity **4** concurrent requests in total (one endpoint, load from 3 agents)" in md


def test_a_split_probe_divides_the_total_and_the_endpoint_gets_exactly_it(split):
    _, con, doc, log, _ = split
    cl = doc["cases"][0]["capacity"]["cluster"]
    sent = 0
    for p in cl["probes"]:
        step = f"shared@p{p['value']}-try{p['attempt']}"
        per_node = dict(con.execute("SELECT node, count(*) FROM requests WHERE case_id = ? GROUP BY node",
                                    [step]).fetchall())
        total = p["value"] * 2
        if p["state"] not in ("invalid", "error"):
            shares = {f"n{i + 1}": split_share(_probe(p["value"]), i, 3).number for i in range(3)}
            assert per_node == shares and sum(per_node.values()) == total
        sent += sum(per_node.values())
    # every request of every probe went to the one endpoint, and only those (plus each agent's preflight request)
    assert len(log.read_text().splitlines()) == sent + 3


def _probe(total: int):
    from fleetbench.controller.plan import CapacityCase, Expectation

    return CapacityCase(id="shared", input_tokens=32, output_tokens=10, parallel_min=3, parallel_max=12,
                        slo=(Expectation("ttft_p99_s", "max", 0.3),), requests_per_stream=2,
                        load="split").probe(total, 1)
