"""Cluster aggregation: union percentiles, common window with clocks corrected, stragglers, verdicts."""

import math

import numpy as np
import pytest

from fleetbench.controller.aggregate import aggregate_case, judge, shift_records
from fleetbench.controller.plan import Expectation
from fleetbench.records import RequestRecord


def recs(node_seed, n, start, ttft_scale, out=50):
    rng = np.random.default_rng(node_seed)
    out_records = []
    for i in range(n):
        s = start + i * 0.1
        ttft = float(rng.exponential(ttft_scale))
        lat = ttft + 1.0
        out_records.append(RequestRecord(i, s, s + lat, True, ttft, lat, 100, out, (lat - ttft) / (out - 1)))
    return out_records


def test_cluster_p99_is_union_percentile_not_mean_of_node_p99s():
    # one slow node: the union's p99 differs clearly from the average of per-node p99s
    by_node = {"n1": recs(1, 200, 0.0, 0.1), "n2": recs(2, 200, 0.0, 0.1), "n3": recs(3, 200, 0.0, 2.0)}
    agg = aggregate_case(by_node)
    union = [r.ttft_s for rs in by_node.values() for r in rs]
    assert agg.cluster.percentiles["ttft_s"][99] == np.percentile(union, 99, method="inverted_cdf")
    mean_p99 = sum(f.percentiles["ttft_s"][99] for f in agg.nodes.values()) / 3
    assert abs(agg.cluster.percentiles["ttft_s"][99] - mean_p99) > 0.5


def test_common_window_uses_corrected_clocks_and_reports_skew():
    # n2's clock runs 5 s ahead; once shifted, both nodes started at t=100 and t=100.2
    n1 = [RequestRecord(0, 100.0, 110.0, True, 0.5, 10.0, 1000, 1000, 0.0095)]
    n2_raw = [RequestRecord(0, 105.2, 115.2, True, 0.5, 10.0, 1000, 1000, 0.0095)]
    agg = aggregate_case({"n1": n1, "n2": shift_records(n2_raw, 5.0)})
    assert agg.cluster.window_start == pytest.approx(100.0)
    assert agg.cluster.window_end == pytest.approx(110.2)
    assert agg.cluster.total_throughput_tps == pytest.approx(4000 / 10.2)
    assert agg.start_skew_s == pytest.approx(0.2)
    assert agg.sum_node_tpm_total == pytest.approx(2 * 2000 / 10.0 * 60)
    # without the correction the window would be 15.2 s
    wrong = aggregate_case({"n1": n1, "n2": n2_raw})
    assert wrong.cluster.wall_time_s == pytest.approx(15.2)


def test_straggler_flagged_below_median_margin():
    fast = recs(1, 50, 0.0, 0.1, out=50)
    slow = [RequestRecord(r.index, r.start_time, r.start_time + 5 * r.latency_s, True, r.ttft_s, 5 * r.latency_s,
                          r.input_tokens, r.output_tokens, r.tpot_s) for r in fast]
    agg = aggregate_case({"n1": fast, "n2": fast, "n3": slow})
    assert agg.stragglers == ("n3",)


def test_judge_min_max_and_missing_figure():
    agg = aggregate_case({"n1": recs(1, 10, 0.0, 0.1)})
    v = judge("n1", agg.nodes["n1"], [Expectation("ttft_avg_s", "max", 10.0), Expectation("success_rate", "min", 1.0),
                                      Expectation("tpm_total", "min", 1e12)])
    assert [x.passed for x in v] == [True, True, False]
    assert not Expectation("ttft_avg_s", "max", 1.0).check(math.nan)
