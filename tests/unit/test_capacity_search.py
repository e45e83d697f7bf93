"""The capacity search (controller/capacity.py) against oracles with a known knee: it finds every scope's knee
within one probe step, in a bounded number of probes, and noise can lower the answer but never raise it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest

from fleetbench.controller.capacity import CapacitySearch
from fleetbench.controller.plan import CapacityCase, Expectation


def drive(search: CapacitySearch, oracle: Callable[[int, int], dict[str, bool]]) -> list[int]:
    """Run the search to its end; `oracle(parallel, attempt)` says which scopes held. Returns the probes."""
    probes = []
    while (p := search.next_probe()) is not None:
        assert len(probes) < search.probe_budget(), probes
        probes.append(p)
        search.record(p, oracle(p, len(search.runs.get(p, [])) + 1))
    return probes


def knees(**knee: int) -> Callable[[int, int], dict[str, bool]]:
    return lambda p, _attempt: {scope: p <= k for scope, k in knee.items()}


@pytest.mark.parametrize("knee", [1, 2, 3, 7, 8, 9, 100, 255, 256])
def test_finds_the_knee_exactly_in_a_bounded_number_of_probes(knee):
    s = CapacitySearch(1, 256, ["cluster"], confirm=2)
    probes = drive(s, knees(cluster=knee))
    assert s.answer("cluster") == knee
    # bracket: 1, 2, 4, ... up to the first failure (at most 9 for 1..256), bisection (at most 7), 1 confirmation
    assert len(probes) <= 9 + 7 + 1
    assert probes.count(knee) == 2  # the answer ran `confirm` times
    assert s.at_top("cluster") == (knee == 256)


def test_nothing_holds_at_the_range_min():
    s = CapacitySearch(4, 64, ["cluster"])
    assert drive(s, knees(cluster=2)) == [4]  # one failure at min settles it: no rerun
    assert s.answer("cluster") is None


@pytest.mark.parametrize("step", [2, 4, 8])
def test_resolution_step(step):
    s = CapacitySearch(1, 256, ["cluster"], step=step)
    drive(s, knees(cluster=77))
    found = s.answer("cluster")
    assert found is not None and 77 - step < found <= 77  # within one probe step, never above the knee
    _, failed = s.bracket("cluster")
    assert failed is not None and failed - found <= step


def test_every_scope_gets_its_own_answer_from_shared_probes():
    s = CapacitySearch(1, 64, ["cluster", "n1", "n2", "n3"])
    probes = drive(s, knees(cluster=11, n1=20, n2=11, n3=64))
    assert {sc: s.answer(sc) for sc in s.scopes} == {"cluster": 11, "n1": 20, "n2": 11, "n3": 64}
    assert len(probes) <= s.probe_budget() // 4  # a clean search stays within the unguarded bound
    assert {p for p in probes if probes.count(p) > 1} == {11, 20, 64}  # only the answers are run again


def test_a_lucky_pass_above_the_knee_is_caught_by_the_confirmation():
    # at 9 the first run passes by luck (noise), the rerun fails: the answer is the real knee, 8
    def oracle(p: int, attempt: int) -> dict[str, bool]:
        return {"cluster": p <= 8 or (p == 9 and attempt == 1)}

    s = CapacitySearch(1, 32, ["cluster"], confirm=2)
    probes = drive(s, oracle)
    assert s.answer("cluster") == 8
    assert probes.count(9) == 2 and probes.count(8) == 2


def test_a_spurious_failure_lowers_the_answer_never_raises_it():
    def oracle(p: int, _attempt: int) -> dict[str, bool]:
        return {"cluster": p <= 20 and p != 12}  # 12 failed once (noise)

    s = CapacitySearch(1, 64, ["cluster"])
    drive(s, oracle)
    assert s.answer("cluster") <= 20


def test_confirm_one_takes_the_first_pass():
    s = CapacitySearch(1, 16, ["cluster"], confirm=1)
    probes = drive(s, knees(cluster=5))
    assert s.answer("cluster") == 5 and probes.count(5) == 1


def test_capacity_case_probes_and_request_slo():
    case = CapacityCase(id="cap", input_tokens=1024, output_tokens=256, parallel_min=1, parallel_max=256,
                        slo=(Expectation("ttft_p99_s", "max", 2.0), Expectation("tpot_p99_s", "max", 0.05),
                             Expectation("ttft_avg_s", "max", 1.0), Expectation("success_rate", "min", 1.0)),
                        requests_per_stream=4)
    probe = case.probe(16, 2)
    assert (probe.id, probe.parallel, probe.number) == ("cap@p16-try2", 16, 64)
    assert probe.expect == case.slo
    slo = case.request_slo
    assert (slo.ttft_s, slo.tpot_s) == (1.0, 0.05) and slo.latency_s is None
    assert not math.isnan(CapacitySearch(1, 256, ["cluster"]).probe_budget())


CAPACITY_PLAN = """\
name: p
model: m
endpoint: {url: http://127.0.0.1:8000/v1/completions}
tokenizer: /t
cases:
  - id: capacity
    type: capacity
    input_tokens: 1024
    output_tokens: 256
    parallel: {min: 1, max: 256}
    requests_per_stream: 4
    SLO
"""


def test_the_issues_capacity_case_parses_as_written(tmp_path):
    from fleetbench.controller.plan import load_plan

    p = tmp_path / "plan.yaml"
    p.write_text(CAPACITY_PLAN.replace(
        "SLO", "slo: {ttft_p99_s: {max: 2.0}, tpot_p99_s: {max: 0.05}, success_rate: {min: 1.0}}"))
    (case,) = load_plan(p).cases
    assert isinstance(case, CapacityCase)
    assert (case.parallel_min, case.parallel_max, case.requests_per_stream, case.confirm) == (1, 256, 4, 2)
    assert [(e.figure, e.op, e.threshold) for e in case.slo] == [("ttft_p99_s", "max", 2.0),
                                                                  ("tpot_p99_s", "max", 0.05),
                                                                  ("success_rate", "min", 1.0)]
    p.write_text(CAPACITY_PLAN.replace("SLO", "slo: mlperf-deepseek-r1\n    confirm: 3"))
    (case,) = load_plan(p).cases
    assert [(e.figure, e.threshold) for e in case.slo] == [("ttft_p99_s", 2.0), ("tpot_p99_s", 0.08)]
    assert case.slo_preset == "mlperf-deepseek-r1" and case.confirm == 3


@pytest.mark.parametrize(("slo", "message"), [
    ("slo: {}", r"plan.yaml:\d+: cases\[0\].slo needs at least one figure bound"),
    ("slo: {ttft_p99: {max: 1}}", r"cases\[0\].slo.ttft_p99 is not a known figure"),
    ("slo: nope", r"cases\[0\].slo must be a preset"),
    ("slo: {ttft_p99_s: {max: 1}}\n    confirm: 0", r"cases\[0\].confirm must be a whole number from 1 to 10"),
])
def test_capacity_plan_errors(tmp_path, slo, message):
    from fleetbench.controller.plan import load_plan
    from fleetbench.errors import ConfigError

    p = tmp_path / "plan.yaml"
    p.write_text(CAPACITY_PLAN.replace("SLO", slo))
    with pytest.raises(ConfigError, match=message):
        load_plan(p)


def test_capacity_range_must_be_ordered(tmp_path):
    from fleetbench.controller.plan import load_plan
    from fleetbench.errors import ConfigError

    p = tmp_path / "plan.yaml"
    p.write_text(CAPACITY_PLAN.replace("SLO", "slo: mlperf-llama2-70b").replace("max: 256", "max: 0"))
    with pytest.raises(ConfigError, match=r"cases\[0\].parallel.max must be a positive integer"):
        load_plan(p)
    p.write_text(CAPACITY_PLAN.replace("SLO", "slo: mlperf-llama2-70b").replace("min: 1, max: 256", "min: 8, max: 4"))
    with pytest.raises(ConfigError, match=r"cases\[0\].parallel.max must be at least min"):
        load_plan(p)


# --- a request-rate search (issue 18 item 2, `rate: {min, max}`) ---

def rate_knee(knee: float) -> Callable[[float, int], dict[str, bool]]:
    return lambda r, _attempt: {"cluster": r <= knee}


@pytest.mark.parametrize("knee", [0.5, 1.0, 3.3, 17.0, 63.9, 64.0])
def test_a_rate_search_finds_the_knee_within_five_percent(knee):
    s = CapacitySearch(0.5, 64.0, ["cluster"], confirm=2, step=0.0, ratio=0.05)
    probes = drive(s, rate_knee(knee))
    found = s.answer("cluster")
    assert found is not None and found <= knee  # never above the knee
    _, failed = s.bracket("cluster")
    assert failed is None or failed <= found * 1.05  # the lowest failing rate within 5 % above the answer
    assert failed is None or failed > knee
    # bracket 0.5 .. 64 (8 probes at most), bisection of a bracket [r, 2r] to 5 % (5 at most), 1 confirmation
    assert len(probes) <= 8 + 5 + 1 <= s.probe_budget()
    assert all(p == float(f"{p:.4g}") for p in probes)  # rates rounded to 4 digits: readable step ids
    assert probes.count(found) == 2


def test_a_rate_search_with_an_absolute_step():
    s = CapacitySearch(1.0, 100.0, ["cluster"], step=0.5)
    drive(s, rate_knee(41.3))
    found = s.answer("cluster")
    _, failed = s.bracket("cluster")
    assert found is not None and failed is not None
    assert found <= 41.3 < failed and failed - found <= 0.5


def test_a_rate_search_stops_when_rounding_leaves_nothing_between():
    s = CapacitySearch(1.0, 2.0, ["cluster"], step=0.0, ratio=1e-9)  # asks for more than 4 digits can say
    probes = drive(s, rate_knee(1.23456789))
    assert s.answer("cluster") is not None and len(probes) < s.probe_budget()


def test_rate_case_probes():
    case = CapacityCase(id="cap", input_tokens=64, output_tokens=16, parallel_min=0, parallel_max=0,
                        slo=(Expectation("ttft_p99_s", "max", 0.5),), axis="rate", rate_min=1.0, rate_max=64.0,
                        probe_duration_s=10.0)
    probe = case.probe(12.5, 1)
    # open-loop arrivals: rate × duration requests, the streams never holding one back
    assert (probe.id, probe.rate, probe.number, probe.parallel) == ("cap@r12.5-try1", 12.5, 125, 125)
    capped = replace(case, parallel_cap=32).probe(3.3, 2)
    assert (capped.id, capped.number, capped.parallel) == ("cap@r3.3-try2", 33, 32)
    assert (case.lo, case.hi) == (1.0, 64.0)
    # the step and job ids take [A-Za-z0-9._-]: no exponent, whatever the rate
    assert [case.probe(r, 1).id for r in (1e6, 1e-7, 2.0, 0.5)] == ["cap@r1000000-try1", "cap@r0.0000001-try1",
                                                                     "cap@r2-try1", "cap@r0.5-try1"]


def test_split_case_probes_are_cluster_totals_divided_as_split_does():
    from fleetbench.controller.specs import split_share

    case = CapacityCase(id="cap", input_tokens=64, output_tokens=16, parallel_min=3, parallel_max=48,
                        slo=(Expectation("ttft_p99_s", "max", 0.5),), requests_per_stream=2, load="split")
    probe = case.probe(10, 1)
    assert (probe.load, probe.parallel, probe.number) == ("split", 10, 20)
    shares = [split_share(probe, i, 3) for i in range(3)]
    assert [(s.parallel, s.number) for s in shares] == [(4, 7), (3, 7), (3, 6)]
    assert sum(s.parallel for s in shares) == 10 and sum(s.number for s in shares) == 20
    rate = replace(case, axis="rate", rate_min=3.0, rate_max=60.0, probe_duration_s=5.0).probe(9.0, 1)
    shares = [split_share(rate, i, 3) for i in range(3)]
    assert sum(s.number for s in shares) == 45 and [s.rate for s in shares] == [3.0, 3.0, 3.0]


RATE_PLAN = """\
name: p
model: m
endpoint: {url: http://127.0.0.1:8000/v1/completions}
tokenizer: /t
cases:
  - id: capacity
    type: capacity
    input_tokens: 1024
    output_tokens: 256
    slo: mlperf-llama2-70b
    AXIS
"""


def test_a_rate_search_parses(tmp_path):
    from fleetbench.controller.plan import load_plan

    p = tmp_path / "plan.yaml"
    p.write_text(RATE_PLAN.replace("AXIS", "rate: {min: 0.5, max: 32}\n    parallel: 256\n    probe_duration_s: 20\n"
                                           "    load: split"))
    (case,) = load_plan(p).cases
    assert isinstance(case, CapacityCase)
    assert (case.axis, case.rate_min, case.rate_max, case.rate_step, case.parallel_cap, case.probe_duration_s,
            case.load, case.rate) == ("rate", 0.5, 32.0, 0.0, 256, 20.0, "split", -1.0)
    p.write_text(RATE_PLAN.replace("AXIS", "rate: {min: 1, max: 8}\n    rate_step: 0.25"))
    (case,) = load_plan(p).cases
    assert (case.rate_min, case.rate_max, case.rate_step, case.parallel_cap) == (1.0, 8.0, 0.25, 0)
    p.write_text(RATE_PLAN.replace("AXIS", "parallel: {min: 1, max: 8}\n    rate: 4"))
    (case,) = load_plan(p).cases
    assert (case.axis, case.parallel_max, case.rate) == ("parallel", 8, 4.0)


@pytest.mark.parametrize(("axis", "message"), [
    ("rate: {min: 1, max: 8}\n    parallel: {min: 1, max: 8}",
     r"plan.yaml:\d+: cases\[0\].rate is a search range and so is parallel: search one axis"),
    ("rate: 4", r"plan.yaml:\d+: cases\[0\] needs a search axis: parallel: \{min, max\}"),
    ("parallel: 8", r"plan.yaml:\d+: cases\[0\] needs a search axis"),
    ("rate: {min: 8, max: 1}", r"cases\[0\].rate.max must be at least min"),
    ("rate: {min: 0, max: 1}", r"cases\[0\].rate.min must be a positive number of requests/s"),
    ("rate: {min: 1, max: 8}\n    step: 2", r"cases\[0\].step is for a concurrency search"),
    ("rate: {min: 1, max: 8}\n    requests_per_stream: 2", r"cases\[0\].requests_per_stream is for a concurrency"),
    ("parallel: {min: 1, max: 8}\n    rate_step: 2", r"cases\[0\].rate_step is for a rate search"),
    ("parallel: {min: 1, max: 8}\n    probe_duration_s: 2", r"cases\[0\].probe_duration_s is for a rate search"),
    ("rate: {min: 1, max: 8}\n    load: both", r"cases\[0\].load must be each or split"),
])
def test_exactly_one_search_axis(tmp_path, axis, message):
    from fleetbench.controller.plan import load_plan
    from fleetbench.errors import ConfigError

    p = tmp_path / "plan.yaml"
    p.write_text(RATE_PLAN.replace("AXIS", axis))
    with pytest.raises(ConfigError, match=message) as err:
        load_plan(p)
    assert "\n" not in str(err.value)
