"""Job specs: data, validated field by field, never a command line.

The controller sends a spec as a JSON object; `parse_perf_spec` turns it into
a typed `PerfSpec` or raises ConfigError naming the offending field.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from fleetbench.errors import ConfigError

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
    workers: int = 1
    dataset_offset: int = 0

    def shard(self, index: int) -> PerfSpec:
        """The part of this spec that worker `index` of `workers` runs."""
        w = self.workers
        return replace(
            self, parallel=_part(self.parallel, w, index), number=_part(self.number, w, index), workers=1,
            rate=self.rate / w if self.rate > 0 else self.rate,
            # distinct prompts per worker, as evalscope itself advances the offset between runs
            dataset_offset=self.dataset_offset + sum(_part(self.number, w, i) for i in range(index)),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _part(total: int, parts: int, index: int) -> int:
    """Share `index` of `total` split into `parts` as evenly as possible (the first ones get the remainder)."""
    return total // parts + (1 if index < total % parts else 0)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def parse_perf_spec(raw: str | dict[str, Any]) -> PerfSpec:
    """Validate a perf spec; every error names its field."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"job spec is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(data, dict):
        raise ConfigError("job spec must be a JSON object")
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
        _positive_int("workers", data["workers"])
        if data["workers"] > min(data["parallel"], data["number"]):
            raise ConfigError(f"workers ({data['workers']}) cannot exceed parallel or number")
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
