"""The acceptance plan (schema v1): what to run on every node and what to expect.

See docs/plan.md. Validation is strict: an unknown key is an error (a typo
must not silently drop an expectation), and every error names the file, line
and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetbench.agent.jobspec import point_label

from .yamlfile import Located, load_yaml

CASE_TYPES = ("perf", "sweep", "eval", "long_context")
CASE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EXPECT_OPS = ("min", "max")
SCORE_OPS = ("min", "max", "official", "tolerance")
# Figures an expectation may name (see fleetbench.figures.Figures and DEFINITIONS).
FIGURES = (
    "requests", "succeeded", "failed", "success_rate", "wall_time_s", "output_throughput_tps",
    "total_throughput_tps", "request_throughput_rps", "tpm_total", "tpm_output", "ttft_avg_s", "tpot_avg_s",
    "itl_avg_s", "latency_avg_s", "input_tokens_avg", "output_tokens_avg",
)
PERCENTILE_FIGURES = ("ttft", "tpot", "itl", "latency")
PERCENTILE_POINTS = (10, 25, 50, 66, 75, 80, 90, 95, 98, 99)


def figure_names() -> set[str]:
    names = set(FIGURES)
    names.update(f"{m}_p{p}_s" for m in PERCENTILE_FIGURES for p in PERCENTILE_POINTS)
    return names


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
    # validity (the measurement is INVALID, not PASS, when these do not hold)
    min_duration_s: float | None = None  # the cluster's common window must be at least this long
    min_requests: int | None = None  # each node must complete at least this many requests
    max_start_skew_s: float | None = None  # default max(100 ms, 1 % of the window)


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
    # (input, output) pairs run; input_tokens × output_tokens unless the plan gave `lengths` pairs
    lengths: tuple[tuple[int, int], ...] = ()
    workers: int = 0  # per point: 0 = auto (each agent chooses), else at most this many (never > parallel)
    min_duration_s: float | None = None  # per point, as for a perf case
    min_requests: int | None = None
    max_start_skew_s: float | None = None

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
                        range_ratio=self.range_ratio, workers=min(self.workers, par, num),
                        min_duration_s=self.min_duration_s, min_requests=self.min_requests,
                        max_start_skew_s=self.max_start_skew_s)))
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


Case = PerfCase | SweepCase | EvalCase


@dataclass(frozen=True)
class Plan:
    name: str
    model: str
    endpoint: Endpoint
    tokenizer: str
    cases: tuple[Case, ...]
    cluster_expect: tuple[Expectation, ...] = ()
    source: str = ""


PLAN_KEYS = {"version", "name", "model", "endpoint", "tokenizer", "cases", "cluster", "description"}
ENDPOINT_KEYS = {"url", "api", "api_key"}
CASE_KEYS = {"id", "type", "purpose", "rate", "parallel", "number", "input_tokens", "output_tokens", "dataset",
             "extra_args", "stream", "expect", "workers", "range_ratio", "min_duration_s", "min_requests",
             "max_start_skew_s"}
SWEEP_KEYS = CASE_KEYS | {"loops", "lengths"}
EVAL_KEYS = {"id", "type", "purpose", "datasets", "dataset_args", "generation_config", "eval_batch_size", "limit",
             "expect", "stream", "timeout_s"}


def _unknown(doc: Located, where: str, data: dict[str, Any], allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            raise doc.error(f"{where}.{key}" if where else str(key),
                            f"is not a known key (allowed: {', '.join(sorted(allowed))})")


def _mapping(doc: Located, where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise doc.error(where, "must be a mapping")
    return value


def _str(doc: Located, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise doc.error(where, "must be a non-empty string")
    return value


def _pos_int(doc: Located, where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise doc.error(where, "must be a positive integer")
    return value


def _expectations(doc: Located, where: str, value: Any) -> tuple[Expectation, ...]:
    if value is None:
        return ()
    block = _mapping(doc, where, value)
    known = figure_names()
    out = []
    for fig, bounds in block.items():
        w = f"{where}.{fig}"
        if fig not in known:
            raise doc.error(w, f"is not a known figure (e.g. {', '.join(FIGURES[:6])}, ttft_p99_s)")
        b = _mapping(doc, w, bounds)
        _unknown(doc, w, b, set(EXPECT_OPS))
        if not b:
            raise doc.error(w, "needs min and/or max")
        for op, thr in b.items():
            if isinstance(thr, bool) or not isinstance(thr, int | float):
                raise doc.error(f"{w}.{op}", "must be a number")
            out.append(Expectation(fig, op, float(thr)))
    return tuple(out)


def _case(doc: Located, where: str, raw: Any, seen: set[str]) -> Case:
    data = _mapping(doc, where, raw)
    ctype = data.get("type", "perf")
    if ctype not in CASE_TYPES:
        raise doc.error(f"{where}.type", f"must be one of {', '.join(CASE_TYPES)}")
    _unknown(doc, where, data, {"sweep": SWEEP_KEYS, "eval": EVAL_KEYS}.get(ctype, CASE_KEYS))
    case_id = _str(doc, f"{where}.id", data.get("id"))
    if not CASE_ID_RE.match(case_id):
        raise doc.error(f"{where}.id", "must be letters, digits, '-' or '_' (at most 64)")
    if case_id in seen:
        raise doc.error(f"{where}.id", f"duplicates case id {case_id!r}")
    seen.add(case_id)
    if ctype == "sweep":
        return _sweep_case(doc, where, data, case_id)
    if ctype == "eval":
        return _eval_case(doc, where, data, case_id)
    if ctype == "long_context":
        data = {"parallel": 1, "number": 1, **data}
    for req in ("parallel", "number", "input_tokens", "output_tokens"):
        if req not in data:
            raise doc.error(where, f"needs {req}")
    return PerfCase(
        id=case_id,
        parallel=_pos_int(doc, f"{where}.parallel", data["parallel"]),
        number=_pos_int(doc, f"{where}.number", data["number"]),
        input_tokens=_pos_int(doc, f"{where}.input_tokens", data["input_tokens"]),
        output_tokens=_pos_int(doc, f"{where}.output_tokens", data["output_tokens"]),
        expect=_expectations(doc, f"{where}.expect", data.get("expect")),
        workers=_workers(doc, where, data),
        type=ctype,
        **_perf_common(doc, where, data),
    )


def _perf_common(doc: Located, where: str, data: dict[str, Any]) -> dict[str, Any]:
    rate = data.get("rate", -1)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not (rate == -1 or rate > 0):
        raise doc.error(f"{where}.rate", "must be a positive number of requests/s, or -1 for no limit")
    extra = data.get("extra_args", {}) or {}
    _mapping(doc, f"{where}.extra_args", extra)
    stream = data.get("stream", True)
    if not isinstance(stream, bool):
        raise doc.error(f"{where}.stream", "must be true or false")
    validity: dict[str, Any] = {}
    for key in ("min_duration_s", "max_start_skew_s"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e7:
                raise doc.error(f"{where}.{key}", "must be a positive number of seconds")
            validity[key] = float(value)
    if "min_requests" in data:
        validity["min_requests"] = _pos_int(doc, f"{where}.min_requests", data["min_requests"])
    return {"rate": float(rate), "dataset": str(data.get("dataset", "random")), "extra_args": dict(extra),
            "stream": stream, "purpose": str(data.get("purpose", "")), "range_ratio": _ratio(doc, where, data),
            **validity}


def _ratio(doc: Located, where: str, data: dict[str, Any]) -> float:
    ratio = data.get("range_ratio", 1.0)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
        raise doc.error(f"{where}.range_ratio", "must be a number in (0, 1]")
    return float(ratio)


def _int_list(doc: Located, where: str, value: Any) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise doc.error(where, "must be a positive integer or a non-empty list of them")
    return tuple(_pos_int(doc, f"{where}[{i}]" if isinstance(value, list) else where, v)
                 for i, v in enumerate(values))


def _lengths(doc: Located, where: str, value: Any) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list) or not value:
        raise doc.error(where, "must be a non-empty list of [input_tokens, output_tokens] pairs")
    out = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2:
            raise doc.error(f"{where}[{i}]", "must be a pair [input_tokens, output_tokens]")
        out.append((_pos_int(doc, f"{where}[{i}][0]", pair[0]), _pos_int(doc, f"{where}[{i}][1]", pair[1])))
    return tuple(out)


def _sweep_case(doc: Located, where: str, data: dict[str, Any], case_id: str) -> SweepCase:
    lengths: tuple[tuple[int, int], ...] = ()
    if "lengths" in data:
        if "input_tokens" in data or "output_tokens" in data:
            raise doc.error(f"{where}.lengths", "replaces input_tokens and output_tokens: give one or the other")
        lengths = _lengths(doc, f"{where}.lengths", data["lengths"])
        data = {**data, "input_tokens": [p[0] for p in lengths], "output_tokens": [p[1] for p in lengths]}
    for req in ("parallel", "number", "input_tokens", "output_tokens"):
        if req not in data:
            raise doc.error(where, f"needs {req} (or lengths)" if req.endswith("_tokens") else f"needs {req}")
    parallel = _int_list(doc, f"{where}.parallel", data["parallel"])
    number = _int_list(doc, f"{where}.number", data["number"])
    if len(number) == 1:
        number = number * len(parallel)
    elif len(number) != len(parallel):
        raise doc.error(f"{where}.number", "must be one value or a list as long as parallel (they are paired)")
    return SweepCase(
        id=case_id, parallel=parallel, number=number,
        input_tokens=_int_list(doc, f"{where}.input_tokens", data["input_tokens"]),
        output_tokens=_int_list(doc, f"{where}.output_tokens", data["output_tokens"]),
        loops=_pos_int(doc, f"{where}.loops", data.get("loops", 1)),
        expect=_expectations(doc, f"{where}.expect", data.get("expect")),
        lengths=lengths,
        workers=_workers(doc, where, data, capped=True),
        **_perf_common(doc, where, data),
    )


def _eval_case(doc: Located, where: str, data: dict[str, Any], case_id: str) -> EvalCase:
    if "datasets" not in data:
        raise doc.error(where, "needs datasets (e.g. [aime25])")
    raw = data["datasets"]
    names = raw if isinstance(raw, list) else [raw]
    if not names:
        raise doc.error(f"{where}.datasets", "must name at least one dataset")
    datasets = tuple(_str(doc, f"{where}.datasets[{i}]", n) for i, n in enumerate(names))
    dataset_args = _mapping(doc, f"{where}.dataset_args", data.get("dataset_args") or {})
    for name in dataset_args:
        if name not in datasets:
            raise doc.error(f"{where}.dataset_args.{name}",
                            f"is not one of this case's datasets ({', '.join(datasets)})")
        _mapping(doc, f"{where}.dataset_args.{name}", dataset_args[name])
    for name in datasets:  # agents run offline: every dataset is a local copy on the nodes
        if not isinstance((dataset_args.get(name) or {}).get("local_path"), str):
            raise doc.error(f"{where}.dataset_args.{name}.local_path",
                            "is required: the dataset's folder on the nodes (agents never download datasets)")
    limit = data.get("limit")
    stream = data.get("stream", True)
    if not isinstance(stream, bool):
        raise doc.error(f"{where}.stream", "must be true or false")
    timeout = data.get("timeout_s")
    return EvalCase(
        stream=stream, timeout_s=None if timeout is None else _pos_int(doc, f"{where}.timeout_s", timeout),
        id=case_id, datasets=datasets, dataset_args=dict(dataset_args),
        generation_config=dict(_mapping(doc, f"{where}.generation_config", data.get("generation_config") or {})),
        eval_batch_size=_pos_int(doc, f"{where}.eval_batch_size", data.get("eval_batch_size", 1)),
        limit=None if limit is None else _pos_int(doc, f"{where}.limit", limit),
        purpose=str(data.get("purpose", "")),
        expect=_score_expectations(doc, f"{where}.expect", data.get("expect"), datasets),
    )


def _score_bounds(doc: Located, where: str, figure: str, value: Any) -> list[Expectation]:
    b = _mapping(doc, where, value)
    _unknown(doc, where, b, set(SCORE_OPS))
    for op, thr in b.items():
        if isinstance(thr, bool) or not isinstance(thr, int | float):
            raise doc.error(f"{where}.{op}", "must be a number")
    if "tolerance" in b and "official" not in b:
        raise doc.error(f"{where}.tolerance", "needs official beside it")
    if not set(b) - {"tolerance"}:
        raise doc.error(where, "needs min, max or official")
    out = [Expectation(figure, op, float(b[op])) for op in ("min", "max") if op in b]
    if "official" in b:
        tol = float(b.get("tolerance", 0.0))
        if tol < 0:
            raise doc.error(f"{where}.tolerance", "must not be negative")
        out.append(Expectation(figure, "official", float(b["official"]), tol))
    return out


def _score_expectations(doc: Located, where: str, value: Any, datasets: tuple[str, ...]) -> tuple[Expectation, ...]:
    """`score: {official: 93.1, tolerance: 1.0}` for every dataset of the case, or per dataset:
    `score: {aime25: {official: 93.1, tolerance: 1.0}, gpqa_diamond: {min: 70}}`. Scores are percentages."""
    if value is None:
        return ()
    block = _mapping(doc, where, value)
    _unknown(doc, where, block, {"score"})
    score = _mapping(doc, f"{where}.score", block.get("score"))
    if set(score) <= set(SCORE_OPS):
        return tuple(e for d in datasets for e in _score_bounds(doc, f"{where}.score", f"score:{d}", score))
    out: list[Expectation] = []
    for name, bounds in score.items():
        if name not in datasets:
            raise doc.error(f"{where}.score.{name}", f"is not one of this case's datasets ({', '.join(datasets)})")
        out += _score_bounds(doc, f"{where}.score.{name}", f"score:{name}", bounds)
    return tuple(out)


def _workers(doc: Located, where: str, data: dict[str, Any], capped: bool = False) -> int:
    """`auto` (the default) is 0 on the wire: each agent chooses from its cores and the load."""
    value = data.get("workers", "auto")
    if value == "auto":
        return 0
    if isinstance(value, str):
        raise doc.error(f"{where}.workers", f"must be a positive integer or auto, got {value!r}")
    workers = _pos_int(doc, f"{where}.workers", value)
    if not capped and workers > min(data["parallel"], data["number"]):  # a sweep caps it at each point
        raise doc.error(f"{where}.workers", "cannot exceed parallel or number")
    return workers


def parse_plan(doc: Located) -> Plan:
    data = _mapping(doc, "", doc.data)
    _unknown(doc, "", data, PLAN_KEYS)
    version = data.get("version", 1)
    if version != 1:
        raise doc.error("version", "must be 1 (this fleetbench reads plan schema v1)")
    for req in ("name", "model", "endpoint", "cases"):
        if req not in data:
            raise doc.error("", f"needs the key {req}")
    ep = _mapping(doc, "endpoint", data["endpoint"])
    _unknown(doc, "endpoint", ep, ENDPOINT_KEYS)
    url = _str(doc, "endpoint.url", ep.get("url"))
    if not url.startswith(("http://", "https://")):
        raise doc.error("endpoint.url", "must start with http:// or https://")
    api = ep.get("api", "openai")
    if api != "openai":
        raise doc.error("endpoint.api", "must be openai")
    cases_raw = data["cases"]
    if not isinstance(cases_raw, list) or not cases_raw:
        raise doc.error("cases", "must be a non-empty list")
    seen: set[str] = set()
    cases = tuple(_case(doc, f"cases[{i}]", c, seen) for i, c in enumerate(cases_raw))
    tokenizer = data.get("tokenizer", "")
    if any(getattr(c, "dataset", "") == "random" for c in cases) and not tokenizer:
        raise doc.error("tokenizer", "is required: the random dataset needs the model's tokenizer path")
    cluster = _mapping(doc, "cluster", data.get("cluster") or {})
    _unknown(doc, "cluster", cluster, {"expect"})
    return Plan(
        name=_str(doc, "name", data["name"]),
        model=_str(doc, "model", data["model"]),
        endpoint=Endpoint(url=url, api=api, api_key=str(ep.get("api_key", "") or "")),
        tokenizer=str(tokenizer),
        cases=cases,
        cluster_expect=_expectations(doc, "cluster.expect", cluster.get("expect")),
        source=doc.text,
    )


def load_plan(path: Path) -> Plan:
    return parse_plan(load_yaml(path, "plan"))
