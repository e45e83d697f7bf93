"""Every figure fleetbench reports, as pure functions over request records.

The definitions follow evalscope's (evalscope/perf/utils/benchmark_util.py and
db_util.py), so a node's figures equal what `evalscope perf` prints for the
same run, and cluster figures are the same definitions applied to the union
of all nodes' records. `DEFINITIONS` is the single wording quoted by the docs
and the report.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetbench.columns import RecordColumns, as_columns
from fleetbench.records import RequestRecord

FloatArray = npt.NDArray[np.float64]

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


def _nearest_rank(values: Sequence[float] | FloatArray, points: Sequence[float]) -> list[float]:
    """Nearest-rank percentiles of one sample, NaNs left out, by one library call:
    `numpy.percentile(..., method="inverted_cdf")` picks the sample at rank ceil(p/100 x n), as evalscope
    does. NaN when nothing is left."""
    data = np.asarray(values, dtype=np.float64)
    data = data[~np.isnan(data)]
    if not len(data):
        return [math.nan] * len(points)
    found: list[float] = np.percentile(data, points, method="inverted_cdf").tolist()
    return found


def rank_positions(n: int, points: Sequence[float]) -> npt.NDArray[np.intp]:
    """Where `numpy.percentile(..., method="inverted_cdf")` picks each percentile in a sorted sample of n:
    numpy's own arithmetic (q = p / 100, index n q - 1 rounded up, at least 0), so a pick from an
    already sorted sample, or from sorted parts (`select_sorted`), is the sample that numpy's call
    would return without numpy re-selecting it (tests/unit/test_figures_columns.py checks every n to 3000)."""
    virtual = n * np.true_divide(np.asanyarray(points), 100) - 1
    below = np.floor(virtual)
    pos = np.where(virtual - below == 0, below, below + 1).astype(np.intp)
    pos[pos < 0] = 0
    return pos


_MAGNITUDE = np.int64(0x7FFF_FFFF_FFFF_FFFF)


def _order_keys(x: FloatArray) -> npt.NDArray[np.int64]:
    """Integers in the order of the floats (negative floats' magnitude bits flipped); its own inverse."""
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    out: npt.NDArray[np.int64] = bits ^ ((bits >> 63) & _MAGNITUDE)
    return out


def _key_floats(keys: npt.NDArray[np.int64]) -> FloatArray:
    out: FloatArray = _order_keys(keys.view(np.float64)).view(np.float64)
    return out


def select_sorted(parts: Sequence[FloatArray], points: Sequence[float]) -> list[float]:
    """Nearest-rank percentiles of the union of sorted, NaN-free parts, without merging them: the value at
    union position k is the smallest v with sum(count of part values <= v) > k, found by bisection over
    the floats in order (at most 64 rounds, each one `searchsorted` per part for every percentile).
    The same values as `numpy.percentile(concatenate(parts), points, method="inverted_cdf")`."""
    parts = [p for p in parts if len(p)]
    n = sum(len(p) for p in parts)
    if not n:
        return [math.nan] * len(points)
    pos = rank_positions(n, points)
    if len(parts) == 1:
        found: list[float] = parts[0][pos].tolist()
        return found
    need = pos + 1
    low = min(float(p[0]) for p in parts)
    hi = np.repeat(_order_keys(np.array([max(float(p[-1]) for p in parts)])), len(pos))
    lo = np.repeat(_order_keys(np.array([low])) - 1, len(pos))  # below every value: count 0 < need
    while True:
        gap = hi.view(np.uint64) - lo.view(np.uint64)  # hi >= lo: the unsigned difference is exact
        open_ = gap > 1
        if not open_.any():
            break
        gap[~open_] = 2  # a settled percentile probes between its bounds too (never at lo: maybe a NaN)
        mid = (lo.view(np.uint64) + (gap >> np.uint64(1))).view(np.int64)  # strictly between: never NaN
        values = _key_floats(mid)
        count = np.zeros(len(pos), dtype=np.int64)
        for p in parts:
            count += np.searchsorted(p, values, side="right")
        enough = (count >= need) & open_
        hi = np.where(enough, mid, hi)
        lo = np.where(enough | ~open_, lo, mid)
    picked = _key_floats(hi)
    out: list[float] = picked.tolist()
    for i, v in enumerate(out):
        if v == 0:  # -0.0 and 0.0 count alike: take a zero the sample holds, with its sign
            out[i] = next(float(p[j]) for p in parts
                          if (j := int(np.searchsorted(p, 0.0))) < len(p) and p[j] == 0)
    return out


def sorted_sample(values: FloatArray) -> FloatArray:
    """`values` sorted in place (they must be ours), NaNs (sorted last) cut off."""
    values.sort()
    if len(values) and np.isnan(values[-1]):
        values = values[:int(np.searchsorted(values, np.nan, side="left"))]
    return values


def percentiles_of(values: Sequence[float] | FloatArray, points: Sequence[int]) -> dict[int, float]:
    """Several nearest-rank percentiles of one sample (one `numpy.percentile` call)."""
    return dict(zip(points, _nearest_rank(values, points), strict=True))


def percentile(values: Sequence[float] | FloatArray, p: float) -> float:
    """Nearest-rank percentile (evalscope's method; numpy's `inverted_cdf`). NaN when empty."""
    return _nearest_rank(values, [p])[0]


# --- exact sums ---------------------------------------------------------------------------------
# An average is the exactly rounded sum (math.fsum's answer) over the count, so it is the same
# whatever the order of nodes and records, and a cluster's sum is the sum of its nodes' exact sums.
# Vectorized by error-free extraction (Rump, Ogita and Oishi, "Accurate floating-point summation",
# ExtractVector): with sigma a power of two >= 2^M x max|r| and 2^M >= n + 2, q = (sigma + r) - sigma
# and r - q are exact, every q is a multiple of ulp(sigma) so numpy's sum of the q's is exact, and r
# shrinks by 2^(52 - M) a round; a few rounds leave nothing. The parts add up as integers.

_SCALE = 2**1074  # every float64 times this is an integer

ExactSum = int | float  # an int scaled by 2^1074, or the plain float sum when a value is not finite


_CHUNK = 1 << 15  # values a round of extraction works on at a time: in the CPU's cache, 3x faster than whole


def exact_sum(values: FloatArray) -> ExactSum:
    """The exact sum of `values`, scaled by 2^1074 (an int); NaN/inf propagate as a plain float sum."""
    r = np.asarray(values, dtype=np.float64)
    total = 0
    for i in range(0, len(r), _CHUNK):
        part = _exact_chunk(r[i:i + _CHUNK])
        if isinstance(part, float):  # a NaN or an infinity: the plain sum says what it makes
            return float(np.sum(r))
        total += part
    return total


def _exact_chunk(r: FloatArray) -> ExactSum:
    """exact_sum of one chunk; a float when a value is not finite (its plain sum)."""
    total = 0
    q: FloatArray | None = None
    rest: FloatArray | None = None  # the remainders, ours to overwrite (never the caller's array)
    values = r
    while len(r):
        mu = max(float(r.max()), -float(r.min()))
        if not math.isfinite(mu):
            return float(np.sum(values))
        if mu == 0:
            break
        if mu > 2.0**960:  # sigma would overflow
            return _slow(values)
        sigma = math.ldexp(1.0, math.frexp(mu)[1] + max(1, (len(r) + 1).bit_length()))
        q = np.add(r, sigma, out=q)
        q -= sigma
        num, den = float(np.sum(q)).as_integer_ratio()  # exact: multiples of ulp(sigma), below sigma
        total += num << (1075 - den.bit_length())  # num / den x 2^1074, den a power of two
        rest = np.subtract(r, q, out=rest)
        r = rest
    return total


def _slow(values: FloatArray) -> ExactSum:
    """Huge values (near the float64 limit): the exact sum in Python integers."""
    return sum(int(Fraction(v) * _SCALE) for v in np.asarray(values, dtype=np.float64).tolist())


def add_sums(sums: Sequence[ExactSum]) -> ExactSum:
    """The exact sum of exact sums; a non-finite one (a float) decides, as it would in a float sum."""
    special = [s for s in sums if isinstance(s, float)]
    return float(sum(special)) if special else sum(sums, start=0)


def exact_float(total: ExactSum) -> float:
    """The float nearest an exact sum (int division is correctly rounded)."""
    if isinstance(total, float):
        return total
    try:
        return total / _SCALE
    except OverflowError:
        return math.inf if total > 0 else -math.inf


def mean(values: Sequence[float] | FloatArray) -> float:
    """Exactly rounded sum / count (math.fsum(values) / len(values)); NaN when empty."""
    x = np.asarray(values, dtype=np.float64)
    return exact_float(exact_sum(x)) / len(x) if len(x) else math.nan


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


def percentile_samples(records: Iterable[RequestRecord] | RecordColumns) -> dict[str, FloatArray]:
    """The samples behind each percentile column, from successful requests (as evalscope); fresh arrays."""
    c = as_columns(records)
    ok = c.success
    lat = c.latency_s[ok]
    inp = c.input_tokens[ok].astype(np.float64)
    out = c.output_tokens[ok].astype(np.float64)
    fast = lat > 0
    gaps = c.itl_values.copy() if ok.all() else c.itl_values[np.repeat(ok, c.itl_counts)]
    return {
        "ttft_s": c.ttft_s[ok],
        "itl_s": gaps,
        "tpot_s": c.tpot_s[ok & (c.output_tokens > 1)],
        "latency_s": lat,
        "input_tokens": inp,
        "output_tokens": out,
        "output_tps": out[fast] / lat[fast],
        "total_tps": (inp[fast] + out[fast]) / lat[fast],  # token sums below 2^53: exact in float64
    }


@dataclass
class _Pass:
    """What one scope's figures are made of; a cluster's is the sum of its nodes' (exact sums add up)."""

    requests: int
    succeeded: int
    start: float  # NaN when no request has a valid timing
    end: float
    input_tokens: int
    output_tokens: int
    sums: dict[str, ExactSum]  # ttft_s, tpot_s, latency_s, itl_s over their samples
    counts: dict[str, int]
    sorted: dict[str, list[FloatArray]]  # each percentile sample, sorted without NaNs, in one part a node

    @classmethod
    def of(cls, c: RecordColumns) -> _Pass:
        timed = (c.start_time > 0) & (c.end_time >= c.start_time)
        anytime = bool(timed.any())
        ok = c.success
        samples = percentile_samples(c)
        averaged = ("ttft_s", "tpot_s", "latency_s", "itl_s")
        return cls(
            requests=len(c), succeeded=int(ok.sum()),
            start=float(c.start_time[timed].min()) if anytime else math.nan,
            end=float(c.end_time[timed].max()) if anytime else math.nan,
            input_tokens=int(c.input_tokens[ok].sum()), output_tokens=int(c.output_tokens[ok].sum()),
            sums={m: exact_sum(samples[m]) for m in averaged}, counts={m: len(samples[m]) for m in averaged},
            sorted={m: [sorted_sample(v)] for m, v in samples.items()},  # fresh arrays: ours to sort
        )

    @classmethod
    def union(cls, parts: Sequence[_Pass]) -> _Pass:
        """The pass of every part's records together; the sorted samples stay the parts' (`select_sorted`)."""
        starts = [p.start for p in parts if not math.isnan(p.start)]
        ends = [p.end for p in parts if not math.isnan(p.end)]
        averaged = ("ttft_s", "tpot_s", "latency_s", "itl_s")
        return cls(
            requests=sum(p.requests for p in parts), succeeded=sum(p.succeeded for p in parts),
            start=min(starts, default=math.nan), end=max(ends, default=math.nan),
            input_tokens=sum(p.input_tokens for p in parts), output_tokens=sum(p.output_tokens for p in parts),
            sums={m: add_sums([p.sums[m] for p in parts]) for m in averaged},
            counts={m: sum(p.counts[m] for p in parts) for m in averaged},
            sorted={m: [s for p in parts for s in p.sorted[m]] for m in PERCENTILE_METRICS},
        )

    def percentiles(self, points: Sequence[int], metric: str) -> dict[int, float]:
        return dict(zip(points, select_sorted(self.sorted[metric], points), strict=True))

    def figures(self, points: Sequence[int]) -> Figures:
        wall = self.end - self.start

        def per_s(x: float) -> float:
            return x / wall if wall and wall > 0 else math.nan

        def avg(m: str) -> float:
            return exact_float(self.sums[m]) / self.counts[m] if self.counts[m] else math.nan

        tokens = self.input_tokens + self.output_tokens
        ok = self.succeeded
        return Figures(
            requests=self.requests,
            succeeded=ok,
            failed=self.requests - ok,
            success_rate=ok / self.requests if self.requests else math.nan,
            wall_time_s=wall,
            window_start=self.start,
            window_end=self.end,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            output_throughput_tps=per_s(self.output_tokens),
            total_throughput_tps=per_s(tokens),
            request_throughput_rps=per_s(ok),
            tpm_total=per_s(tokens) * 60,
            tpm_output=per_s(self.output_tokens) * 60,
            ttft_avg_s=avg("ttft_s"),
            tpot_avg_s=avg("tpot_s"),
            itl_avg_s=avg("itl_s"),
            latency_avg_s=avg("latency_s"),
            input_tokens_avg=self.input_tokens / ok if ok else math.nan,
            output_tokens_avg=self.output_tokens / ok if ok else math.nan,
            percentiles={m: self.percentiles(points, m) for m in PERCENTILE_METRICS},
        )


def compute_figures(records: Sequence[RequestRecord] | RecordColumns,
                    percentiles: Sequence[int] = PERCENTILES) -> Figures:
    """All figures of a set of records (one node's, or the clock-corrected union of a cluster's).

    Wall time spans every request with a valid timing, failed ones included,
    exactly as evalscope's BenchmarkMetrics does.
    """
    return _Pass.of(as_columns(records)).figures(percentiles)


@contextmanager
def _plain_pages() -> Iterator[None]:
    """The merge's fresh samples (512 MB for 32 nodes' 64 M gaps) without numpy's transparent-huge-page hint.
    numpy asks for huge pages on arrays of 4 MiB and more; where the kernel then compacts memory on the spot
    (THP defrag `madvise`, the common default), those first copies cost 2.3 s of CPU against 0.6 s in plain
    pages, and sorting them gains nothing (docs/performance.md). numpy's own switch (what its
    NUMPY_MADVISE_HUGEPAGE sets at import), restored after."""
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    setter: Any = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if setter is None:
        yield
        return
    before = setter(False)
    try:
        yield
    finally:
        setter(before)


def node_and_cluster_figures(parts: Sequence[Sequence[RequestRecord] | RecordColumns],
                             percentiles: Sequence[int] = PERCENTILES) -> tuple[list[Figures], Figures]:
    """Each part's figures and those of their union, every record looked at once: the cluster's sums are
    its nodes' exact sums, its percentiles picked from the nodes' sorted samples (`select_sorted`), so
    the union is never gathered nor sorted. Node passes run on a thread per CPU (numpy's sort releases
    the GIL), the largest first."""
    cols = [as_columns(p) for p in parts]
    order = sorted(range(len(cols)), key=lambda i: -len(cols[i].itl_values) - len(cols[i]))
    with _plain_pages(), ThreadPoolExecutor(max_workers=min(32, os.cpu_count() or 1)) as pool:
        done = dict(zip(order, pool.map(lambda i: _Pass.of(cols[i]), order), strict=True))
    passes = [done[i] for i in range(len(cols))]
    scopes = passes if len(passes) == 1 else [*passes, _Pass.union(passes)]  # one node: the cluster is it
    figures = [p.figures(percentiles) for p in scopes]
    return figures[:len(passes)], figures[-1]
