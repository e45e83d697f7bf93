"""The run as CSV files (`ctl report --format csv`), for operators who post-process in pandas or a spreadsheet:

- `RUN.summary.csv`: one row per step and scope, with the columns seed 001's collection script wrote
  (sglang.bench_serving's names, latencies in ms) and fleetbench's case, point, scope, success and TPM;
- `RUN.percentiles.csv`: every percentile of every metric, long format (case, point, scope, metric, p, value);
- `RUN.sweep.csv`: the sweep table (seed 002's columns), one row per point, loop and scope;
- `RUN.requests.csv`: the raw per-request records, as the store holds them (times on the controller clock).

Every value is the stored figure (or, for std, computed from the stored records), unrounded."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleetbench.figures import Figures

from ..aggregate import CLUSTER
from ..plan import PerfCase
from ..store import Store
from .model import RunReport

SEED001_FIELDS = [
    "prompt_num", "concurrency", "random_input_len", "random_output_len", "total_input_tokens",
    "total_output_tokens", "duration", "request_throughput", "mean_e2e_latency_ms", "median_e2e_latency_ms",
    "std_e2e_latency_ms", "p99_e2e_latency_ms", "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms",
    "median_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "median_itl_ms", "p99_itl_ms", "input_output_throughput(tok/s)",
    "input_throughput(tok/s)", "output_throughput(tok/s)",
]
SUMMARY_FIELDS = ["case", "point", "scope", *SEED001_FIELDS, "requests", "succeeded", "failed", "success_rate",
                  "tpm_total", "tpm_output"]
SWEEP_FIELDS = ["case", "point", "scope", "input_tokens", "output_tokens", "parallel", "number", "loop",
                "concurrency", "requests", "succeeded", "latency_avg_s", "ttft_avg_s", "tpot_avg_s",
                "output_throughput_tps", "total_throughput_tps", "avg_tps", "per_request_tps", "tpm_total"]
REQUEST_FIELDS = ["case_id", "node", "point", "idx", "start_time", "end_time", "clock_offset_s", "success", "ttft_s",
                  "latency_s", "tpot_s", "input_tokens", "output_tokens", "error"]
CSV_FILES = ("summary", "percentiles", "sweep", "requests")


def _ms(v: float) -> float | str:
    return "" if math.isnan(v) else v * 1000


def _v(v: Any) -> Any:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _std_latency_ms(store: Store, run_id: str, step: str, scope: str) -> float | str:
    """Population std of the successful requests' latency (numpy's default, as sglang.bench_serving)."""
    where, args = "run_id = ? AND case_id = ? AND success = 1", [run_id, step]
    if scope != CLUSTER:
        where += " AND node = ?"
        args.append(scope)
    values = [r[0] for r in store.db.execute(f"SELECT latency_s FROM requests WHERE {where}", args)]
    return statistics.pstdev(values) * 1000 if values else ""


def _steps(report: RunReport) -> Iterator[tuple[str, str, str, Figures, int, int, int, int]]:
    """(case, point, scope, figures, number, concurrency, input, output) of every load step."""
    for case in report.cases:
        plan_case = next((c for c in report.plan.cases if c.id == case.case_id), None) if report.plan else None
        if case.case_type == "sweep":
            for r in case.sweep:
                yield (case.case_id, r.point, r.scope, r.figures, r.number, r.concurrency, r.input_tokens,
                       r.output_tokens)
            continue
        if case.case_type == "eval":
            continue
        p = plan_case if isinstance(plan_case, PerfCase) else None
        n_nodes = len(case.cluster_nodes) or len(case.node_figures)
        for scope, f in [*case.node_figures.items(), *([(CLUSTER, case.cluster)] if case.cluster else [])]:
            k = n_nodes if scope == CLUSTER else 1
            yield (case.case_id, "", scope, f, (p.number * k) if p else f.requests, (p.parallel * k) if p else 0,
                   p.input_tokens if p else 0, p.output_tokens if p else 0)


def write_csv(store: Store, report: RunReport, folder: Path) -> list[Path]:
    """The four CSV files of a run into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{report.run_id}.{name}.csv" for name in CSV_FILES}
    with paths["summary"].open("w", newline="", encoding="utf-8") as sf, \
            paths["percentiles"].open("w", newline="", encoding="utf-8") as pf:
        summary = csv.DictWriter(sf, fieldnames=SUMMARY_FIELDS)
        summary.writeheader()
        pct = csv.writer(pf)
        pct.writerow(["case", "point", "scope", "metric", "percentile", "value"])
        for case_id, point, scope, f, number, conc, inp, outp in _steps(report):
            pc = f.percentiles
            step = f"{case_id}@{point}" if point else case_id
            summary.writerow({
                "case": case_id, "point": point, "scope": scope, "prompt_num": number, "concurrency": conc,
                "random_input_len": inp, "random_output_len": outp, "total_input_tokens": f.input_tokens,
                "total_output_tokens": f.output_tokens, "duration": _v(f.wall_time_s),
                "request_throughput": _v(f.request_throughput_rps), "mean_e2e_latency_ms": _ms(f.latency_avg_s),
                "median_e2e_latency_ms": _ms(pc.get("latency_s", {}).get(50, math.nan)),
                "std_e2e_latency_ms": _std_latency_ms(store, report.run_id, step, scope),
                "p99_e2e_latency_ms": _ms(pc.get("latency_s", {}).get(99, math.nan)),
                "mean_ttft_ms": _ms(f.ttft_avg_s), "median_ttft_ms": _ms(pc.get("ttft_s", {}).get(50, math.nan)),
                "p99_ttft_ms": _ms(pc.get("ttft_s", {}).get(99, math.nan)), "mean_tpot_ms": _ms(f.tpot_avg_s),
                "median_tpot_ms": _ms(pc.get("tpot_s", {}).get(50, math.nan)),
                "p99_tpot_ms": _ms(pc.get("tpot_s", {}).get(99, math.nan)), "mean_itl_ms": _ms(f.itl_avg_s),
                "median_itl_ms": _ms(pc.get("itl_s", {}).get(50, math.nan)),
                "p99_itl_ms": _ms(pc.get("itl_s", {}).get(99, math.nan)),
                "input_output_throughput(tok/s)": _v(f.total_throughput_tps),
                "input_throughput(tok/s)": _v(f.total_throughput_tps - f.output_throughput_tps),
                "output_throughput(tok/s)": _v(f.output_throughput_tps), "requests": f.requests,
                "succeeded": f.succeeded, "failed": f.failed, "success_rate": _v(f.success_rate),
                "tpm_total": _v(f.tpm_total), "tpm_output": _v(f.tpm_output),
            })
            for metric, table in pc.items():
                for p, value in sorted(table.items()):
                    pct.writerow([case_id, point, scope, metric, p, _v(value)])
    with paths["sweep"].open("w", newline="", encoding="utf-8") as wf:
        sweep = csv.DictWriter(wf, fieldnames=SWEEP_FIELDS)
        sweep.writeheader()
        for case in report.cases:
            for r in case.sweep:
                f = r.figures
                sweep.writerow({
                    "case": case.case_id, "point": r.point, "scope": r.scope, "input_tokens": r.input_tokens,
                    "output_tokens": r.output_tokens, "parallel": r.parallel, "number": r.number, "loop": r.loop,
                    "concurrency": r.concurrency, "requests": f.requests, "succeeded": f.succeeded,
                    "latency_avg_s": _v(f.latency_avg_s), "ttft_avg_s": _v(f.ttft_avg_s),
                    "tpot_avg_s": _v(f.tpot_avg_s), "output_throughput_tps": _v(f.output_throughput_tps),
                    "total_throughput_tps": _v(f.total_throughput_tps), "avg_tps": _v(r.avg_tps),
                    "per_request_tps": _v(r.per_request_tps), "tpm_total": _v(f.tpm_total),
                })
    with paths["requests"].open("w", newline="", encoding="utf-8") as rf:
        w = csv.writer(rf)
        w.writerow(REQUEST_FIELDS)
        cursor = store.db.execute(f"SELECT {', '.join(REQUEST_FIELDS)} FROM requests WHERE run_id = ? "
                                  "ORDER BY case_id, node, point, idx", [report.run_id])
        for row in cursor:
            w.writerow([_v(v) for v in row])
    return list(paths.values())
