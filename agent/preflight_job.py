"""The preflight job: everything a run needs on this node, checked before any load.

Runs in the job's child process (the only place that imports evalscope). Each check is one entry of
JOB_DIR/preflight.json: free space in the agent's data dir, evalscope's parts the plan needs,
every tokenizer and dataset, the endpoint's port, and ONE request per case shape, built by
evalscope's own API plugin from the same `Arguments` the case's perf job would use and posted with
evalscope's own `AioHttpClient` (the request cannot drift from what the load will send; only the
prompt is short), plus one tiny request per eval case through evalscope's own eval model client.
A reply counts only with content: an engine answering HTTP 200 with nothing (`data: [DONE]` only,
an empty body) fails as "empty reply".

The job succeeds whenever the checks ran; the checks carry the verdict.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from fleetbench.jobs_schema import EvalSpec, PerfSpec, PreflightSpec

from .endpoint_check import check_endpoint
from .evalscope_adapter import evalscope_version, perf_arguments

CHECKS_FILE = "preflight.json"
PROMPT = "Say hello in one short sentence."
EVAL_MAX_TOKENS = 16  # the tiny eval request: its reply only has to exist
BODY_CHARS = 300
CONNECT_TIMEOUT_S = 10.0
GIB = 1 << 30
# Fields every OpenAI-compatible engine takes; the others a case sends are named when an engine rejects a request.
OPENAI_FIELDS = frozenset({
    "model", "prompt", "messages", "max_tokens", "stream", "stream_options", "temperature", "top_p", "seed",
    "stop", "n", "logprobs", "frequency_penalty", "presence_penalty", "user",
})


class EventSink(Protocol):
    def send(self, **event: Any) -> None: ...


@dataclass
class Check:
    """One check's outcome, as preflight.json keeps it."""

    name: str  # free_space, evalscope, tokenizer, dataset_path, dataset, endpoint, request
    ok: bool
    detail: str
    case_id: str = ""
    status: int | None = None  # the HTTP status of a request check's reply
    body: str = ""  # the reply's body (or error text), cut to one line
    hint: str = ""
    elapsed_s: float = 0.0


# --- pure helpers: what a reply means and what to do about it ------------------------------------


def one_line(text: Any, limit: int = BODY_CHARS) -> str:
    """`text` on one line, cut to `limit` characters."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def where(node: str) -> str:
    return f"node {node}" if node else "this node"


def unusual_fields(body: dict[str, Any]) -> list[str]:
    """Fields of a request body outside the common OpenAI set (min_tokens, ignore_eos, extra_args...)."""
    return sorted(k for k in body if k not in OPENAI_FIELDS)


def http_hint(status: int, body: str, url: str, model: str, sent: list[str], node: str = "") -> str:
    """What to do about an endpoint answering HTTP `status` with `body` to a request carrying the unusual
    fields `sent`."""
    low = body.lower()
    named = [f for f in sent if f.lower() in low] or sent
    rejects_fields = any(w in low for w in ("unexpected field", "extra field", "extra inputs", "not permitted",
                                            "unrecognized", "unknown field", "unsupported parameter"))
    if status == 422 or (status == 400 and rejects_fields):
        fields = f" ({', '.join(named)})" if named else ""
        return (f"the engine rejects fields the case sends{fields}: remove them from the case's extra_args, or let "
                "the engine accept them; min_tokens comes from output_tokens (set `fixed_output: false` on the "
                "case to send only max_tokens), ignore_eos from extra_args")
    if status in (401, 403):
        return "the engine refuses the API key: check endpoint.api_key in the plan"
    if status == 404:
        if "model" in low:
            return f"the engine does not serve model {model!r}: check the plan's model (GET …/v1/models lists it)"
        return f"nothing serves {urlsplit(url).path} there: check the endpoint URL (…/v1/completions or " \
               "…/v1/chat/completions)"
    if status == 429:
        return "the engine is rate-limiting: nothing else should load it during acceptance"
    if status == 400:
        return "the engine refuses the request: check the case's extra_args, output_tokens and the model's context " \
               "length"
    if status >= 500:
        return f"the engine failed on the request: see its log on {where(node)}"
    return "the engine refuses the request; see the body"


def reply_text(messages: list[Any]) -> str:
    """The text (content or reasoning) in an OpenAI reply's JSON objects: a plain reply's `choices[].message` or
    `choices[].text`, a stream's `choices[].delta` or `choices[].text`. Anything else (an empty body that a
    client read as `None`) is no text."""
    out = []
    for msg in messages:
        for choice in (msg.get("choices") or []) if isinstance(msg, dict) else []:
            if not isinstance(choice, dict):
                continue
            part = choice.get("message") or choice.get("delta") or {}
            if isinstance(part, dict):
                out += [part.get(k) for k in ("content", "reasoning_content", "reasoning")]
            out.append(choice.get("text"))
    return "".join(t for t in out if isinstance(t, str))


def request_failure(error: str, url: str, timeout_s: float, node: str) -> tuple[str, str]:
    """(detail, hint) of a request that got no HTTP error status but no reply either."""
    low = error.lower()
    if "connect" in low and ("refused" in low or "cannot connect" in low):
        return "no connection to the endpoint", f"is the engine listening at {url} on {where(node)}?"
    if not error.strip() or "timeout" in low:
        return (f"no complete reply within {timeout_s:g} s",
                "the engine is slow or stuck on this request shape: check it, or raise the preflight timeout")
    return "the request failed", f"see the engine's log on {where(node)}"


# --- the checks ---------------------------------------------------------------------------------


def _timed(name: str, case_id: str, fn: Callable[[], Check]) -> Check:
    t0 = time.perf_counter()
    check = fn()
    return replace(check, name=name, case_id=case_id, elapsed_s=round(time.perf_counter() - t0, 3))


def check_free_space(data_dir: Path, min_free_bytes: int, node: str) -> Check:
    free = shutil.disk_usage(data_dir).free
    detail = f"{free / GIB:.1f} GiB free in {data_dir} (need ≥ {min_free_bytes / GIB:.1f} GiB)"
    if free >= min_free_bytes:
        return Check("free_space", True, detail)
    return Check("free_space", False, detail,
                 hint=f"free space on {where(node)}'s data dir filesystem, or run the agent with another --data-dir")


def check_evalscope(perf: bool, eval_: bool) -> Check:
    """evalscope's parts the plan needs, imported as the jobs will import them."""
    parts = []
    try:
        if perf:
            parts.append("perf")
            import evalscope.perf.arguments
            import evalscope.perf.core.http_client
            import evalscope.perf.main
            import evalscope.perf.plugin
        if eval_:
            parts.append("eval")
            import evalscope.api.model
            import evalscope.api.registry
            import evalscope.config
            import evalscope.run  # noqa: F401
    except Exception as exc:  # an import error, or whatever a broken install raises
        extra = "[perf]" if "perf" in parts[-1:] else ""
        return Check("evalscope", False, f"evalscope {parts[-1]} cannot be imported: {type(exc).__name__}: "
                     f"{one_line(exc, 200)}",
                     hint=f"install it in the agent's environment: pip install 'evalscope{extra}'")
    return Check("evalscope", True, f"evalscope {evalscope_version()} ({', '.join(parts) or 'nothing needed'})")


def _path_missing(path: str, what: str, node: str, fix: str) -> Check | None:
    if Path(path).exists():
        return None
    return Check("", False, f"{what} {path} does not exist on {where(node)}",
                 hint=f"copy it to {path} on {where(node)}, or fix {fix} in the plan")


@dataclass
class Shape:
    """One perf request shape: the case's job Arguments and evalscope's API plugin to build its body."""

    case_id: str
    spec: PerfSpec
    args: Any = None  # evalscope's Arguments
    plugin: Any = None
    error: Check | None = None


def prepare_shapes(spec: PreflightSpec, out_dir: Path, checks: list[Check]) -> list[Shape]:
    """Each perf shape's Arguments, exactly as its job builds them; one API plugin per tokenizer, whose
    construction (evalscope loading the tokenizer) is the tokenizer check."""
    from evalscope.perf.arguments import Arguments
    from evalscope.perf.plugin import ApiRegistry

    shapes: list[Shape] = []
    for entry in spec.perf:
        case_id, perf = entry.case_id, entry.spec
        shape = Shape(case_id, perf)
        try:
            shape.args = Arguments(**{**perf_arguments(perf, out_dir, name="preflight"),
                                      "total_timeout": spec.request_timeout_s})
            for name in ("parallel", "number", "rate"):  # one run's scalars, as evalscope's run_one_benchmark does
                if isinstance(getattr(shape.args, name), list):
                    setattr(shape.args, name, getattr(shape.args, name)[0])
        except Exception as exc:
            shape.error = Check("request", False, f"evalscope refuses the case's arguments: {one_line(exc, 200)}",
                                case_id, hint="fix the case in the plan (evalscope's own validation)")
        shapes.append(shape)
    plugins: dict[tuple[str, str], Any] = {}
    for shape in shapes:
        if shape.args is None:
            continue
        key = (shape.spec.api, shape.spec.tokenizer_path)
        if key not in plugins:
            plugins[key] = _plugin(ApiRegistry.get_class(shape.spec.api), shape, spec.node, checks)
        shape.plugin = plugins[key]
    for shape in shapes:
        if shape.spec.dataset_path:
            missing = _path_missing(shape.spec.dataset_path, "dataset_path", spec.node, "the case's dataset_path")
            if missing is not None:
                checks.append(replace(missing, name="dataset_path", case_id=shape.case_id))
    return shapes


def _plugin(cls: Any, shape: Shape, node: str, checks: list[Check]) -> Any:
    path = shape.spec.tokenizer_path
    if not path:
        return cls(shape.args)
    t0 = time.perf_counter()
    missing = _path_missing(path, "tokenizer path", node, "`tokenizer`")
    check = missing
    plugin = None
    if missing is None:
        try:
            plugin = cls(shape.args)  # evalscope's OpenaiPlugin loads the tokenizer as the job will
            check = Check("", True, f"tokenizer {path} loads ({type(plugin.tokenizer).__name__})")
        except Exception as exc:
            check = Check("", False, f"tokenizer {path} does not load on {where(node)}: {type(exc).__name__}: "
                          f"{one_line(exc, 200)}",
                          hint=f"{path} must be the model's tokenizer folder (tokenizer.json, tokenizer_config.json)")
    assert check is not None
    checks.append(replace(check, name="tokenizer", elapsed_s=round(time.perf_counter() - t0, 3)))
    if plugin is None:  # the request's body does not need the tokenizer: check the endpoint anyway
        plugin = cls(shape.args.model_copy(update={"tokenizer_path": None}))
    return plugin


async def post_shape(shape: Shape, timeout_s: float, node: str) -> Check:
    """ONE request of the shape's exact body (short prompt), through evalscope's own client."""
    from evalscope.perf.core.http_client import AioHttpClient

    args, spec = shape.args, shape.spec
    messages: Any = [{"role": "user", "content": PROMPT}] if args.apply_chat_template else PROMPT
    body = shape.plugin.build_request(messages, param=args)  # as evalscope's own --prompt path builds it
    sent = unusual_fields(body)
    t0 = time.perf_counter()
    async with AioHttpClient(args, shape.plugin) as client:
        out = await client.post(dict(body))
    elapsed = round(time.perf_counter() - t0, 3)
    fields = ", ".join(sorted(body))
    base = Check("request", False, "", shape.case_id, out.status_code, elapsed_s=elapsed)
    if out.status_code is not None:
        text = one_line(out.error)
        return replace(base, detail=f"endpoint answered HTTP {out.status_code}", body=text,
                       hint=http_hint(out.status_code, text, args.url, spec.model, sent, node))
    if not out.success:
        error = out.error or ""
        if error.lstrip().startswith("{"):  # an error inside an HTTP 200 stream (vLLM, SGLang)
            return replace(base, status=200, detail="endpoint answered HTTP 200 with an error in the stream",
                           body=one_line(error), hint=http_hint(500, error, args.url, spec.model, sent, node))
        detail, hint = request_failure(error, args.url, timeout_s, node)
        return replace(base, detail=detail, body=one_line(error.strip().splitlines()[-1] if error.strip() else ""),
                       hint=hint)
    tokens = int(out.completion_tokens or 0)
    text = reply_text(out.response_messages)  # not generated_text: evalscope makes "None" of an empty JSON body
    if not text and tokens <= 0:
        return replace(base, status=200, detail="empty reply: HTTP 200 without any content",
                       body=one_line(json.dumps(out.response_messages)[:BODY_CHARS]) if out.response_messages else "",
                       hint=f"the engine sends no tokens for this request shape ({fields}); see its log on "
                            f"{where(node)}")
    if spec.stream and not out.is_stream:
        return replace(base, status=200, detail="the engine answered a streamed request without streaming",
                       hint="TTFT and TPOT cannot be measured: let the engine stream (text/event-stream), or set "
                            "stream: false in the case")
    size = f"{tokens} output tokens" if tokens else f"{len(text)} characters"
    return replace(base, ok=True, status=200,
                   detail=f"HTTP 200, {size} in {elapsed:.2f} s ({'streamed' if out.is_stream else 'not streamed'}; "
                          f"sent {fields})")


def eval_config(spec: EvalSpec, work_dir: Path) -> Any:
    """evalscope's TaskConfig of the eval case, as its job builds it (one sample per subset to parse)."""
    from evalscope.config import TaskConfig

    from .eval_job import task_config

    return TaskConfig(**task_config(spec.model_copy(update={"limit": 1}), work_dir))


def check_eval_datasets(case_id: str, spec: EvalSpec, cfg: Any, node: str) -> list[Check]:
    """Every dataset's local path exists and evalscope loads it the way the run will."""
    from evalscope.api.registry import get_benchmark

    checks = []
    for name, path in spec.local_paths().items():
        t0 = time.perf_counter()
        missing = _path_missing(path, f"dataset_args.{name}.local_path", node, f"dataset_args.{name}.local_path")
        if missing is not None:
            checks.append(replace(missing, name="dataset", case_id=case_id))
            continue
        try:
            loaded = sum(len(ds) for ds in get_benchmark(name, cfg).load_dataset().values())
        except Exception as exc:
            check = Check("dataset", False, f"dataset {name} at {path} does not load: {type(exc).__name__}: "
                          f"{one_line(exc, 200)}", case_id,
                          hint=f"{path} must be a copy of the benchmark's Hugging Face dataset folder, in its layout")
        else:
            check = Check("dataset", loaded > 0, f"dataset {name} at {path} " +
                          ("loads" if loaded else "has no samples"), case_id,
                          hint="" if loaded else f"check the subsets and splits of {name} in dataset_args")
        checks.append(replace(check, elapsed_s=round(time.perf_counter() - t0, 3)))
    return checks


async def post_eval(case_id: str, spec: EvalSpec, cfg: Any, timeout_s: float, node: str) -> Check:
    """One tiny request through evalscope's own eval model client (its OpenAI client, the case's
    generation_config, max_tokens capped)."""
    import openai
    from evalscope.api.model import GenerateConfig, get_model_with_task_config

    # one request, as the controller promises: no retries by evalscope or by the OpenAI client itself
    model = get_model_with_task_config(cfg.model_copy(update={"model_args": {**(cfg.model_args or {}),
                                                                             "max_retries": 0}}))
    max_tokens = min(int(spec.generation_config.max_tokens or EVAL_MAX_TOKENS), EVAL_MAX_TOKENS)
    base = Check("request", False, "", case_id)
    url = spec.url + "/chat/completions"
    t0 = time.perf_counter()
    try:
        out = await model.generate_async(PROMPT, config=GenerateConfig(max_tokens=max_tokens, retries=0,
                                                                       timeout=timeout_s))
    except openai.APIStatusError as exc:
        text = one_line(exc.response.text if exc.response is not None else exc.message)
        return replace(base, status=exc.status_code, detail=f"endpoint answered HTTP {exc.status_code}", body=text,
                       hint=http_hint(exc.status_code, text, url, spec.model,
                                      sorted(spec.generation_config.extra_body or {}), node),
                       elapsed_s=round(time.perf_counter() - t0, 3))
    except openai.APITimeoutError as exc:
        detail, hint = request_failure("timeout", url, timeout_s, node)
        return replace(base, detail=detail, body=one_line(exc), hint=hint)
    except openai.APIConnectionError as exc:
        detail, hint = request_failure(f"cannot connect: {exc.__cause__ or exc}", spec.url, timeout_s, node)
        return replace(base, detail=detail, body=one_line(exc.__cause__ or exc), hint=hint)
    except (ValueError, RuntimeError) as exc:  # evalscope's verdicts on an HTTP 200 reply it cannot use
        text, elapsed = str(exc), round(time.perf_counter() - t0, 3)
        if "error event" in text:  # an error inside an HTTP 200 stream (vLLM, SGLang)
            return replace(base, status=200, detail="endpoint answered HTTP 200 with an error in the stream",
                           body=one_line(text), hint=f"see the engine's log on {where(node)}", elapsed_s=elapsed)
        if "No valid chat completion chunks" in text or isinstance(exc, ValueError):
            return replace(base, status=200, detail="empty reply: HTTP 200 without any content", body=one_line(text),
                           hint=f"the engine sends no tokens to the eval's request; see its log on {where(node)}",
                           elapsed_s=elapsed)
        return replace(base, status=200, detail="the reply cannot be used by evalscope's eval", body=one_line(text),
                       hint=f"see the engine's log on {where(node)}", elapsed_s=elapsed)
    finally:
        await model.aclose()
    elapsed = round(time.perf_counter() - t0, 3)
    tokens = int(out.usage.output_tokens) if out.usage else 0
    if out.error:
        return replace(base, detail="the eval request failed", body=one_line(out.error), elapsed_s=elapsed,
                       hint=f"see the engine's log on {where(node)}")
    if not out.completion and tokens <= 0:
        return replace(base, status=200, detail="empty reply: HTTP 200 without any content", elapsed_s=elapsed,
                       hint=f"the engine sends no tokens to the eval's request; see its log on {where(node)}")
    return replace(base, ok=True, status=200, elapsed_s=elapsed,
                   detail=f"HTTP 200, {tokens} output tokens in {elapsed:.2f} s (eval client, max_tokens {max_tokens})")


def check_endpoints(urls: list[str], node: str) -> dict[str, Check]:
    """Something listens at each endpoint's host:port (a refused or silent port fails in seconds, not after
    the request's whole timeout); keyed by host:port."""

    out: dict[str, Check] = {}
    for url in urls:
        key = urlsplit(url).netloc
        if key in out:
            continue
        t0 = time.perf_counter()
        try:
            check_endpoint(url, CONNECT_TIMEOUT_S)
            check = Check("endpoint", True, f"{key} accepts connections")
        except ConnectionError as exc:
            reason = str(exc).rsplit(": ", 1)[-1]
            check = Check("endpoint", False, f"{url} is not reachable from {where(node)}: {reason}",
                          hint=f"is the engine listening at {url} on {where(node)}? (the plan's endpoint.url, or the "
                               "fleet file's endpoint for the node)")
        out[key] = replace(check, elapsed_s=round(time.perf_counter() - t0, 3))
    return out


async def _bounded(coro: Awaitable[Check], case_id: str, timeout_s: float, node: str) -> Check:
    try:
        return await asyncio.wait_for(coro, timeout_s + CONNECT_TIMEOUT_S)
    except TimeoutError:
        detail, hint = request_failure("timeout", "", timeout_s, node)
        return Check("request", False, detail, case_id, hint=hint, elapsed_s=timeout_s)
    except Exception as exc:  # a bug or an evalscope surprise: one failed check, not a failed job
        traceback.print_exc()  # to job.log
        return Check("request", False, f"the request could not be made: {type(exc).__name__}: {one_line(exc, 200)}",
                     case_id, hint="see job.log in the preflight job's folder on the agent")


def data_dir_of(job_dir: Path) -> Path:
    """The agent's data dir (jobs live in DATA_DIR/jobs/<job_id>)."""
    return job_dir.parent.parent if job_dir.parent.name == "jobs" else job_dir


def write_checks(job_dir: Path, checks: list[Check]) -> None:
    tmp = job_dir / (CHECKS_FILE + ".tmp")
    tmp.write_text(json.dumps([asdict(c) for c in checks], indent=1))
    tmp.replace(job_dir / CHECKS_FILE)


def run_preflight_job(job_dir: Path, spec: PreflightSpec, channel: EventSink) -> int:
    """Every check of `spec`, written to JOB_DIR/preflight.json; 0 even when checks fail (they carry the verdict)."""
    from .eval_job import _cache_env

    for key, value in _cache_env(job_dir).items():
        os.environ.setdefault(key, value)
    node = spec.node
    checks: list[Check] = []
    try:
        checks.append(_timed("free_space", "", lambda: check_free_space(data_dir_of(job_dir), spec.min_free_bytes,
                                                                         node)))
        channel.send(type="phase", message="loading evalscope")
        imported = _timed("evalscope", "", lambda: check_evalscope(bool(spec.perf), bool(spec.evals)))
        checks.append(imported)
        if not imported.ok:
            return 0
        shapes: list[Shape] = []
        if spec.perf:
            channel.send(type="phase", message=f"tokenizer and {len(spec.perf)} request shape(s)")
            shapes = prepare_shapes(spec, job_dir / "preflight-outputs", checks)
            checks += [s.error for s in shapes if s.error is not None]
        configs: dict[str, Any] = {}
        for case_id, ev in ((e.case_id, e.spec) for e in spec.evals):
            channel.send(type="phase", message=f"loading datasets of {case_id}: {', '.join(ev.datasets)}")
            try:
                configs[case_id] = eval_config(ev, job_dir / "preflight-eval" / case_id)
            except Exception as exc:  # evalscope's own validation of the case
                checks.append(Check("dataset", False, f"evalscope refuses the eval case: {type(exc).__name__}: "
                                    f"{one_line(exc, 200)}", case_id, hint="fix the case in the plan"))
                continue
            checks += check_eval_datasets(case_id, ev, configs[case_id], node)
        urls = [s.args.url for s in shapes if s.args is not None] + [e.spec.url for e in spec.evals]
        endpoints = check_endpoints(urls, node)
        checks += endpoints.values()
        reachable = {k for k, c in endpoints.items() if c.ok}
        requests: list[Awaitable[Check]] = []
        timeout = float(spec.request_timeout_s)
        for s in shapes:
            if s.args is not None and urlsplit(s.args.url).netloc in reachable:
                requests.append(_bounded(post_shape(s, timeout, node), s.case_id, timeout, node))
        for case_id, ev in ((e.case_id, e.spec) for e in spec.evals):
            if case_id in configs and urlsplit(ev.url).netloc in reachable:
                requests.append(_bounded(post_eval(case_id, ev, configs[case_id], timeout, node), case_id, timeout,
                                         node))
        if requests:
            channel.send(type="phase", message=f"sending {len(requests)} request(s), one per case shape")

            async def send_all() -> list[Check]:
                return list(await asyncio.gather(*requests))

            checks += asyncio.run(send_all())
        return 0
    finally:
        write_checks(job_dir, checks)
        failed = [c for c in checks if not c.ok]
        channel.send(type="progress", done=len(checks) - len(failed), total=len(checks), failed=len(failed),
                     output_tps=0.0, elapsed_s=0.0, eta_s=0.0, final=True)
        channel.send(type="phase", message=f"preflight: {len(checks)} check(s), {len(failed)} failed" +
                     "".join(f"; {c.name}{' ' + c.case_id if c.case_id else ''}: {c.detail}" for c in failed[:3]))

