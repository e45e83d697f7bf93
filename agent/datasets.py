"""Local prompt datasets for perf jobs, in the forms evalscope reads.

Servers under acceptance are often offline, so every dataset but `random`
comes from a file on the node. A ShareGPT file (the JSON list of
conversations vLLM's and SGLang's serving benchmarks use) is converted to
evalscope's `line_by_line` form: one JSON messages array per line, the
first human turn of each conversation as the user message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

HUMAN_ROLES = ("human", "user")


def sharegpt_prompts(conversations: Iterable[Any]) -> Iterator[str]:
    """The first human turn of each ShareGPT conversation; conversations without one are skipped."""
    for conv in conversations:
        turns = (conv.get("conversations") or conv.get("messages") or []) if isinstance(conv, dict) else []
        for turn in turns:
            if not isinstance(turn, dict):
                continue
            role = turn.get("from", turn.get("role"))
            text = turn.get("value", turn.get("content"))
            if role in HUMAN_ROLES and isinstance(text, str) and text.strip():
                yield text
                break


def sharegpt_to_line_by_line(source: Path, target: Path) -> int:
    """Write `target` in evalscope's line_by_line form from a ShareGPT JSON (or JSONL) file; returns
    the number of prompts. Raises ValueError naming the file when it holds none."""
    text = source.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        rows = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    n = 0
    with target.open("w", encoding="utf-8") as out:
        for prompt in sharegpt_prompts(rows):
            out.write(json.dumps([{"role": "user", "content": prompt}], ensure_ascii=False) + "\n")
            n += 1
    if n == 0:
        raise ValueError(f"dataset_path {source} holds no ShareGPT conversation with a human turn")
    return n
