"""The columnar figures are the definitions, to the bit: compared with a straightforward reference over
RequestRecords (Python lists, `sorted`, `math.fsum`) on random records, node by node and for the union."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetbench.columns import RecordColumns
from fleetbench.controller.aggregate import aggregate_case, shift_records
from fleetbench.figures import PERCENTILES, Figures, compute_figures
from fleetbench.records import RequestRecord

# --- the reference: the definitions of docs/figures.md, one record at a time ---------------------


def ref_percentile(values: list[float], p: int) -> float:
    data = sorted(v for v in values if not math.isnan(v))
    if not data:
        return math.nan
    return data[-1] if p >= 100 else data[max(0, math.ceil(len(data) * p / 100) - 1)]


def ref_sum(values: list[float]) -> float:
    try:
        return math.fsum(values)
    except ValueError:
        return math.nan


def ref_mean(values: list[float]) -> float:
    return ref_sum(values) / len(values) if values else math.nan


def ref_figures(records: list[RequestRecord]) -> dict[str, object]:
    ok = [r for r in records if r.success]
    timed = [r for r in records if r.start_time > 0 and r.end_time >= r.start_time]
    start = min((r.start_time for r in timed), default=math.nan)
    end = max((r.end_time for r in timed), default=math.nan)
    wall = end - start if timed else math.nan
    in_tok = sum(r.input_tokens for r in ok)
    out_tok = sum(r.output_tokens for r in ok)

    def per_s(x: float) -> float:
        return x / wall if wall and wall > 0 else math.nan

    gaps = [g for r in ok for g in r.itl_s]
    samples = {
        "ttft_s": [r.ttft_s for r in ok],
        "itl_s": gaps,
        "tpot_s": [r.tpot_s for r in ok if r.output_tokens > 1],
        "latency_s": [r.latency_s for r in ok],
        "input_tokens": [float(r.input_tokens) for r in ok],
        "output_tokens": [float(r.output_tokens) for r in ok],
        "output_tps": [r.output_tokens / r.latency_s for r in ok if r.latency_s > 0],
        "total_tps": [(r.input_tokens + r.output_tokens) / r.latency_s for r in ok if r.latency_s > 0],
    }
    return {
        "requests": len(records), "succeeded": len(ok), "failed": len(records) - len(ok),
        "success_rate": len(ok) / len(records) if records else math.nan,
        "wall_time_s": wall, "window_start": start, "window_end": end,
        "input_tokens": in_tok, "output_tokens": out_tok,
        "output_throughput_tps": per_s(out_tok), "total_throughput_tps": per_s(in_tok + out_tok),
        "request_throughput_rps": per_s(len(ok)), "tpm_total": per_s(in_tok + out_tok) * 60,
        "tpm_output": per_s(out_tok) * 60,
        "ttft_avg_s": ref_mean(samples["ttft_s"]), "tpot_avg_s": ref_mean(samples["tpot_s"]),
        "itl_avg_s": ref_sum(gaps) / len(gaps) if gaps else math.nan,
        "latency_avg_s": ref_mean(samples["latency_s"]),
        "input_tokens_avg": in_tok / len(ok) if ok else math.nan,
        "output_tokens_avg": out_tok / len(ok) if ok else math.nan,
        "percentiles": {m: {p: ref_percentile(v, p) for p in PERCENTILES} for m, v in samples.items()},
    }


def bits(x: object) -> object:
    """A value compared to the bit (NaN equal to NaN, 0.0 and -0.0 told apart)."""
    if isinstance(x, float):
        return "nan" if math.isnan(x) else struct.pack("<d", x)
    if isinstance(x, dict):
        return {k: bits(v) for k, v in x.items()}
    return x


def assert_bit_identical(got: Figures, want: dict[str, object]) -> None:
    for name, expected in want.items():
        value = getattr(got, name)
        assert type(value) is type(expected) or name == "percentiles", (name, value, expected)
        assert bits(value) == bits(expected), (name, value, expected)


# --- random records ---------------------------------------------------------------------------

times = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)
small = st.floats(min_value=0.0, max_value=20.0, allow_nan=False, allow_subnormal=False)


@st.composite
def records(draw: st.DrawFn, max_size: int = 40) -> list[RequestRecord]:
    n = draw(st.integers(0, max_size))
    base = draw(st.sampled_from([0.0, 1_700_000_000.0, 1000.0]))
    out = []
    for i in range(n):
        start = base + draw(times)
        latency = draw(small)
        ok = draw(st.booleans()) if draw(st.integers(0, 3)) == 0 else True
        gaps = tuple(draw(st.lists(small, max_size=6)))
        out.append(RequestRecord(
            index=i, start_time=start, end_time=start + latency * draw(st.sampled_from([1.0, 1.0, -1.0])),
            success=ok, ttft_s=draw(small), latency_s=latency, input_tokens=draw(st.integers(0, 9000)),
            output_tokens=draw(st.integers(0, 2000)), tpot_s=draw(small), itl_s=gaps,
            error="" if ok else draw(st.sampled_from(["timeout", "HTTP 500"])),
            point=draw(st.sampled_from(["", "p1"]))))
    return out


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(records())
def test_one_node_columns_equal_the_reference_to_the_bit(recs):
    assert_bit_identical(compute_figures(RecordColumns.from_records(recs)), ref_figures(recs))
    assert_bit_identical(compute_figures(recs), ref_figures(recs))


@FAST
@given(st.lists(records(30), min_size=1, max_size=5), st.lists(st.floats(-3.0, 3.0), min_size=5, max_size=5))
def test_nodes_and_cluster_equal_the_reference_to_the_bit(nodes, offsets):
    by_node = {f"n{i}": shift_records(RecordColumns.from_records(recs), offsets[i]) for i, recs in enumerate(nodes)}
    shifted = {f"n{i}": [r.shifted(offsets[i]) for r in recs] for i, recs in enumerate(nodes)}
    agg = aggregate_case(by_node)
    for name, recs in shifted.items():
        assert_bit_identical(agg.nodes[name], ref_figures(recs))
    assert_bit_identical(agg.cluster, ref_figures([r for recs in shifted.values() for r in recs]))
    # lists of records take the same path
    assert bits(aggregate_case(shifted).cluster.percentiles) == bits(agg.cluster.percentiles)


def synth(seed: int, n: int, gaps: int, fail: float, spread: float = 1.0) -> list[RequestRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ttft = float(rng.lognormal(0.5, 0.4 * spread))
        itl = tuple(rng.uniform(0.015, 0.025 * spread, gaps).tolist())
        latency = ttft + math.fsum(itl)
        ok = bool(rng.random() > fail)
        out.append(RequestRecord(i, 1_700_000_000.0 + i * 0.05, 1_700_000_000.0 + i * 0.05 + latency, ok, ttft,
                                 latency, int(rng.integers(5000, 7000)), 1000, (latency - ttft) / 999, itl))
    return out


@pytest.mark.parametrize("fail", [0.0, 0.01, 0.7])
def test_large_nodes_go_through_the_histogram_levels_and_stay_exact(fail):
    # big enough for several histogram levels and the exact-sum splitting; failures on both sides of half
    nodes = {f"n{i}": synth(i, 3000, 12, fail, spread=1.0 + i) for i in range(3)}
    agg = aggregate_case({n: RecordColumns.from_records(r) for n, r in nodes.items()})
    for name, recs in nodes.items():
        assert_bit_identical(agg.nodes[name], ref_figures(recs))
    assert_bit_identical(agg.cluster, ref_figures([r for recs in nodes.values() for r in recs]))


def test_nan_negative_and_infinite_samples_take_the_sorting_path_with_the_same_answers():
    recs = [RequestRecord(0, 10.0, 11.0, True, math.nan, 1.0, 10, 5, 0.1, (0.1, -0.2)),
            RequestRecord(1, 10.5, 12.0, True, 0.3, 1.5, 10, 5, math.inf, (math.nan, 0.3)),
            RequestRecord(2, 10.5, 12.0, True, -0.0, 1.5, 10, 5, 0.2, (0.0, 0.4)),
            RequestRecord(3, 11.0, 12.0, False, math.nan, 0.0, 0, 0, 0.0, (math.inf,))]
    assert_bit_identical(compute_figures(RecordColumns.from_records(recs)), ref_figures(recs))
    agg = aggregate_case({"a": recs[:2], "b": recs[2:]})
    assert_bit_identical(agg.cluster, ref_figures(recs))


def test_averages_are_exactly_rounded_whatever_the_order():
    # a sum that plain left-to-right addition gets wrong: 1e16 + 1 + 1 ... - 1e16
    recs = [RequestRecord(i, 1.0, 2.0, True, t, 1.0, 1, 2, 0.0) for i, t in enumerate([1e16, 1.0, 1.0, 1.0])]
    f = compute_figures(RecordColumns.from_records(recs))
    assert f.ttft_avg_s == math.fsum([1e16, 1.0, 1.0, 1.0]) / 4
    a = aggregate_case({"x": recs[:1], "y": recs[1:]}).cluster
    b = aggregate_case({"y": recs[1:], "x": recs[:1]}).cluster
    assert bits(a.ttft_avg_s) == bits(b.ttft_avg_s) == bits(f.ttft_avg_s)


def test_columns_round_trip_records_shift_and_label():
    recs = [RequestRecord(3, 5.0, 6.0, True, 0.1, 1.0, 7, 8, 0.2, (0.01, 0.02), "", "p"),
            RequestRecord(4, 5.5, 6.5, False, 0.0, 0.0, 0, 0, 0.0, (), "boom", "p")]
    cols = RecordColumns.from_records(recs)
    assert list(cols) == recs and cols[1] == recs[1] and cols[-1] == recs[-1] and len(cols) == 2
    assert list(cols[1:]) == recs[1:]
    assert list(shift_records(cols, 2.0, point="x")) == shift_records(recs, 2.0, point="x")
    assert list(RecordColumns.concat([cols, cols])) == recs + recs
    assert list(RecordColumns.empty()) == []
    with pytest.raises(IndexError):
        cols[2]


TINY = {"_DIRECT": 2, "_HIST_BITS": 2, "_BLOCK": 8, "_CHUNK": 16, "_PARALLEL_MIN": 1}


@FAST
@given(st.lists(records(25), min_size=1, max_size=4), st.lists(st.floats(-2.0, 2.0), min_size=4, max_size=4))
def test_every_histogram_level_and_split_stays_exact_with_tiny_grids(nodes, offsets):
    # grids of 4 buckets, sorting only 2 values at a time, exact sums over blocks of 8: deep recursion,
    # the last-level (shift 0) answers, the splitting of sums, and worker threads, on small random records
    from unittest import mock

    import fleetbench.figures as figures

    shifted = {f"n{i}": [r.shifted(offsets[i]) for r in recs] for i, recs in enumerate(nodes)}
    with mock.patch.multiple(figures, **TINY):
        agg = aggregate_case({n: RecordColumns.from_records(r) for n, r in shifted.items()})
    for name, recs in shifted.items():
        assert_bit_identical(agg.nodes[name], ref_figures(recs))
    assert_bit_identical(agg.cluster, ref_figures([r for recs in shifted.values() for r in recs]))


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e306, max_value=1e306)


@settings(max_examples=300, deadline=None)
@given(st.lists(finite, max_size=60), st.sampled_from([3, 16, 1 << 22]))
def test_exact_parts_add_up_to_fsum(values, chunk):
    from unittest import mock

    import fleetbench.figures as figures

    x = np.array(values, dtype=np.float64)
    mag = np.abs(x)
    amax = float(mag.max()) if len(x) else 0.0
    amin = float(np.min(mag, where=mag > 0, initial=np.inf))
    with mock.patch.object(figures, "_CHUNK", chunk):
        parts = figures._exact_parts(x, amax, amin)
    assert math.fsum(parts) == math.fsum(values)


wild = st.one_of(st.floats(min_value=-1e305, max_value=1e305), st.sampled_from([math.inf, -math.inf, math.nan, -0.0]))


@st.composite
def wild_records(draw: st.DrawFn) -> list[RequestRecord]:
    """Negative, infinite, NaN and signed-zero values (up to 1e305: the sums stay below the float range)."""
    return [RequestRecord(i, draw(wild), draw(wild), draw(st.booleans()), draw(wild), draw(wild),
                          draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6)), draw(wild),
                          tuple(draw(st.lists(wild, max_size=5)))) for i in range(draw(st.integers(0, 12)))]


@FAST
@given(st.lists(wild_records(), min_size=1, max_size=3), st.booleans())
def test_wild_values_take_the_sorting_path_and_stay_bit_identical(nodes, tiny):
    from unittest import mock

    import fleetbench.figures as figures

    by_node = {f"n{i}": recs for i, recs in enumerate(nodes)}
    with mock.patch.multiple(figures, **(TINY if tiny else {"_DIRECT": figures._DIRECT})):
        agg = aggregate_case({n: RecordColumns.from_records(r) for n, r in by_node.items()})
    for name, recs in by_node.items():
        assert_bit_identical(agg.nodes[name], ref_figures(recs))
    assert_bit_identical(agg.cluster, ref_figures([r for recs in by_node.values() for r in recs]))
