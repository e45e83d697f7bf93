"""Job specs: data, validated field by field, never a command line.

The controller sends a spec as a JSON object; `parse_perf_spec` turns it into
a typed `PerfSpec` or raises ConfigError naming the offending field.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fleetbench.errors import ConfigError

if TYPE_CHECKING:
    from .evalspec import EvalSpec

JOB_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
APIS = ("openai",)
DATASETS = ("random", "openqa", "line_by_line", "share_gpt")


def check_job_id(job_id: str) -> str:
    """Job ids become folder names under the data dir: no separators, no traversal."""
    if not JOB_ID_RE.match(job_id) or job_id in (".", ".."):
        raise ConfigError(f"job_id {job_id!r} must match [A-Za-z0-9._-]{{1,128}}")
    return job_id


@dataclass(frozen=True)
class PerfSpec:
    """One `evalscope perf` run against the node's endpoint."""

    url: str
    model: str
    number: int
    parallel: int
    tokenizer_path: str = ""
    api: str = "openai"
    api_key: str = ""
    rate: float = -1.0
    input_tokens: int = 0
    output_tokens: int = 0
    dataset: str = "random"
    dataset_path: str = ""
    prefix_length: int = 0
    extra_args: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = True
    seed: int | None = None
    connect_timeout_s: int | None = None
    read_timeout_s: int | None = None
    # Load-generator processes on the node; parallel, number and rate are split between them.
    # 0: chosen on the node from its cores and the load (`auto_workers`).
    workers: int = 1
    dataset_offset: int = 0
    # lengths drawn uniformly from [ratio × length, length] (sglang's --random-range-ratio); 1 = fixed
    range_ratio: float = 1.0

    @property
    def min_input_tokens(self) -> int:
        return max(1, int(self.input_tokens * self.range_ratio)) if self.input_tokens else 0

    @property
    def min_output_tokens(self) -> int:
        return max(1, int(self.output_tokens * self.range_ratio)) if self.output_tokens else 0

    def shard(self, index: int) -> PerfSpec:
        """The part of this spec that worker `index` of `workers` runs."""
        w = self.workers
        parallel = split_in_proportion(self.parallel, [1] * w)  # even; the first ones get the remainder
        # requests in proportion to streams: every worker needs the same number of rounds (192
        # requests over 64 streams in 6 workers as 32 each made the 10-stream workers run a 4th round)
        number = split_in_proportion(self.number, parallel)
        return replace(
            self, parallel=parallel[index], number=number[index], workers=1,
            rate=self.rate * parallel[index] / self.parallel if self.rate > 0 else self.rate,
            # distinct prompts per worker, as evalscope itself advances the offset between runs
            dataset_offset=self.dataset_offset + sum(number[:index]),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


STREAMS_PER_WORKER = 64  # one process keeps TPOT within 1 % to 64-128 streams (docs/performance.md)


def auto_workers(parallel: int, number: int, cpus: int) -> int:
    """Load-generator processes for `workers: 0`: one per 64 streams, at most half the node's cores
    (the serving engine on the node needs CPU too), never more than parallel or number."""
    return max(1, min(-(-parallel // STREAMS_PER_WORKER), cpus // 2, parallel, number))


def split_in_proportion(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainder, ties to the first), summing to
    `total` exactly; every share is at least 1 when total >= len(weights)."""
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    while 0 in shares and total >= len(weights):  # a tiny weight rounded to nothing: take from the largest
        shares[shares.index(max(shares))] -= 1
        shares[shares.index(0)] = 1
    return shares


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def spec_object(raw: str | dict[str, Any]) -> dict[str, Any]:
    """A spec's JSON object (a copy), or ConfigError saying why it is not one."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"job spec is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except (TypeError, ValueError):
        raise ConfigError("job spec must be a JSON object") from None
    if not isinstance(data, dict):
        raise ConfigError("job spec must be a JSON object")
    return data


def parse_perf_spec(raw: str | dict[str, Any]) -> PerfSpec:
    """Validate a perf spec; every error names its field."""
    data = spec_object(raw)
    known = {f.name for f in fields(PerfSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown job spec field(s): {', '.join(unknown)}")
    for required in ("url", "model", "number", "parallel"):
        if required not in data:
            raise ConfigError(f"job spec field {required} is required")
    url = data["url"]
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"url must be an http:// or https:// URL, got {url!r}")
    if not isinstance(data["model"], str) or not data["model"]:
        raise ConfigError("model must be a non-empty string")
    _positive_int("number", data["number"])
    _positive_int("parallel", data["parallel"])
    for name in ("input_tokens", "output_tokens", "prefix_length"):
        if name in data:
            _non_negative_int(name, data[name])
    if "workers" in data:
        _non_negative_int("workers", data["workers"])
        if data["workers"] > min(data["parallel"], data["number"]):
            raise ConfigError(f"workers ({data['workers']}) cannot exceed parallel or number")
    ratio = data.get("range_ratio", 1.0)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
        raise ConfigError(f"range_ratio must be a number in (0, 1], got {ratio!r}")
    if "range_ratio" in data:
        data["range_ratio"] = float(ratio)
    if "dataset_offset" in data:
        _non_negative_int("dataset_offset", data["dataset_offset"])
    for name in ("connect_timeout_s", "read_timeout_s"):
        if data.get(name) is not None:
            _positive_int(name, data[name])
    rate = data.get("rate", -1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not (rate == -1 or rate > 0):
        raise ConfigError(f"rate must be a positive number of requests/s or -1 (no limit), got {rate!r}")
    data["rate"] = float(rate)
    if data.get("api", "openai") not in APIS:
        raise ConfigError(f"api must be one of {', '.join(APIS)}, got {data.get('api')!r}")
    if data.get("dataset", "random") not in DATASETS:
        raise ConfigError(f"dataset must be one of {', '.join(DATASETS)}, got {data.get('dataset')!r}")
    if data.get("dataset", "random") != "random" and not data.get("dataset_path"):
        # evalscope would fetch these from a model hub; acceptance runs are offline
        raise ConfigError(f"dataset_path is required for the {data['dataset']} dataset (a file on the node)")
    if data.get("dataset", "random") == "random":
        if not data.get("tokenizer_path"):
            raise ConfigError("tokenizer_path is required for the random dataset")
        if not data.get("input_tokens"):
            raise ConfigError("input_tokens must be a positive integer for the random dataset")
    for name in ("extra_args", "headers"):
        if name in data and not isinstance(data[name], dict):
            raise ConfigError(f"{name} must be a mapping")
    if "stream" in data and not isinstance(data["stream"], bool):
        raise ConfigError("stream must be true or false")
    return PerfSpec(**data)


# --- job kinds (values of the proto's JobKind) ------------------------------------------------

KIND_PERF, KIND_SWEEP, KIND_EVAL, KIND_LONG_CONTEXT, KIND_PREFLIGHT = 1, 2, 3, 4, 5
KIND_NAMES = {KIND_PERF: "perf", KIND_SWEEP: "sweep", KIND_EVAL: "eval", KIND_LONG_CONTEXT: "long_context",
              KIND_PREFLIGHT: "preflight"}
SWEEP_LIST_FIELDS = ("parallel", "number", "input_tokens", "output_tokens")
MAX_SWEEP_POINTS = 10_000


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: its label (kept on every record as `point`) and the perf run it is."""

    index: int
    label: str
    loop: int
    spec: PerfSpec


@dataclass(frozen=True)
class SweepSpec:
    """Lists of parallel × number (paired, as `evalscope perf --parallel 1 2 --number 10 20` pairs them),
    input lengths and output lengths, repeated `loops` times; every point is its own evalscope run, in order."""

    base: PerfSpec
    parallel: tuple[int, ...]
    number: tuple[int, ...]
    input_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    loops: int = 1

    def points(self) -> list[SweepPoint]:
        out: list[SweepPoint] = []
        for loop in range(1, self.loops + 1):
            for inp in self.input_tokens:
                for outp in self.output_tokens:
                    for par, num in zip(self.parallel, self.number, strict=True):
                        label = point_label(inp, outp, par, num, loop)
                        spec = replace(self.base, parallel=par, number=num, input_tokens=inp, output_tokens=outp)
                        out.append(SweepPoint(len(out), label, loop, spec))
        return out

    @property
    def total(self) -> int:
        return sum(p.spec.number for p in self.points())

    def to_json(self) -> str:
        data = asdict(self.base)
        data.update({k: list(getattr(self, k)) for k in SWEEP_LIST_FIELDS})
        data["loops"] = self.loops
        return json.dumps(data, sort_keys=True)


def point_label(input_tokens: int, output_tokens: int, parallel: int, number: int, loop: int) -> str:
    """A sweep point's name: stable, readable, and safe as a folder name."""
    return f"in{input_tokens}-out{output_tokens}-p{parallel}-n{number}-loop{loop}"


def parse_point_label(label: str) -> tuple[int, int, int, int, int] | None:
    """(input, output, parallel, number, loop) from a point label, None for a label of another form."""
    m = re.fullmatch(r"in(\d+)-out(\d+)-p(\d+)-n(\d+)-loop(\d+)", label)
    return tuple(int(g) for g in m.groups()) if m else None  # type: ignore[return-value]


def _int_list(name: str, value: Any) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{name} must be a non-empty list of positive integers")
    for v in values:
        _positive_int(f"{name}[]", v)
    return tuple(values)


def parse_sweep_spec(raw: str | dict[str, Any]) -> SweepSpec:
    """A sweep spec is a perf spec whose parallel, number, input_tokens and output_tokens may be lists."""
    data = spec_object(raw)
    loops = _positive_int("loops", data.pop("loops", 1))
    for required in ("parallel", "number", "input_tokens", "output_tokens"):
        if required not in data:
            raise ConfigError(f"job spec field {required} is required for a sweep")
    lists = {k: _int_list(k, data[k]) for k in SWEEP_LIST_FIELDS}
    if len(lists["parallel"]) != len(lists["number"]):
        if len(lists["number"]) != 1:
            raise ConfigError("number must be one value or a list as long as parallel (they are paired)")
        lists["number"] = lists["number"] * len(lists["parallel"])
    if data.get("workers", 1) != 1:
        raise ConfigError("workers must be 1 in a sweep (each point is one load-generator process)")
    first = {k: v[0] for k, v in lists.items()}
    base = parse_perf_spec({**data, **first})
    spec = SweepSpec(base, loops=loops, **lists)
    n = loops * len(spec.input_tokens) * len(spec.output_tokens) * len(spec.parallel)
    if n > MAX_SWEEP_POINTS:
        raise ConfigError(f"a sweep of {n} points is more than {MAX_SWEEP_POINTS}; split it")
    return spec


def parse_long_context_spec(raw: str | dict[str, Any]) -> PerfSpec:
    """A long-context check is a perf run whose point is one very long prompt: it must say plainly
    whether that request succeeded and its TTFT."""
    spec = parse_perf_spec(raw)
    if spec.dataset == "random" and spec.input_tokens < 1024:
        raise ConfigError(f"input_tokens must be at least 1024 for a long-context check, got {spec.input_tokens}")
    return spec


def parse_spec(kind: int, raw: str | dict[str, Any]) -> Any:
    """The typed spec of a job of `kind` (PerfSpec, SweepSpec, EvalSpec or PreflightSpec)."""
    if kind == KIND_PERF:
        return parse_perf_spec(raw)
    if kind == KIND_SWEEP:
        return parse_sweep_spec(raw)
    if kind == KIND_LONG_CONTEXT:
        return parse_long_context_spec(raw)
    if kind == KIND_EVAL:
        from .evalspec import parse_eval_spec

        return parse_eval_spec(raw)
    if kind == KIND_PREFLIGHT:
        return parse_preflight_spec(raw)
    raise ConfigError(f"job kind {kind} is not supported by this agent (known: {sorted(KIND_NAMES)})")


def spec_total(spec: Any) -> int:
    """Requests a job will send, for progress (0 when not known in advance)."""
    if isinstance(spec, PerfSpec):
        return spec.number
    if isinstance(spec, SweepSpec):
        return spec.total
    if isinstance(spec, PreflightSpec):
        return spec.total
    return int(getattr(spec, "total_hint", 0) or 0)


# --- preflight (kind 5): checks before any load ---------------------------------------------------

MIN_FREE_BYTES = 1 << 30  # the agent's data dir needs room for job folders, evalscope outputs and caches
PREFLIGHT_REQUEST_TIMEOUT_S = 60
PREFLIGHT_KEYS = ("perf", "evals", "min_free_bytes", "request_timeout_s", "node")


@dataclass(frozen=True)
class PreflightSpec:
    """What a node must pass before any load: evalscope importable (perf, and eval when there are eval
    cases), every tokenizer loads, every dataset is there and parses, `min_free_bytes` free in the
    agent's data dir, and the endpoint answers one request of the exact shape of each entry of `perf`
    (a perf or long-context case, or one distinct (input, output) shape of a sweep) and one tiny request
    of each eval case. Entries are (case id, the spec the case's job would get)."""

    perf: tuple[tuple[str, PerfSpec], ...] = ()
    evals: tuple[tuple[str, EvalSpec], ...] = ()
    min_free_bytes: int = MIN_FREE_BYTES
    request_timeout_s: int = PREFLIGHT_REQUEST_TIMEOUT_S  # per check request, whole reply
    node: str = ""  # the node's name, so what the checks say names it

    @property
    def total(self) -> int:
        """Requests the checks send: one per perf shape and one per eval case."""
        return len(self.perf) + len(self.evals)

    def tokenizer_paths(self) -> list[str]:
        """Each distinct tokenizer path the perf shapes use, in order."""
        return list(dict.fromkeys(s.tokenizer_path for _, s in self.perf if s.tokenizer_path))

    def to_json(self) -> str:
        return json.dumps({
            "perf": [{"case_id": c, "spec": asdict(s)} for c, s in self.perf],
            "evals": [{"case_id": c, "spec": json.loads(s.to_json())} for c, s in self.evals],
            "min_free_bytes": self.min_free_bytes, "request_timeout_s": self.request_timeout_s, "node": self.node,
        }, sort_keys=True)


def _preflight_entries(name: str, value: Any) -> list[tuple[str, dict[str, Any]]]:
    """[{"case_id": ..., "spec": {...}}, ...] as (case id, spec object) pairs; errors name the entry."""
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a list of {{case_id, spec}} objects")
    out: list[tuple[str, dict[str, Any]]] = []
    for i, entry in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be an object with case_id and spec")
        unknown = sorted(set(entry) - {"case_id", "spec"})
        if unknown:
            raise ConfigError(f"unknown field(s) in {where}: {', '.join(unknown)}")
        case_id = entry.get("case_id")
        if not isinstance(case_id, str) or not case_id:
            raise ConfigError(f"{where}.case_id must be a non-empty string")
        if not isinstance(entry.get("spec"), dict):
            raise ConfigError(f"{where}.spec must be an object")
        out.append((case_id, entry["spec"]))
    return out


def parse_preflight_spec(raw: str | dict[str, Any]) -> PreflightSpec:
    """Validate a preflight spec; every perf and eval entry is validated as its own job's spec would be,
    and every error names its field."""
    from .evalspec import parse_eval_spec

    data = spec_object(raw)
    unknown = sorted(set(data) - set(PREFLIGHT_KEYS))
    if unknown:
        raise ConfigError(f"unknown preflight spec field(s): {', '.join(unknown)}")
    perf = []
    for i, (case_id, spec) in enumerate(_preflight_entries("perf", data.get("perf", []))):
        try:
            perf.append((case_id, parse_perf_spec(spec)))
        except ConfigError as exc:
            raise ConfigError(f"perf[{i}] ({case_id}): {exc}") from None
    evals = []
    for i, (case_id, spec) in enumerate(_preflight_entries("evals", data.get("evals", []))):
        try:
            evals.append((case_id, parse_eval_spec(spec)))
        except ConfigError as exc:
            raise ConfigError(f"evals[{i}] ({case_id}): {exc}") from None
    min_free = _non_negative_int("min_free_bytes", data.get("min_free_bytes", MIN_FREE_BYTES))
    timeout = _positive_int("request_timeout_s", data.get("request_timeout_s", PREFLIGHT_REQUEST_TIMEOUT_S))
    node = data.get("node", "")
    if not isinstance(node, str):
        raise ConfigError(f"node must be a string, got {node!r}")
    return PreflightSpec(tuple(perf), tuple(evals), min_free, timeout, node)
