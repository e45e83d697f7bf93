"""Figures over hand-checked records: the definitions in DESIGN.md, to the digit."""

import math

import numpy as np
import pytest

from fleetbench.figures import compute_figures, percentile
from fleetbench.records import RequestRecord


def rec(i, start, end, ok=True, ttft=0.5, inp=100, out=11, itl=()):
    latency = end - start
    tpot = (latency - ttft) / (out - 1) if ok and out > 1 else 0.0
    return RequestRecord(index=i, start_time=start, end_time=end, success=ok, ttft_s=ttft if ok else 0.0,
                         latency_s=latency if ok else 0.0, input_tokens=inp if ok else 0,
                         output_tokens=out if ok else 0, tpot_s=tpot, itl_s=tuple(itl))


def test_throughput_and_tpm_by_hand():
    # two successes and one failure; window 100.0 .. 104.0 = 4 s (the failure counts for the window)
    records = [rec(0, 100.0, 102.0), rec(1, 101.0, 103.0, ttft=1.0), rec(2, 102.0, 104.0, ok=False)]
    f = compute_figures(records)
    assert f.requests == 3 and f.succeeded == 2 and f.failed == 1
    assert f.wall_time_s == pytest.approx(4.0)
    assert f.input_tokens == 200 and f.output_tokens == 22
    assert f.output_throughput_tps == pytest.approx(22 / 4)
    assert f.total_throughput_tps == pytest.approx(222 / 4)
    assert f.tpm_total == pytest.approx(222 / 4 * 60)
    assert f.tpm_output == pytest.approx(22 / 4 * 60)
    assert f.ttft_avg_s == pytest.approx(0.75)
    # TPOT per request: (2 - 0.5)/10 = 0.15 and (2 - 1)/10 = 0.1 -> mean 0.125
    assert f.tpot_avg_s == pytest.approx(0.125)
    assert f.success_rate == pytest.approx(2 / 3)


def test_seed_000_cluster_tpm_arithmetic():
    # seed 000: 22776.2 tok/s total throughput x 60 = 1,366,572 TPM; one node, 512 requests of 6000+1024
    # tokens over 157.897 s gives exactly that throughput.
    n, wall = 512, 157.897
    records = [RequestRecord(i, 1000.0, 1000.0 + wall, True, 1.79, wall, 6000, 1024, 0.02) for i in range(n)]
    f = compute_figures(records)
    assert f.total_throughput_tps == pytest.approx(n * 7024 / wall)
    assert round(f.total_throughput_tps, 1) == 22776.2
    assert f.tpm_total == pytest.approx(f.total_throughput_tps * 60)


def test_itl_average_is_over_all_gaps():
    records = [rec(0, 0.0 + 1, 2.0 + 1, itl=(0.1, 0.3)), rec(1, 1.0, 3.0, itl=(0.2,))]
    assert compute_figures(records).itl_avg_s == pytest.approx(0.2)


@pytest.mark.parametrize("p", [10, 25, 50, 66, 75, 80, 90, 95, 98, 99, 100])
def test_percentile_is_nearest_rank_like_numpy_inverted_cdf(p):
    rng = np.random.default_rng(p)
    values = list(rng.exponential(1.0, size=997))
    assert percentile(values, p) == np.percentile(values, p, method="inverted_cdf")


def test_percentile_of_nothing_is_nan_and_nans_are_ignored():
    assert math.isnan(percentile([], 50))
    assert percentile([math.nan, 1.0, 2.0], 50) == 1.0


def test_failed_requests_do_not_enter_percentiles():
    f = compute_figures([rec(0, 1.0, 2.0, ttft=0.2), rec(1, 1.0, 9.0, ok=False)])
    assert f.percentiles["ttft_s"][99] == pytest.approx(0.2)
    assert f.value("ttft_p99_s") == pytest.approx(0.2)


def test_no_records_gives_nan_not_an_exception():
    f = compute_figures([])
    assert f.requests == 0 and math.isnan(f.tpm_total) and math.isnan(f.ttft_avg_s)
