"""Eval job specs: `evalscope eval` against the node's endpoint, as validated data.

The agent never imports evalscope (its idle footprint), so benchmark names are
checked against a static list of common ones plus a safe-name pattern; an
unknown but well-formed name reaches evalscope in the job's child process,
which fails the job with evalscope's own "not found" message before any
request is sent. Datasets always come from local paths: the agent runs
offline.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleetbench.errors import ConfigError

from .jobspec import spec_object

# evalscope 1.14's names of common text benchmarks (evalscope/benchmarks/_index.json).
KNOWN_DATASETS = (
    "aime24", "aime25", "aime26", "amc", "arc", "bbh", "ceval", "cmmlu", "competition_math", "drop",
    "general_mcq", "general_qa", "gpqa_diamond", "gsm8k", "hellaswag", "hle", "humaneval", "ifeval",
    "iquiz", "live_code_bench", "math_500", "mbpp", "minerva_math", "mmlu", "mmlu_pro", "mmlu_redux",
    "musr", "olympiad_bench", "process_bench", "race", "simple_qa", "super_gpqa", "trivia_qa", "truthful_qa",
    "winogrande",
)
# Names people write for a benchmark that no evalscope release uses ("gpqa" is left alone: releases
# before 1.0 named it so, with the subset gpqa_diamond).
DATASET_SPELLINGS = {
    "math500": "math_500", "math-500": "math_500", "aime2024": "aime24", "aime2025": "aime25",
    "mmlu-pro": "mmlu_pro", "mmlupro": "mmlu_pro", "livecodebench": "live_code_bench",
}
DATASET_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# BenchmarkMeta fields a spec may override per dataset. evalscope silently ignores a key it does
# not know, so a typo (`local_pth`) would quietly send it to a model hub: unknown keys are rejected.
# Hub-related fields (dataset_id, hf_dataset_id, revisions, force_redownload) are left out on purpose.
DATASET_ARG_TYPES: dict[str, type | tuple[type, ...]] = {
    "local_path": str,
    "subset_list": list,
    "default_subset": str,
    "few_shot_num": int,
    "few_shot_random": bool,
    "train_split": str,
    "eval_split": str,
    "prompt_template": str,
    "few_shot_prompt_template": str,
    "system_prompt": str,
    "query_template": str,
    "filters": dict,
    "metric_list": list,
    "aggregation": str,
    "shuffle": bool,
    "shuffle_choices": bool,
    "review_timeout": (int, float),
    "extra_params": dict,
}

# evalscope's GenerateConfig fields a spec may set; `stream` and `timeout` come from the spec's own fields.
GENERATION_KEYS = (
    "max_tokens", "temperature", "top_p", "top_k", "seed", "stop_seqs", "frequency_penalty", "presence_penalty",
    "repetition_penalty", "logit_bias", "do_sample", "logprobs", "top_logprobs", "reasoning_effort",
    "reasoning_tokens", "extra_body", "extra_query", "extra_headers", "retries", "retry_interval",
)


@dataclass(frozen=True)
class EvalSpec:
    """One `evalscope eval` run: datasets from local paths, scored by evalscope itself."""

    url: str  # the OpenAI base URL, e.g. http://10.0.0.5:8000/v1
    model: str
    datasets: tuple[str, ...]
    dataset_args: dict[str, dict[str, Any]]
    api_key: str = ""
    generation_config: dict[str, Any] = field(default_factory=dict)
    eval_batch_size: int = 1
    limit: int | None = None  # samples per subset, as evalscope applies it
    repeats: int = 1
    timeout_s: int | None = None  # per request
    stream: bool = False
    seed: int | None = None
    ignore_errors: bool = False  # score the samples that succeeded instead of failing on a request error

    @property
    def total_hint(self) -> int:
        """Samples the job will evaluate, when the spec alone says so (limit × datasets), else 0;
        the job process reports the exact count once evalscope has loaded the datasets."""
        if self.limit is None:
            return 0
        return self.limit * len(self.datasets) * self.repeats

    def local_paths(self) -> dict[str, str]:
        """Each dataset's local path."""
        return {name: str(self.dataset_args[name]["local_path"]) for name in self.datasets}

    def to_json(self) -> str:
        data = asdict(self)
        data["datasets"] = list(self.datasets)
        return json.dumps(data, sort_keys=True)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def _number(name: str, value: Any, low: float, high: float = math.inf, low_open: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
        and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = f"{'>' if low_open else '≥'} {low:g}" + (f" and ≤ {high:g}" if high != math.inf else "")
        raise ConfigError(f"{name} must be a number {bound}, got {value!r}")
    return float(value)


def base_url(url: Any) -> str:
    """The OpenAI base URL evalscope wants; a full .../chat/completions or .../completions URL is cut back."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"url must be an http:// or https:// URL, got {url!r}")
    out = url.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        out = out.removesuffix(suffix)
    return out


def _dataset_name(index: int, name: Any) -> str:
    where = f"datasets[{index}]"
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} must be a non-empty string, got {name!r}")
    if name in DATASET_SPELLINGS:
        raise ConfigError(f"{where} {name!r} is spelled {DATASET_SPELLINGS[name]!r} in evalscope")
    if name not in KNOWN_DATASETS and not DATASET_NAME_RE.match(name):
        raise ConfigError(f"{where} {name!r} is not an evalscope benchmark name (lowercase letters, digits, _)")
    return name


def _dataset_args(name: str, raw: Any) -> dict[str, Any]:
    where = f"dataset_args.{name}"
    if raw is None:
        raise ConfigError(f"{where}.local_path is required: the agent runs offline and reads datasets "
                          "from local paths, never from a model hub")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    unknown = sorted(set(raw) - set(DATASET_ARG_TYPES))
    if unknown:
        raise ConfigError(f"unknown field(s) in {where}: {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(DATASET_ARG_TYPES))})")
    for key, value in raw.items():
        expected = DATASET_ARG_TYPES[key]
        if not isinstance(value, expected) or (isinstance(value, bool) and expected in (int, (int, float))):
            raise ConfigError(f"{where}.{key} has the wrong type: {value!r}")
    path = raw.get("local_path")
    if not path:
        raise ConfigError(f"{where}.local_path is required: the agent runs offline and reads datasets "
                          "from local paths, never from a model hub")
    if "\x00" in path or not Path(path).is_absolute():
        raise ConfigError(f"{where}.local_path must be an absolute path on the node, got {path!r}")
    if "subset_list" in raw and (not raw["subset_list"]
                                 or not all(isinstance(s, str) and s for s in raw["subset_list"])):
        raise ConfigError(f"{where}.subset_list must be a non-empty list of subset names")
    if "few_shot_num" in raw and raw["few_shot_num"] < 0:
        raise ConfigError(f"{where}.few_shot_num must be ≥ 0, got {raw['few_shot_num']}")
    return dict(raw)


def _generation_config(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError("generation_config must be a mapping")
    for key in ("stream", "timeout", "batch_size", "n"):
        if key in raw:
            hint = {"stream": "the spec's stream field", "timeout": "the spec's timeout_s field",
                    "batch_size": "the spec's eval_batch_size field", "n": "the spec's repeats field"}[key]
            raise ConfigError(f"generation_config.{key} is set through {hint}")
    unknown = sorted(set(raw) - set(GENERATION_KEYS))
    if unknown:
        raise ConfigError(f"unknown field(s) in generation_config: {', '.join(unknown)}")
    if "max_tokens" in raw:
        _positive_int("generation_config.max_tokens", raw["max_tokens"])
    if "temperature" in raw:
        _number("generation_config.temperature", raw["temperature"], 0.0, 2.0)
    if "top_p" in raw:
        _number("generation_config.top_p", raw["top_p"], 0.0, 1.0, low_open=True)
    for key in ("top_k", "retries", "retry_interval", "reasoning_tokens", "top_logprobs"):
        if key in raw and (isinstance(raw[key], bool) or not isinstance(raw[key], int) or raw[key] < 0):
            raise ConfigError(f"generation_config.{key} must be a non-negative integer, got {raw[key]!r}")
    for key in ("extra_body", "extra_query", "extra_headers", "logit_bias"):
        if key in raw and not isinstance(raw[key], dict):
            raise ConfigError(f"generation_config.{key} must be a mapping")
    return dict(raw)


def parse_eval_spec(raw: str | dict[str, Any]) -> EvalSpec:
    """Validate an eval spec; every error names its field."""
    data = spec_object(raw)
    unknown = sorted(set(data) - {f.name for f in fields(EvalSpec)})
    if unknown:
        raise ConfigError(f"unknown eval spec field(s): {', '.join(unknown)}")
    for required in ("url", "model", "datasets", "dataset_args"):
        if required not in data:
            raise ConfigError(f"eval spec field {required} is required")
    data["url"] = base_url(data["url"])
    if not isinstance(data["model"], str) or not data["model"]:
        raise ConfigError("model must be a non-empty string")
    if not isinstance(data.get("api_key", ""), str):
        raise ConfigError("api_key must be a string")
    datasets = data["datasets"]
    if isinstance(datasets, str) or not isinstance(datasets, list | tuple) or not datasets:
        raise ConfigError("datasets must be a non-empty list of evalscope benchmark names")
    names = tuple(_dataset_name(i, d) for i, d in enumerate(datasets))
    if len(set(names)) != len(names):
        raise ConfigError("datasets must not name a benchmark twice")
    data["datasets"] = names
    args = data["dataset_args"]
    if not isinstance(args, dict):
        raise ConfigError("dataset_args must be a mapping of dataset name to its arguments")
    extra = sorted(set(args) - set(names))
    if extra:
        raise ConfigError(f"dataset_args names dataset(s) not in datasets: {', '.join(extra)}")
    data["dataset_args"] = {name: _dataset_args(name, args.get(name)) for name in names}
    data["generation_config"] = _generation_config(data.get("generation_config", {}))
    _positive_int("eval_batch_size", data.get("eval_batch_size", 1))
    _positive_int("repeats", data.get("repeats", 1))
    for name in ("limit", "timeout_s"):
        if data.get(name) is not None:
            _positive_int(name, data[name])
    if data.get("seed") is not None and (isinstance(data["seed"], bool) or not isinstance(data["seed"], int)):
        raise ConfigError(f"seed must be an integer, got {data['seed']!r}")
    for name in ("stream", "ignore_errors"):
        if name in data and not isinstance(data[name], bool):
            raise ConfigError(f"{name} must be true or false")
    return EvalSpec(**data)
