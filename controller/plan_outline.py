"""What a plan will run (`ctl plan check`): per case the requests each node sends, a sweep's points, and a
duration range, so a 40-point sweep is not a surprise. Pure over a Plan.

The range is an estimate, not a promise: a closed loop of `parallel` streams sends `number` requests in
ceil(number / parallel) waves; a request takes TTFT + output tokens × TPOT, with TTFT and TPOT taken from
the bands below (a fast small model to a loaded large one); a fixed request rate bounds it from below. Each
step also spends a few seconds preparing (evalscope start, prompts) on every node. Eval cases depend on
their datasets and capacity cases on where the knee is, and are not estimated; a hardware case takes about
its `duration_s`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .plan import CapacityCase, EvalCase, HardwareCase, PerfCase, Plan, SweepCase

TTFT_BAND_S = (0.1, 2.0)  # plus prefill: input tokens at PREFILL_BAND_TPS
PREFILL_BAND_TPS = (50_000.0, 5_000.0)
TPOT_BAND_S = (0.010, 0.050)
PREPARE_S = (3.0, 15.0)  # per step: evalscope starts and builds its prompts on each node


@dataclass(frozen=True)
class CaseOutline:
    case_id: str
    case_type: str
    requests_per_node: int | None  # None: set by the datasets (eval)
    detail: str  # parallel, lengths, points
    seconds: tuple[float, float] | None  # None: not estimated

    def line(self) -> str:
        reqs = "no requests" if self.case_type == "hardware" else "requests set by the search" \
            if self.case_type == "capacity" else "requests set by the datasets" \
            if self.requests_per_node is None else f"{self.requests_per_node:,} request(s) per node"
        est = "duration not estimated" if self.seconds is None else f"~{fmt_duration(self.seconds[0])} – " \
            f"{fmt_duration(self.seconds[1])}"
        return f"{self.case_id} ({self.case_type}): {reqs}; {self.detail}; {est}"


def _perf_seconds(c: PerfCase) -> tuple[float, float]:
    waves = math.ceil(c.number / max(c.parallel, 1))
    out: list[float] = []
    for i in (0, 1):
        per_request = TTFT_BAND_S[i] + c.input_tokens / PREFILL_BAND_TPS[i] + c.output_tokens * TPOT_BAND_S[i]
        t = waves * per_request
        if c.rate and c.rate > 0:
            t = max(t, c.number / c.rate)
        out.append(t + PREPARE_S[i])
    return out[0], out[1]


def outline_case(case: PerfCase | SweepCase | EvalCase | HardwareCase | CapacityCase) -> CaseOutline:
    if isinstance(case, CapacityCase):  # the probes depend on where the knee is: not estimated
        per = "in total on one endpoint (load: split)" if case.load == "split" else "per node"
        if case.axis == "rate":
            cap = f"streams capped at {case.parallel_cap}" if case.parallel_cap else "open-loop"
            how = (f"search rate {case.rate_min:g}–{case.rate_max:g} req/s {per}, {case.probe_duration_s:g} s of "
                   f"arrivals per probe ({cap})")
        else:
            how = (f"search parallel {case.parallel_min}–{case.parallel_max} {per}, {case.requests_per_stream} "
                   "request(s) per stream per probe")
        detail = (f"{how}, boundary confirmed {case.confirm}×, in {case.input_tokens:,}/out "
                  f"{case.output_tokens:,} tokens")
        return CaseOutline(case.id, case.type, None, detail, None)
    if isinstance(case, SweepCase):
        points = case.points()
        lo = sum(_perf_seconds(p)[0] for _, p in points)
        hi = sum(_perf_seconds(p)[1] for _, p in points)
        pairs = ", ".join(f"in {i:,}/out {o:,}" for i, o in case.pairs)
        conc = ", ".join(f"p{p}×n{n}" for p, n in zip(case.parallel, case.number, strict=True))
        detail = (f"{len(points)} point(s) = {len(case.parallel)} concurrency level(s) [{conc}] × {len(case.pairs)} "
                  f"length(s) [{pairs}] × {case.loops} loop(s)")
        return CaseOutline(case.id, case.type, sum(p.number for _, p in points), detail, (lo, hi))
    if isinstance(case, HardwareCase):  # no requests: its checks run for about duration_s
        return CaseOutline(case.id, case.type, 0, f"accelerator checks, level {case.level}",
                           (float(case.duration_s) + PREPARE_S[0], float(case.duration_s) + PREPARE_S[1]))
    if isinstance(case, EvalCase):
        limit = f", at most {case.limit} per dataset" if case.limit else ""
        return CaseOutline(case.id, case.type, None, f"datasets {', '.join(case.datasets)}{limit}", None)
    rate = f", {case.rate:g} req/s" if case.rate and case.rate > 0 else ""
    detail = f"parallel {case.parallel}{rate}, in {case.input_tokens:,}/out {case.output_tokens:,} tokens"
    return CaseOutline(case.id, case.type, case.number, detail, _perf_seconds(case))


def outline(plan: Plan) -> tuple[list[CaseOutline], tuple[float, float] | None]:
    """Each case's outline and the plan's load duration range (None when no case is estimated)."""
    cases = [outline_case(c) for c in plan.cases]
    known = [c.seconds for c in cases if c.seconds is not None]
    total = (sum(s[0] for s in known), sum(s[1] for s in known)) if known else None
    return cases, total


def fmt_duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3.5 h`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


ASSUMPTIONS = (f"estimate: TTFT {TTFT_BAND_S[0]:g}–{TTFT_BAND_S[1]:g} s plus prefill, TPOT "
               f"{TPOT_BAND_S[0] * 1000:g}–{TPOT_BAND_S[1] * 1000:g} ms, {PREPARE_S[0]:g}–{PREPARE_S[1]:g} s to "
               "prepare each step; evals not included")
