"""The acceptance plan (schema v1): what to run on every node and what to expect.

See docs/plan.md. The schema (every key, rule and error sentence) is declared once, in
fleetbench.plan_schema; this module validates a YAML document with it and builds the objects
the controller runs. Validation is strict: an unknown key is an error (a typo must not
silently drop an expectation), and every error names the file, line and field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from fleetbench.figure_catalog import PERCENTILE_SETS
from fleetbench.goodput import SLO_PRESETS, Slo, preset_slo
from fleetbench.jobs_schema import point_label
from fleetbench.plan_schema import (
    CapacityCaseDoc,
    EvalCaseDoc,
    HardwareCaseDoc,
    ParallelRange,
    PerfCaseDoc,
    PlanDoc,
    RateRange,
    ScoreBounds,
    SloDoc,
    SweepCaseDoc,
    plan_json_schema,
)

from .yamlfile import Located, load_yaml

__all__ = ["CapacityCase", "Case", "Endpoint", "EvalCase", "Expectation", "HardwareCase", "PerfCase", "Plan",
           "SweepCase", "load_plan", "parse_plan", "plan_json_schema"]


@dataclass(frozen=True)
class Expectation:
    figure: str  # a figure name, or "score:<dataset>" for an eval case
    op: str  # "min", "max", or "official" (threshold = the official score, within `tolerance` below it)
    threshold: float
    tolerance: float = 0.0

    def describe(self) -> str:
        if self.op == "official":
            return f"{self.figure} >= {self.threshold:g} - {self.tolerance:g} (official {self.threshold:g})"
        return f"{self.figure} {'>=' if self.op == 'min' else '<='} {self.threshold:g}"

    def check(self, measured: float) -> bool:
        if measured != measured:  # NaN never passes
            return False
        if self.op == "official":
            # acceptance asks "is this deployment degraded?": at most `tolerance` points below the official score
            return measured >= self.threshold - self.tolerance - 1e-9
        return measured >= self.threshold if self.op == "min" else measured <= self.threshold


@dataclass(frozen=True)
class Endpoint:
    url: str
    api: str = "openai"
    api_key: str = ""


@dataclass(frozen=True)
class PerfCase:
    id: str
    parallel: int
    number: int
    input_tokens: int
    output_tokens: int
    rate: float = -1.0
    dataset: str = "random"
    extra_args: dict[str, Any] = field(default_factory=dict)
    stream: bool = True
    purpose: str = ""
    expect: tuple[Expectation, ...] = ()
    type: str = "perf"  # or "long_context": one very long prompt, reported as succeeded or not with its TTFT
    workers: int = 0  # load-generator processes per node; 0 = auto, chosen by each agent
    range_ratio: float = 1.0  # lengths uniform in [ratio × length, length]; 1 = fixed lengths
    fixed_output: bool = True  # False: only max_tokens is sent, the engine decides each output length
    # validity (the measurement is INVALID, not PASS, when these do not hold)
    min_duration_s: float | None = None  # the cluster's common window must be at least this long
    min_requests: int | None = None  # each node must complete at least this many requests
    max_start_skew_s: float | None = None  # default max(100 ms, 1 % of the window)
    slo: Slo | None = None  # per-request SLO: goodput figures are computed when given
    warmup_requests: int = 0  # per node, before the measured window; their records are in no figure
    load: str = "each"  # "split": parallel, number and rate are the cluster's totals, divided across the agents
    repeat: int = 1  # runs of the case, each a step "<case>@rep<k>"; the report gives mean and 95 % CI
    loop: int = 0  # a sweep point's loop (1, 2, ...); 0 for a case of its own


@dataclass(frozen=True)
class SweepCase:
    """input lengths × output lengths × (parallel, number) pairs × loops; each point is run on every
    node at one common instant, so each point's cluster figure is a real simultaneous load."""

    id: str
    parallel: tuple[int, ...]
    number: tuple[int, ...]
    input_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    loops: int = 1
    rate: float = -1.0
    dataset: str = "random"
    extra_args: dict[str, Any] = field(default_factory=dict)
    stream: bool = True
    purpose: str = ""
    expect: tuple[Expectation, ...] = ()  # judged at every point
    type: str = "sweep"
    range_ratio: float = 1.0
    fixed_output: bool = True
    # (input, output) pairs run; input_tokens × output_tokens unless the plan gave `lengths` pairs
    lengths: tuple[tuple[int, int], ...] = ()
    workers: int = 0  # per point: 0 = auto (each agent chooses), else at most this many (never > parallel)
    min_duration_s: float | None = None  # per point, as for a perf case
    min_requests: int | None = None
    max_start_skew_s: float | None = None
    slo: Slo | None = None
    warmup_requests: int = 0  # per point

    @property
    def pairs(self) -> tuple[tuple[int, int], ...]:
        return self.lengths or tuple((i, o) for i in self.input_tokens for o in self.output_tokens)

    def points(self) -> list[tuple[str, PerfCase]]:
        """(label, the perf run of that point), in run order: loop, (input, output), then (parallel, number)."""
        out = []
        for loop in range(1, self.loops + 1):
            for inp, outp in self.pairs:
                for par, num in zip(self.parallel, self.number, strict=True):
                    label = point_label(inp, outp, par, num, loop)
                    out.append((label, PerfCase(
                        id=f"{self.id}@{label}", parallel=par, number=num, input_tokens=inp,
                        output_tokens=outp, rate=self.rate, dataset=self.dataset, extra_args=self.extra_args,
                        stream=self.stream, purpose=self.purpose, expect=self.expect,
                        range_ratio=self.range_ratio, fixed_output=self.fixed_output,
                        workers=min(self.workers, par, num),
                        min_duration_s=self.min_duration_s, min_requests=self.min_requests,
                        max_start_skew_s=self.max_start_skew_s, slo=self.slo,
                        warmup_requests=self.warmup_requests, loop=loop)))
        return out


@dataclass(frozen=True)
class EvalCase:
    """An accuracy eval through evalscope on every node's endpoint; the score is evalscope's."""

    id: str
    datasets: tuple[str, ...]
    dataset_args: dict[str, Any] = field(default_factory=dict)
    generation_config: dict[str, Any] = field(default_factory=dict)
    eval_batch_size: int = 1
    limit: int | None = None
    purpose: str = ""
    expect: tuple[Expectation, ...] = ()  # on "score:<dataset>"
    type: str = "eval"
    stream: bool = True
    timeout_s: int | None = None  # per request; reasoning models answer for many minutes
    number: int = 0  # requests are not known in advance (progress uses the agent's total)


def rate_text(value: float) -> str:
    """A rate as a step or job id may hold it ([A-Za-z0-9._-]): positional, as short as it is exact (12.5, 1000000,
    0.0000001; never 1e+06)."""
    text = format(Decimal(repr(float(value))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class CapacityCase:
    """The highest per-node concurrency in [parallel_min, parallel_max] (axis "parallel"), or request rate in
    [rate_min, rate_max] (axis "rate"), at which every SLO bound holds, for each node and for the cluster
    (controller/capacity.py searches, controller/orchestrator.py runs the probes). Under `load: split` the
    searched value is the cluster's total, divided across the agents, and only the cluster is searched."""

    id: str
    input_tokens: int
    output_tokens: int
    parallel_min: int
    parallel_max: int
    slo: tuple[Expectation, ...]  # every bound must hold at a concurrency for it to count
    axis: str = "parallel"  # or "rate"
    rate_min: float = 0.0
    rate_max: float = 0.0
    rate_step: float = 0.0  # 0: the relative resolution (controller/capacity.RATE_RATIO)
    probe_duration_s: float = 30.0  # a rate probe sends rate × this
    parallel_cap: int = 0  # a rate probe's streams; 0: its requests (never holds arrivals back)
    load: str = "each"
    requests_per_stream: int = 4
    confirm: int = 2
    step: int = 1
    rate: float = -1.0
    dataset: str = "random"
    extra_args: dict[str, Any] = field(default_factory=dict)
    stream: bool = True
    range_ratio: float = 1.0
    fixed_output: bool = True
    workers: int = 0
    warmup_requests: int = 0
    purpose: str = ""
    slo_preset: str = ""
    type: str = "capacity"
    expect: tuple[Expectation, ...] = ()  # capacity cases are judged on their SLO at each probe

    @property
    def request_slo(self) -> Slo:
        """The per-request SLO goodput is counted against: the tightest max bound the SLO puts on TTFT, TPOT and
        latency figures (a p99 TTFT limit of 2 s: each request's TTFT at most 2 s)."""
        def limit(metric: str) -> float | None:
            values = [e.threshold for e in self.slo if e.op == "max" and e.figure.startswith(metric + "_")]
            return min(values) if values else None

        return Slo(ttft_s=limit("ttft"), tpot_s=limit("tpot"), latency_s=limit("latency"))

    @property
    def lo(self) -> int | float:
        return self.rate_min if self.axis == "rate" else self.parallel_min

    @property
    def hi(self) -> int | float:
        return self.rate_max if self.axis == "rate" else self.parallel_max

    def probe(self, value: int | float, attempt: int) -> PerfCase:
        """The perf run of one probe: on a concurrency search `value` streams, value × requests_per_stream
        requests; on a rate search `value` req/s for about probe_duration_s (value × that many requests), the
        streams capped at parallel_cap or, by default, the requests (open-loop arrivals, never held back). Per
        node, or the cluster's totals under `load: split` (the orchestrator divides them)."""
        if self.axis == "rate":
            label = f"r{rate_text(value)}-try{attempt}"
            number = max(1, math.ceil(value * self.probe_duration_s - 1e-9))
            parallel, rate = (self.parallel_cap or number), float(value)
        else:
            label = f"p{value}-try{attempt}"
            parallel, number, rate = int(value), int(value) * self.requests_per_stream, self.rate
        return PerfCase(id=f"{self.id}@{label}", parallel=parallel, number=number, load=self.load,
                        input_tokens=self.input_tokens, output_tokens=self.output_tokens, rate=rate,
                        dataset=self.dataset, extra_args=self.extra_args, stream=self.stream, purpose=self.purpose,
                        expect=self.slo, range_ratio=self.range_ratio, fixed_output=self.fixed_output,
                        workers=min(self.workers, parallel, number) if self.workers else 0, slo=self.request_slo,
                        warmup_requests=self.warmup_requests)


@dataclass(frozen=True)
class HardwareCase:
    """Accelerator checks on every node (agent/hardware_job.py), judged against the SKU's spec and the fleet
    (fleetbench.hardware.judge_hardware)."""

    id: str
    level: str  # quick | standard | stress
    duration_s: int = 60
    allow_busy: bool = False
    expected_count: int | None = None
    fleet_tolerance: float = 0.10
    matmul_size: int = 8192
    copy_mib: int = 2048
    # figure -> (min_fraction_of_spec, min)
    expect: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    reference: dict[str, dict[str, float]] = field(default_factory=dict)  # SKU -> {reference figure: value}
    purpose: str = ""
    type: str = "hardware"
    number: int = 0  # no requests


Case = PerfCase | SweepCase | EvalCase | CapacityCase | HardwareCase


@dataclass(frozen=True)
class Plan:
    name: str
    model: str
    endpoint: Endpoint
    tokenizer: str
    cases: tuple[Case, ...]
    cluster_expect: tuple[Expectation, ...] = ()
    source: str = ""
    # the percentiles every figure holds (fleetbench.figure_catalog.PERCENTILE_SETS[plan's `percentiles`])
    percentiles: tuple[int, ...] = PERCENTILE_SETS["legacy"]


def _expectations(expect: Any) -> tuple[Expectation, ...]:
    """Figure bounds in the file's order."""
    if expect is None:
        return ()
    out = []
    for fig in expect.given():
        bounds = getattr(expect, fig)
        out += [Expectation(fig, op, float(getattr(bounds, op))) for op in bounds.given()
                if getattr(bounds, op) is not None]
    return tuple(out)


def _score_bounds(figure: str, b: ScoreBounds) -> list[Expectation]:
    out = [Expectation(figure, op, float(v)) for op, v in (("min", b.min), ("max", b.max)) if v is not None]
    if b.official is not None:
        out.append(Expectation(figure, "official", float(b.official), float(b.tolerance or 0.0)))
    return out


def _score_expectations(case: EvalCaseDoc) -> tuple[Expectation, ...]:
    """`score: {official: 93.1, tolerance: 1.0}` for every dataset of the case, or per dataset:
    `score: {aime25: {official: 93.1, tolerance: 1.0}, gpqa_diamond: {min: 70}}`. Scores are percentages."""
    if case.expect is None:
        return ()
    score = case.expect.score
    if isinstance(score, ScoreBounds):
        return tuple(e for d in case.datasets for e in _score_bounds(f"score:{d}", score))
    return tuple(e for name, bounds in score.items() for e in _score_bounds(f"score:{name}", bounds))


def _load_common(case: PerfCaseDoc | SweepCaseDoc) -> dict[str, Any]:
    return {"id": case.id, "rate": float(case.rate), "dataset": case.dataset, "extra_args": dict(case.extra_args or {}),
            "stream": case.stream, "purpose": case.purpose or "", "expect": _expectations(case.expect),
            "range_ratio": float(case.range_ratio), "fixed_output": case.fixed_output,
            "workers": 0 if case.workers == "auto" else case.workers,
            "min_duration_s": case.min_duration_s, "min_requests": case.min_requests,
            "max_start_skew_s": case.max_start_skew_s, "slo": _slo(case.slo),
            "warmup_requests": case.warmup_requests}


def _slo(doc: SloDoc | str | None) -> Slo | None:
    if doc is None:
        return None
    if isinstance(doc, str):
        return preset_slo(doc)
    return Slo(ttft_s=doc.ttft_s, tpot_s=doc.tpot_s, latency_s=doc.latency_s)


def _case(doc: Any) -> Case:
    if isinstance(doc, CapacityCaseDoc):
        if isinstance(doc.slo, str):
            ttft, tpot = SLO_PRESETS[doc.slo]
            bounds: tuple[Expectation, ...] = (Expectation("ttft_p99_s", "max", ttft),
                                               Expectation("tpot_p99_s", "max", tpot))
        else:
            bounds = _expectations(doc.slo)
        par, rate = doc.parallel, doc.rate
        return CapacityCase(
            id=doc.id, input_tokens=doc.input_tokens, output_tokens=doc.output_tokens,
            parallel_min=par.min if isinstance(par, ParallelRange) else 0,
            parallel_max=par.max if isinstance(par, ParallelRange) else 0,
            axis=doc.axis, rate_min=float(rate.min) if isinstance(rate, RateRange) else 0.0,
            rate_max=float(rate.max) if isinstance(rate, RateRange) else 0.0, rate_step=float(doc.rate_step or 0.0),
            probe_duration_s=float(doc.probe_duration_s), parallel_cap=par if isinstance(par, int) else 0,
            load=doc.load, slo=bounds, requests_per_stream=doc.requests_per_stream,
            confirm=doc.confirm, step=doc.step, rate=-1.0 if isinstance(rate, RateRange) else float(rate),
            dataset=doc.dataset,
            extra_args=dict(doc.extra_args or {}), stream=doc.stream, range_ratio=float(doc.range_ratio),
            fixed_output=doc.fixed_output,
            workers=0 if doc.workers == "auto" else doc.workers, warmup_requests=doc.warmup_requests,
            purpose=doc.purpose or "", slo_preset=doc.slo if isinstance(doc.slo, str) else "")
    if isinstance(doc, SweepCaseDoc):
        lengths = doc.lengths or ()
        inputs = tuple(p[0] for p in lengths) if lengths else doc.input_tokens
        outputs = tuple(p[1] for p in lengths) if lengths else doc.output_tokens
        assert inputs is not None and outputs is not None  # the schema requires them or lengths
        number = doc.number * len(doc.parallel) if len(doc.number) == 1 else doc.number
        return SweepCase(parallel=doc.parallel, number=number, input_tokens=inputs, output_tokens=outputs,
                         loops=doc.loops, lengths=tuple(lengths), **_load_common(doc))
    if isinstance(doc, EvalCaseDoc):
        return EvalCase(id=doc.id, datasets=doc.datasets,
                        dataset_args={k: v.model_dump() for k, v in (doc.dataset_args or {}).items()},
                        generation_config=dict(doc.generation_config or {}), eval_batch_size=doc.eval_batch_size,
                        limit=doc.limit, purpose=doc.purpose or "", expect=_score_expectations(doc),
                        stream=doc.stream, timeout_s=doc.timeout_s)
    if isinstance(doc, HardwareCaseDoc):
        expect: dict[str, tuple[float | None, float | None]] = {} if doc.expect is None else {
            fig: (getattr(doc.expect, fig).min_fraction_of_spec, getattr(doc.expect, fig).min)
            for fig in doc.expect.given() if getattr(doc.expect, fig) is not None}
        reference = {sku: {k: float(v) for k, v in ref.model_dump().items() if v is not None}
                     for sku, ref in (doc.reference or {}).items()}
        return HardwareCase(id=doc.id, level=doc.level, duration_s=doc.duration_s, allow_busy=doc.allow_busy,
                            expected_count=doc.expected_count, fleet_tolerance=doc.fleet_tolerance,
                            matmul_size=doc.matmul_size, copy_mib=doc.copy_mib, expect=expect, reference=reference,
                            purpose=doc.purpose or "")
    return PerfCase(parallel=doc.parallel, number=doc.number, input_tokens=doc.input_tokens,
                    output_tokens=doc.output_tokens, type=doc.type, load=doc.load, repeat=doc.repeat,
                    **_load_common(doc))


def parse_plan(doc: Located) -> Plan:
    """The plan of a YAML document, validated by the schema (fleetbench.plan_schema): every problem is
    a ConfigError naming the file, line and field."""
    plan = doc.validate(PlanDoc)
    ep = plan.endpoint
    return Plan(
        name=plan.name,
        model=plan.model,
        endpoint=Endpoint(url=ep.url, api=ep.api, api_key=ep.api_key or ""),
        tokenizer=plan.tokenizer or "",
        cases=tuple(_case(c) for c in plan.cases),
        cluster_expect=_expectations(plan.cluster.expect if plan.cluster else None),
        source=doc.text,
        percentiles=PERCENTILE_SETS[plan.percentiles],
    )


def load_plan(path: Path) -> Plan:
    return parse_plan(load_yaml(path, "plan"))
