"""The agent's job contract, declared once: the specs the controller sends and the results it reads back.

`StartJobRequest.spec_json` carries one of the spec models' JSON (`model_dump_json()`), and
`JobSummary.result_json` a `JobOutcome`'s; the controller builds and reads them here, the agent
validates and writes them here, so neither imports the other. Strict, like the plan
(fleetbench.plan_schema): an unknown field is refused, numbers keep their bounds, and every problem
reads as one sentence naming its field (`number must be a positive integer, got 0`); `spec_error()`
turns a ValidationError into that sentence, which the agent returns with INVALID_ARGUMENT.
The wire format (field names, values) is the one the hand-written parsers before it accepted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    Strict,
    ValidationError,
    model_serializer,
    model_validator,
)

from . import bounds as B
from .errors import ConfigError
from .schema_base import PROBLEM, chars_at_most, dotted, problem, says, shape

API_VERSION = "fleetbench.v1"


class JobKind(IntEnum):
    """Values of the proto's JobKind. SWEEP (2) is reserved: the controller runs a sweep point by point as
    perf jobs, and this agent refuses kind 2."""

    PERF = 1
    SWEEP = 2
    EVAL = 3
    LONG_CONTEXT = 4
    PREFLIGHT = 5
    HARDWARE = 6


class JobState(IntEnum):
    """Values of the proto's JobState."""

    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5
    INTERRUPTED = 6
    READY = 7

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED})
SUPPORTED_KINDS = (JobKind.PERF, JobKind.EVAL, JobKind.LONG_CONTEXT, JobKind.PREFLIGHT, JobKind.HARDWARE)

JOB_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def check_job_id(job_id: str) -> str:
    """Job ids become folder names under the agent's data dir: no separators, no traversal."""
    if not JOB_ID_RE.match(job_id) or job_id in (".", ".."):
        raise ConfigError(f"job_id {job_id!r} must match [A-Za-z0-9._-]{{1,128}}")
    return job_id


def point_label(input_tokens: int, output_tokens: int, parallel: int, number: int, loop: int) -> str:
    """A sweep point's name: stable, readable, and safe as a folder name (records carry it as `point`)."""
    return f"in{input_tokens}-out{output_tokens}-p{parallel}-n{number}-loop{loop}"


def parse_point_label(label: str) -> tuple[int, int, int, int, int] | None:
    """(input, output, parallel, number, loop) from a point label, None for a label of another form."""
    m = re.fullmatch(r"in(\d+)-out(\d+)-p(\d+)-n(\d+)-loop(\d+)", label)
    return tuple(int(g) for g in m.groups()) if m else None  # type: ignore[return-value]


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


# --- the base: strict, one sentence per problem ------------------------------------------------------


class Wire(BaseModel):
    """A JSON object on the wire. Unknown fields and missing required ones are refused in the
    sentences the agent always used; `what` names the object in them."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    what: ClassVar[str] = "job spec"
    not_object: ClassVar[str] = "job spec must be a JSON object"
    bounded: ClassVar[bool] = False
    """a spec (what a StartJob carries): its text's size and depth are checked before parsing, and NaN or
    Infinity refused; results (which carry NaN for "not measured") are not"""

    @model_validator(mode="wrap")
    @classmethod
    def _known_fields(cls, data: Any, handler: Callable[[Any], Any]) -> Any:
        if isinstance(data, dict):
            cls.precheck(data)
            unknown = sorted(str(k) for k in data if k not in cls.model_fields)
            if unknown:
                raise problem(cls.unknown_fields(unknown))
            for name, info in cls.model_fields.items():
                if info.is_required() and name not in data:
                    raise problem(f"{cls.what} field {name} is required")
        elif not isinstance(data, cls):
            raise problem(cls.not_object)
        return handler(data)

    @classmethod
    def precheck(cls, data: dict[str, Any]) -> None:
        """Refuse a known mistake in words of its own, before the unknown fields are named."""

    @classmethod
    def unknown_fields(cls, names: list[str]) -> str:
        return f"unknown {cls.what} field(s): {', '.join(names)}"

    @classmethod
    def from_wire(cls: type[W], raw: str | bytes | dict[str, Any]) -> W:
        """The model of a JSON text (or its object), or ConfigError naming the field and the rule."""
        if cls.bounded and isinstance(raw, str | bytes):
            # size and depth first: a 100,000-deep array must not reach the parser's recursion
            refused = B.check_json_text(raw, cls.what)
            if refused:
                raise ConfigError(refused)
        try:
            data = (B.loads(raw) if cls.bounded else json.loads(raw)) if isinstance(raw, str | bytes) else raw
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{cls.what} is not valid JSON: {exc.msg} at position {exc.pos}") from None
        except ValueError as exc:  # NaN, Infinity
            raise ConfigError(f"{cls.what} is not valid JSON: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(spec_error(exc)) from None


W = TypeVar("W", bound=Wire)


def spec_error(exc: ValidationError) -> str:
    """The first problem as one sentence: `<field> <what is wrong>` (`{here}` in a sentence is the field)."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"]) + tuple((err.get("ctx") or {}).get("at", ()) if err["type"] == PROBLEM else ())
    where = dotted(loc)
    msg = str(err["msg"])
    if err["type"] != PROBLEM:
        msg = f"is invalid: {msg[:1].lower()}{msg[1:]}"
    if "{here}" in msg:
        return msg.replace("{here}", where)
    if not where:
        return msg
    # a rule of the field reads on from its name; a sentence of its own follows it after a colon
    return f"{where} {msg}" if msg.startswith(FIELD_RULE_STARTS) else f"{where}: {msg}"


FIELD_RULE_STARTS = ("must", "is ", "has ", "cannot", "'")


def _said(rule: str) -> Callable[[Any], str]:
    return lambda v: f"{rule}, got {_short(v)}"


def _short(value: Any) -> str:
    """A refused value as a sentence quotes it: never the whole of a 10 MB one."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text)} characters)"


def at_most(bound: float) -> AfterValidator:
    """The field's maximum (fleetbench/bounds.py), said after the field's own rule."""

    def check(value: Any) -> Any:
        if not value <= bound:  # NaN too
            raise problem(f"must be at most {B.describe(bound)}, got {_short(value)}")
        return value

    return AfterValidator(check)


def magnitude_at_most(bound: int) -> AfterValidator:
    def check(value: int) -> int:
        if abs(value) > bound:
            raise problem(f"must be between -{bound} and {bound}, got {_short(value)}")
        return value

    return AfterValidator(check)


def items_at_most(bound: int) -> AfterValidator:
    def check(value: Any) -> Any:
        if len(value) > bound:
            raise problem(f"must have at most {bound} items, got {len(value)}")
        return value

    return AfterValidator(check)


def at_most_items(bound: int, what: str) -> BeforeValidator:
    """A list's or mapping's maximum length, checked before its items are validated one by one."""
    return shape(lambda v: not isinstance(v, list | tuple | dict) or len(v) <= bound,
                 f"must have at most {bound} {what}")


def json_at_most(max_bytes: int = B.MAX_MAPPING_JSON) -> AfterValidator:
    """A free-form value (extra request fields …): bounded as JSON, finite numbers only."""

    def check(value: Any) -> Any:
        refused = B.json_value_problem(value, max_bytes)
        if refused:
            raise problem(refused)
        return value

    return AfterValidator(check)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("not an http(s) URL")
    return value


def _openai_base(value: str) -> str:
    """The OpenAI base URL evalscope wants; a full .../chat/completions or .../completions URL is cut back."""
    out = value.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        out = out.removesuffix(suffix)
    return out


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


# Every number and string has its maximum (fleetbench/bounds.py), said after the field's own rule.
_POSITIVE = says(_said("must be a positive integer"))
_NON_NEGATIVE = says(_said("must be a non-negative integer"))
_STRING = says("must be a string")
PositiveInt = Annotated[int, Strict(), Field(gt=0), _POSITIVE, at_most(B.MAX_COUNT)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0), _NON_NEGATIVE, at_most(B.MAX_COUNT)]
Requests = Annotated[int, Strict(), Field(gt=0), _POSITIVE, at_most(B.MAX_NUMBER)]
Streams = Annotated[int, Strict(), Field(gt=0), _POSITIVE, at_most(B.MAX_PARALLEL)]
Offset = Annotated[int, Strict(), Field(ge=0), _NON_NEGATIVE, at_most(B.MAX_NUMBER)]
Workers = Annotated[int, Strict(), Field(ge=0), _NON_NEGATIVE, at_most(B.MAX_WORKERS)]
Tokens = Annotated[int, Strict(), Field(ge=0), _NON_NEGATIVE, at_most(B.MAX_TOKENS)]
PositiveTokens = Annotated[int, Strict(), Field(gt=0), _POSITIVE, at_most(B.MAX_TOKENS)]
Seconds = Annotated[int, Strict(), Field(gt=0), _POSITIVE, at_most(B.MAX_SECONDS)]
Limit = Annotated[int, Strict(), Field(gt=0), _POSITIVE, at_most(B.MAX_LIMIT)]
Bytes = Annotated[int, Strict(), Field(ge=0), _NON_NEGATIVE, at_most(B.MAX_BYTES)]
AnyInt = Annotated[int, Strict(), says(_said("must be an integer")), magnitude_at_most(B.MAX_SEED)]
Flag = Annotated[bool, Strict(), says("must be true or false")]
Text = Annotated[str, Strict(), _STRING, chars_at_most(B.MAX_NAME)]
PathText = Annotated[str, Strict(), _STRING, chars_at_most(B.MAX_PATH)]
Secret = Annotated[str, Strict(), _STRING, chars_at_most(B.MAX_SECRET)]
Name = Annotated[str, Strict(), Field(min_length=1), says("must be a non-empty string"), chars_at_most(B.MAX_NAME)]
Mapping = Annotated[dict[str, Any], says("must be a mapping"), json_at_most()]
AnyJson = Annotated[Any, json_at_most()]
HttpUrl = Annotated[str, Strict(), AfterValidator(_http_url), says(_said("must be an http:// or https:// URL")),
                    chars_at_most(B.MAX_URL)]
Rate = Annotated[float, Strict(), AfterValidator(lambda v: v if v == -1 or v > 0 else _no()),
                 says(_said("must be a positive number of requests/s or -1 (no limit)")), at_most(B.MAX_RATE)]


def _headers(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > B.MAX_HEADERS:
        raise problem(f"must have at most {B.MAX_HEADERS} headers, got {len(value)}")
    for name, header in value.items():
        if not name or len(name) > B.MAX_NAME:
            raise problem(f"header names must be 1 to {B.MAX_NAME} characters, got {len(name)}")
        if not isinstance(header, str):
            raise problem(f"header {_short(name)} must be a string, got {_short(header)}")
        if len(header) > B.MAX_SECRET:
            raise problem(f"header {_short(name)} must be at most {B.MAX_SECRET} characters, got {len(header)}")
    return value


Headers = Annotated[dict[str, Any], says("must be a mapping of header name to value"), AfterValidator(_headers)]
RangeRatio = Annotated[float, Strict(), Field(gt=0, le=1), says(_said("must be a number in (0, 1]"))]


def _no() -> Any:
    raise ValueError("out of bounds")


Temperature = Annotated[float, Strict(), AfterValidator(_finite), Field(ge=0, le=2),
                       says(_said("must be a number ≥ 0 and ≤ 2"))]
TopP = Annotated[float, Strict(), AfterValidator(_finite), Field(gt=0, le=1),
                 says(_said("must be a number > 0 and ≤ 1"))]


# --- perf and long-context specs (kinds 1 and 4) ---------------------------------------------------

APIS = ("openai",)
DATASETS = ("random", "openqa", "line_by_line", "share_gpt")
LONG_CONTEXT_MIN_INPUT = 1024


class PerfSpec(Wire):
    """One `evalscope perf` run against the node's endpoint."""

    bounded: ClassVar[bool] = True

    url: HttpUrl
    model: Name
    number: Requests
    parallel: Streams
    tokenizer_path: PathText = ""
    api: Annotated[Literal["openai"], says(_said(f"must be one of {', '.join(APIS)}"))] = "openai"
    api_key: Secret = ""
    rate: Rate = -1.0
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    dataset: Annotated[Literal["random", "openqa", "line_by_line", "share_gpt"],
                       says(_said(f"must be one of {', '.join(DATASETS)}"))] = "random"
    dataset_path: PathText = ""
    prefix_length: Tokens = 0
    extra_args: Mapping = Field(default_factory=dict)
    headers: Headers = Field(default_factory=dict)
    stream: Flag = True
    seed: AnyInt | None = None
    connect_timeout_s: Seconds | None = None
    read_timeout_s: Seconds | None = None
    workers: Workers = 1
    """Load-generator processes on the node; parallel, number and rate are split between them.
    0: chosen on the node from its cores and the load."""
    dataset_offset: Offset = 0
    range_ratio: RangeRatio = 1.0
    """lengths drawn uniformly from [ratio × length, length] (sglang's --random-range-ratio); 1 = fixed"""
    fixed_output: Flag = True
    """false: min_tokens is not sent (only max_tokens), for engines that refuse it"""
    # added after the first release: left out of the JSON while true, so an agent of an older release (which
    # refuses unknown fields) still takes every spec that does not use it
    @model_serializer(mode="wrap")
    def _omit_new_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and self.fixed_output:
            data.pop("fixed_output", None)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> PerfSpec:
        if self.workers > min(self.parallel, self.number):
            raise problem(f"workers ({self.workers}) cannot exceed parallel or number")
        if self.dataset != "random" and not self.dataset_path:
            # evalscope would fetch these from a model hub; acceptance runs are offline
            raise problem(f"dataset_path is required for the {self.dataset} dataset (a file on the node)")
        if self.dataset == "random":
            if not self.tokenizer_path:
                raise problem("tokenizer_path is required for the random dataset")
            if not self.input_tokens:
                raise problem("input_tokens must be a positive integer for the random dataset")
        return self

    @property
    def min_input_tokens(self) -> int:
        return max(1, int(self.input_tokens * self.range_ratio)) if self.input_tokens else 0

    @property
    def min_output_tokens(self) -> int:
        return max(1, int(self.output_tokens * self.range_ratio)) if self.output_tokens else 0

    @property
    def total(self) -> int:
        return self.number

    def shard(self, index: int) -> PerfSpec:
        """The part of this spec that worker `index` of `workers` runs."""
        w = self.workers
        parallel = split_in_proportion(self.parallel, [1] * w)  # even; the first ones get the remainder
        # requests in proportion to streams: every worker needs the same number of rounds (192
        # requests over 64 streams in 6 workers as 32 each made the 10-stream workers run a 4th round)
        number = split_in_proportion(self.number, parallel)
        return self.model_copy(update={
            "parallel": parallel[index], "number": number[index], "workers": 1,
            "rate": self.rate * parallel[index] / self.parallel if self.rate > 0 else self.rate,
            # distinct prompts per worker, as evalscope itself advances the offset between runs
            "dataset_offset": self.dataset_offset + sum(number[:index]),
        })


class LongContextSpec(PerfSpec):
    """A long-context check: a perf run whose point is one very long prompt, so that it says plainly
    whether that request succeeded and its TTFT."""

    @model_validator(mode="after")
    def _long(self) -> LongContextSpec:
        if self.dataset == "random" and self.input_tokens < LONG_CONTEXT_MIN_INPUT:
            raise problem(f"input_tokens must be at least {LONG_CONTEXT_MIN_INPUT} for a long-context check, "
                          f"got {self.input_tokens}")
        return self


# --- eval specs (kind 3) ----------------------------------------------------------------------------

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
LOCAL_PATH_REQUIRED = ("{here}.local_path is required: the agent runs offline and reads datasets from local "
                       "paths, never from a model hub")


def _dataset_name(name: Any) -> Any:
    if not isinstance(name, str) or not name:
        raise problem(f"must be a non-empty string, got {name!r}")
    if name in DATASET_SPELLINGS:
        raise problem(f"{name!r} is spelled {DATASET_SPELLINGS[name]!r} in evalscope")
    if name not in KNOWN_DATASETS and not DATASET_NAME_RE.match(name):
        raise problem(f"{name!r} is not an evalscope benchmark name (lowercase letters, digits, _)")
    return name


def _absolute(path: str) -> str:
    if path and ("\x00" in path or not Path(path).is_absolute()):
        raise problem(f"must be an absolute path on the node, got {path!r}")
    return path


WRONG_TYPE = says(lambda v: f"has the wrong type: {v!r}")  # a dataset argument not of evalscope's type
ArgText = Annotated[str, Strict(), WRONG_TYPE, chars_at_most(B.MAX_TEXT)]
ArgName = Annotated[str, Strict(), WRONG_TYPE, chars_at_most(B.MAX_NAME)]
ArgFlag = Annotated[bool, Strict(), WRONG_TYPE]
ArgNumber = Annotated[float, Strict(), WRONG_TYPE, at_most(B.MAX_SECONDS)]  # an int is a number, a bool is not
ArgMapping = Annotated[dict[str, Any], Strict(), WRONG_TYPE, json_at_most()]
ArgList = Annotated[list[Any], Strict(), WRONG_TYPE, json_at_most()]


class _Omitting(Wire):
    """A mapping whose unset keys stay absent on the wire (evalscope tells absent from null)."""

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


class DatasetArgs(_Omitting):
    """BenchmarkMeta fields a spec may override per dataset. evalscope silently ignores a key it does not
    know, so a typo (`local_pth`) would quietly send it to a model hub: unknown keys are refused. Hub
    fields (dataset_id, hf_dataset_id, revisions, force_redownload) are left out on purpose."""

    not_object: ClassVar[str] = "{here} must be a mapping"

    local_path: Annotated[str, Strict(), WRONG_TYPE, chars_at_most(B.MAX_PATH), AfterValidator(_absolute)] = ""
    subset_list: Annotated[list[Any], Strict(), WRONG_TYPE, items_at_most(B.MAX_LIST_ITEMS), AfterValidator(
        lambda v: v if v and all(isinstance(s, str) and 0 < len(s) <= B.MAX_NAME for s in v)
        else _raise(f"must be a non-empty list of subset names (each 1 to {B.MAX_NAME} characters)"))] | None = None
    default_subset: ArgName | None = None
    few_shot_num: Annotated[int, Strict(), WRONG_TYPE, AfterValidator(
        lambda v: v if v >= 0 else _raise(f"must be ≥ 0, got {v}")), at_most(B.MAX_COUNT)] | None = None
    few_shot_random: ArgFlag | None = None
    train_split: ArgName | None = None
    eval_split: ArgName | None = None
    prompt_template: ArgText | None = None
    few_shot_prompt_template: ArgText | None = None
    system_prompt: ArgText | None = None
    query_template: ArgText | None = None
    filters: ArgMapping | None = None
    metric_list: ArgList | None = None
    aggregation: ArgName | None = None
    shuffle: ArgFlag | None = None
    shuffle_choices: ArgFlag | None = None
    review_timeout: ArgNumber | None = None
    extra_params: ArgMapping | None = None

    @classmethod
    def unknown_fields(cls, names: list[str]) -> str:
        return f"unknown field(s) in {{here}}: {', '.join(names)} (known: {', '.join(sorted(cls.model_fields))})"


def _raise(message: str) -> Any:
    raise problem(message)


GENERATION_HINTS = {"stream": "the spec's stream field", "timeout": "the spec's timeout_s field",
                    "batch_size": "the spec's eval_batch_size field", "n": "the spec's repeats field"}


class GenerationConfig(_Omitting):
    """evalscope's GenerateConfig fields a spec may set; `stream` and `timeout` come from the spec's own fields."""

    not_object: ClassVar[str] = "{here} must be a mapping"

    max_tokens: PositiveTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    top_k: NonNegativeInt | None = None
    seed: AnyJson = None
    stop_seqs: AnyJson = None
    frequency_penalty: AnyJson = None
    presence_penalty: AnyJson = None
    repetition_penalty: AnyJson = None
    logit_bias: Mapping | None = None
    do_sample: AnyJson = None
    logprobs: AnyJson = None
    top_logprobs: NonNegativeInt | None = None
    reasoning_effort: AnyJson = None
    reasoning_tokens: Tokens | None = None
    extra_body: Mapping | None = None
    extra_query: Mapping | None = None
    extra_headers: Headers | None = None
    retries: NonNegativeInt | None = None
    retry_interval: Annotated[int, Strict(), Field(ge=0), _NON_NEGATIVE, at_most(B.MAX_SECONDS)] | None = None

    @classmethod
    def precheck(cls, data: dict[str, Any]) -> None:
        for key, hint in GENERATION_HINTS.items():
            if key in data:
                raise problem(f"{{here}}.{key} is set through {hint}")

    @classmethod
    def unknown_fields(cls, names: list[str]) -> str:
        return f"unknown field(s) in {{here}}: {', '.join(names)}"


DatasetNames = Annotated[
    tuple[Annotated[Any, AfterValidator(_dataset_name)], ...],
    shape(lambda v: isinstance(v, list | tuple) and bool(v),
          "must be a non-empty list of evalscope benchmark names"),
    at_most_items(B.MAX_DATASETS, "benchmarks"),
    AfterValidator(lambda v: v if len(set(v)) == len(v) else _raise("must not name a benchmark twice")),
]


class EvalSpec(Wire):
    """One `evalscope eval` run: datasets from local paths, scored by evalscope itself."""

    what: ClassVar[str] = "eval spec"
    bounded: ClassVar[bool] = True

    url: Annotated[HttpUrl, AfterValidator(_openai_base)]
    """the OpenAI base URL, e.g. http://10.0.0.5:8000/v1"""
    model: Name
    datasets: DatasetNames
    dataset_args: Annotated[dict[str, DatasetArgs | None], shape(
        lambda v: isinstance(v, dict), "must be a mapping of dataset name to its arguments"),
        at_most_items(B.MAX_DATASETS, "datasets")]
    api_key: Secret = ""
    generation_config: GenerationConfig = Field(default_factory=GenerationConfig)
    eval_batch_size: Streams = 1
    limit: Limit | None = None
    """samples per subset, as evalscope applies it"""
    repeats: PositiveInt = 1
    timeout_s: Seconds | None = None
    """per request"""
    stream: Flag = False
    seed: AnyInt | None = None
    ignore_errors: Flag = False
    """score the samples that succeeded instead of failing on a request error"""

    @model_validator(mode="after")
    def _every_dataset_local(self) -> EvalSpec:
        extra = sorted(set(self.dataset_args) - set(self.datasets))
        if extra:
            raise problem(f"dataset_args names dataset(s) not in datasets: {', '.join(extra)}")
        for name in self.datasets:
            args = self.dataset_args.get(name)
            if args is None or not args.local_path:
                raise problem(LOCAL_PATH_REQUIRED, "dataset_args", name)
        return self

    @property
    def total_hint(self) -> int:
        """Samples the job will evaluate, when the spec alone says so (limit × datasets), else 0;
        the job process reports the exact count once evalscope has loaded the datasets."""
        if self.limit is None:
            return 0
        return self.limit * len(self.datasets) * self.repeats

    @property
    def total(self) -> int:
        return self.total_hint

    def local_paths(self) -> dict[str, str]:
        """Each dataset's local path."""
        return {name: self.args(name).local_path for name in self.datasets}

    def args(self, name: str) -> DatasetArgs:
        args = self.dataset_args[name]
        assert args is not None  # validated: every dataset has its arguments
        return args


# --- preflight specs (kind 5) -----------------------------------------------------------------------

MIN_FREE_BYTES = 1 << 30  # the agent's data dir needs room for job folders, evalscope outputs and caches
PREFLIGHT_REQUEST_TIMEOUT_S = 60


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


class _Entry(Wire):
    what: ClassVar[str] = "preflight entry"
    not_object: ClassVar[str] = "{here} must be an object with case_id and spec"

    case_id: Name


class PerfEntry(_Entry):
    spec: PerfSpec


class EvalEntry(_Entry):
    spec: EvalSpec


class PreflightSpec(Wire):
    """Checks before any load: one request of the exact shape of each perf job of the plan (a perf or
    long-context case, or one distinct (input, output) shape of a sweep) and one tiny request of each eval
    case. Each entry's spec is the one the case's job would get."""

    what: ClassVar[str] = "preflight spec"
    bounded: ClassVar[bool] = True

    perf: Annotated[tuple[PerfEntry, ...], shape(_is_list, "must be a list of {case_id, spec} objects"),
                    at_most_items(B.MAX_PREFLIGHT_ENTRIES, "entries")] = ()
    evals: Annotated[tuple[EvalEntry, ...], shape(_is_list, "must be a list of {case_id, spec} objects"),
                     at_most_items(B.MAX_PREFLIGHT_ENTRIES, "entries")] = ()
    min_free_bytes: Bytes = MIN_FREE_BYTES
    request_timeout_s: Seconds = PREFLIGHT_REQUEST_TIMEOUT_S
    """per check request, whole reply"""
    node: Annotated[str, Strict(), says(_said("must be a string")), chars_at_most(B.MAX_NAME)] = ""
    """the node's name, so what the checks say names it"""

    @property
    def total(self) -> int:
        """Requests the checks send: one per perf shape and one per eval case."""
        return len(self.perf) + len(self.evals)

    def tokenizer_paths(self) -> list[str]:
        """Each distinct tokenizer path the perf shapes use, in order."""
        return list(dict.fromkeys(e.spec.tokenizer_path for e in self.perf if e.spec.tokenizer_path))


# --- hardware specs (kind 6) ------------------------------------------------------------------------

HARDWARE_LEVELS = ("quick", "standard", "stress")
BUSY_FRACTION = 0.10  # another process holding more of an accelerator's memory than this: an engine is loaded


class HardwareSpec(Wire):
    """Accelerator checks on the node (agent/hardware_job.py): `quick` reads health (ECC, retired pages,
    throttling, PCIe link, NVLink, count) with no load; `standard` adds matmul, memory-copy, PCIe and
    all-reduce figures; `stress` runs matmul for `duration_s` and samples clocks, temperature and power."""

    what: ClassVar[str] = "hardware spec"
    bounded: ClassVar[bool] = True

    level: Annotated[Literal["quick", "standard", "stress"],
                     says(_said(f"must be one of {', '.join(HARDWARE_LEVELS)}"))]
    duration_s: Seconds = 60
    """stress: seconds of sustained matmul per accelerator"""
    allow_busy: Flag = False
    """standard and stress refuse when another process holds > 10 % of an accelerator's memory, unless true"""
    expected_count: NonNegativeInt | None = None
    """accelerators the node must have (the fleet's expected count); None: not checked"""
    matmul_size: PositiveInt = 8192
    """n of the n×n×n bf16 matrix product"""
    copy_mib: PositiveInt = 2048
    """MiB moved per device-to-device copy and per host↔device transfer"""
    node: Annotated[str, Strict(), says(_said("must be a string")), chars_at_most(B.MAX_NAME)] = ""

    @property
    def total(self) -> int:
        return 0  # checks per accelerator are known once the accelerators are counted


SPEC_MODELS: dict[JobKind, type[Wire]] = {
    JobKind.PERF: PerfSpec, JobKind.LONG_CONTEXT: LongContextSpec, JobKind.EVAL: EvalSpec,
    JobKind.PREFLIGHT: PreflightSpec, JobKind.HARDWARE: HardwareSpec,
}
JobSpec = PerfSpec | EvalSpec | PreflightSpec | HardwareSpec


def parse_spec(kind: int, raw: str | bytes | dict[str, Any]) -> Any:
    """The validated spec of a job of `kind`, or ConfigError naming the field and its rule."""
    if kind == JobKind.SWEEP:
        raise ConfigError("job kind 2 (sweep) is not supported by this agent: the controller runs a sweep point "
                          "by point as perf jobs (kind 1)")
    model = SPEC_MODELS.get(kind)  # type: ignore[call-overload]
    if model is None:
        raise ConfigError(f"job kind {kind} is not supported by this agent "
                          f"(known: {', '.join(f'{int(k)} ({k.name.lower()})' for k in SUPPORTED_KINDS)})")
    return model.from_wire(raw)


# --- results (JobSummary.result_json) ----------------------------------------------------------------


class Saturation(Wire):
    """The load generator's own limits during the job: a saturated one makes the figures client-bound.
    Several workers: saturated if any was, the worst of each figure, and each worker's report."""

    what: ClassVar[str] = "saturation report"

    saturated: bool = False
    cpu_max: float = 0.0
    lag_max_s: float = 0.0
    lag_p95_s: float = 0.0
    windows: int = 0
    saturated_windows: int | None = None
    cpu_threshold: float | None = None
    lag_threshold_s: float | None = None
    workers: tuple[Saturation, ...] | None = None

    def text(self) -> str:
        return f"CPU {self.cpu_max:.0%} of a core, loop lag p95 {self.lag_p95_s * 1000:.0f} ms"


class LongContextResult(Wire):
    """Did the long prompt go through, and how long until its first token? One entry per request."""

    what: ClassVar[str] = "long-context result"

    requests: int
    succeeded: int
    passed: bool
    ttft_s: tuple[float, ...] = ()
    input_tokens: tuple[int, ...] = ()
    output_tokens: tuple[int, ...] = ()
    errors: tuple[str, ...] = ()


class SubsetScoreRow(Wire):
    what: ClassVar[str] = "subset score"

    subset: str
    score: float
    samples: int


class ScoreRow(Wire):
    """evalscope's score of one dataset for one metric, over all its subsets (the sample-weighted mean, i.e. the
    fraction of samples right; percent when `unit` is "%"), with its subsets'. `subset` is the subset's name when
    there is one, "OVERALL" when the row pools several (as evalscope's own table names that row). The agent's
    eval job builds these rows (agent/eval_job.py) and the controller reads them: declared once, here."""

    what: ClassVar[str] = "score"

    dataset: str
    subset: str
    metric: str
    score: float
    samples: int
    unit: str = "%"
    subsets: tuple[SubsetScoreRow, ...] = ()


class CheckRow(Wire):
    """One preflight check's outcome."""

    what: ClassVar[str] = "preflight check"

    name: str
    ok: bool
    detail: str
    case_id: str = ""
    status: int | None = None
    body: str = ""
    hint: str = ""
    elapsed_s: float = 0.0


HW_STATUSES = ("pass", "fail", "skipped", "error", "measured")


class HwCheck(Wire):
    """One hardware check on one accelerator (`index`, -1 for the node). `status`: pass / fail (a health
    fact: an uncorrected ECC error, a downgraded link), skipped (its tool is missing: never a pass), error
    (the check itself broke), or measured (a figure such as TFLOP/s that the controller judges against the
    SKU's spec and the fleet)."""

    what: ClassVar[str] = "hardware check"

    name: str
    index: int
    status: Literal["pass", "fail", "skipped", "error", "measured"]
    value: float | None = None
    unit: str = ""
    detail: str = ""
    tool: str = ""


class HwDevice(Wire):
    """An accelerator as the checks found it."""

    what: ClassVar[str] = "accelerator"

    index: int
    name: str
    vendor: str = ""
    uuid: str = ""
    bus_id: str = ""
    memory_total_mib: int | None = None
    memory_used_mib: int | None = None


class HardwareResult(Wire):
    """What a hardware job found on its node (JOB_DIR/hardware.json)."""

    what: ClassVar[str] = "hardware result"

    level: str
    backend: str = ""
    """what ran the kernels: torch, cupy, cpu-standin (tests), or "" when none could"""
    devices: tuple[HwDevice, ...] = ()
    checks: tuple[HwCheck, ...] = ()
    samples: tuple[dict[str, Any], ...] = ()
    """stress: clocks, temperature, power and throttle reasons over time, per accelerator"""
    dcgm: dict[str, Any] | None = None
    """`dcgmi diag -j` as DCGM printed it"""


class JobOutcome(Wire):
    """`result_json`: what a job found besides its records, by kind."""

    what: ClassVar[str] = "job result"
    not_object: ClassVar[str] = "job result must be a JSON object"

    saturation: Saturation | None = None
    long_context: LongContextResult | None = None
    scores: tuple[ScoreRow, ...] | None = None
    preflight: tuple[CheckRow, ...] | None = None
    hardware: HardwareResult | None = None
    worker_summaries: tuple[dict[str, Any], ...] | None = None
    """evalscope's summary of each worker, when several shared the node's load"""

    def to_wire(self) -> str:
        """The JSON object, with the parts this kind of job does not have left out."""
        return self.model_dump_json(exclude_none=True)
