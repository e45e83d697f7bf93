"""What the GPU benches share (tf_serve_h200.py, capacity_h200.py): a random-weight Llama saved on the machine,
`transformers serve` on it with continuous batching (or, for a dry run without a GPU, FB_TF_FAKE=1: the
simulator in --strict mode, which refuses the same request fields), real agents on loopback, a fleet file
pointing every node at that one engine, and their stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from fleetbench.controller.localfleet import free_port, wait_for_port
from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer


def make_model(model: Path) -> str:
    """A 91 M-parameter Llama (hidden 768, 12 layers) in bf16 with the demo tokenizer, saved to `model`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    ensure_demo_tokenizer(model)  # tokenizer.json, tokenizer_config.json (PreTrainedTokenizerFast), 4099 ids
    vocab = len(json.loads((model / "tokenizer.json").read_text())["model"]["vocab"])
    cfg = LlamaConfig(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                      num_key_value_heads=12, vocab_size=vocab, max_position_embeddings=4096,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    llama = LlamaForCausalLM(cfg).to(torch.bfloat16)
    llama.save_pretrained(model)
    return (f"model: Llama hidden 768, 12 layers, vocab {vocab}, "
            f"{sum(p.numel() for p in llama.parameters()) / 1e6:.0f} M parameters, bf16, saved to {model}")


@contextmanager
def engine_and_agents(work: Path, model: Path, out: Path, names: Sequence[str], say: Callable[..., None],
                      log_level: str = "info", fake_args: Sequence[str] = (),
                      agent_log: Callable[[str], Path] | None = None) -> Iterator[tuple[Path, int]]:
    """The engine (its log: OUT/engine.log) and one agent per name (logs: `agent_log(name)`, default
    OUT/agent-NAME.log), listening; yields the fleet file and the engine's port. All are stopped on the way out."""
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    ep = free_port()
    if os.environ.get("FB_TF_FAKE"):
        ensure_demo_tokenizer(model)
        cmd = [sys.executable, "-m", "fleetbench.endpoint", "--port", str(ep), "--model", str(model), "--strict",
               *fake_args]
    else:
        say(make_model(model))
        cmd = ["transformers", "serve", str(model), "--continuous-batching", "--host", "127.0.0.1", "--port",
               str(ep), "--device", "cuda:0", "--dtype", "bfloat16", "--log-level", log_level]
    say("$", " ".join(cmd))
    procs = [subprocess.Popen(cmd, stdout=(out / "engine.log").open("w"), stderr=subprocess.STDOUT, env=env)]
    ports = {}
    for name in names:
        ports[name] = free_port()
        log = agent_log(name) if agent_log else out / f"agent-{name}.log"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "fleetbench.agent", "serve", "--listen", f"127.0.0.1:{ports[name]}",
             "--data-dir", str(work / "agents" / name), "--allow-path", str(work)],
            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env))
    try:
        t = time.time()
        wait_for_port(ep, 300, procs[0])
        say(f"engine listening after {time.time() - t:.1f} s; {len(names)} agents")
        for port in ports.values():
            wait_for_port(port, 60)
        fleet = work / "fleet.yaml"
        fleet.write_text("nodes:\n" + "".join(
            f'  {n}: {{address: "127.0.0.1:{p}", endpoint: "http://127.0.0.1:{ep}/v1/completions"}}\n'
            for n, p in ports.items()))
        yield fleet, ep
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
