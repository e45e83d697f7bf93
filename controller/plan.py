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

from .yamlfile import Located, load_yaml

CASE_TYPES = ("perf",)
CASE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EXPECT_OPS = ("min", "max")
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
    figure: str
    op: str  # "min" or "max"
    threshold: float

    def describe(self) -> str:
        return f"{self.figure} {'>=' if self.op == 'min' else '<='} {self.threshold:g}"

    def check(self, measured: float) -> bool:
        if measured != measured:  # NaN never passes
            return False
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
    type: str = "perf"
    workers: int = 1  # load-generator processes per node (issue: one Python client saturates)


@dataclass(frozen=True)
class Plan:
    name: str
    model: str
    endpoint: Endpoint
    tokenizer: str
    cases: tuple[PerfCase, ...]
    cluster_expect: tuple[Expectation, ...] = ()
    source: str = ""


PLAN_KEYS = {"version", "name", "model", "endpoint", "tokenizer", "cases", "cluster", "description"}
ENDPOINT_KEYS = {"url", "api", "api_key"}
CASE_KEYS = {"id", "type", "purpose", "rate", "parallel", "number", "input_tokens", "output_tokens", "dataset",
             "extra_args", "stream", "expect", "workers"}


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


def _case(doc: Located, where: str, raw: Any, seen: set[str]) -> PerfCase:
    data = _mapping(doc, where, raw)
    _unknown(doc, where, data, CASE_KEYS)
    case_id = _str(doc, f"{where}.id", data.get("id"))
    if not CASE_ID_RE.match(case_id):
        raise doc.error(f"{where}.id", "must be letters, digits, '-' or '_' (at most 64)")
    if case_id in seen:
        raise doc.error(f"{where}.id", f"duplicates case id {case_id!r}")
    seen.add(case_id)
    ctype = data.get("type", "perf")
    if ctype not in CASE_TYPES:
        raise doc.error(f"{where}.type", f"must be one of {', '.join(CASE_TYPES)}")
    for req in ("parallel", "number", "input_tokens", "output_tokens"):
        if req not in data:
            raise doc.error(where, f"needs {req}")
    rate = data.get("rate", -1)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not (rate == -1 or rate > 0):
        raise doc.error(f"{where}.rate", "must be a positive number of requests/s, or -1 for no limit")
    extra = data.get("extra_args", {}) or {}
    _mapping(doc, f"{where}.extra_args", extra)
    stream = data.get("stream", True)
    if not isinstance(stream, bool):
        raise doc.error(f"{where}.stream", "must be true or false")
    return PerfCase(
        id=case_id,
        parallel=_pos_int(doc, f"{where}.parallel", data["parallel"]),
        number=_pos_int(doc, f"{where}.number", data["number"]),
        input_tokens=_pos_int(doc, f"{where}.input_tokens", data["input_tokens"]),
        output_tokens=_pos_int(doc, f"{where}.output_tokens", data["output_tokens"]),
        rate=float(rate),
        dataset=str(data.get("dataset", "random")),
        extra_args=dict(extra),
        stream=stream,
        purpose=str(data.get("purpose", "")),
        expect=_expectations(doc, f"{where}.expect", data.get("expect")),
        workers=_workers(doc, where, data),
    )


def _workers(doc: Located, where: str, data: dict[str, Any]) -> int:
    workers = _pos_int(doc, f"{where}.workers", data.get("workers", 1))
    if workers > min(data["parallel"], data["number"]):
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
    if any(c.dataset == "random" for c in cases) and not tokenizer:
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
