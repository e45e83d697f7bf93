"""Every figure fleetbench reports, as pure functions over request records.

The definitions follow evalscope's (evalscope/perf/utils/benchmark_util.py and
db_util.py), so a node's figures equal what `evalscope perf` prints for the
same run, and cluster figures are the same definitions applied to the union
of all nodes' records. `DEFINITIONS` is the single wording quoted by the docs
and the report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import numpy as np

from fleetbench.records import RequestRecord

PERCENTILES: tuple[int, ...] = (10, 25, 50, 66, 75, 80, 90, 95, 98, 99)

DEFINITIONS: dict[str, str] = {
    "ttft": "Time to first token: from sending the request to the first streamed content chunk.",
    "tpot": "Time per output token, per request: (latency - TTFT) / (output tokens - 1); "
    "averaged over successful requests with more than one output token.",
    "itl": "Inter-token latency: time between consecutive streamed chunks; "
    "the average is over all gaps of all successful requests.",
    "latency": "End-to-end latency of one request, from sending it to its last byte.",
    "wall_time": "Benchmark wall time: latest request end - earliest request start.",
    "output_throughput": "Output throughput: sum of output tokens of successful requests / wall time.",
    "total_throughput": "Total throughput: sum of input + output tokens of successful requests / wall time.",
    "request_throughput": "Request throughput: successful requests / wall time.",
    "tpm": "Tokens per minute: total throughput x 60 (output TPM: output throughput x 60).",
    "cluster_throughput": "Cluster throughput: sum of tokens over all nodes / common window "
    "(latest end - earliest start over all nodes, clocks corrected by each node's measured offset).",
    "cluster_percentiles": "Cluster percentiles: percentiles of the union of all nodes' per-request "
    "samples, never an average of per-node percentiles.",
    "percentile": "Percentiles use the nearest-rank method (as evalscope): the p-th percentile of n "
    "sorted samples is the sample at rank ceil(p/100 x n).",
    "success_rate": "Success rate: successful requests / all requests.",
}


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (evalscope's method; numpy's `inverted_cdf`). NaN when empty."""
    data = sorted(v for v in values if not math.isnan(v))
    if not data:
        return math.nan
    if p >= 100:
        return data[-1]
    idx = max(0, math.ceil(len(data) * p / 100) - 1)
    return data[idx]


def percentiles_of(values: Sequence[float], points: Sequence[int]) -> dict[int, float]:
    """Several nearest-rank percentiles of one sample, sorting it once (numpy: millions of ITL gaps)."""
    data = np.asarray(values, dtype=np.float64)
    data = np.sort(data[~np.isnan(data)])
    n = len(data)
    if n == 0:
        return {p: math.nan for p in points}
    return {p: float(data[-1] if p >= 100 else data[max(0, math.ceil(n * p / 100) - 1)]) for p in points}


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


@dataclass(frozen=True)
class Figures:
    """The figures of one set of records: a node's run or a whole cluster's."""

    requests: int
    succeeded: int
    failed: int
    success_rate: float
    wall_time_s: float
    window_start: float
    window_end: float
    input_tokens: int
    output_tokens: int
    output_throughput_tps: float
    total_throughput_tps: float
    request_throughput_rps: float
    tpm_total: float
    tpm_output: float
    ttft_avg_s: float
    tpot_avg_s: float
    itl_avg_s: float
    latency_avg_s: float
    input_tokens_avg: float
    output_tokens_avg: float
    # percentile tables: metric -> {p: value}
    percentiles: dict[str, dict[int, float]]

    def value(self, name: str) -> float:
        """A figure by name, including percentiles as `<metric>_p<NN>` (e.g. ttft_p99_s)."""
        for f in fields(self):
            if f.name == name and f.name != "percentiles":
                return float(getattr(self, name))
        for metric, table in self.percentiles.items():
            base, _, unit = metric.rpartition("_")
            for p, v in table.items():
                if name == f"{base}_p{p}_{unit}" or name == f"{metric}_p{p}":
                    return v
        raise KeyError(name)


PERCENTILE_METRICS = (
    "ttft_s",
    "itl_s",
    "tpot_s",
    "latency_s",
    "input_tokens",
    "output_tokens",
    "output_tps",
    "total_tps",
)


def percentile_samples(records: Iterable[RequestRecord]) -> dict[str, list[float]]:
    """The samples behind each percentile column, from successful requests (as evalscope)."""
    out: dict[str, list[float]] = {m: [] for m in PERCENTILE_METRICS}
    for r in records:
        if not r.success:
            continue
        out["ttft_s"].append(r.ttft_s)
        out["itl_s"].extend(r.itl_s)
        if r.output_tokens > 1:
            out["tpot_s"].append(r.tpot_s)
        out["latency_s"].append(r.latency_s)
        out["input_tokens"].append(float(r.input_tokens))
        out["output_tokens"].append(float(r.output_tokens))
        if r.latency_s > 0:
            out["output_tps"].append(r.output_tokens / r.latency_s)
            out["total_tps"].append((r.input_tokens + r.output_tokens) / r.latency_s)
    return out


def compute_figures(records: Sequence[RequestRecord], percentiles: Sequence[int] = PERCENTILES) -> Figures:
    """All figures of a set of records (one node's, or the clock-corrected union of a cluster's).

    Wall time spans every request with a valid timing, failed ones included,
    exactly as evalscope's BenchmarkMetrics does.
    """
    ok = [r for r in records if r.success]
    timed = [r for r in records if r.start_time > 0 and r.end_time >= r.start_time]
    start = min((r.start_time for r in timed), default=math.nan)
    end = max((r.end_time for r in timed), default=math.nan)
    wall = end - start if timed else math.nan
    in_tok = sum(r.input_tokens for r in ok)
    out_tok = sum(r.output_tokens for r in ok)

    def per_s(x: float) -> float:
        return x / wall if wall and wall > 0 else math.nan

    itl_sum = sum(sum(r.itl_s) for r in ok)
    itl_count = sum(len(r.itl_s) for r in ok)
    samples = percentile_samples(records)
    return Figures(
        requests=len(records),
        succeeded=len(ok),
        failed=len(records) - len(ok),
        success_rate=len(ok) / len(records) if records else math.nan,
        wall_time_s=wall,
        window_start=start,
        window_end=end,
        input_tokens=in_tok,
        output_tokens=out_tok,
        output_throughput_tps=per_s(out_tok),
        total_throughput_tps=per_s(in_tok + out_tok),
        request_throughput_rps=per_s(len(ok)),
        tpm_total=per_s(in_tok + out_tok) * 60,
        tpm_output=per_s(out_tok) * 60,
        ttft_avg_s=mean([r.ttft_s for r in ok]),
        tpot_avg_s=mean([r.tpot_s for r in ok if r.output_tokens > 1]),
        itl_avg_s=itl_sum / itl_count if itl_count else math.nan,
        latency_avg_s=mean([r.latency_s for r in ok]),
        input_tokens_avg=in_tok / len(ok) if ok else math.nan,
        output_tokens_avg=out_tok / len(ok) if ok else math.nan,
        percentiles={m: percentiles_of(v, percentiles) for m, v in samples.items()},
    )
