"""The capacity search (controller/capacity.py) against oracles with a known knee: it finds every scope's knee
within one probe step, in a bounded number of probes, and noise can lower the answer but never raise it."""

from __future__ import annotations

import math
from collections.abc import Callable

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
