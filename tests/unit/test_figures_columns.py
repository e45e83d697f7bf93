"""Records as columns at fleet scale give exactly the figures of a one-record-at-a-time reference.

The reference below is the definition written plainly: a loop over RequestRecord objects, averages as
math.fsum / count (the exactly rounded sum), percentiles as the sample at rank ceil(p/100 x n) of the
sorted sample, in integer arithmetic. The columnar path (fleetbench.columns, fleetbench.figures,
controller/aggregate.py) must match it to the bit on random records, nodes and clock offsets.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import fields
from fractions import Fraction

import numpy as np
import pytest

from fleetbench.columns import RecordColumns
from fleetbench.controller.aggregate import aggregate_case, shift_records
from fleetbench.figure_catalog import PERCENTILE_SETS
from fleetbench.figures import (
    PERCENTILES,
    Figures,
    compute_figures,
    exact_float,
    exact_sum,
    mean,
    node_and_cluster_figures,
    percentile,
    rank_positions,
    select_sorted,
)
from fleetbench.records import RequestRecord


def ref_percentile(values: list[float], p: int) -> float:
    data = sorted(v for v in values if not math.isnan(v))
    if not data:
        return math.nan
    return data[max(0, -(-len(data) * p // 100) - 1)]  # rank ceil(p n / 100), no float rounding


def ref_mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def reference(records: list[RequestRecord], points: tuple[int, ...] = PERCENTILES) -> Figures:
    """Every figure, one record at a time."""
    ok = [r for r in records if r.success]
    timed = [r for r in records if r.start_time > 0 and r.end_time >= r.start_time]
    start = min((r.start_time for r in timed), default=math.nan)
    end = max((r.end_time for r in timed), default=math.nan)
    wall = end - start if timed else math.nan
    in_tok = sum(r.input_tokens for r in ok)
    out_tok = sum(r.output_tokens for r in ok)

    def per_s(x: float) -> float:
        return x / wall if wall and wall > 0 else math.nan

    samples: dict[str, list[float]] = {m: [] for m in ("ttft_s", "itl_s", "tpot_s", "latency_s", "input_tokens",
                                                       "output_tokens", "output_tps", "total_tps")}
    for r in ok:
        samples["ttft_s"].append(r.ttft_s)
        samples["itl_s"].extend(r.itl_s)
        if r.output_tokens > 1:
            samples["tpot_s"].append(r.tpot_s)
        samples["latency_s"].append(r.latency_s)
        samples["input_tokens"].append(float(r.input_tokens))
        samples["output_tokens"].append(float(r.output_tokens))
        if r.latency_s > 0:
            samples["output_tps"].append(r.output_tokens / r.latency_s)
            samples["total_tps"].append((r.input_tokens + r.output_tokens) / r.latency_s)
    return Figures(
        requests=len(records), succeeded=len(ok), failed=len(records) - len(ok),
        success_rate=len(ok) / len(records) if records else math.nan,
        wall_time_s=wall, window_start=start, window_end=end, input_tokens=in_tok, output_tokens=out_tok,
        output_throughput_tps=per_s(out_tok), total_throughput_tps=per_s(in_tok + out_tok),
        request_throughput_rps=per_s(len(ok)), tpm_total=per_s(in_tok + out_tok) * 60,
        tpm_output=per_s(out_tok) * 60, ttft_avg_s=ref_mean(samples["ttft_s"]),
        tpot_avg_s=ref_mean(samples["tpot_s"]), itl_avg_s=ref_mean(samples["itl_s"]),
        latency_avg_s=ref_mean(samples["latency_s"]),
        input_tokens_avg=in_tok / len(ok) if ok else math.nan, output_tokens_avg=out_tok / len(ok) if ok else math.nan,
        percentiles={m: {p: ref_percentile(v, p) for p in points} for m, v in samples.items()},
    )


def same(a: float, b: float) -> bool:
    """Equal to the bit, NaN equal to NaN."""
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def assert_same_figures(got: Figures, want: Figures) -> None:
    for f in fields(Figures):
        if f.name == "percentiles":
            continue
        a, b = getattr(got, f.name), getattr(want, f.name)
        assert same(float(a), float(b)), f"{f.name}: {a!r} != {b!r}"
    assert got.percentiles.keys() == want.percentiles.keys()
    for m, table in want.percentiles.items():
        for p, v in table.items():
            assert same(got.percentiles[m][p], v), f"{m} p{p}: {got.percentiles[m][p]!r} != {v!r}"


def random_records(rng: random.Random, n: int, t0: float) -> list[RequestRecord]:
    """Wild but plausible records: failures, single-token answers, zero latency, no gaps, NaN TPOT, ties."""
    out = []
    scale = rng.choice([1e-3, 1.0, 37.0])
    for i in range(n):
        ok = rng.random() > 0.15
        start = t0 + rng.random() * 50
        if rng.random() < 0.03:
            start = 0.0  # no valid timing: left out of the window
        ttft = rng.choice([0.25, 0.5, rng.lognormvariate(0, 1) * scale])  # repeated values: ties
        out_tok = rng.choice([0, 1, 2, rng.randint(1, 4000)])
        gaps = tuple(rng.uniform(0.001, 0.09) * scale for _ in range(rng.choice([0, 1, 3, rng.randint(0, 40)])))
        latency = rng.choice([0.0, ttft + math.fsum(gaps)]) if ok else 0.0
        tpot = math.nan if rng.random() < 0.02 else (latency - ttft) / max(out_tok - 1, 1)
        out.append(RequestRecord(index=i, start_time=start, end_time=start + latency + rng.random(), success=ok,
                                 ttft_s=ttft if ok else 0.0, latency_s=latency, input_tokens=rng.randint(0, 9000),
                                 output_tokens=out_tok, tpot_s=tpot, itl_s=gaps if ok else (),
                                 error="" if ok else rng.choice(["HTTP 503", "timeout"]), point=""))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_node_and_cluster_figures_equal_the_reference(seed):
    rng = random.Random(seed)
    nodes = {f"n{i}": random_records(rng, rng.choice([0, 1, 2, 7, 150, 600]), 1_700_000_000.0)
             for i in range(rng.randint(1, 5))}
    offsets = {n: rng.uniform(-3, 3) for n in nodes}
    points = PERCENTILE_SETS["evalscope-1.14" if seed % 2 else "legacy"]  # with 0 and 100 (min, max)
    shifted = {n: shift_records(RecordColumns.from_records(r), offsets[n]) for n, r in nodes.items()}
    agg = aggregate_case(shifted, points)
    ref_nodes = {n: [r.shifted(offsets[n]) for r in recs] for n, recs in nodes.items()}
    for n, recs in ref_nodes.items():
        assert_same_figures(agg.nodes[n], reference(recs, points))
    union = [r for recs in ref_nodes.values() for r in recs]
    assert_same_figures(agg.cluster, reference(union, points))
    # and the same from plain lists of records, in any order of the nodes
    backwards = aggregate_case({n: ref_nodes[n] for n in reversed(list(ref_nodes))}, points)
    assert_same_figures(backwards.cluster, agg.cluster)
    # the case-level figures of the report, from the reference's node figures
    ref = {n: reference(recs) for n, recs in ref_nodes.items()}
    assert agg.sum_node_tpm_total == sum(f.tpm_total for f in ref.values() if not math.isnan(f.tpm_total))
    assert agg.sum_node_tpm_output == sum(f.tpm_output for f in ref.values() if not math.isnan(f.tpm_output))
    firsts = [f.window_start for f in ref.values() if not math.isnan(f.window_start)]
    assert same(agg.start_skew_s, max(firsts) - min(firsts) if firsts else math.nan)
    tputs = {n: f.output_throughput_tps for n, f in ref.items() if not math.isnan(f.output_throughput_tps)}
    median = statistics.median(tputs.values()) if len(tputs) >= 2 else math.nan
    assert agg.stragglers == tuple(sorted(n for n, t in tputs.items() if t < median * 0.9))


def test_columns_round_trip_records_and_shift_labels_points():
    rng = random.Random(7)
    recs = random_records(rng, 50, 1000.0)
    cols = RecordColumns.from_records(recs)
    assert repr(list(cols)) == repr(recs)  # repr: every float to the bit, NaN equal to NaN
    assert repr(cols[24]) == repr(recs[24]) and repr(list(cols[10:20])) == repr(recs[10:20])
    moved = shift_records(cols, 2.5, point="in1-out2-p3-n4-loop1")
    assert [r.start_time for r in moved] == [r.start_time - 2.5 for r in recs]
    assert {r.point for r in moved} == {"in1-out2-p3-n4-loop1"}
    assert repr(list(RecordColumns.concat([cols[:20], cols[20:]]))) == repr(recs)


def test_exact_sum_is_the_exact_sum_of_wild_values():
    rng = np.random.default_rng(3)
    cases = [
        rng.uniform(-1, 1, 1000),
        rng.lognormal(0, 9, 999) * rng.choice([-1, 1], 999),
        np.ldexp(rng.uniform(0.5, 1, 500), rng.integers(-1074, 1000, 500)) * rng.choice([-1, 1], 500),
        np.array([1e300, -1e300, 1.0, 5e-324, -2.5e-320, 1e16, 3.0, 2.0**970, -(2.0**970)]),
        np.array([0.1] * 10), np.array([-0.0]), np.array([]),
    ]
    for values in cases:
        want = sum((Fraction(v) for v in values.tolist()), Fraction(0))
        assert Fraction(exact_sum(values), 2**1074) == want
        if len(values):
            assert exact_float(exact_sum(values)) == math.fsum(values.tolist())
    assert mean([0.1] * 10) == 0.1 and sum([0.1] * 10) / 10 != 0.1  # exactly rounded, not summed in order
    assert math.isnan(mean([1.0, math.nan])) and math.isnan(mean([]))


def test_percentile_is_the_nearest_rank_sample():
    rng = random.Random(11)
    for n in (1, 2, 3, 49, 50, 100, 997, 1000):
        values = [rng.choice([0.5, rng.random()]) for _ in range(n)]
        for p in (*PERCENTILES, 0, 100):
            assert percentile(values, p) == ref_percentile(values, p)
    assert math.isnan(percentile([math.nan], 50))


def test_compute_figures_from_list_or_columns_is_the_same():
    recs = random_records(random.Random(5), 300, 5000.0)
    assert_same_figures(compute_figures(recs), reference(recs))
    assert_same_figures(compute_figures(RecordColumns.from_records(recs)), reference(recs))


def test_a_streamed_batch_decodes_to_the_same_records():
    from fleetbench.v1 import agent_pb2 as pb
    from fleetbench.wire_columns import columns_from_pb

    recs = random_records(random.Random(9), 40, 100.0)
    batch = [pb.RequestRecord(index=r.index, start_time=r.start_time, end_time=r.end_time, success=r.success,
                              ttft_s=r.ttft_s, latency_s=r.latency_s, input_tokens=r.input_tokens,
                              output_tokens=r.output_tokens, tpot_s=r.tpot_s, itl_s=r.itl_s, error=r.error,
                              point=r.point) for r in recs]
    assert repr(list(RecordColumns.concat([columns_from_pb(batch[:13]), columns_from_pb(batch[13:]),
                                           columns_from_pb([])]))) == repr(recs)


def test_rank_positions_are_where_numpy_picks_for_every_n():
    points = [0, 1, 10, 25, 33.3, 50, 66, 75, 90, 95, 98, 99, 99.9, 100]
    for n in range(1, 3001):
        want = np.percentile(np.arange(n, dtype=np.float64), points, method="inverted_cdf")
        assert rank_positions(n, points).tolist() == want.astype(np.int64).tolist(), n
    for n in np.random.default_rng(2).integers(3001, 3_000_000, 40).tolist():
        want = np.percentile(np.arange(n, dtype=np.float64), PERCENTILES, method="inverted_cdf")
        assert rank_positions(n, PERCENTILES).tolist() == want.astype(np.int64).tolist(), n


@pytest.mark.parametrize("seed", range(30))
def test_select_sorted_equals_numpy_on_the_union(seed):
    """The union's percentiles from the sorted parts, to the bit: ties, signed zeros, infinities, empty
    parts, huge and subnormal values."""
    rng = np.random.default_rng(seed)
    pool = np.concatenate([rng.normal(0, 1, 50), [0.0, -0.0, np.inf, -np.inf, 5e-324, -5e-324, 1e308, 0.25, 0.25],
                           rng.uniform(0.015, 0.025, 50)])
    parts = [np.sort(rng.choice(pool, int(rng.choice([0, 1, 2, 17, 400])))) for _ in range(int(rng.integers(1, 6)))]
    points = [0, 10, 25, 50, 66, 75, 80, 90, 95, 98, 99, 99.9, 100]
    union = np.concatenate(parts)
    got = select_sorted(parts, points)
    if not len(union):
        assert all(math.isnan(v) for v in got)
        return
    want = np.percentile(union, points, method="inverted_cdf").tolist()
    assert [same(a, b) or (a == b == 0) for a, b in zip(got, want, strict=True)] == [True] * len(points)
    for v in got:  # a zero picked is one the sample holds, with its sign
        assert v != 0 or any(((p == 0) & (np.signbit(p) == (math.copysign(1, v) < 0))).any() for p in parts)


def test_the_merge_asks_for_plain_pages_and_gives_numpy_its_setting_back(monkeypatch):
    """numpy's huge-page hint made the kernel compact memory for the merge's fresh samples (2.3 s of CPU where
    plain pages took 0.6 s, 32 nodes); off while the node passes run, numpy's own setting after."""
    from fleetbench import figures as fig

    setter = (getattr(np, "_core", None) or np.core).multiarray._set_madvise_hugepage  # numpy 2, or 1.26
    seen = []
    original = fig._Pass.of

    def of(c):
        now = setter(False)  # reads the hint in force (and leaves it as it was: off)
        seen.append(now)
        return original(c)

    monkeypatch.setattr(fig._Pass, "of", staticmethod(of))
    for start in (True, False):
        setter(start)
        try:
            rng = random.Random(1)
            node_and_cluster_figures([RecordColumns.from_records(random_records(rng, 50, 1.7e9)) for _ in range(3)])
            assert setter(start) is start  # given back
        finally:
            setter(True)
    assert seen == [False] * 6
