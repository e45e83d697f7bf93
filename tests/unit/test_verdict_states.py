"""Verdict states, validity checks and the figures in reasons: the rules an operator signs against."""

from __future__ import annotations

import math

from fleetbench.controller.validity import StepFacts, checks, eval_checks, skew_bound
from fleetbench.controller.verdict import EXIT_CODES, Reason, State, fmt_value, run_state, worst
from fleetbench.figures import compute_figures
from fleetbench.records import RequestRecord


def rec(i: int, start: float, ok: bool = True) -> RequestRecord:
    return RequestRecord(index=i, start_time=start, end_time=start + 1.0, success=ok, ttft_s=0.1 if ok else 0.0,
                         latency_s=1.0 if ok else 0.0, input_tokens=10 if ok else 0, output_tokens=5 if ok else 0,
                         tpot_s=0.2 if ok else 0.0, itl_s=(0.2,) * 4 if ok else (), error="" if ok else "HTTP 429: x")


def facts(starts: dict[str, float], **kw: object) -> StepFacts:
    figs = {n: compute_figures([rec(0, s), rec(1, s + 0.5)]) for n, s in starts.items()}
    union = compute_figures([rec(i, s) for i, s in enumerate(starts.values())] +
                            [rec(9, s + 9.0) for s in starts.values()])
    firsts = [f.window_start for f in figs.values()]
    base: dict[str, object] = dict(nodes=list(starts) + list(kw.pop("missing", [])), with_results=figs,
                                   errors=kw.pop("errors", {}), cluster=union,
                                   start_skew_s=max(firsts) - min(firsts), saturated=kw.pop("saturated", {}),
                                   rtt_s={n: 0.002 for n in starts})
    base.update(kw)
    return StepFacts(**base)  # type: ignore[arg-type]


def failed(cs: list) -> set[tuple[str, str]]:
    return {(c.name, c.scope) for c in cs if not c.passed}


def test_exit_codes_follow_the_contract():
    assert [EXIT_CODES[s] for s in State] == [0, 1, 2, 3, 3]


def test_nodes_started_together_is_valid():
    assert failed(checks(facts({"n1": 100.0, "n2": 100.004, "n3": 100.002}))) == set()


def test_a_node_that_missed_the_start_makes_the_step_invalid():
    cs = checks(facts({"n1": 100.0, "n2": 100.0, "n3": 101.0}))
    skew = next(c for c in cs if c.name == "start_skew")
    assert not skew.passed and skew.measured == "1.000 s" and skew.bound == "<= 110.0 ms"  # 1 % of the 11 s window


def test_skew_bound_is_one_percent_of_a_long_window():
    assert skew_bound(5.0) == 0.1
    assert math.isclose(skew_bound(60.0), 0.6)
    assert math.isclose(skew_bound(600.0), 6.0)
    assert skew_bound(math.nan) == 0.1
    assert skew_bound(600.0, override=0.05) == 0.05


def test_a_missing_node_saturation_and_bounds_are_checks():
    cs = checks(facts({"n1": 100.0, "n2": 100.0}, missing=["n3"], errors={"n3": "job failed: boom"},
                      saturated={"n2": "CPU 100% of a core"}, min_requests=3, min_duration_s=60.0))
    assert failed(cs) == {("nodes", "cluster"), ("load_generator", "n2"), ("min_requests", "n1"),
                          ("min_requests", "n2"), ("min_duration", "cluster")}
    nodes = next(c for c in cs if c.name == "nodes")
    assert nodes.measured == "2 of 3 nodes" and "n3: job failed: boom" in nodes.detail


def test_slow_clock_round_trip_is_flagged():
    f = facts({"n1": 100.0, "n2": 100.0})
    f = StepFacts(**{**f.__dict__, "rtt_s": {"n1": 0.002, "n2": 0.300}})
    assert failed(checks(f)) == {("clock_uncertainty", "n2")}


def test_eval_checks_need_every_node_scored():
    cs = eval_checks(["n1", "n2", "n3"], {"n1": 5, "n2": 0}, {"n3": "unreachable"})
    assert failed(cs) == {("nodes", "cluster"), ("node_results", "n2")}


def test_run_state_never_passes_by_default():
    assert run_state([]) is State.INVALID  # nothing judged
    assert run_state([State.PASS, State.PASS]) is State.PASS
    assert run_state([State.PASS, State.INVALID]) is State.INVALID
    assert run_state([State.INVALID, State.FAIL]) is State.FAIL  # a broken contract is definite
    assert run_state([State.FAIL, State.ERROR]) is State.ERROR
    assert run_state([State.PASS], interrupted=True) is State.INCOMPLETE
    assert worst([State.FAIL, State.INVALID, State.PASS]) is State.INVALID


def test_figures_are_formatted_for_people():
    assert fmt_value(1_000_000.0) == "1,000,000"
    assert fmt_value(0.0123, "s") == "12.3 ms"
    assert fmt_value(2.5, "s") == "2.500 s"
    assert fmt_value(math.nan) == "n/a"
    assert fmt_value(0.9375) == "0.9375"
    line = Reason(State.FAIL, "perf", "n1", "success_rate — HTTP 422 × 384", "0", ">= 1").line()
    assert line == "FAIL perf n1: success_rate — HTTP 422 × 384: measured 0, expected >= 1"
    assert "nan" not in line and "e+" not in line
