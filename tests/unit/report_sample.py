"""A fixed RunReport for the renderer tests: two nodes, a perf case (one expectation failed on n2), a sweep
with two loops, an eval case below the official score and a long-context case. Every figure is computed by
fleetbench.figures from deterministic records, so the report is the same on every machine."""

from __future__ import annotations

from pathlib import Path

from fleetbench.controller.aggregate import aggregate_case
from fleetbench.controller.plan import parse_plan
from fleetbench.controller.report.model import (
    CaseReport,
    EvalScoreRow,
    NodeInfo,
    RunReport,
    SweepPointRow,
    VerdictRow,
    equivalent_command,
    loop_averages,
)
from fleetbench.controller.yamlfile import parse_yaml
from fleetbench.records import RequestRecord

T0 = 1767000000.0  # 2025-12-29 09:20:00 UTC

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
cluster:
  expect:
    tpm_total: {min: 100000}
"""


def records(n: int, start: float, parallel: int, ttft: float, tpot: float, input_tokens: int,
            output_tokens: int, point: str = "", fail_every: int = 0) -> list[RequestRecord]:
    """`n` requests `parallel` at a time, each's TTFT and TPOT varied deterministically with its index."""
    out = []
    t = [start] * parallel
    for i in range(n):
        lane = i % parallel
        tt = ttft * (1 + 0.37 * ((i * 7) % 11) / 10)
        tp = tpot * (1 + 0.21 * ((i * 5) % 13) / 12)
        lat = tt + tp * (output_tokens - 1)
        ok = not (fail_every and i % fail_every == fail_every - 1)
        out.append(RequestRecord(
            index=i, start_time=t[lane], end_time=t[lane] + lat, success=ok, ttft_s=tt if ok else 0.0,
            latency_s=lat if ok else 0.0, input_tokens=input_tokens if ok else 0,
            output_tokens=output_tokens if ok else 0, tpot_s=tp if ok else 0.0,
            itl_s=(tp, tp * 1.1, tp * 0.9) if ok else (), error="" if ok else "HTTP 503", point=point))
        t[lane] += lat + 0.05
    return out


def _verdict(scope: str, figure: str, op: str, threshold: float, measured: float, tol: float = 0.0) -> VerdictRow:
    if op == "min":
        ok = measured >= threshold
    elif op == "max":
        ok = measured <= threshold
    else:
        ok = measured >= threshold - tol - 1e-9
    return VerdictRow(scope, figure, op, threshold, measured, ok, "", tol)


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
            "n2": records(1, T0 + 300.1, 1, 25.0, 0.0150, 128000, 1000),
        },
    }


def sample_report() -> RunReport:
    plan = parse_plan(parse_yaml(PLAN, Path("<sample plan>"), "plan"))
    recs = sample_records()
    url = plan.endpoint.url
    cases = []

    perf = aggregate_case(recs["perf-6k-1k"])
    pv = [_verdict(s, fig, "max", thr, f.value(fig))
          for s, f in [*perf.nodes.items(), ("cluster", perf.cluster)]
          for fig, thr in (("ttft_avg_s", 0.9), ("tpot_avg_s", 0.020))]
    pv.append(_verdict("cluster", "tpm_total", "min", 100000, perf.cluster.tpm_total))  # the plan's cluster contract
    cases.append(CaseReport(
        case_id="perf-6k-1k", purpose="TTFT/TPOT at the contracted load",
        command=equivalent_command(plan, "perf-6k-1k", url), node_figures=perf.nodes, cluster=perf.cluster,
        sum_node_tpm_total=perf.sum_node_tpm_total, sum_node_tpm_output=perf.sum_node_tpm_output,
        start_skew_s=perf.start_skew_s, stragglers=list(perf.stragglers),
        node_states={"n1": ("succeeded", ""), "n2": ("succeeded", "")}, evalscope_summaries={}, verdicts=pv,
        saturation={"n1": {"saturated": False, "cpu_max": 0.4, "lag_max_s": 0.002, "lag_p95_s": 0.001,
                           "windows": 5},
                    "n2": {"saturated": True, "cpu_max": 0.98, "lag_max_s": 0.09, "lag_p95_s": 0.06, "windows": 5}},
    ))

    rows: list[SweepPointRow] = []
    sv: list[VerdictRow] = []
    for loop in (1, 2):
        for p, n in ((1, 2), (2, 4)):
            label = f"in128-out512-p{p}-n{n}-loop{loop}"
            agg = aggregate_case(recs[f"sweep-128@{label}"])
            for scope, f in [*agg.nodes.items(), ("cluster", agg.cluster)]:
                rows.append(SweepPointRow(scope, label, 128, 512, p, n, loop, f,
                                          p * (len(agg.nodes) if scope == "cluster" else 1)))
                v = _verdict(scope, "success_rate", "min", 1.0, f.success_rate)
                sv.append(VerdictRow(f"{v.scope} @ {label}", v.figure, v.op, v.threshold, v.measured, v.passed, ""))
    cases.append(CaseReport(
        case_id="sweep-128", purpose="input 128, output 512, concurrency 1 and 2",
        command=equivalent_command(plan, "sweep-128", url), node_figures={}, cluster=None,
        sum_node_tpm_total=float("nan"), sum_node_tpm_output=float("nan"), start_skew_s=float("nan"),
        stragglers=[], node_states={"n1": ("succeeded", ""), "n2": ("succeeded", "")}, evalscope_summaries={},
        verdicts=sv, case_type="sweep", sweep=rows, sweep_averages=loop_averages(rows),
    ))

    scores = [EvalScoreRow("cluster", "gsm8k", "mean_acc", 40.0, 10, 60.0, 0.5),
              EvalScoreRow("n1", "gsm8k", "mean_acc", 60.0, 5, 60.0, 0.5),
              EvalScoreRow("n2", "gsm8k", "mean_acc", 20.0, 5, 60.0, 0.5)]
    cases.append(CaseReport(
        case_id="gsm8k", purpose="accuracy against the official score",
        command=equivalent_command(plan, "gsm8k", url), node_figures={}, cluster=None,
        sum_node_tpm_total=float("nan"), sum_node_tpm_output=float("nan"), start_skew_s=float("nan"),
        stragglers=[], node_states={"n1": ("succeeded", ""), "n2": ("succeeded", "")}, evalscope_summaries={},
        verdicts=[_verdict(s.scope, "score:gsm8k", "official", 60.0, s.score, 0.5) for s in scores],
        case_type="eval", scores=scores,
    ))

    lc = aggregate_case(recs["long-128k"])
    cases.append(CaseReport(
        case_id="long-128k", purpose="one 128k-token request must succeed",
        command=equivalent_command(plan, "long-128k", url), node_figures=lc.nodes, cluster=lc.cluster,
        sum_node_tpm_total=lc.sum_node_tpm_total, sum_node_tpm_output=lc.sum_node_tpm_output,
        start_skew_s=lc.start_skew_s, stragglers=list(lc.stragglers),
        node_states={"n1": ("succeeded", ""), "n2": ("succeeded", "")}, evalscope_summaries={},
        verdicts=[_verdict(s, "success_rate", "min", 1.0, f.success_rate)
                  for s, f in [*lc.nodes.items(), ("cluster", lc.cluster)]],
        case_type="long_context",
    ))

    env_row = {"cpu": "INTEL(R) XEON(R) PLATINUM 8558 ×2", "cpus": "192",
               "memory": "2.0 TiB (32× 64 GiB DDR5)", "accelerators": "8× NVIDIA H200 143771 MiB",
               "driver": "570.195.03", "toolkit": "CUDA 12.8", "os": "Ubuntu 22.04.5 LTS",
               "kernel": "5.15.0-164-generic"}
    return RunReport(
        run_id="r20251229-092000-abcd", plan_name=plan.name, model=plan.model, started_at=T0,
        finished_at=T0 + 420.5, verdict="fail", fleetbench_version="0.1.0",
        nodes=[NodeInfo("n1", "10.0.0.11:50051", url, "gpu-01", "0.1.0", "1.14.1", 0.0012, 0.00042),
               NodeInfo("n2", "10.0.0.12:50051", url, "gpu-02", "0.1.0", "1.14.1", -0.0031, 0.00051)],
        cases=cases, plan=plan,
        environment=[{"node": "n1", "hostname": "gpu-01", **env_row}, {"node": "n2", "hostname": "gpu-02", **env_row}],
        drift=["drift: none — n1, n2 agree on accelerator model, count and memory, driver, CUDA/CANN/DTK, kernel and "
               "memory size; no NVLink link down, no uncorrected ECC error, no MIG"],
    )
