"""A fixed run for the renderer tests, written into a real results store through the Store API and loaded back
with `load_report`, as `ctl report` does: two nodes and five cases.

- `perf-6k-1k`: INVALID — n2's load generator saturated (a failed validity check), and n2 and the cluster also
  miss the TPOT expectation; two of n2's requests failed with HTTP 503.
- `sweep-128`: PASS — two loops of concurrency 1 and 2, every validity check passed.
- `gsm8k` (eval): FAIL — n2 scores 20 against an official 60; the cluster pools 5 questions × 2 nodes.
- `long-128k` (long context): FAIL — n1 answered its 128k prompt, n2 got HTTP 400 (context too long).
- `perf-extra-args`: ERROR — n2's agent was unreachable (its job failed: the cluster holds 1 of 2 nodes), and
  every one of n1's 384 requests failed with HTTP 422 (the endpoint refused `min_tokens`/`ignore_eos`).

The run is ERROR. Every figure is computed by fleetbench.figures from deterministic records, so the report is
the same on every machine."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fleetbench.agent.inventory import nvidia
from fleetbench.controller.aggregate import CLUSTER, DatasetScore, Verdict, aggregate_case, judge, judge_scores
from fleetbench.controller.orchestrator import plan_steps
from fleetbench.controller.plan import Expectation, Plan, parse_plan
from fleetbench.controller.report.model import RunReport, load_report
from fleetbench.controller.store import Store
from fleetbench.controller.verdict import Check, Reason, State, figure_text, fmt_value, threshold_text, worst
from fleetbench.controller.yamlfile import parse_yaml
from fleetbench.inventory import CpuInfo, Dimm, IbPort, Inventory, MemoryInfo, NetInfo, Nic, NotAvailable, OsRelease
from fleetbench.records import RequestRecord

T0 = 1767000000.0  # 2025-12-29 09:20:00 UTC
RUN_ID = "r20251229-092000-abcd"
HTTP_422 = "HTTP 422: Unexpected fields in the request: {'min_tokens', 'ignore_eos'}"
HTTP_400 = ("HTTP 400: This model's maximum context length is 131072 tokens. However, you requested 129000 tokens "
            "(128000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.")
UNREACHABLE = "connection refused: n2 (10.0.0.12:50051) is unreachable: Connect call failed ('10.0.0.12', 50051)"

PLAN = """\
version: 1
name: 2×H200 demo acceptance
model: DeepSeek-V3.2
endpoint: {url: http://127.0.0.1:8000/v1/completions, api: openai, api_key: EMPTY}
tokenizer: /data/models/DeepSeek-V3.2
cases:
  - id: perf-6k-1k
    type: perf
    purpose: TTFT/TPOT at the contracted load
    parallel: 4
    number: 16
    input_tokens: 6000
    output_tokens: 1000
    extra_args: {ignore_eos: true}
    expect:
      ttft_avg_s: {max: 0.9}
      tpot_avg_s: {max: 0.020}
  - id: sweep-128
    type: sweep
    purpose: input 128, output 512, concurrency 1 and 2
    input_tokens: [128]
    output_tokens: [512]
    parallel: [1, 2]
    number: [2, 4]
    loops: 2
    expect:
      success_rate: {min: 1.0}
  - id: gsm8k
    type: eval
    purpose: accuracy against the official score
    datasets: [gsm8k]
    dataset_args: {gsm8k: {local_path: /data/gsm8k, few_shot_num: 0}}
    eval_batch_size: 2
    expect:
      score: {official: 60.0, tolerance: 0.5}
  - id: long-128k
    type: long_context
    purpose: one 128k-token request must succeed
    input_tokens: 128000
    output_tokens: 1000
    expect:
      success_rate: {min: 1.0}
  - id: perf-extra-args
    type: perf
    purpose: the contracted load with min_tokens and ignore_eos
    parallel: 32
    number: 384
    input_tokens: 1000
    output_tokens: 100
    extra_args: {min_tokens: 100, ignore_eos: true}
    expect:
      success_rate: {min: 1.0}
cluster:
  expect:
    tpm_total: {min: 100000}
"""


def records(n: int, start: float, parallel: int, ttft: float, tpot: float, input_tokens: int,
            output_tokens: int, point: str = "", fail_every: int = 0, error: str = "HTTP 503: Service Unavailable",
            fail_latency: float | None = None) -> list[RequestRecord]:
    """`n` requests `parallel` at a time, each's TTFT and TPOT varied deterministically with its index; every
    `fail_every`-th fails with `error` (after `fail_latency` seconds when given)."""
    out = []
    t = [start] * parallel
    for i in range(n):
        lane = i % parallel
        tt = ttft * (1 + 0.37 * ((i * 7) % 11) / 10)
        tp = tpot * (1 + 0.21 * ((i * 5) % 13) / 12)
        lat = tt + tp * (output_tokens - 1)
        ok = not (fail_every and i % fail_every == fail_every - 1)
        if not ok and fail_latency is not None:
            lat = fail_latency
        out.append(RequestRecord(
            index=i, start_time=t[lane], end_time=t[lane] + lat, success=ok, ttft_s=tt if ok else 0.0,
            latency_s=lat if ok else 0.0, input_tokens=input_tokens if ok else 0,
            output_tokens=output_tokens if ok else 0, tpot_s=tp if ok else 0.0,
            itl_s=(tp, tp * 1.1, tp * 0.9) if ok else (), error="" if ok else error, point=point))
        t[lane] += lat + 0.05
    return out


def sample_records() -> dict[str, dict[str, list[RequestRecord]]]:
    """case (or sweep step) -> node -> records."""
    return {
        "perf-6k-1k": {
            "n1": records(16, T0 + 10.0, 4, 0.8, 0.019, 6000, 1000),
            "n2": records(16, T0 + 10.2, 4, 0.95, 0.024, 6000, 1000, fail_every=8),
        },
        **{
            f"sweep-128@in128-out512-p{p}-n{n}-loop{loop}": {
                node: records(n, T0 + 100.0 + 40 * loop + 10 * p, p, 0.2 * (1 + k / 10 + loop / 50),
                              0.03 * p ** 0.5 + k / 1000 + loop / 2000, 128, 512,
                              point=f"in128-out512-p{p}-n{n}-loop{loop}")
                for k, node in enumerate(("n1", "n2"))
            }
            for loop in (1, 2) for p, n in ((1, 2), (2, 4))
        },
        "long-128k": {
            "n1": records(1, T0 + 300.0, 1, 24.2, 0.0145, 128000, 1000),
            "n2": records(1, T0 + 300.1, 1, 25.0, 0.0150, 128000, 1000, fail_every=1, error=HTTP_400,
                          fail_latency=0.4),
        },
        # n2's agent was unreachable: no records
        "perf-extra-args": {"n1": records(384, T0 + 360.0, 32, 0.1, 0.01, 1000, 100, fail_every=1, error=HTTP_422,
                                          fail_latency=0.004)},
    }


def _threshold(e: Expectation) -> str:
    return threshold_text(e.figure, e.op, e.threshold, e.tolerance)


def _judge_step(store: Store, step: str, nodes: Sequence[str], verdicts: Sequence[Verdict], checks: Sequence[Check],
                errors: dict[str, str]) -> list[Reason]:
    """What the orchestrator stores for a step: its verdicts and checks, each scope's state and the reasons."""
    store.add_verdicts(RUN_ID, step, verdicts)
    store.add_checks(RUN_ID, step, checks)
    reasons: dict[str, list[Reason]] = {scope: [] for scope in (*nodes, CLUSTER)}
    for node, err in errors.items():
        reasons[node].append(Reason(State.ERROR, step, node, f"job failed: {err}"))
    for c in checks:
        if not c.passed:
            reasons[c.scope].append(Reason(State.INVALID, step, c.scope, c.name, c.measured, c.bound))
    for v in verdicts:
        if not v.passed and v.scope not in errors:
            reasons[v.scope].append(Reason(State.FAIL, step, v.scope, v.expectation.figure,
                                           figure_text(v.expectation.figure, v.measured),
                                           _threshold(v.expectation)))
    every: list[Reason] = []
    for scope, mine in reasons.items():
        store.set_case_verdict(RUN_ID, step, scope, worst(r.state for r in mine), mine)
        every += mine
    store.set_case_verdict(RUN_ID, step, "case", worst(r.state for r in every), every)
    return every


def _load_checks(agg_nodes: dict, skew: float, window: float, saturated: dict[str, str] | None = None,
                 nodes: Sequence[str] = ("n1", "n2"), errors: dict[str, str] | None = None) -> list[Check]:
    errors = errors or {}
    out = [Check("nodes", CLUSTER, f"{len(agg_nodes)} of {len(nodes)} nodes", f"{len(nodes)} of {len(nodes)}",
                 len(agg_nodes) == len(nodes), "; ".join(f"{k}: {v}" for k, v in sorted(errors.items())))]
    for node, f in agg_nodes.items():
        out.append(Check("node_results", node, f"{f.requests:,} requests completed", ">= 1", f.requests >= 1))
        if node in (saturated or {}):
            out.append(Check("load_generator", node, "saturated", "not saturated", False,
                             f"{saturated[node]}: figures may be client-bound; add workers or a bigger client"))
    bound = max(0.1, 0.01 * window)
    if len(agg_nodes) >= 2:
        out.append(Check("start_skew", CLUSTER, fmt_value(skew, "s"), f"<= {fmt_value(bound, 's')}", skew <= bound))
    for node, rtt in (("n1", 0.00042), ("n2", 0.00051)):
        if node in agg_nodes and len(nodes) >= 2:
            out.append(Check("clock_uncertainty", node, fmt_value(rtt / 2, "s"), f"<= {fmt_value(bound / 2, 's')}",
                             True))
    return out


def sample_store(path: Path) -> Store:
    """The sample run, written into a new store at `path` (run id RUN_ID)."""
    plan = parse_plan(parse_yaml(PLAN, Path("<sample plan>"), "plan"))
    recs = sample_records()
    url = plan.endpoint.url
    nodes = ("n1", "n2")
    store = Store(path)
    store.create_run(RUN_ID, plan.name, plan.model, PLAN, nodes, "0.1.0")
    store.set_steps(RUN_ID, [s.row(i) for i, s in enumerate(plan_steps(plan))])  # as the orchestrator does
    for name, addr, host, offset, rtt in (("n1", "10.0.0.11:50051", "gpu-01", 0.0012, 0.00042),
                                          ("n2", "10.0.0.12:50051", "gpu-02", -0.0031, 0.00051)):
        store.add_node(RUN_ID, name, address=addr, endpoint=url, hostname=host, agent_version="0.1.0",
                       evalscope_version="1.14.1", clock_offset_s=offset, rtt_s=rtt,
                       inventory_json=sample_inventory(host).model_dump_json())
    reasons: list[Reason] = []

    def load_step(step: str, case: str, expect: Sequence[Expectation], errors: dict[str, str],
                  saturation: dict[str, dict] | None = None, cluster_expect: Sequence[Expectation] = ()) -> None:
        by_node = recs[step]
        agg = aggregate_case(by_node)
        for node in nodes:
            if node in errors:
                store.set_case_node(RUN_ID, step, node, job_id=f"{RUN_ID}.{step}", state="error", error=errors[node])
                continue
            result = {"saturation": saturation[node]} if saturation else {}
            store.set_case_node(RUN_ID, step, node, job_id=f"{RUN_ID}.{step}", state="succeeded", error="",
                                start_at=min(r.start_time for r in by_node[node]), last_seq=0, clock_offset_s=0.0,
                                result_json=json.dumps(result))
            store.add_requests(RUN_ID, step, node, 0.0, by_node[node])
        verdicts: list[Verdict] = []
        for name, figs in agg.nodes.items():
            store.set_figures(RUN_ID, step, name, figs)
            verdicts += judge(name, figs, expect)
        store.set_figures(RUN_ID, step, CLUSTER, agg.cluster, extra={
            "sum_node_tpm_total": agg.sum_node_tpm_total, "sum_node_tpm_output": agg.sum_node_tpm_output,
            "start_skew_s": agg.start_skew_s, "stragglers": list(agg.stragglers), "nodes": sorted(by_node),
            "error_nodes": sorted(errors)})
        verdicts += judge(CLUSTER, agg.cluster, expect) + judge(CLUSTER, agg.cluster, cluster_expect)
        verdicts += [Verdict(n, e, math.nan, False, note=err) for n, err in errors.items() for e in expect]
        saturated = {n: f"CPU {s['cpu_max']:.0%} of a core, event-loop lag p95 {s['lag_p95_s'] * 1000:.0f} ms"
                     for n, s in (saturation or {}).items() if s.get("saturated")}
        checks = _load_checks(agg.nodes, agg.start_skew_s, agg.cluster.wall_time_s, saturated, nodes, errors)
        reasons.extend(_judge_step(store, step, nodes, verdicts, checks, errors))

    def case_of(cid: str) -> Plan:
        return next(c for c in plan.cases if c.id == cid)  # type: ignore[return-value]

    perf = case_of("perf-6k-1k")
    load_step("perf-6k-1k", "perf-6k-1k", perf.expect, {}, saturation={
        "n1": {"saturated": False, "cpu_max": 0.4, "lag_max_s": 0.002, "lag_p95_s": 0.001, "windows": 5},
        "n2": {"saturated": True, "cpu_max": 0.98, "lag_max_s": 0.09, "lag_p95_s": 0.06, "windows": 5}},
        cluster_expect=plan.cluster_expect)
    sweep = case_of("sweep-128")
    for _, point in sweep.points():
        load_step(point.id, "sweep-128", sweep.expect, {})

    # eval: per-node scores and the cluster's, pooled (5 questions × 2 nodes)
    ev = case_of("gsm8k")
    scores = {"n1": DatasetScore("gsm8k", "mean_acc", 60.0, 5), "n2": DatasetScore("gsm8k", "mean_acc", 20.0, 5),
              CLUSTER: DatasetScore("gsm8k", "mean_acc", 40.0, 10)}
    verdicts = []
    for scope, sc in scores.items():
        if scope != CLUSTER:
            store.set_case_node(RUN_ID, "gsm8k", scope, job_id=f"{RUN_ID}.gsm8k", state="succeeded", error="",
                                result_json="{}")
        store.set_scores(RUN_ID, "gsm8k", scope, [sc])
        verdicts += judge_scores(scope, [sc], ev.expect)
    checks = [Check("nodes", CLUSTER, "2 of 2 nodes", "2 of 2", True)] + [
        Check("node_results", n, f"{scores[n].samples:,} scored samples", ">= 1", True) for n in nodes]
    reasons.extend(_judge_step(store, "gsm8k", nodes, verdicts, checks, {}))

    lc = case_of("long-128k")
    load_step("long-128k", "long-128k", lc.expect, {})
    pe = case_of("perf-extra-args")
    load_step("perf-extra-args", "perf-extra-args", pe.expect, {"n2": UNREACHABLE},
              cluster_expect=plan.cluster_expect)

    case_states = [State(r["state"]) for r in store.case_verdicts(RUN_ID) if r["scope"] == "case"]
    verdict = State.ERROR if State.ERROR in case_states else worst(case_states)
    store.finish_run(RUN_ID, verdict.value, reasons=reasons)
    store.db.table("runs").update(RUN_ID, {"started_at": T0, "finished_at": T0 + 420.5})
    return store


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def sample_inventory(hostname: str) -> Inventory:
    """A node of seed 000's fleet: 8×H200 as captured (tests/fixtures/nvidia-h200x8), 2 × Xeon 8558, 32 DDR5 DIMMs
    of 64 GB, 8 InfiniBand ports at 400 Gb/s and two 25 GbE NICs."""
    nv = nvidia.parse_smi_xml((FIXTURES / "nvidia-h200x8" / "nvidia-smi-q-x.xml").read_text())
    assert isinstance(nv, nvidia.NvidiaInfo)
    dimms = tuple(Dimm(locator=f"DIMM{i}", size_bytes=64 << 30, type="DDR5", speed_mts=4800, configured_speed_mts=4800,
                       manufacturer="", part_number="") for i in range(32))
    ib = tuple(IbPort(device=f"mlx5_{i}", port=1, rate_gbps=400.0, rate="400 Gb/sec (4X NDR)", state="ACTIVE",
                      link_layer="InfiniBand") for i in range(8))
    nics = (Nic(name="eth0", driver="mlx5_core", speed_mbps=25000, state="up"),
            Nic(name="eth1", driver="mlx5_core", speed_mbps=25000, state="up"), Nic(name="lo"))
    return Inventory(
        hostname=hostname, collected_at=T0,
        cpu=CpuInfo(model="INTEL(R) XEON(R) PLATINUM 8558", vendor="GenuineIntel", architecture="x86_64", sockets=2,
                    cores_per_socket=48, threads_per_core=2, logical_cpus=192, numa_nodes=2),
        memory=MemoryInfo(total_bytes=2 << 40, available_bytes=None, swap_total_bytes=0, dimms=dimms, dimm_slots=32),
        nvidia=nv, ascend=NotAvailable("npu-smi not found"),
        hygon=NotAvailable("hy-smi not found"), amd=NotAvailable("amd-smi not found"), disks=(),
        network=NetInfo(nics=nics, ib_ports=ib),
        os_release=OsRelease(pretty_name="Ubuntu 22.04.5 LTS", id="ubuntu", version_id="22.04"),
        kernel_release="5.15.0-164-generic", container_runtimes=(), python_version="3.11.7",
        evalscope_version="1.14.1", engine=NotAvailable("no endpoint URL given"))


def sample_report() -> RunReport:
    """The sample run as `ctl report` loads it."""
    with tempfile.TemporaryDirectory() as tmp:
        store = sample_store(Path(tmp) / "fleetbench.sqlite")
        try:
            return load_report(store, RUN_ID)
        finally:
            store.db.conn.close()
