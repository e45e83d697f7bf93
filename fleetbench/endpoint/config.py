"""Configuration of the loopback endpoint: timing mode, engine model, faults, presets."""

from __future__ import annotations

import dataclasses
import http
import json
from dataclasses import dataclass, field
from pathlib import Path

from fleetbench.errors import ConfigError

__all__ = [
    "KNOWN_FIELDS",
    "PRESETS",
    "CannedAnswer",
    "EndpointConfig",
    "EngineModel",
    "FaultConfig",
    "load_answers",
    "preset_config",
]

# The request fields a strict endpoint (`strict=True`, `--strict`) knows: the OpenAI completions and chat
# completions parameters. Not vLLM's extensions (min_tokens, ignore_eos, top_k, repetition_penalty, ...), which
# evalscope sends and an engine such as `transformers serve` refuses with HTTP 422.
KNOWN_FIELDS: frozenset[str] = frozenset({
    "model", "prompt", "messages", "max_tokens", "max_completion_tokens", "stream", "stream_options",
    "temperature", "top_p", "n", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias",
    "logprobs", "top_logprobs", "user", "echo", "best_of", "suffix", "response_format", "tools", "tool_choice",
    "parallel_tool_calls", "metadata", "store", "reasoning_effort", "service_tier", "modalities", "prediction",
})


@dataclass(frozen=True)
class EngineModel:
    """A continuous-batching serving engine, simulated (see docs/simulator.md).

    Every engine step runs one decode iteration for all running sequences and
    up to `max_prefill_tokens_per_step` tokens of pending prefill (chunked
    prefill). Its duration is

        decode_base_s + decode_per_seq_s × running + prefill_tokens / prefill_tokens_per_s

    (`prefill_overhead_s` is added to a step that does any prefill).
    A sequence is admitted when fewer than `max_batch` run and its prompt plus
    its maximum output fit in the free KV cache (`kv_cache_tokens`); otherwise
    it waits in a FIFO queue, so TTFT rises with concurrency and prompt length.
    """

    prefill_tokens_per_s: float = 200_000.0
    prefill_overhead_s: float = 0.0
    max_prefill_tokens_per_step: int = 8192
    decode_base_s: float = 0.002
    decode_per_seq_s: float = 0.0001
    max_batch: int = 256
    kv_cache_tokens: int = 4_000_000

    def validate(self) -> None:
        if self.prefill_tokens_per_s <= 0:
            raise ConfigError("engine prefill_tokens_per_s must be positive")
        if self.max_prefill_tokens_per_step < 1 or self.max_batch < 1 or self.kv_cache_tokens < 1:
            raise ConfigError("engine max_prefill_tokens_per_step, max_batch and kv_cache_tokens must be ≥ 1")
        if min(self.prefill_overhead_s, self.decode_base_s, self.decode_per_seq_s) < 0:
            raise ConfigError("engine times must not be negative")
        if self.decode_base_s + self.decode_per_seq_s <= 0:
            raise ConfigError("engine decode step time must be positive")


@dataclass(frozen=True)
class FaultConfig:
    """Faults injected per request, decided by a seeded RNG (deterministic per arrival index).

    Fractions are probabilities in [0, 1]; their sum must not exceed 1 (a
    request gets at most one fault).
    - http_500: answer HTTP 500 with an OpenAI-style error body.
    - reset: stream part of the answer, then abort the TCP connection.
    - malformed: stream part of the answer, then a malformed SSE event, then end the stream.
    - stall: stream part of the answer, then send nothing for `stall_s` (longer than the client's read timeout).
    - slow_first_token: delay the first token by `slow_first_token_s` more.
    - done_only: HTTP 200, an SSE stream of `data: [DONE]` alone (no chunk, no usage).
    - empty_body: HTTP 200 and an empty body.
    - empty_chunks: chunks whose text is "" at the usual times, then usage with 0 completion tokens.
    - http_error: answer HTTP `http_error_status` with `http_error_body` (JSON text; "" gives an
      OpenAI-style error body).
    """

    http_500: float = 0.0
    reset: float = 0.0
    malformed: float = 0.0
    stall: float = 0.0
    slow_first_token: float = 0.0
    done_only: float = 0.0
    empty_body: float = 0.0
    empty_chunks: float = 0.0
    http_error: float = 0.0
    stall_s: float = 30.0
    slow_first_token_s: float = 5.0
    http_error_status: int = 429
    http_error_body: str = ""
    seed: int = 0

    # new kinds go at the end: the draw for a seed stays the same for the kinds before them
    KINDS = ("http_500", "reset", "malformed", "stall", "slow_first_token", "done_only", "empty_body",
             "empty_chunks", "http_error")

    def validate(self) -> None:
        total = 0.0
        for kind in self.KINDS:
            value = getattr(self, kind)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"fault fraction {kind}={value} must be between 0 and 1")
            total += value
        if total > 1.0 + 1e-9:
            raise ConfigError(f"fault fractions add up to {total:g}; at most 1 is allowed")
        if self.stall_s < 0 or self.slow_first_token_s < 0:
            raise ConfigError("fault durations must not be negative")
        if not 400 <= self.http_error_status <= 599:
            raise ConfigError(f"fault HTTP status {self.http_error_status} must be between 400 and 599")
        if self.http_error_body:
            try:
                json.loads(self.http_error_body)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"fault HTTP error body is not JSON: {exc.msg}") from None

    def http_error_reply(self) -> bytes:
        """The body the `http_error` fault answers with."""
        if self.http_error_body:
            return self.http_error_body.encode()
        try:
            phrase = http.HTTPStatus(self.http_error_status).phrase
        except ValueError:
            phrase = "Error"
        kind = phrase.title().replace(" ", "").replace("-", "") + "Error"
        body = {"object": "error", "error": {"message": f"{phrase} (injected fault)", "type": kind,
                                             "code": self.http_error_status}}
        return json.dumps(body).encode()

    @property
    def any(self) -> bool:
        return any(getattr(self, kind) > 0 for kind in self.KINDS)


@dataclass(frozen=True)
class CannedAnswer:
    """A fixed reply for requests whose last user message (or prompt) contains `contains`.

    It lets a test know in advance which questions of a dataset the "model"
    answers correctly, so an eval's score is known exactly.
    """

    contains: str
    reply: str


def load_answers(path: Path) -> tuple[CannedAnswer, ...]:
    """Canned answers from a JSON list or JSON lines of {"contains": ..., "reply": ...}, in file order."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"answers file {path}: {exc.strerror or exc}") from None
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            items = json.loads(text)
            where = [f"item {i + 1}" for i in range(len(items))]
        else:
            lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
            items = [json.loads(line) for _, line in lines]
            where = [f"line {n}" for n, _ in lines]
    except json.JSONDecodeError as exc:
        raise ConfigError(f"answers file {path} is not JSON or JSON lines: {exc.msg}") from None
    out = []
    for item, at in zip(items, where, strict=True):
        if not isinstance(item, dict) or set(item) != {"contains", "reply"}:
            raise ConfigError(f"answers file {path}, {at}: expected an object with keys contains and reply")
        if not isinstance(item["contains"], str) or not item["contains"] or not isinstance(item["reply"], str) \
                or not item["reply"].strip():
            raise ConfigError(f"answers file {path}, {at}: contains and reply must be non-empty strings")
        out.append(CannedAnswer(item["contains"], item["reply"]))
    return tuple(out)


@dataclass(frozen=True)
class EndpointConfig:
    """Everything the endpoint needs. `engine=None` is the fixed-timing mode.

    Fixed mode: every request's first token comes `ttft_s` after its arrival
    and token i (0-based) at arrival + ttft_s + i × tpot_s, whatever the load.
    Output length: `max_tokens` with `ignore_eos`, otherwise
    `default_output_tokens` capped by `max_tokens` and raised to `min_tokens`.
    """

    host: str = "127.0.0.1"
    port: int = 0
    model: str = "demo"
    ttft_s: float = 0.2
    tpot_s: float = 0.02
    default_output_tokens: int = 128
    max_model_len: int = 1_000_000
    engine: EngineModel | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)
    log_path: Path | None = None
    # Reject requests naming another model (404, like vLLM). Off: any name is served.
    strict_model: bool = False
    # Fixed replies for matching requests (the first match wins); others get generated words.
    answers: tuple[CannedAnswer, ...] = ()
    # Reject requests with fields outside KNOWN_FIELDS + allow_fields (HTTP 422, like `transformers serve`).
    strict: bool = False
    allow_fields: tuple[str, ...] = ()
    # Fixed mode: at most this many requests generate at once; the others wait in a FIFO queue and their
    # TTFT counts the wait (a server's concurrency limit: the knee a capacity search finds). 0 = no limit.
    max_concurrency: int = 0
    # Answer 401 unless the request carries `Authorization: Bearer <api_key>` (like vLLM's --api-key).
    api_key: str = ""

    @property
    def known_fields(self) -> frozenset[str]:
        """The request fields a strict endpoint accepts."""
        return KNOWN_FIELDS | frozenset(self.allow_fields)

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not between 0 and 65535")
        if self.ttft_s < 0 or self.tpot_s < 0:
            raise ConfigError("ttft and tpot must not be negative")
        if self.max_concurrency < 0:
            raise ConfigError("max_concurrency must be 0 (no limit) or more")
        if self.max_concurrency and self.engine is not None:
            raise ConfigError("max_concurrency is for the fixed-timing mode; an engine preset has its own max batch")
        if self.default_output_tokens < 1:
            raise ConfigError("default_output_tokens must be ≥ 1")
        if not self.model:
            raise ConfigError("model name must not be empty")
        if self.engine is not None:
            self.engine.validate()
        self.faults.validate()

    def replace(self, **changes: object) -> EndpointConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


# "fast": a small engine for tests — TTFT of tens of ms, TPOT of a few ms.
# "h200-like": calibrated so that seed 000's case (rate 5, parallel 84,
# 6000 in / 1000 out) gives about 1.8 s average TTFT and 20 ms average TPOT.
PRESETS: dict[str, EngineModel] = {
    "fast": EngineModel(
        prefill_tokens_per_s=50_000.0,
        prefill_overhead_s=0.002,
        max_prefill_tokens_per_step=2048,
        decode_base_s=0.004,
        decode_per_seq_s=0.0005,
        max_batch=8,
        kv_cache_tokens=100_000,
    ),
    "h200-like": EngineModel(
        prefill_tokens_per_s=100_000.0,
        prefill_overhead_s=0.002,
        max_prefill_tokens_per_step=4096,
        decode_base_s=0.0118,
        decode_per_seq_s=0.00005,
        max_batch=77,
        kv_cache_tokens=600_000,
    ),
}


def preset_config(name: str, **overrides: object) -> EndpointConfig:
    """An EndpointConfig using preset engine `name` ("fast" or "h200-like")."""
    try:
        engine = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
    return dataclasses.replace(EndpointConfig(engine=engine), **overrides)  # type: ignore[arg-type]
