"""A real inference engine on a GPU, for proving fleetbench on hardware where no serving engine or
model weights can be installed (the lent machines are offline).

The simulator's HTTP front end (fleetbench.endpoint: OpenAI completions/chat, SSE, request log)
with its token clock replaced by real work: a randomly initialised Llama-architecture model in
bf16 on the GPU, one prefill over the prompt's length and one decode step per output token, each
token released when its step has finished on the GPU. Requests run concurrently (a thread each),
so TTFT and TPOT grow with concurrency as the GPU is shared. The text is the simulator's words;
the timing is the GPU's. Not a serving engine to benchmark: a real one to measure against.

    python bench/gpu/engine.py --port 8000 --layers 12 --hidden 1024 --log engine.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from aiohttp import web
from transformers import LlamaConfig, LlamaForCausalLM

from fleetbench.endpoint.config import EndpointConfig
from fleetbench.endpoint.server import build_app


class GpuEngine:
    """`generate()` as the simulator's Engine offers it, backed by real forward passes."""

    def __init__(self, model: LlamaForCausalLM, vocab: int, max_len: int, workers: int = 256) -> None:
        self.model, self.vocab, self.max_len = model, vocab, max_len
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gpu-request")

    def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def generate(self, prompt_tokens: int, max_new_tokens: int) -> AsyncGenerator[int, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[int | None] = asyncio.Queue()
        stop = threading.Event()

        def work() -> None:
            try:
                with torch.inference_mode():
                    n = max(1, min(prompt_tokens, self.max_len - max_new_tokens - 1))
                    ids = torch.randint(0, self.vocab, (1, n), device="cuda")
                    out = self.model(input_ids=ids, use_cache=True)
                    for i in range(max_new_tokens):
                        nxt = out.logits[:, -1:].argmax(-1)
                        nxt.item()  # the token exists on the GPU: release it
                        loop.call_soon_threadsafe(queue.put_nowait, i)
                        if stop.is_set() or i == max_new_tokens - 1:
                            break
                        out = self.model(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        future = loop.run_in_executor(self.pool, work)
        try:
            while (i := await queue.get()) is not None:
                yield i
        finally:
            stop.set()
            await asyncio.shield(future)


def build_model(layers: int, hidden: int, vocab: int, max_len: int) -> LlamaForCausalLM:
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                         num_hidden_layers=layers, num_attention_heads=hidden // 64,
                         num_key_value_heads=max(1, hidden // 256), max_position_embeddings=max_len)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--max-len", type=int, default=32768)
    p.add_argument("--log", type=Path)
    a = p.parse_args()
    from fleetbench.endpoint.tokenizer import demo_words

    vocab = len(demo_words()) + 8
    model = build_model(a.layers, a.hidden, vocab, a.max_len)
    params = sum(x.numel() for x in model.parameters())
    print(f"gpu engine: {torch.cuda.get_device_name()} — random Llama, {a.layers} layers, hidden {a.hidden}, "
          f"{params / 1e6:.0f} M parameters, bf16", flush=True)
    app, server = build_app(EndpointConfig(port=a.port, model="demo", log_path=a.log, max_model_len=a.max_len))
    server.engine = GpuEngine(model, vocab, a.max_len)
    web.run_app(app, host="127.0.0.1", port=a.port, print=None)


if __name__ == "__main__":
    main()
