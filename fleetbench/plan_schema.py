"""The acceptance plan, schema v1: every key, its type, its rule and its sentence when broken.

Declared once here; controller/plan.py validates a plan with `PlanDoc` and builds the objects the
controller runs from it, and `ctl plan schema` prints `plan_json_schema()` for editors
(docs/plan.md). Strict: an unknown key is an error (a typo must not silently drop an expectation).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, ConfigDict, Discriminator, Field, Strict, Tag, create_model, model_validator

from . import bounds as B
from .figure_catalog import FIGURES as CATALOGUE
from .figure_catalog import PERCENTILE_SETS, boundable
from .goodput import FIGURES as GOODPUT_FIGURES
from .goodput import SLO_PRESETS
from .schema_base import Doc, chars_at_most, did_you_mean, json_schema, one_or_list, problem, says, shape

CASE_TYPES = ("perf", "sweep", "eval", "long_context", "capacity", "hardware")
CASE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SCORE_OPS = ("min", "max", "official", "tolerance")
EXAMPLE_FIGURES = ("requests", "succeeded", "failed", "success_rate", "wall_time_s", "output_throughput_tps")
# Figures an expectation may name: the bound ones of the figure catalogue (fleetbench.figure_catalog).
FIGURES: dict[str, str] = {n: f.describe for n, f in CATALOGUE.items() if f.boundable}


def figure_names() -> dict[str, str]:
    """Every figure an expectation may bound -> what it is (the catalogue's one-line description; goodput's
    need the case's `slo`)."""
    return {n: f.describe for n, f in boundable().items()}


# --- values: each says what it must be, and its maximum (fleetbench/bounds.py, shared with the job specs) ---


def at_most(bound: float) -> AfterValidator:
    """The field's maximum, said after the field's own rule (NaN is refused too)."""

    def check(value: Any) -> Any:
        if not value <= bound:
            raise problem(f"must be at most {B.describe(bound)}")
        return value

    return AfterValidator(check)


def json_at_most(value: Any) -> Any:
    """A free-form mapping (extra_args, generation_config …): bounded as JSON, finite numbers only."""
    refused = B.json_value_problem(value)
    if refused:
        raise problem(refused)
    return value


def _raise(message: str) -> Any:
    raise problem(message)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise problem("must be a finite number")
    return value


_POSITIVE = says("must be a positive integer")
PositiveInt = Annotated[int, Strict(), Field(gt=0), _POSITIVE, at_most(B.MAX_COUNT)]
Streams = Annotated[int, Strict(), Field(gt=0), _POSITIVE, at_most(B.MAX_PARALLEL)]
Requests = Annotated[int, Strict(), Field(gt=0), _POSITIVE, at_most(B.MAX_NUMBER)]
Tokens = Annotated[int, Strict(), Field(gt=0), _POSITIVE, at_most(B.MAX_TOKENS)]
Limit = Annotated[int, Strict(), Field(gt=0), _POSITIVE, at_most(B.MAX_LIMIT)]
WholeSeconds = Annotated[int, Strict(), Field(gt=0), _POSITIVE, at_most(B.MAX_SECONDS)]
Number = Annotated[float, Strict(), says("must be a number"), AfterValidator(_finite)]
Seconds = Annotated[float, Strict(), Field(gt=0), says("must be a positive number of seconds"), at_most(B.MAX_SECONDS)]
Flag = Annotated[bool, Strict(), says("must be true or false")]
Text = Annotated[str, Strict(), Field(pattern=r"\S"), says("must be a non-empty string"), chars_at_most(B.MAX_NAME)]
Label = Annotated[str, Field(coerce_numbers_to_str=True), chars_at_most(B.MAX_TEXT)]  # free text; YAML numbers too
Secret = Annotated[str, Field(coerce_numbers_to_str=True), chars_at_most(B.MAX_SECRET)]
PathText = Annotated[str, Field(coerce_numbers_to_str=True), chars_at_most(B.MAX_PATH)]
Mapping = Annotated[dict[str, Any], says("must be a mapping"), AfterValidator(json_at_most)]
Url = Annotated[str, Strict(), Field(pattern=r"^https?://"), says(
    lambda v: "must start with http:// or https://" if isinstance(v, str) and v.strip()
    else "must be a non-empty string"), chars_at_most(B.MAX_URL)]
CaseId = Annotated[str, Strict(), Field(pattern=CASE_ID_RE.pattern), says(
    lambda v: "must be letters, digits, '-' or '_' (at most 64)" if isinstance(v, str) and v.strip()
    else "must be a non-empty string")]
Rate = Annotated[Literal[-1] | Annotated[float, Strict(), Field(gt=0)],
                 says("must be a positive number of requests/s, or -1 for no limit"), at_most(B.MAX_RATE)]
RangeRatio = Annotated[float, Strict(), Field(gt=0, le=1), says("must be a number in (0, 1]")]
Workers = Annotated[Literal["auto"] | Annotated[int, Strict(), Field(gt=0)],
                    says(lambda v: f"must be a positive integer or auto, got {v!r}"),
                    AfterValidator(lambda v: v if v == "auto" or v <= B.MAX_WORKERS
                                   else _raise(f"must be at most {B.MAX_WORKERS}"))]
StreamsList = Annotated[tuple[Streams, ...], one_or_list(
    "must be a positive integer or a non-empty list of them",
    Streams | Annotated[list[Streams], Field(min_length=1)])]
RequestsList = Annotated[tuple[Requests, ...], one_or_list(
    "must be a positive integer or a non-empty list of them",
    Requests | Annotated[list[Requests], Field(min_length=1)])]
TokensList = Annotated[tuple[Tokens, ...], one_or_list(
    "must be a positive integer or a non-empty list of them",
    Tokens | Annotated[list[Tokens], Field(min_length=1)])]
LengthPair = Annotated[tuple[Tokens, Tokens], shape(
    lambda v: isinstance(v, list) and len(v) == 2, "must be a pair [input_tokens, output_tokens]")]
Lengths = Annotated[tuple[LengthPair, ...], Field(json_schema_extra={"minItems": 1}), shape(
    lambda v: isinstance(v, list) and bool(v), "must be a non-empty list of [input_tokens, output_tokens] pairs")]
DatasetNames = Annotated[tuple[Text, ...], one_or_list(
    "must name at least one dataset", Text | Annotated[list[Text], Field(min_length=1)])]


# --- expectations ---

class Bounds(Doc):
    """Bounds on one figure (min and/or max); a figure that cannot be measured never passes."""

    model_config = ConfigDict(title="bounds", json_schema_extra={"minProperties": 1})

    min: Number | None = None
    """pass when the figure is at least this"""
    max: Number | None = None
    """pass when the figure is at most this"""

    @model_validator(mode="after")
    def _some(self) -> Bounds:
        if self.min is None and self.max is None:
            raise problem("needs min and/or max")
        return self


class _ExpectBase(Doc):
    model_config = ConfigDict(title="expectations")

    @classmethod
    def unknown_key(cls, key: Any) -> str:
        return (f"is not a known figure{did_you_mean(key, cls.model_fields)} "
                f"(e.g. {', '.join(EXAMPLE_FIGURES)}, ttft_p99_s)")

    @classmethod
    def not_mapping(cls) -> str:
        return "must be a mapping of figure to bounds (e.g. {ttft_avg_s: {max: 2.0}})"


_FIGURE_FIELDS: dict[str, Any] = {name: (Bounds | None, Field(None, description=what))
                                   for name, what in figure_names().items()}
Expect = create_model(  # one optional key per figure, so editors complete and check the names
    "Expect", __base__=_ExpectBase,
    __doc__="Figure -> bounds (docs/figures.md), judged per node and for the cluster.", **_FIGURE_FIELDS)


Score = Annotated[float, Strict(), Field(ge=0), says(
    lambda v: "must not be negative" if isinstance(v, int | float) and not isinstance(v, bool)
    else "must be a number")]


class ScoreBounds(Doc):
    """Bounds on a score (a percentage: evalscope's 0.9334 is 93.34)."""

    model_config = ConfigDict(title="score bounds", json_schema_extra={
        "anyOf": [{"required": ["min"]}, {"required": ["max"]}, {"required": ["official"]}]})

    min: Number | None = None
    """pass when the score is at least this"""
    max: Number | None = None
    """pass when the score is at most this"""
    official: Number | None = None
    """the model card's score: pass when the measured score is at most `tolerance` points below it"""
    tolerance: Score | None = None
    """points the score may fall below `official` (default 0)"""

    @model_validator(mode="after")
    def _some(self) -> ScoreBounds:
        if self.tolerance is not None and self.official is None:
            raise problem("needs official beside it", "tolerance")
        if self.min is None and self.max is None and self.official is None:
            raise problem("needs min, max or official")
        return self


def _score_form(value: Any) -> str:
    if isinstance(value, dict) and value and not set(value) <= set(SCORE_OPS):
        return "<per dataset>"
    return "<every dataset>"


class EvalExpect(Doc):
    """What an eval case expects of its scores."""

    model_config = ConfigDict(title="eval expectations")

    score: Annotated[
        Annotated[ScoreBounds, Tag("<every dataset>")] | Annotated[dict[str, ScoreBounds], Tag("<per dataset>")],
        Discriminator(_score_form)]
    """`{official: 93.1, tolerance: 1.0}` for every dataset of the case, or per dataset:
    `{aime25: {official: 93.1, tolerance: 1.0}, gpqa_diamond: {min: 70}}`"""


# --- per-request SLO (goodput) ---

class SloDoc(Doc):
    """Per-request limits: a request meets the SLO when it succeeded and is within every limit given."""

    model_config = ConfigDict(title="per-request SLO", json_schema_extra={"minProperties": 1})

    ttft_s: Seconds | None = None
    """time to first token at most this"""
    tpot_s: Seconds | None = None
    """time per output token at most this (requests with more than one output token)"""
    latency_s: Seconds | None = None
    """end-to-end latency at most this"""

    @model_validator(mode="after")
    def _some(self) -> SloDoc:
        if self.ttft_s is None and self.tpot_s is None and self.latency_s is None:
            raise problem("needs ttft_s, tpot_s and/or latency_s")
        return self


SloPreset = Annotated[str, Strict(), AfterValidator(lambda v: _preset(v)), Field(
    json_schema_extra={"enum": list(SLO_PRESETS)}), says(
    lambda v: f"must be a preset ({', '.join(SLO_PRESETS)}) or a mapping {{ttft_s, tpot_s, latency_s}}")]


def _preset(name: str) -> str:
    if name not in SLO_PRESETS:
        raise ValueError(name)
    return name


def _slo_form(value: Any) -> str:
    return "<preset>" if isinstance(value, str) else "<limits>"


Slo = Annotated[Annotated[SloPreset, Tag("<preset>")] | Annotated[SloDoc, Tag("<limits>")], Discriminator(_slo_form)]


# --- cases ---

class _Case(Doc):
    @classmethod
    def not_mapping(cls) -> str:
        return f"must be a mapping: a case with an id and a type ({', '.join(CASE_TYPES)}) and that type's keys"

    id: CaseId
    """the case's name in the report and the store: letters, digits, - and _"""
    purpose: Label | None = None
    """shown in the report"""


class _LoadCase(_Case):
    """What perf, long-context and sweep cases share."""

    rate: Rate = -1
    """requests/s (Poisson arrivals); -1 = as fast as `parallel` allows"""
    dataset: Text = "random"
    """evalscope's perf dataset; random (the default) needs the plan's tokenizer"""
    extra_args: Mapping | None = None
    """extra request fields, e.g. {ignore_eos: true}"""
    stream: Flag = True
    expect: Expect | None = None  # type: ignore[valid-type]
    """figure -> {min, max}: judged per node and for the cluster"""
    range_ratio: RangeRatio = 1.0
    """lengths uniform in [ratio × length, length]; 1 = fixed lengths"""
    fixed_output: Flag = True
    """true: every request asks for exactly output_tokens (evalscope sends min_tokens = max_tokens); false: only
    max_tokens is sent and the engine decides each length, for engines that refuse min_tokens (transformers serve)"""
    min_duration_s: Seconds | None = None
    """validity: the cluster's common window must be at least this long"""
    min_requests: Requests | None = None
    """validity: each node must complete at least this many requests"""
    max_start_skew_s: Seconds | None = None
    """validity: the nodes' first requests within this (default max(100 ms, 1 % of the window))"""
    workers: Workers = "auto"
    """load-generator processes per node; auto = each agent chooses"""
    slo: Slo | None = None
    """per-request SLO for goodput: {ttft_s, tpot_s, latency_s} or a preset name (mlperf-llama2-70b, ...)"""
    warmup_requests: Annotated[int, Strict(), Field(ge=0), says("must be a whole number, 0 or more")] = 0
    """requests each node sends before the measured window; their records are kept apart, in no figure"""

    @model_validator(mode="after")
    def _goodput_needs_slo(self) -> _LoadCase:
        if self.slo is None and self.expect is not None:
            for name in self.expect.given():
                if name in GOODPUT_FIGURES:
                    raise problem("needs the case's slo (the per-request SLO goodput is counted against)",
                                  "expect", name)
        return self


class PerfCaseDoc(_LoadCase):
    """A perf run on every node at once."""

    model_config = ConfigDict(title="perf case")

    type: Literal["perf"] = "perf"
    parallel: Streams
    """concurrent streams per node"""
    number: Requests
    """requests per node"""
    input_tokens: Tokens
    """prompt length"""
    output_tokens: Tokens
    """output length (min = max tokens)"""
    repeat: Annotated[int, Strict(), Field(ge=1, le=100), says("must be a whole number from 1 to 100")] = 1
    """runs of the case (each judged); the report gives each figure's mean and 95 % confidence interval"""
    load: Annotated[Literal["each", "split"], says("must be each or split")] = "each"
    """each: parallel, number and rate per node, each node to its endpoint; split: they are the cluster's totals,
    divided across the agents, all sending to the plan's one endpoint (a router or load balancer)"""

    @model_validator(mode="after")
    def _workers(self) -> PerfCaseDoc:
        if isinstance(self.workers, int) and self.workers > min(self.parallel, self.number):
            raise problem("cannot exceed parallel or number", "workers")
        return self


class LongContextCaseDoc(PerfCaseDoc):
    """One very long prompt (parallel 1, number 1 unless given): reported as succeeded or not, with its TTFT."""

    model_config = ConfigDict(title="long_context case")

    type: Literal["long_context"]  # type: ignore[assignment]
    parallel: Streams = 1
    number: Requests = 1


class SweepCaseDoc(_LoadCase):
    """input lengths × output lengths × (parallel, number) pairs × loops; every point on all nodes at once."""

    model_config = ConfigDict(title="sweep case")

    type: Literal["sweep"]
    parallel: StreamsList
    """concurrencies, paired with number"""
    number: RequestsList
    """requests per point: one value, or one per parallel"""
    input_tokens: TokensList | None = None
    """prompt lengths, crossed with output_tokens (or give lengths)"""
    output_tokens: TokensList | None = None
    """output lengths"""
    lengths: Lengths | None = None
    """explicit [input_tokens, output_tokens] pairs, instead of input_tokens × output_tokens"""
    loops: PositiveInt = 1
    """the whole grid, repeated"""
    workers: Workers = "auto"
    """per point: auto, or at most this many (never more than the point's parallel)"""

    @model_validator(mode="after")
    def _grid(self) -> SweepCaseDoc:
        if self.lengths is not None and (self.input_tokens is not None or self.output_tokens is not None):
            raise problem("replaces input_tokens and output_tokens: give one or the other", "lengths")
        if self.lengths is None:
            for key in ("input_tokens", "output_tokens"):
                if getattr(self, key) is None:
                    raise problem(f"needs {key} (or lengths)")
        if len(self.number) not in (1, len(self.parallel)):
            raise problem("must be one value or a list as long as parallel (they are paired)", "number")
        shapes = len(self.lengths) if self.lengths is not None else \
            len(self.input_tokens or ()) * len(self.output_tokens or ())
        points = shapes * len(self.parallel) * self.loops
        if points > B.MAX_SWEEP_POINTS:
            raise problem(f"has {points} points (lengths × parallel × loops); the limit is {B.MAX_SWEEP_POINTS}")
        return self


class ParallelRange(Doc):
    """The per-node concurrencies a capacity search may probe."""

    model_config = ConfigDict(title="parallel range")
    doc_required: ClassVar[dict[str, str]] = {"min": "is required", "max": "is required"}

    min: PositiveInt
    """the lowest concurrency per node (probed first)"""
    max: PositiveInt
    """the highest concurrency per node"""

    @model_validator(mode="after")
    def _order(self) -> ParallelRange:
        if self.max < self.min:
            raise problem("must be at least min", "max")
        return self


PositiveRate = Annotated[float, Strict(), Field(gt=0), says("must be a positive number of requests/s"),
                        at_most(B.MAX_RATE)]


class RateRange(Doc):
    """The request rates (req/s per node; the cluster's total under `load: split`) a capacity search may probe."""

    model_config = ConfigDict(title="rate range")
    doc_required: ClassVar[dict[str, str]] = {"min": "is required", "max": "is required"}

    min: PositiveRate
    """the lowest rate (probed first)"""
    max: PositiveRate
    """the highest rate"""

    @model_validator(mode="after")
    def _order(self) -> RateRange:
        if self.max < self.min:
            raise problem("must be at least min", "max")
        return self


def _range_form(value: Any) -> str:
    return "<range>" if isinstance(value, dict) else "<number>"


ParallelAxis = Annotated[Annotated[ParallelRange, Tag("<range>")] | Annotated[Streams, Tag("<number>")],
                         Discriminator(_range_form)]
RateAxis = Annotated[Annotated[RateRange, Tag("<range>")] | Annotated[Rate, Tag("<number>")],
                     Discriminator(_range_form)]


def _slo_bounds_form(value: Any) -> str:
    return "<preset>" if isinstance(value, str) else "<bounds>"


SloBounds = Annotated[Annotated[SloPreset, Tag("<preset>")] | Annotated[Expect, Tag("<bounds>")],  # type: ignore[valid-type]
                      Discriminator(_slo_bounds_form)]


class CapacityCaseDoc(_Case):
    """The highest per-node concurrency (or request rate) at which every SLO figure holds: a bracket by doubling,
    then a binary search, every probe a synchronized step on all nodes, the boundary probes repeated (`confirm`).
    Exactly one of parallel and rate is the search axis (a {min, max} range)."""

    model_config = ConfigDict(title="capacity case")

    type: Literal["capacity"]
    input_tokens: PositiveInt
    """prompt length"""
    output_tokens: PositiveInt
    """output length (min = max tokens)"""
    parallel: ParallelAxis | None = None
    """the search range per node, {min: 1, max: 256}; on a rate search, a cap on the streams (default: the probe's
    requests, so it never holds arrivals back)"""
    requests_per_stream: PositiveInt = 4
    """each probe sends parallel × this per node (a concurrency search)"""
    slo: SloBounds
    """figure -> {min, max} that must all hold (e.g. {ttft_p99_s: {max: 2.0}, tpot_p99_s: {max: 0.05}}), or an
    MLPerf server preset by name (its p99 TTFT and TPOT limits)"""
    confirm: Annotated[int, Strict(), Field(ge=1, le=10), says("must be a whole number from 1 to 10")] = 2
    """runs of the boundary probe: a concurrency is within the SLO only when every run of it is"""
    step: PositiveInt = 1
    """search resolution: stop when the highest passing and lowest failing concurrencies are this close"""
    rate: RateAxis = -1
    """requests/s (Poisson arrivals), -1 = as fast as parallel allows; or the search range {min: 1, max: 64}"""
    rate_step: PositiveRate | None = None
    """rate search resolution in req/s; default: stop when the lowest failing rate is within 5 % of the highest
    passing one"""
    probe_duration_s: Seconds = 30.0
    """a rate search: each probe sends rate × this many requests (per node; in total under load: split)"""
    load: Annotated[Literal["each", "split"], says("must be each or split")] = "each"
    """each: the searched value per node, each node to its endpoint; split: the cluster's total, divided across the
    agents, all sending to the plan's one endpoint"""
    dataset: Text = "random"
    extra_args: Mapping | None = None
    stream: Flag = True
    range_ratio: RangeRatio = 1.0
    fixed_output: Flag = True
    """true: every request asks for exactly output_tokens (evalscope sends min_tokens = max_tokens); false: only
    max_tokens is sent and the engine decides each length, for engines that refuse min_tokens (transformers serve)"""
    workers: Workers = "auto"
    """load-generator processes per node per probe (never more than the probe's parallel)"""
    warmup_requests: Annotated[int, Strict(), Field(ge=0), says("must be a whole number, 0 or more")] = 0
    """requests each node sends before every probe; in no figure"""

    @property
    def axis(self) -> str:
        """What the search varies: parallel or rate (the one given as a range)."""
        return "rate" if isinstance(self.rate, RateRange) else "parallel"

    @model_validator(mode="after")
    def _some_bound(self) -> CapacityCaseDoc:
        if not isinstance(self.slo, str) and not self.slo.given():
            raise problem("needs at least one figure bound (e.g. {ttft_p99_s: {max: 2.0}}) or a preset name", "slo")
        by_parallel, by_rate = isinstance(self.parallel, ParallelRange), isinstance(self.rate, RateRange)
        if by_parallel and by_rate:
            raise problem("is a search range and so is parallel: search one axis (give the other a number, or "
                          "leave it out)", "rate")
        if not by_parallel and not by_rate:
            raise problem("needs a search axis: parallel: {min, max} (a concurrency search) or rate: {min, max} "
                          "(a request rate search)")
        given = self.model_fields_set
        for key, wrong in (("rate_step", by_parallel), ("probe_duration_s", by_parallel),
                           ("step", by_rate), ("requests_per_stream", by_rate)):
            if wrong and key in given:
                raise problem(f"is for a {'rate' if by_parallel else 'concurrency'} search", key)
        least = self.parallel.min if isinstance(self.parallel, ParallelRange) else self.parallel
        if isinstance(self.workers, int) and least is not None and self.workers > least:
            raise problem("cannot exceed parallel (every probe runs at least that many streams)", "workers")
        return self


class DatasetArgs(Doc):
    """evalscope's dataset args (any of them); local_path is required: agents never download datasets."""

    model_config = ConfigDict(title="dataset args", extra="allow")
    doc_required: ClassVar[dict[str, str]] = {
        "local_path": "is required: the dataset's folder on the nodes (agents never download datasets)"}

    local_path: Annotated[str, Strict(), says("must be the dataset's folder on the nodes (a path)"),
                          chars_at_most(B.MAX_PATH)]
    """the dataset's folder on the nodes"""


def _args_json(args: dict[str, Any]) -> dict[str, Any]:
    """A case's dataset args (any of evalscope's keys) bounded as one JSON value."""
    json_at_most({k: a.model_dump() if isinstance(a, DatasetArgs) else a for k, a in args.items()})
    return args


class EvalCaseDoc(_Case):
    """An accuracy eval through evalscope against every node's endpoint."""

    model_config = ConfigDict(title="eval case")

    doc_needs: ClassVar[dict[str, str]] = {"datasets": "needs datasets (e.g. [aime25])"}

    type: Literal["eval"]
    datasets: DatasetNames
    """evalscope dataset names"""
    dataset_args: Annotated[dict[str, DatasetArgs], shape(lambda v: isinstance(v, dict), "must be a mapping"),
                            AfterValidator(_args_json)] | None \
        = None
    """dataset name -> evalscope's args for it (local_path required)"""
    generation_config: Mapping | None = None
    """evalscope's generation config, e.g. {temperature: 0.6, max_tokens: 32000}"""
    eval_batch_size: Streams = 1
    limit: Limit | None = None
    """samples per dataset"""
    stream: Flag = True
    timeout_s: WholeSeconds | None = None
    """per request: reasoning models answer for many minutes"""
    expect: EvalExpect | None = None

    @model_validator(mode="before")
    @classmethod
    def _args_of_datasets(cls, data: Any) -> Any:
        """Args for a dataset the case does not run: said before their own problems."""
        if isinstance(data, dict) and "datasets" in data and isinstance(data.get("dataset_args"), dict):
            names = data.get("datasets")
            names = [str(n) for n in (names if isinstance(names, list) else [names])]
            for name in data["dataset_args"]:
                if name not in names:
                    raise problem(f"is not one of this case's datasets ({', '.join(names)})", "dataset_args", name)
        return data

    @model_validator(mode="after")
    def _datasets(self) -> EvalCaseDoc:
        args = self.dataset_args or {}
        for name in self.datasets:  # agents run offline: every dataset is a local copy on the nodes
            if name not in args:
                raise problem(DatasetArgs.doc_required["local_path"], "dataset_args", name, "local_path")
        if self.expect is not None and isinstance(self.expect.score, dict):
            for name in self.expect.score:
                if name not in self.datasets:
                    raise problem(f"is not one of this case's datasets ({', '.join(self.datasets)})",
                                  "expect", "score", name)
        return self


# --- hardware ---

HARDWARE_FIGURES: dict[str, str] = {  # fleetbench.hardware.FIGURES, described for people
    "gemm_bf16_tflops": "dense bf16 matrix multiply, TFLOP/s, per accelerator",
    "memcpy_d2d_gbps": "device-to-device copy, GB/s (bytes read + written), per accelerator",
    "h2d_gbps": "host to device over PCIe (pinned), GB/s, per accelerator",
    "d2h_gbps": "device to host over PCIe (pinned), GB/s, per accelerator",
    "allreduce_busbw_gbps": "all-reduce bus bandwidth across the node's accelerators, GB/s",
    "stress_gemm_bf16_tflops": "sustained bf16 matrix multiply under stress (median window), TFLOP/s",
}
LEVEL_FIGURES: dict[str, tuple[str, ...]] = {
    "quick": (),
    "standard": ("gemm_bf16_tflops", "memcpy_d2d_gbps", "h2d_gbps", "d2h_gbps", "allreduce_busbw_gbps"),
    "stress": ("stress_gemm_bf16_tflops",),
}
REFERENCE_FIGURES = ("bf16_dense_tflops", "memory_bandwidth_gbps", "pcie_gen", "pcie_width", "interconnect_gbps")
Fraction = Annotated[float, Strict(), Field(gt=0, le=2), says("must be a number > 0 and ≤ 2")]
Tolerance = Annotated[float, Strict(), Field(gt=0, lt=1), says("must be a number > 0 and < 1")]


class HardwareBounds(Doc):
    """Bounds on one measured hardware figure, judged per accelerator."""

    model_config = ConfigDict(title="hardware bounds", json_schema_extra={"minProperties": 1})

    min_fraction_of_spec: Fraction | None = None
    """pass when the figure is at least this fraction of the SKU's datasheet figure (0.75 = 75 %)"""
    min: Number | None = None
    """pass when the figure is at least this, in the figure's unit"""

    @model_validator(mode="after")
    def _some(self) -> HardwareBounds:
        if self.min_fraction_of_spec is None and self.min is None:
            raise problem("needs min_fraction_of_spec and/or min")
        return self


class _HardwareExpectBase(Doc):
    model_config = ConfigDict(title="hardware expectations")

    @classmethod
    def unknown_key(cls, key: Any) -> str:
        return f"is not a hardware figure{did_you_mean(key, cls.model_fields)} (one of {', '.join(HARDWARE_FIGURES)})"

    @classmethod
    def not_mapping(cls) -> str:
        return "must be a mapping of figure to bounds (e.g. {gemm_bf16_tflops: {min_fraction_of_spec: 0.75}})"


_HARDWARE_FIELDS: dict[str, Any] = {name: (HardwareBounds | None, Field(None, description=what))
                                    for name, what in HARDWARE_FIGURES.items()}
HardwareExpect = create_model(
    "HardwareExpect", __base__=_HardwareExpectBase,
    __doc__="Hardware figure -> bounds, judged per accelerator (docs/plan.md).", **_HARDWARE_FIELDS)


class SkuReference(Doc):
    """The vendor's figures for one SKU, used instead of (or where there is no) shipped reference."""

    model_config = ConfigDict(title="SKU reference", json_schema_extra={"minProperties": 1})

    bf16_dense_tflops: Annotated[float, Strict(), Field(gt=0), says("must be a positive number")] | None = None
    memory_bandwidth_gbps: Annotated[float, Strict(), Field(gt=0), says("must be a positive number")] | None = None
    pcie_gen: Annotated[int, Strict(), Field(ge=1, le=6), says("must be a PCIe generation, 1 to 6")] | None = None
    pcie_width: Annotated[int, Strict(), Field(ge=1, le=32), says("must be a lane count, 1 to 32")] | None = None
    interconnect_gbps: Annotated[float, Strict(), Field(gt=0), says("must be a positive number")] | None = None


class HardwareCaseDoc(_Case):
    """Accelerator health and performance on every node, judged against each SKU's spec and against the fleet."""

    model_config = ConfigDict(title="hardware case")

    type: Literal["hardware"]
    level: Annotated[Literal["quick", "standard", "stress"], says("must be quick, standard or stress")]
    """quick: health only, no load (seconds); standard: + matmul, copies, PCIe, all-reduce (1–3 min);
    stress: sustained matmul for duration_s with clocks, temperature and power sampled"""
    duration_s: WholeSeconds = 60
    """stress: seconds of sustained load"""
    allow_busy: Flag = False
    """run standard/stress even when another process holds > 10 % of an accelerator's memory"""
    expected_count: PositiveInt | None = None
    """accelerators every node must have (else: nodes are compared with the fleet's usual count)"""
    fleet_tolerance: Tolerance = 0.10
    """an accelerator this fraction (or more) below the fleet median of its SKU, on any figure, fails"""
    matmul_size: PositiveInt = 8192
    """n of the n×n×n bf16 matrix multiply"""
    copy_mib: PositiveInt = 2048
    """MiB per copy (device-to-device, host↔device)"""
    expect: HardwareExpect | None = None  # type: ignore[valid-type]
    """figure -> {min_fraction_of_spec, min}"""
    reference: Annotated[dict[str, SkuReference], shape(lambda v: isinstance(v, dict), "must be a mapping of SKU "
                                                                                         "name to its figures")] \
        | None = None
    """SKU (as the table names it, e.g. "Ascend 910B3") -> the vendor's figures, replacing the shipped ones"""

    @model_validator(mode="after")
    def _measured_at_this_level(self) -> HardwareCaseDoc:
        """An expectation on a figure the level never measures could never be judged."""
        measured = LEVEL_FIGURES[self.level]
        given: tuple[str, ...] = self.expect.given() if self.expect is not None else ()
        for fig in given:
            if fig not in measured:
                raise problem(f"is not measured at level {self.level} (it measures "
                              f"{', '.join(measured) or 'no figure: health only'})", "expect", fig)
        return self


def _case_type(value: Any) -> str | None:
    kind = value.get("type", "perf") if isinstance(value, dict) else getattr(value, "type", "perf")
    return f"<{kind}>" if isinstance(kind, str) else None


Case = Annotated[
    Annotated[PerfCaseDoc, Tag("<perf>")] | Annotated[SweepCaseDoc, Tag("<sweep>")]
    | Annotated[EvalCaseDoc, Tag("<eval>")] | Annotated[LongContextCaseDoc, Tag("<long_context>")]
    | Annotated[CapacityCaseDoc, Tag("<capacity>")] | Annotated[HardwareCaseDoc, Tag("<hardware>")],
    Discriminator(_case_type, custom_error_type="fleetbench", custom_error_message=(
    f"must be one of {', '.join(CASE_TYPES)}"), custom_error_context={"at": ("type",)})]


# --- the plan ---

class EndpointDoc(Doc):
    """The serving engine's endpoint as seen from each node (a fleet file entry may override url)."""

    model_config = ConfigDict(title="endpoint")

    url: Url
    """e.g. http://127.0.0.1:8000/v1/completions or /v1/chat/completions"""
    api: Annotated[Literal["openai"], says("must be openai")] = "openai"
    api_key: Secret | None = None


class ClusterDoc(Doc):
    """Expectations on the cluster figures of every perf case."""

    model_config = ConfigDict(title="cluster")

    expect: Expect | None = None  # type: ignore[valid-type]


def _no_duplicates(cases: tuple[Any, ...]) -> tuple[Any, ...]:
    seen: set[str] = set()
    for i, case in enumerate(cases):
        if case.id in seen:
            raise problem(f"duplicates case id {case.id!r}", i, "id")
        seen.add(case.id)
    return cases


class PlanDoc(Doc):
    """A fleetbench acceptance plan (schema v1): what to run on every node and what to expect (docs/plan.md)."""

    model_config = ConfigDict(title="fleetbench plan")

    version: Annotated[Literal[1], says("must be 1 (this fleetbench reads plan schema v1)")] = 1
    name: Text
    """shown in the report"""
    description: Label | None = None
    """free text, for people"""
    model: Text
    """the served model name sent in requests"""
    endpoint: EndpointDoc
    tokenizer: PathText | None = None
    """the model's tokenizer path on the nodes; required by the random dataset"""
    cases: Annotated[tuple[Case, ...], Field(json_schema_extra={"minItems": 1}),
                     shape(lambda v: not isinstance(v, list) or len(v) <= B.MAX_CASES,
                           f"must have at most {B.MAX_CASES} cases"),
                     shape(lambda v: isinstance(v, list) and bool(v), "must be a non-empty list"),
                     AfterValidator(_no_duplicates)]
    """run in order, each on every node at once"""
    cluster: ClusterDoc | None = None
    percentiles: Annotated[Literal["legacy", "evalscope-1.14"], says(
        "must be legacy (10 … 99, as seed 000's evalscope printed) or evalscope-1.14 (min, 1, 5 … 99, max)")] = \
        "legacy"
    """the percentile rows of every table: legacy (10, 25, 50, 66, 75, 80, 90, 95, 98, 99) or evalscope-1.14
    (min, 1, 5, 10, 25, 50, 75, 90, 95, 99, max)"""

    @model_validator(mode="after")
    def _percentile_bounds(self) -> PlanDoc:
        """A bound percentile must be one the plan's set computes, or it could never be measured."""
        points = PERCENTILE_SETS[self.percentiles]
        where: list[tuple[Any, tuple[str | int, ...]]] = [
            (getattr(c, "expect", None), ("cases", i, "expect")) for i, c in enumerate(self.cases)]
        for i, case in enumerate(self.cases):  # a capacity search's SLO bounds figures the same way
            if isinstance(case, CapacityCaseDoc) and not isinstance(case.slo, str):
                where.append((case.slo, ("cases", i, "slo")))
        if self.cluster is not None:
            where.append((self.cluster.expect, ("cluster", "expect")))
        for expect, at in where:
            for name in (expect.given() if expect is not None and hasattr(expect, "given") else ()):
                m = re.match(r"^[a-z]+_p(\d+)_s$", name)
                if m and int(m.group(1)) not in points:
                    raise problem(f"is not in the {self.percentiles} percentile set "
                                  f"({', '.join(map(str, points))}); set `percentiles:` or bound another", *at, name)
        return self

    @model_validator(mode="after")
    def _cluster_goodput(self) -> PlanDoc:
        given: tuple[str, ...] = self.cluster.expect.given() if self.cluster and self.cluster.expect else ()
        named = [n for n in given if n in GOODPUT_FIGURES]
        if named:
            for i, case in enumerate(self.cases):
                if isinstance(case, PerfCaseDoc) and case.type == "perf" and case.slo is None:
                    raise problem(f"needs an slo: the cluster expects {named[0]}", "cases", i, "slo")
        return self

    @model_validator(mode="after")
    def _tokenizer(self) -> PlanDoc:
        if any(getattr(c, "dataset", "") == "random" for c in self.cases) and not self.tokenizer:
            raise problem("is required: the random dataset needs the model's tokenizer path", "tokenizer")
        return self


def plan_json_schema() -> dict[str, Any]:
    """The JSON Schema of a plan, for editors (`# yaml-language-server: $schema=…`)."""
    return json_schema(PlanDoc)
