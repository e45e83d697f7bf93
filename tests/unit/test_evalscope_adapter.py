"""evalscope's summary names across releases read through one adapter (seed 000 printed v1.4's names)."""

import pytest

from fleetbench.agent.evalscope_adapter import normalize_summary

# as evalscope v1.4.1 printed it in seed 000
SEED_000_V1_4 = {
    "Time taken for tests (s)": 157.897, "Number of concurrency": 84, "Request rate (req/s)": 5,
    "Total requests": 512, "Succeed requests": 512, "Failed requests": 0,
    "Output token throughput (tok/s)": 3320.44, "Total token throughput (tok/s)": 22776.2,
    "Request throughput (req/s)": 3.2426, "Average latency (s)": 22.3776,
    "Average time to first token (s)": 1.7905, "Average time per output token (s)": 0.0201,
    "Average inter-token latency (s)": 0.0638, "Average input tokens per request": 6000,
    "Average output tokens per request": 1024,
}
# the same run in evalscope 1.14's benchmark_summary.json names (milliseconds for TTFT/TPOT/ITL)
V1_14 = {
    "Test Duration (s)": 157.897, "Total Requests": 512, "Success Requests": 512, "Failed Requests": 0,
    "Output Throughput (tok/s)": 3320.44, "Total Throughput (tok/s)": 22776.2, "Req Throughput (req/s)": 3.2426,
    "Avg Latency (s)": 22.3776, "Avg TTFT (ms)": 1790.5, "Avg TPOT (ms)": 20.1, "Avg ITL (ms)": 63.8,
    "Avg Input Tokens": 6000, "Avg Output Tokens": 1024,
}


def test_both_generations_give_the_same_figures_in_si_units():
    old, new = normalize_summary(SEED_000_V1_4), normalize_summary(V1_14)
    assert set(old) == set(new) == {
        "wall_time_s", "requests", "succeeded", "failed", "output_throughput_tps", "total_throughput_tps",
        "request_throughput_rps", "latency_avg_s", "ttft_avg_s", "tpot_avg_s", "itl_avg_s", "input_tokens_avg",
        "output_tokens_avg"}
    for k in old:
        assert old[k] == pytest.approx(new[k]), k
    assert old["ttft_avg_s"] == pytest.approx(1.7905) and old["total_throughput_tps"] * 60 == pytest.approx(1366572)


def test_unknown_and_non_numeric_keys_are_ignored():
    assert normalize_summary({"Avg TTFT (ms)": "n/a", "Something new": 3}) == {}


def test_min_tokens_is_sent_only_for_a_fixed_output_length(tmp_path):
    from fleetbench.agent.evalscope_adapter import perf_arguments
    from fleetbench.jobs_schema import PerfSpec

    base = {"url": "http://127.0.0.1:1/v1/completions", "model": "m", "tokenizer_path": "/t", "number": 4,
            "parallel": 2, "input_tokens": 64, "output_tokens": 100, "range_ratio": 0.5}
    fixed = perf_arguments(PerfSpec.from_wire(base), tmp_path, "a")
    up_to = perf_arguments(PerfSpec.from_wire({**base, "fixed_output": False}), tmp_path, "b")
    assert (fixed["min_tokens"], fixed["max_tokens"]) == (50, 100)
    assert "min_tokens" not in up_to and up_to["max_tokens"] == 100
