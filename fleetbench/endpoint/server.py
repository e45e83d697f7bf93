"""An OpenAI-compatible loopback endpoint that simulates a serving engine.

It is a *simulator*, for tests and the demo: it generates words, not a model's
output. Routes: `POST /v1/completions`, `POST /v1/chat/completions`
(streaming SSE, one token per chunk, and plain JSON), `GET /v1/models`,
`GET /health`, `GET /version`, and `GET /fleetbench/stats` (requests received, rejected, answered).

Timing is scheduled against absolute deadlines on the event loop's clock, so
event-loop jitter delays a chunk but never shifts the ones after it. Every
request is logged server-side (wall-clock arrival, first and last token, token
counts, fault) — `RunningEndpoint.requests()`, and as JSONL with `log_path`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import re
import signal
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from dataclasses import asdict, dataclass
from typing import IO, Any

from aiohttp import web

from fleetbench import __version__
from fleetbench.endpoint.config import EndpointConfig, FaultConfig
from fleetbench.endpoint.tokenizer import count_tokens, demo_words
from fleetbench.errors import ConfigError

__all__ = ["RequestRecord", "RunningEndpoint", "serve", "start_endpoint"]

ENGINE_NAME = "fleetbench-sim"
LISTEN_BACKLOG = 2048


@dataclass
class RequestRecord:
    """The server's truth about one request. Times are wall clock (time.time()), None if never reached."""

    index: int
    id: str
    path: str
    model: str
    stream: bool
    arrival: float
    first_token: float | None = None
    last_token: float | None = None
    prompt_tokens: int = 0
    planned_tokens: int = 0
    completion_tokens: int = 0  # tokens actually sent
    fault: str | None = None
    status: str = "running"  # ok | fault | client_disconnected | bad_request | cancelled
    http_status: int = 200
    error: str | None = None
    body_sha256: str = ""  # of the raw request body, to match a client's record to this one
    canned: bool = False  # answered with a canned reply (--answers) rather than generated words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, kind: str = "BadRequestError",
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.body = body  # the reply's body when not the OpenAI-style error body


def _error_body(message: str, kind: str, status: int) -> dict[str, Any]:
    return {"object": "error", "error": {"message": message, "type": kind, "code": status}}


def unexpected_fields_detail(names: set[str]) -> str:
    """The 422 `detail` of `transformers serve` for unknown request fields: a Python set's repr, sorted."""
    return "Unexpected fields in the request: {" + ", ".join(repr(n) for n in sorted(names)) + "}"


def _pick_fault(faults: FaultConfig, index: int) -> str | None:
    """The fault for the request with arrival index `index`: deterministic for (seed, index)."""
    if not faults.any:
        return None
    draw = random.Random(f"fleetbench-fault:{faults.seed}:{index}").random()
    edge = 0.0
    for kind in FaultConfig.KINDS:
        edge += getattr(faults, kind)
        if draw < edge:
            return kind
    return None


def _prompt_tokens(body: dict[str, Any], chat: bool) -> int:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest(400, "'messages' must be a non-empty list")
        texts: list[str] = []
        for message in messages:
            if not isinstance(message, dict):
                raise _BadRequest(400, "each message must be an object")
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts.extend(
                    str(part.get("text", ""))
                    for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                )
            elif content is not None:
                raise _BadRequest(400, "message content must be a string or a list of parts")
        return count_tokens(" ".join(texts))
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return count_tokens(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(x, int) for x in prompt):
        return len(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(x, str) for x in prompt):
        return sum(count_tokens(x) for x in prompt)
    raise _BadRequest(400, "'prompt' must be a string, a list of strings or a list of token ids")


def _last_user_text(body: dict[str, Any], chat: bool) -> str:
    """The text canned answers are matched against: the last user message, or the (last) prompt."""
    if not chat:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and all(isinstance(x, str) for x in prompt):
            return str(prompt[-1])
        return prompt if isinstance(prompt, str) else ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return content if isinstance(content, str) else ""
    return ""


def reply_pieces(reply: str) -> list[str]:
    """A canned reply as tokens (one per word, each with the whitespace before it), so that
    joining them gives the reply back exactly and the count matches the demo tokenizer."""
    return re.findall(r"\s*\S+", reply.strip())


def _int_field(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _BadRequest(400, f"'{name}' must be a non-negative integer")
        return value
    return None


def output_tokens_for(body: dict[str, Any], default_output_tokens: int) -> int:
    """How many tokens a request gets: max_tokens with ignore_eos, else the default capped by max_tokens."""
    max_tokens = _int_field(body, "max_tokens", "max_completion_tokens")
    min_tokens = _int_field(body, "min_tokens")
    if max_tokens == 0:
        raise _BadRequest(400, "'max_tokens' must be at least 1")
    if body.get("ignore_eos") is True:
        return max_tokens if max_tokens is not None else default_output_tokens
    n = default_output_tokens
    if min_tokens is not None:
        n = max(n, min_tokens)
    if max_tokens is not None:
        n = min(n, max_tokens)
    return max(n, 1)


async def sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    """Sleep until loop.time() ≥ deadline (absolute, so lateness never accumulates)."""
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


class _Server:
    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._counter = 0
        self._words = demo_words()
        self._replies: dict[int, list[str]] = {}  # request index -> canned reply tokens
        self._log: IO[str] | None = None
        self.engine: Any = None
        self._slots: asyncio.Semaphore | None = None  # fixed mode's concurrency limit (created on the loop)
        if config.engine is not None:
            from fleetbench.endpoint.engine import Engine

            self.engine = Engine(config.engine)

    # -- lifecycle -------------------------------------------------------
    async def on_startup(self, _app: web.Application) -> None:
        if self.config.log_path is not None:
            self.config.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.config.log_path, "a", encoding="utf-8")  # noqa: SIM115
        if self.engine is not None:
            self.engine.start()

    async def on_cleanup(self, _app: web.Application) -> None:
        if self.engine is not None:
            await self.engine.stop()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _finish(self, record: RequestRecord) -> None:
        self._replies.pop(record.index, None)
        if record.status == "running":
            record.status = "fault" if record.fault else "ok"
        if self._log is not None:
            self._log.write(json.dumps(record.to_dict()) + "\n")
            self._log.flush()

    # -- simple routes ---------------------------------------------------
    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def version(self, _request: web.Request) -> web.Response:
        return web.json_response({"version": __version__, "engine": ENGINE_NAME})

    def stats(self) -> dict[str, Any]:
        """Counts of the generation requests so far (see `RunningEndpoint.stats`)."""
        records = list(self.records)
        status = Counter(r.status for r in records)
        return {
            "received": len(records),
            "rejected": status["bad_request"],
            "answered": status["ok"],
            "faulted": status["fault"],
            "disconnected": status["client_disconnected"] + status["cancelled"],
            "running": status["running"],
            "by_http_status": {str(k): v for k, v in sorted(Counter(r.http_status for r in records).items())},
            "by_fault": dict(sorted(Counter(r.fault for r in records if r.fault).items())),
        }

    async def stats_route(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.config.model,
                        "object": "model",
                        "created": 0,
                        "owned_by": "fleetbench",
                        "root": self.config.model,
                        "max_model_len": self.config.max_model_len,
                    }
                ],
            }
        )

    # -- generation ------------------------------------------------------
    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    def _new_record(self, request: web.Request, arrival: float) -> RequestRecord:
        with self._lock:
            index = self._counter
            self._counter += 1
        record = RequestRecord(
            index=index, id="", path=request.path, model=self.config.model, stream=False, arrival=arrival
        )
        self.records.append(record)
        return record

    async def _generate(self, request: web.Request, chat: bool) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        record = self._new_record(request, time.time())
        try:
            raw = await request.read()
            record.body_sha256 = hashlib.sha256(raw).hexdigest()
            if self.config.api_key and request.headers.get("Authorization") != f"Bearer {self.config.api_key}":
                raise _BadRequest(401, "Incorrect API key provided.", "AuthenticationError")
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise _BadRequest(400, "request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise _BadRequest(400, "request body must be a JSON object")
            if self.config.strict and (unknown := set(body) - self.config.known_fields):
                detail = unexpected_fields_detail(unknown)
                raise _BadRequest(422, detail, "UnprocessableEntity", body={"detail": detail})
            model = body.get("model") or self.config.model
            if not isinstance(model, str):
                raise _BadRequest(400, "'model' must be a string")
            if self.config.strict_model and model != self.config.model:
                raise _BadRequest(404, f"The model `{model}` does not exist.", "NotFoundError")
            record.model = model
            record.stream = body.get("stream") is True
            record.prompt_tokens = _prompt_tokens(body, chat)
            record.planned_tokens = output_tokens_for(body, self.config.default_output_tokens)
            self._apply_answer(record, body, chat)
            if record.prompt_tokens + record.planned_tokens > self.config.max_model_len:
                raise _BadRequest(
                    400,
                    f"This model's maximum context length is {self.config.max_model_len} tokens; "
                    f"the request has {record.prompt_tokens} prompt and {record.planned_tokens} output tokens.",
                )
        except _BadRequest as exc:
            record.status, record.http_status, record.error = "bad_request", exc.status, str(exc)
            self._finish(record)
            reply = exc.body if exc.body is not None else _error_body(str(exc), exc.kind, exc.status)
            return web.json_response(reply, status=exc.status)

        record.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        record.fault = _pick_fault(self.config.faults, record.index)
        try:
            if record.fault == "http_500":
                record.http_status = 500
                record.error = "injected HTTP 500"
                return web.json_response(
                    _error_body("Internal server error (injected fault)", "InternalServerError", 500), status=500
                )
            if record.fault == "http_error":
                faults = self.config.faults
                record.http_status = faults.http_error_status
                record.error = f"injected HTTP {faults.http_error_status}"
                return web.Response(status=faults.http_error_status, body=faults.http_error_reply(),
                                    content_type="application/json")
            if record.fault == "done_only":
                record.error = "injected reply without content: [DONE] only"
                return web.Response(status=200, body=b"data: [DONE]\n\n", content_type="text/event-stream",
                                    charset="utf-8", headers={"Cache-Control": "no-cache"})
            if record.fault == "empty_body":
                record.error = "injected empty body"
                return web.Response(status=200, body=b"",
                                    content_type="text/event-stream" if record.stream else "application/json")
            if self.config.max_concurrency and self.engine is None:
                if self._slots is None:
                    self._slots = asyncio.Semaphore(self.config.max_concurrency)
                async with self._slots:  # FIFO: asyncio wakes waiters in order; the wait is part of the TTFT
                    t0 = loop.time()
                    return await self._respond(request, record, chat, t0, body)
            return await self._respond(request, record, chat, t0, body)
        except (ConnectionResetError, ConnectionError):
            record.status = "client_disconnected"
            raise
        except asyncio.CancelledError:
            if record.status == "running":
                record.status = "cancelled"
            raise
        finally:
            self._finish(record)

    async def _respond(self, request: web.Request, record: RequestRecord, chat: bool, t0: float,
                       body: dict[str, Any]) -> web.StreamResponse:
        if record.stream:
            return await self._stream(request, record, chat, t0, body)
        return await self._complete(request, record, chat, t0)

    async def _token_times(self, record: RequestRecord, t0: float) -> AsyncGenerator[int, None]:
        """Yield token indices 0..planned-1, each when that token is due."""
        loop = asyncio.get_running_loop()
        if record.fault == "slow_first_token":
            t0 += self.config.faults.slow_first_token_s
            await sleep_until(loop, t0)
        if self.engine is None:
            ttft, tpot = self.config.ttft_s, self.config.tpot_s
            for i in range(record.planned_tokens):
                await sleep_until(loop, t0 + ttft + i * tpot)
                yield i
            return
        async for i in self.engine.generate(record.prompt_tokens, record.planned_tokens):
            yield i

    def _apply_answer(self, record: RequestRecord, body: dict[str, Any], chat: bool) -> None:
        """Use the first canned answer whose `contains` is in the request's last user text; its
        length replaces the generated one (still capped by max_tokens; ignore_eos does not pad it)."""
        if not self.config.answers:
            return
        text = _last_user_text(body, chat)
        for answer in self.config.answers:
            if answer.contains in text:
                pieces = reply_pieces(answer.reply)
                max_tokens = _int_field(body, "max_tokens", "max_completion_tokens")
                record.planned_tokens = min(len(pieces), max_tokens) if max_tokens else len(pieces)
                record.canned = True
                self._replies[record.index] = pieces
                return

    def _piece(self, record: RequestRecord, i: int) -> str:
        """Token i's text, with the space before it."""
        pieces = self._replies.get(record.index)
        if pieces is not None:
            return pieces[i]
        word = self._words[(record.index * 31 + i) % len(self._words)]
        return word if i == 0 else " " + word

    def _fault_point(self, record: RequestRecord) -> int:
        """Index of the token before which a mid-stream fault strikes (≥ 1 token is sent first)."""
        return max(1, record.planned_tokens // 2)

    async def _stream(
        self, request: web.Request, record: RequestRecord, chat: bool, t0: float, body: dict[str, Any]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        created = int(record.arrival)
        head = {"id": record.id, "object": "chat.completion.chunk" if chat else "text_completion"}
        meta = json.dumps({**head, "created": created, "model": record.model})[:-1]
        prefix = f'data: {meta}, "choices": [{{"index": 0, '.encode()
        try:
            return await self._stream_tokens(request, resp, record, chat, t0, body, prefix, head, created)
        except ConnectionError:  # the client went away (closed, timed out): nothing more to send
            record.status = "client_disconnected"
            return resp

    async def _stream_tokens(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        record: RequestRecord,
        chat: bool,
        t0: float,
        body: dict[str, Any],
        prefix: bytes,
        head: dict[str, str],
        created: int,
    ) -> web.StreamResponse:
        n = record.planned_tokens
        fault_at = self._fault_point(record) if record.fault in ("reset", "malformed", "stall") else -1
        empty = record.fault == "empty_chunks"
        if empty:
            record.error = "injected empty chunks"
        finish = "length" if n == _int_field(body, "max_tokens", "max_completion_tokens") else "stop"
        async with contextlib.aclosing(self._token_times(record, t0)) as tokens:
            async for i in tokens:
                if i == fault_at:
                    if record.fault == "reset":
                        record.error = "injected connection reset"
                        _reset_connection(request)
                        return resp
                    if record.fault == "malformed":
                        record.error = "injected malformed SSE"
                        await resp.write(b'data: {"id": "' + record.id.encode() + b'", "choices": [{"ind\n\n')
                        await resp.write(prefix[: -len(b'"choices": [{"index": 0, ')] + b'"choices": "malformed"}\n\n')
                        await resp.write_eof()
                        return resp
                    if record.fault == "stall":
                        record.error = "injected stall"
                        await asyncio.sleep(self.config.faults.stall_s)
                word = "" if empty else self._piece(record, i)
                if chat:
                    delta: dict[str, str] = {"content": word}
                    if i == 0:
                        delta = {"role": "assistant", "content": word}
                    piece = '"delta": ' + json.dumps(delta)
                else:
                    piece = '"text": ' + json.dumps(word)
                reason = json.dumps(finish) if i == n - 1 else "null"
                await resp.write(prefix + f'{piece}, "logprobs": null, "finish_reason": {reason}}}]}}\n\n'.encode())
                if empty:
                    continue  # nothing was generated: no first token, no completion tokens
                now = time.time()
                if i == 0:
                    record.first_token = now
                record.last_token = now
                record.completion_tokens = i + 1
        usage = {
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "total_tokens": record.prompt_tokens + record.completion_tokens,
        }
        final = {**head, "created": created, "model": record.model, "choices": [], "usage": usage}
        record.status = "fault" if record.fault else "ok"  # before the client can see the end
        await resp.write(b"data: " + json.dumps(final).encode() + b"\n\ndata: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _complete(self, request: web.Request, record: RequestRecord, chat: bool, t0: float) -> web.StreamResponse:
        words: list[str] = []
        async with contextlib.aclosing(self._token_times(record, t0)) as tokens:
            async for i in tokens:
                if i == 0 and record.fault == "stall":
                    record.error = "injected stall"
                    await asyncio.sleep(self.config.faults.stall_s)
                if record.fault == "empty_chunks":
                    record.error = "injected empty reply"
                    continue
                words.append(self._piece(record, i))
                now = time.time()
                if i == 0:
                    record.first_token = now
                record.last_token = now
                record.completion_tokens = i + 1
        if record.fault == "reset":
            record.error = "injected connection reset"
            _reset_connection(request)
            return web.Response(status=200)
        usage = {
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "total_tokens": record.prompt_tokens + record.completion_tokens,
        }
        text = "".join(words)
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": "length"}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        if record.fault == "malformed":
            record.error = "injected malformed JSON"
            broken = b'{"id": "' + record.id.encode() + b'", "choi'
            return web.Response(status=200, body=broken, content_type="application/json")
        payload = {
            "id": record.id,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(record.arrival),
            "model": record.model,
            "choices": [choice],
            "usage": usage,
        }
        return web.json_response(payload)


def _reset_connection(request: web.Request) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), like a crashed server."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def build_app(config: EndpointConfig) -> tuple[web.Application, _Server]:
    server = _Server(config)
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.on_startup.append(server.on_startup)
    app.on_cleanup.append(server.on_cleanup)
    app.router.add_post("/v1/completions", server.completions)
    app.router.add_post("/v1/chat/completions", server.chat_completions)
    app.router.add_get("/v1/models", server.models)
    app.router.add_get("/health", server.health)
    app.router.add_get("/version", server.version)
    app.router.add_get("/fleetbench/stats", server.stats_route)
    return app, server


class RunningEndpoint:
    """A started endpoint. `url` is the OpenAI base URL, e.g. http://127.0.0.1:8000/v1."""

    def __init__(self, runner: web.AppRunner, server: _Server, host: str, port: int) -> None:
        self._runner = runner
        self._server = server
        self.host = host
        self.port = port
        url_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{url_host}:{port}/v1"
        self.config = server.config

    @property
    def completions_url(self) -> str:
        return self.url + "/completions"

    @property
    def chat_url(self) -> str:
        return self.url + "/chat/completions"

    def requests(self) -> list[RequestRecord]:
        """The server-side log: one record per generation request, in arrival order."""
        return list(self._server.records)

    def stats(self) -> dict[str, Any]:
        """What `GET /fleetbench/stats` answers: generation requests received, rejected (HTTP 4xx before any
        generation: bad input, unknown fields in strict mode, unknown model), answered (a complete reply),
        faulted, disconnected and running, and counts by HTTP status and by fault."""
        return self._server.stats()

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningEndpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def start_endpoint(config: EndpointConfig) -> RunningEndpoint:
    """Start the endpoint on the running loop and return once it listens."""
    config.validate()
    app, server = build_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    # uvicorn's (so vLLM's) listen backlog rather than aiohttp's 128: a burst of hundreds of new
    # streams queues here as it would at a real engine's front end
    site = web.TCPSite(runner, config.host, config.port, backlog=LISTEN_BACKLOG)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    port = config.port
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            port = int(addr[1])
            break
    return RunningEndpoint(runner, server, config.host, port)


def serve(config: EndpointConfig, on_ready: Callable[[RunningEndpoint], None] | None = None) -> None:
    """Run the endpoint until SIGINT or SIGTERM (blocking)."""

    async def main() -> None:
        endpoint = await start_endpoint(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            on_ready(endpoint)
        try:
            await stop.wait()
        finally:
            await endpoint.stop()

    asyncio.run(main())
