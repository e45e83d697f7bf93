"""`fleetbench-endpoint`: run the simulated OpenAI-compatible endpoint on this machine."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from fleetbench.endpoint.config import PRESETS, EndpointConfig, FaultConfig, load_answers, preset_config
from fleetbench.errors import FleetbenchError

DESCRIPTION = """\
Serve a simulated LLM inference engine with an OpenAI-compatible API
(/v1/completions, /v1/chat/completions, /v1/models, /health, /version) for
tests and demos. It generates words, not a model's output.

Timing: by default every request gets its first token --ttft-ms after it
arrives and one more token every --tpot-ms, whatever the load. With --preset
the endpoint simulates a continuous-batching engine instead (prefill time grows
with the prompt, decode steps slow down with the batch, requests queue when the
batch or KV cache is full): "fast" for tests, "h200-like" for demos in the
range of an 8×H200 DeepSeek server. See docs/simulator.md.

A request with "ignore_eos": true gets exactly max_tokens tokens; otherwise
--output-tokens capped by max_tokens. Token counts use the demo tokenizer
(one token per whitespace-separated word): write it with --write-tokenizer DIR
and pass DIR to evalscope as --tokenizer-path.

--answers FILE gives fixed replies: a JSON list or JSON lines of
{"contains": "...", "reply": "..."}; a request whose last user message (or
prompt) contains the substring gets that reply, the first match winning. An
eval against the endpoint then scores exactly the questions it was given
right answers for.

--strict answers HTTP 422 {"detail": "Unexpected fields in the request: {...}"}
to a request with a field outside the OpenAI parameters (min_tokens and
ignore_eos included), like `transformers serve`; --allow-field NAME accepts
one more. GET /fleetbench/stats counts the requests received, rejected and
answered.
"""

EPILOG = """\
examples:
  fleetbench-endpoint --port 8000 --ttft-ms 200 --tpot-ms 20
  fleetbench-endpoint --preset h200-like --model DeepSeek-V3.2 --log requests.jsonl
  fleetbench-endpoint --fault-500 0.05 --fault-reset 0.02 --fault-seed 7
  fleetbench-endpoint --answers answers.jsonl --ttft-ms 5 --tpot-ms 1
  fleetbench-endpoint --strict                                  # 422 for evalscope's min_tokens/ignore_eos
  fleetbench-endpoint --strict --allow-field min_tokens --allow-field ignore_eos
  fleetbench-endpoint --fault-done-only 1                       # every reply: HTTP 200, data: [DONE] only
  fleetbench-endpoint --fault-http 1 --fault-http-status 429 --fault-http-body '{"detail": "slow down"}'
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fleetbench-endpoint",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port, 0 picks a free one (default: %(default)s)")
    p.add_argument("--model", default="demo", help="model name served in /v1/models (default: %(default)s)")
    p.add_argument("--ttft-ms", type=float, default=200.0, help="time to first token (default: %(default)s)")
    p.add_argument("--tpot-ms", type=float, default=20.0, help="time per output token (default: %(default)s)")
    p.add_argument(
        "--output-tokens", type=int, default=128, help="reply length without ignore_eos (default: %(default)s)"
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="simulate a batching engine with these numbers instead of fixed TTFT/TPOT",
    )
    p.add_argument("--max-concurrency", type=int, default=0, metavar="N",
                   help="fixed timing: at most N requests generate at once, the others queue (FIFO) and their TTFT "
                        "includes the wait (default: no limit)")
    p.add_argument("--log", type=Path, metavar="PATH", help="append one JSON line per request to PATH")
    p.add_argument("--strict-model", action="store_true", help="answer 404 to requests naming another model")
    p.add_argument("--answers", type=Path, metavar="FILE",
                   help='canned replies: JSON (lines) of {"contains": "...", "reply": "..."}')
    p.add_argument("--write-tokenizer", type=Path, metavar="DIR", help="write the demo tokenizer to DIR and go on")
    p.add_argument("--strict", action="store_true",
                   help="answer HTTP 422 to requests with fields outside the OpenAI parameters (like transformers "
                        "serve; min_tokens and ignore_eos are refused)")
    p.add_argument("--allow-field", action="append", default=[], metavar="NAME",
                   help="with --strict, accept this request field too (repeatable)")
    p.add_argument("--api-key", default="", metavar="KEY",
                   help="answer HTTP 401 unless the request has `Authorization: Bearer KEY` (like vLLM)")

    f = p.add_argument_group("fault injection (fractions of requests, 0..1, deterministic for a seed)")
    f.add_argument("--fault-500", type=float, default=0.0, metavar="FRAC", help="answer HTTP 500")
    f.add_argument("--fault-reset", type=float, default=0.0, metavar="FRAC", help="reset the connection mid-stream")
    f.add_argument("--fault-malformed", type=float, default=0.0, metavar="FRAC", help="send a malformed SSE event")
    f.add_argument("--fault-stall", type=float, default=0.0, metavar="FRAC", help="stop sending mid-stream")
    f.add_argument("--fault-slow-first", type=float, default=0.0, metavar="FRAC", help="delay the first token")
    f.add_argument("--fault-done-only", type=float, default=0.0, metavar="FRAC",
                   help="HTTP 200 with a stream of only data: [DONE]")
    f.add_argument("--fault-empty-body", type=float, default=0.0, metavar="FRAC", help="HTTP 200 with an empty body")
    f.add_argument("--fault-empty-chunks", type=float, default=0.0, metavar="FRAC",
                   help='chunks whose text is "", usage with 0 completion tokens')
    f.add_argument("--fault-http", type=float, default=0.0, metavar="FRAC",
                   help="answer HTTP --fault-http-status with --fault-http-body")
    f.add_argument("--fault-http-status", type=int, default=429, metavar="CODE",
                   help="status of --fault-http, 400..599 (default: %(default)s)")
    f.add_argument("--fault-http-body", default="", metavar="JSON",
                   help="body of --fault-http (default: an OpenAI-style error body)")
    f.add_argument("--stall-s", type=float, default=30.0, help="length of a stall (default: %(default)s)")
    f.add_argument(
        "--slow-first-s", type=float, default=5.0, help="extra delay of a slow first token (default: %(default)s)"
    )
    f.add_argument("--fault-seed", type=int, default=0, help="seed of the fault RNG (default: %(default)s)")
    return p


def config_from_args(args: argparse.Namespace) -> EndpointConfig:
    faults = FaultConfig(
        http_500=args.fault_500,
        reset=args.fault_reset,
        malformed=args.fault_malformed,
        stall=args.fault_stall,
        slow_first_token=args.fault_slow_first,
        done_only=args.fault_done_only,
        empty_body=args.fault_empty_body,
        empty_chunks=args.fault_empty_chunks,
        http_error=args.fault_http,
        http_error_status=args.fault_http_status,
        http_error_body=args.fault_http_body,
        stall_s=args.stall_s,
        slow_first_token_s=args.slow_first_s,
        seed=args.fault_seed,
    )
    base = preset_config(args.preset) if args.preset else EndpointConfig()
    config = dataclasses.replace(
        base,
        host=args.host,
        port=args.port,
        model=args.model,
        ttft_s=args.ttft_ms / 1000.0,
        tpot_s=args.tpot_ms / 1000.0,
        default_output_tokens=args.output_tokens,
        faults=faults,
        log_path=args.log,
        strict_model=args.strict_model,
        api_key=args.api_key,
        answers=load_answers(args.answers) if args.answers is not None else (),
        strict=args.strict,
        allow_fields=tuple(args.allow_field),
        max_concurrency=args.max_concurrency,
    )
    config.validate()
    return config


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        if args.write_tokenizer is not None:
            from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer

            ensure_demo_tokenizer(args.write_tokenizer)
            print(f"tokenizer written to {args.write_tokenizer}", flush=True)

        from fleetbench.endpoint.server import serve

        def ready(endpoint: object) -> None:
            mode = f"preset {args.preset}" if args.preset else f"ttft {args.ttft_ms:g} ms, tpot {args.tpot_ms:g} ms"
            if config.max_concurrency:
                mode += f", at most {config.max_concurrency} at once (the rest queue)"
            if config.strict:
                mode += ", strict request fields"
            print(f"fleetbench-endpoint listening on {endpoint.url} (model {config.model}, {mode})", flush=True)  # type: ignore[attr-defined]

        serve(config, on_ready=ready)
    except FleetbenchError as exc:
        print(f"fleetbench-endpoint: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
