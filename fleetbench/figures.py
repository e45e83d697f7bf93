"""Every figure fleetbench reports, as pure functions over request records.

The definitions follow evalscope's (evalscope/perf/utils/benchmark_util.py and
db_util.py), so a node's figures equal what `evalscope perf` prints for the
same run, and cluster figures are the same definitions applied to the union
of all nodes' records. `DEFINITIONS` is the single wording quoted by the docs
and the report.

Exactly, at fleet scale. Records are held as columns (`fleetbench.columns.RecordColumns`);
a cluster of 32 nodes x 100k requests has 3.2 M records and tens of millions of
inter-token gaps, and the union is never materialized:

- every average is an exactly rounded sum divided by the count: `math.fsum`'s answer, computed
  vectorized by error-free splitting (Rump, Ogita and Oishi's ExtractVector), so a cluster's
  average is the same whatever the order of its nodes or records;
- every percentile is the nearest-rank sample of its (NaN-free) sample, found by exact radix
  selection on the bit patterns of the values (order-preserving for non-negative floats): a
  histogram over a grid shared by all nodes gives each node's and the union's rank bucket, and
  only the few values in those buckets are looked at again. The answer is the very value that
  sorting would pick (`numpy.percentile(..., method="inverted_cdf")`).

Samples with negative values or NaN take a plain sort-based path with the same definitions.
"""

from __future__ import annotations

import math
import os
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from fleetbench.columns import RecordColumns, as_columns
from fleetbench.records import RequestRecord

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

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


def rank_of(n: int, p: float) -> int:
    """The 0-based position of the nearest-rank p-th percentile among n sorted samples (n > 0)."""
    return n - 1 if p >= 100 else max(0, math.ceil(n * p / 100) - 1)


def percentiles_of(values: Sequence[float] | FloatArray, points: Sequence[int]) -> dict[int, float]:
    """Several nearest-rank percentiles of one sample, sorting it once (stably: of 0.0 and -0.0, which
    compare equal, the one met first comes first, as with `sorted`)."""
    data = np.asarray(values, dtype=np.float64)
    data = np.sort(data[~np.isnan(data)], kind="stable")
    n = len(data)
    if n == 0:
        return {p: math.nan for p in points}
    return {p: float(data[rank_of(n, p)]) for p in points}


def exact_sum(values: Iterable[float]) -> float:
    """The exactly rounded sum (`math.fsum`); NaN or an infinity as IEEE arithmetic gives them."""
    vals = [float(v) for v in values]
    try:
        return math.fsum(vals)
    except ValueError:  # inf + -inf
        return math.nan
    except OverflowError:
        with np.errstate(invalid="ignore", over="ignore"):
            return float(np.sum(np.asarray(vals, dtype=np.float64)))


def mean(values: Sequence[float]) -> float:
    """Exactly rounded sum / count; NaN when empty."""
    return exact_sum(values) / len(values) if len(values) else math.nan


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


def compute_figures(records: Sequence[RequestRecord] | RecordColumns,
                    percentiles: Sequence[int] = PERCENTILES) -> Figures:
    """All figures of a set of records (one node's, or the clock-corrected union of a cluster's).

    Wall time spans every request with a valid timing, failed ones included,
    exactly as evalscope's BenchmarkMetrics does.
    """
    return _figures([as_columns(records)], percentiles, union=False)[0][0]


def node_and_cluster_figures(parts: Sequence[RecordColumns], percentiles: Sequence[int] = PERCENTILES,
                             ) -> tuple[list[Figures], Figures]:
    """The figures of each part (a node's records on the controller clock) and of their union, in one
    pass over the columns: `compute_figures` of each part, and of all parts together, to the bit."""
    per_part, union = _figures(list(parts), percentiles, union=True)
    assert union is not None
    return per_part, union


# --- the columnar engine ----------------------------------------------------------------------

_INF_KEY = 0x7FF0_0000_0000_0000  # the bit pattern of +inf: NaNs lie above it, negatives (and -0.0) below 0
_HIST_BITS = 14  # a histogram level splits the key range into at most 2**14 + 1 buckets
_DIRECT = 4096  # this many values or fewer: sort them rather than build another histogram level
_CHUNK = 1 << 22  # exact sums work on at most this many values at once (keeps the splitting exact)
_BLOCK = 1 << 16  # scans and exact sums go block by block: a block's work arrays stay in the CPU's cache
_EMPTY_F = np.zeros(0, dtype=np.float64)
_EMPTY_I = np.zeros(0, dtype=np.int64)


class _Sample(NamedTuple):
    """One metric's sample on one part: `values` without the sub-multiset `minus` (the values of failed
    requests, when they are few: leaving them out costs less than copying the rest)."""

    values: FloatArray
    minus: FloatArray
    explicit: Callable[[], FloatArray]  # the sample itself, as one array (for the sort-based path)

    @property
    def size(self) -> int:
        return len(self.values) - len(self.minus)


def _plain(values: FloatArray) -> _Sample:
    return _Sample(values, _EMPTY_F, lambda: values)


def _masked(values: FloatArray, keep: npt.NDArray[np.bool_], kept: int) -> _Sample:
    """`values[keep]`, as `values` minus the dropped ones when those are the fewer."""
    if kept == len(values):
        return _plain(values)
    if 2 * kept >= len(values):
        return _Sample(values, values[~keep], lambda: values[keep])
    return _plain(values[keep])


def _ragged_positions(offsets: IntArray, rows: IntArray) -> IntArray:
    """Flat positions of the gaps of `rows` (a ragged gather)."""
    starts = offsets[rows]
    counts = offsets[rows + 1] - starts
    total = int(counts.sum())
    if total == 0:
        return _EMPTY_I
    firsts = np.cumsum(counts) - counts
    return np.repeat(starts - firsts, counts) + np.arange(total, dtype=np.int64)


class _Part:
    """One part's columns and the per-metric samples the figures need (built on demand, not kept)."""

    def __init__(self, cols: RecordColumns) -> None:
        self.cols = cols
        self.n = len(cols)
        ok = cols.success
        self.n_ok = int(np.count_nonzero(ok))
        start, end = cols.start_time, cols.end_time
        timed = (start > 0) & (end >= start)
        n_timed = int(np.count_nonzero(timed))
        if n_timed == 0:
            self.start, self.end = math.nan, math.nan
        elif n_timed == self.n:
            self.start, self.end = float(start.min()), float(end.max())
        else:
            self.start, self.end = float(start[timed].min()), float(end[timed].max())
        self.in_tok = int(np.sum(cols.input_tokens, where=ok))
        self.out_tok = int(np.sum(cols.output_tokens, where=ok))
        self.tpot_n = int(np.count_nonzero(ok & (cols.output_tokens > 1)))
        failed_gaps = 0 if self.n_ok == self.n else int(cols.itl_counts[~ok].sum())
        self.itl_n = len(cols.itl_values) - failed_gaps

    def sample(self, metric: str) -> _Sample:
        c = self.cols
        ok = c.success
        if metric == "itl_s":
            if self.n_ok == self.n:
                return _plain(c.itl_values)
            failed = np.flatnonzero(~ok)
            if 2 * len(failed) <= self.n:
                return _Sample(c.itl_values, c.itl_values[_ragged_positions(c.itl_offsets, failed)],
                               lambda: c.itl_values[np.repeat(ok, c.itl_counts)])
            return _plain(c.itl_values[np.repeat(ok, c.itl_counts)])
        if metric in ("ttft_s", "latency_s"):
            return _masked(c.ttft_s if metric == "ttft_s" else c.latency_s, ok, self.n_ok)
        if metric == "tpot_s":
            return _masked(c.tpot_s, ok & (c.output_tokens > 1), self.tpot_n)
        if metric in ("input_tokens", "output_tokens"):
            tokens = c.input_tokens if metric == "input_tokens" else c.output_tokens
            return _masked(tokens.astype(np.float64), ok, self.n_ok)
        # output_tps, total_tps: per successful request with a positive latency
        keep = ok & (c.latency_s > 0)
        latency = c.latency_s[keep]
        tokens = c.output_tokens[keep] if metric == "output_tps" else c.input_tokens[keep] + c.output_tokens[keep]
        with np.errstate(over="ignore"):  # a latency near 0: inf, as Python's float division gives
            return _plain(tokens / latency)


_AVERAGED = ("ttft_s", "itl_s", "tpot_s", "latency_s")


class _Scratch:
    """Work arrays reused from part to part and call to call: on a VM a fresh 16 MB array costs more in
    page faults than a pass over it. Kept per thread, as large as the largest part seen."""

    def __init__(self) -> None:
        self.ints = _EMPTY_I
        self.floats = _EMPTY_F
        self.flags = np.zeros(0, dtype=np.bool_)

    def ints_of(self, n: int) -> IntArray:
        if len(self.ints) < n:
            self.ints = np.empty(n, dtype=np.int64)
        return self.ints[:n]

    def floats_of(self, n: int) -> FloatArray:
        if len(self.floats) < n:
            self.floats = np.empty(n, dtype=np.float64)
        return self.floats[:n]

    def flags_of(self, n: int) -> npt.NDArray[np.bool_]:
        if len(self.flags) < n:
            self.flags = np.empty(n, dtype=np.bool_)
        return self.flags[:n]


_LOCAL = threading.local()
_PARALLEL_MIN = 1 << 20  # values: below this, parts are worked on one after the other
_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (threads, pool)
T = TypeVar("T")
R = TypeVar("R")


def _threads() -> int:
    """Worker threads for the per-part passes: FLEETBENCH_FIGURE_THREADS, else the CPUs (at most 8)."""
    try:
        return max(1, int(os.environ.get("FLEETBENCH_FIGURE_THREADS", "")))
    except ValueError:
        return max(1, min(8, os.cpu_count() or 1))


def _map(fn: Callable[[T], R], items: Sequence[T], work: int) -> list[R]:
    """`fn` over `items`, on worker threads when there is `work` enough (numpy's passes release the GIL;
    each thread has its own work arrays). The answers do not depend on it."""
    global _POOL
    threads = _threads() if work >= _PARALLEL_MIN and len(items) > 1 else 1
    if threads == 1:
        return [fn(x) for x in items]
    if _POOL is None or _POOL[0] != threads:
        _POOL = (threads, ThreadPoolExecutor(max_workers=threads, thread_name_prefix="figures"))
    return list(_POOL[1].map(fn, items))


def _scratch() -> _Scratch:
    s: _Scratch | None = getattr(_LOCAL, "scratch", None)
    if s is None:
        s = _LOCAL.scratch = _Scratch()
    return s


def _figures(cols: list[RecordColumns], points: Sequence[int], union: bool) -> tuple[list[Figures], Figures | None]:
    parts = [_Part(c) for c in cols]
    tables: dict[str, tuple[list[dict[int, float]], dict[int, float] | None]] = {}
    sums: dict[str, list[list[float]]] = {}
    for metric in PERCENTILE_METRICS:
        samples = [p.sample(metric) for p in parts]  # one metric's samples at a time: memory stays flat
        per_part, whole, part_sums = _metric(samples, points, union, metric in _AVERAGED)
        del samples
        tables[metric] = (per_part, whole)
        sums[metric] = part_sums
    figs = [_assemble([p], {m: [s[i]] for m, s in sums.items()}, {m: t[0][i] for m, t in tables.items()})
            for i, p in enumerate(parts)]
    whole_figs = None
    if union:
        whole_figs = _assemble(parts, sums, {m: t[1] or {} for m, t in tables.items()})
    return figs, whole_figs


def _assemble(parts: Sequence[_Part], sums: dict[str, list[list[float]]],
              tables: dict[str, dict[int, float]]) -> Figures:
    n = sum(p.n for p in parts)
    n_ok = sum(p.n_ok for p in parts)
    starts = [p.start for p in parts if not math.isnan(p.start)]
    ends = [p.end for p in parts if not math.isnan(p.end)]
    start = min(starts, default=math.nan)
    end = max(ends, default=math.nan)
    wall = end - start if starts else math.nan
    in_tok = sum(p.in_tok for p in parts)
    out_tok = sum(p.out_tok for p in parts)

    def per_s(x: float) -> float:
        return x / wall if wall and wall > 0 else math.nan

    def avg(metric: str, count: int) -> float:
        return exact_sum(x for part in sums[metric] for x in part) / count if count else math.nan

    return Figures(
        requests=n,
        succeeded=n_ok,
        failed=n - n_ok,
        success_rate=n_ok / n if n else math.nan,
        wall_time_s=wall,
        window_start=start,
        window_end=end,
        input_tokens=in_tok,
        output_tokens=out_tok,
        output_throughput_tps=per_s(out_tok),
        total_throughput_tps=per_s(in_tok + out_tok),
        request_throughput_rps=per_s(n_ok),
        tpm_total=per_s(in_tok + out_tok) * 60,
        tpm_output=per_s(out_tok) * 60,
        ttft_avg_s=avg("ttft_s", n_ok),
        tpot_avg_s=avg("tpot_s", sum(p.tpot_n for p in parts)),
        itl_avg_s=avg("itl_s", sum(p.itl_n for p in parts)),
        latency_avg_s=avg("latency_s", n_ok),
        input_tokens_avg=in_tok / n_ok if n_ok else math.nan,
        output_tokens_avg=out_tok / n_ok if n_ok else math.nan,
        percentiles={m: dict(tables[m]) for m in PERCENTILE_METRICS},
    )


def _metric(samples: Sequence[_Sample], points: Sequence[int], union: bool, want_sum: bool,
            ) -> tuple[list[dict[int, float]], dict[int, float] | None, list[list[float]]]:
    """One metric on every part: its percentile table per part and of the union, and (`want_sum`) per
    part floats whose exact sum is the sum of its sample."""
    scans: list[tuple[int, int] | None] = []
    sums: list[list[float]] = []

    def scan_and_sum(s: _Sample) -> tuple[tuple[int, int] | None, list[float]]:
        scan, parts = _scan(s.values, want_sum)
        if not want_sum:
            return scan, []
        if parts is None:  # negative, infinite or NaN values
            return scan, _slow_sum(s.explicit())
        return scan, parts + [-x for x in _scan(s.minus, True)[1] or []]

    for scan, part_sum in _map(scan_and_sum, samples, sum(len(s.values) for s in samples)):
        scans.append(scan)
        sums.append(part_sum)
    sizes = [s.size for s in samples]
    nan_table = {p: math.nan for p in points}
    if any(sc is not None and (sc[0] < 0 or sc[1] > _INF_KEY) for sc in scans):
        # a negative value, -0.0 or NaN: the keys do not sort as the values do; sort the samples themselves
        explicit = [s.explicit() for s in samples]
        per_part = [percentiles_of(e, points) for e in explicit]
        whole = percentiles_of(np.concatenate(explicit), points) if union and explicit else None
        return per_part, (whole if whole is not None else (nan_table if union else None)), sums
    queries: list[tuple[int, int]] = []
    for i, n in enumerate(sizes):
        if n:
            queries += [(i, rank_of(n, p)) for p in points]
    total = sum(sizes)
    if union and total:
        queries += [(-1, rank_of(total, p)) for p in points]
    found: list[int] = []
    if queries:
        lo = min(sc[0] for sc in scans if sc is not None)
        hi = max(sc[1] for sc in scans if sc is not None)
        found = _select([(s.values.view(np.int64), s.minus.view(np.int64)) for s in samples], sizes, queries,
                        lo, hi, parallel=True)
    values = np.array(found, dtype=np.int64).view(np.float64).tolist()
    answers = dict(zip(queries, values, strict=True))
    per_part = [{p: answers[(i, rank_of(n, p))] for p in points} if n else dict(nan_table)
                for i, n in enumerate(sizes)]
    whole = None
    if union:
        whole = {p: answers[(-1, rank_of(total, p))] for p in points} if total else dict(nan_table)
    return per_part, whole, sums


def _bucket(keys: IntArray, lo: int, shift: int) -> IntArray:
    """The bucket of each key on the grid [lo + j * 2**shift, lo + (j + 1) * 2**shift), in a work array."""
    out = _scratch().ints_of(len(keys))
    np.subtract(keys, lo, out=out)
    if shift:
        np.right_shift(out, shift, out=out)
    return out


def _hits(keys: IntArray, table: npt.NDArray[np.bool_], lo: int, shift: int) -> IntArray:
    """The keys whose bucket `table` marks."""
    return keys[np.take(table, _bucket(keys, lo, shift), out=_scratch().flags_of(len(keys)))]


def _without(keys: IntArray, minus: IntArray) -> IntArray:
    """`keys` (sorted) without the sub-multiset `minus`."""
    if not len(minus):
        return keys
    u, c = np.unique(minus, return_counts=True)
    firsts = np.searchsorted(keys, u, side="left")
    drop = np.repeat(firsts, c) + (np.arange(len(minus)) - np.repeat(np.cumsum(c) - c, c))
    return np.delete(keys, drop)


Keys = tuple[IntArray, IntArray]  # a part's sample as keys: all of them, and the sub-multiset left out


def _select(parts: Sequence[Keys], sizes: Sequence[int], queries: Sequence[tuple[int, int]], lo: int, hi: int,
            parallel: bool = False) -> list[int]:
    """The key at 0-based rank `rank` of each query `(part, rank)` (part -1: the union of all parts).

    Every key of every part lies in [lo, hi]. Radix selection: a histogram of the keys over a grid of
    at most 2**_HIST_BITS buckets (shared by the parts, so the union's histogram is their sum) names
    the bucket of each rank; only the keys in those buckets are looked at again, sorted, or split by
    a finer grid when there are many.
    """
    if lo == hi:
        return [lo] * len(queries)
    union = any(i < 0 for i, _ in queries)
    needed = list(range(len(parts))) if union else sorted({i for i, _ in queries})
    if sum(sizes[i] for i in needed) <= _DIRECT:
        sorted_parts = {i: _without(np.sort(parts[i][0]), np.sort(parts[i][1])) for i in needed}
        whole = np.sort(np.concatenate(list(sorted_parts.values()))) if union else _EMPTY_I
        return [int(whole[r]) if i < 0 else int(sorted_parts[i][r]) for i, r in queries]
    shift = max(0, (hi - lo).bit_length() - _HIST_BITS)
    nb = ((hi - lo) >> shift) + 1
    work = sum(len(parts[i][0]) for i in needed) if parallel else 0

    def histogram(i: int) -> IntArray:
        keys, minus = parts[i]
        h = np.bincount(_bucket(keys, lo, shift), minlength=nb)
        if len(minus):
            h -= np.bincount(_bucket(minus, lo, shift), minlength=nb)
        return h

    hists = dict(zip(needed, _map(histogram, needed, work), strict=True))
    cums: dict[int, IntArray] = {}
    located: list[tuple[int, int, int]] = []  # (part, bucket, rank within the bucket)
    for i, r in queries:
        if i not in cums:
            cums[i] = np.cumsum(sum(hists.values()) if i < 0 else hists[i])
        c = cums[i]
        j = int(np.searchsorted(c, r, side="right"))
        located.append((i, j, r - (int(c[j - 1]) if j else 0)))
    if shift == 0:
        return [lo + j for _, j, _ in located]
    union_buckets = {j for i, j, _ in located if i < 0}
    want = {i: set(union_buckets) for i in needed}
    for i, j, _ in located:
        if i >= 0:
            want[i].add(j)
    # each part's keys (and left-out keys) in its wanted buckets, sorted: a bucket is then a slice
    def extract(i: int) -> dict[int, Keys]:
        """Part i's keys (and left-out keys) in each of its wanted buckets, sorted."""
        wanted = np.array(sorted(want[i]), dtype=np.int64)
        table = np.zeros(nb, dtype=np.bool_)
        table[wanted] = True
        keys, minus = parts[i]
        found = np.sort(np.concatenate([_hits(keys[at:at + _BLOCK], table, lo, shift)
                                        for at in range(0, max(len(keys), 1), _BLOCK)]))
        left_out = np.sort(_hits(minus, table, lo, shift)) if len(minus) else _EMPTY_I
        js = wanted.tolist()
        # each wanted bucket's first key, then the key past its last (Python ints: no int64 overflow near +inf)
        bounds = [lo + (j << shift) for j in js] + [min(lo + ((j + 1) << shift), hi + 1) for j in js]
        cut = np.searchsorted(found, bounds).tolist()
        mcut = np.searchsorted(left_out, bounds).tolist()
        w = len(js)
        return {j: (found[cut[k]:cut[w + k]], left_out[mcut[k]:mcut[w + k]]) for k, j in enumerate(js)}

    with_wants = [i for i in needed if want[i]]
    cands: dict[int, dict[int, Keys]] = dict(zip(with_wants, _map(extract, with_wants, work), strict=True))

    def in_bucket(i: int, j: int) -> Keys:
        return cands[i].get(j, (_EMPTY_I, _EMPTY_I)) if i in cands else (_EMPTY_I, _EMPTY_I)

    out = [0] * len(queries)
    deeper: dict[int, list[int]] = {}  # bucket -> queries it holds too many keys for
    for q, (i, j, r) in enumerate(located):
        pieces = [in_bucket(k, j) for k in (needed if i < 0 else [i])]
        if sum(len(a) for a, _ in pieces) > _DIRECT:
            deeper.setdefault(j, []).append(q)
            continue
        if len(pieces) == 1:
            here = _without(*pieces[0])
        else:
            here = _without(np.sort(np.concatenate([a for a, _ in pieces])),
                            np.sort(np.concatenate([m for _, m in pieces])))
        out[q] = int(here[r])
    for j, qs in deeper.items():
        sub = [in_bucket(k, j) for k in range(len(parts))]
        present = [a for a, _ in sub if len(a)]
        found_keys = _select(sub, [len(a) - len(m) for a, m in sub], [(located[q][0], located[q][2]) for q in qs],
                             min(int(a[0]) for a in present), max(int(a[-1]) for a in present))
        for q, k in zip(qs, found_keys, strict=True):
            out[q] = k
    return out


def _scan(values: FloatArray, want_sum: bool) -> tuple[tuple[int, int] | None, list[float] | None]:
    """The key range of `values` and (`want_sum`) floats whose exact sum is their sum; those floats are None
    when a value is negative, -0.0, infinite or NaN. Block by block, each block summed with its own bounds."""
    if not len(values):
        return None, []
    keys = values.view(np.int64)
    lo, hi = _INF_KEY, -1
    parts: list[float] | None = [] if want_sum else None
    for at in range(0, len(keys), _BLOCK):
        block = keys[at:at + _BLOCK]
        kmin, kmax = int(block.min()), int(block.max())
        lo, hi = min(lo, kmin), max(hi, kmax)
        if parts is None:
            continue
        if kmin < 0 or kmax >= _INF_KEY:
            parts = None
            continue
        amax = _float_of(kmax)
        if amax == 0:
            continue
        x = values[at:at + _BLOCK]
        amin = _float_of(kmin) if kmin > 0 else float(np.min(x, where=x > 0, initial=np.inf))
        parts += _exact_parts(x, amax, amin)
    return (lo, hi), parts


def _float_of(key: int) -> float:
    """The float whose bit pattern is `key`."""
    return float(struct.unpack("<d", struct.pack("<q", key))[0])


def _slow_sum(e: FloatArray) -> list[float]:
    """Floats whose exact sum is the sum of `e` (any finite values), or IEEE's NaN or infinity."""
    if not bool(np.isfinite(e).all()):
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as it should be
            return [float(np.sum(e))]
    mag = np.abs(e)
    amax = float(mag.max()) if len(mag) else 0.0
    if amax == 0:
        return []
    return _exact_parts(e, amax, float(np.min(mag, where=mag > 0, initial=np.inf)))


def _exact_parts(x: FloatArray, amax: float, amin: float) -> list[float]:
    """Floats whose exact sum equals the exact sum of the finite values `x` (|x| <= amax; amin: the
    smallest non-zero |x|, or any smaller positive number).

    Every value is a multiple of 2**g (the last bit of the smallest) and below 2**b, so n of them add
    up exactly in float64 when n * 2**b <= 2**(53 + g). When they do not, split each value in two:
    its leading bits (the low k bits of its bit pattern cleared: a float again) and the rest; both
    halves add up exactly when k fits between two bounds. When no k does (values over many binades),
    Rump, Ogita and Oishi's ExtractVector splits them against a power of two sigma instead:
    q = (sigma + x) - sigma is x on a coarse grid, exactly; x - q is exact too; repeat on x - q.
    """
    parts: list[float] = []
    if not len(x) or amax == 0:
        return parts
    scratch = _scratch()
    g = max(math.frexp(amin)[1] - 53, -1074)  # every value is a multiple of 2**g
    for at in range(0, len(x), _CHUNK):
        r = x[at:at + _CHUNK]
        m = (len(r) + 2).bit_length()  # 2**m > n + 2
        b = math.frexp(amax)[1]  # every |value| < 2**b
        k = m + b - g - 53  # the fewest low bits to clear for the leading parts to add up exactly
        if k <= 0:
            parts.append(float(r.sum()))
            continue
        if k <= min(106 - m - b + g, 52):  # ... and the rests still add up exactly
            lead = scratch.ints_of(len(r))
            np.bitwise_and(r.view(np.int64), ~((1 << k) - 1), out=lead)
            lead_f = lead.view(np.float64)
            parts.append(float(lead_f.sum()))
            np.subtract(r, lead_f, out=lead_f)
            parts.append(float(lead_f.sum()))
            continue
        q = scratch.floats_of(len(r))
        rest = scratch.ints_of(len(r)).view(np.float64)
        while m + b - g > 53:
            if m + b + 1 > 1000:  # values near the top of the float range, no room for sigma: they are
                parts.extend(r.tolist())  # their own parts (exact; fsum adds them up at the end)
                break
            sigma = math.ldexp(1.0, m + b + 1)
            np.add(r, sigma, out=q)
            np.subtract(q, sigma, out=q)
            parts.append(float(q.sum()))
            np.subtract(r, q, out=rest)
            r = rest
            b = m + b - 52  # |x - q| <= half the float spacing just above sigma
        else:
            parts.append(float(r.sum()))
    return parts
