"""The demo tokenizer: offline loading, exact whitespace token counts, exact evalscope round trips."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from fleetbench.endpoint.tokenizer import SPECIAL_TOKENS, count_tokens, demo_words, ensure_demo_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def tok_dir(demo_tokenizer: Path) -> Path:
    return demo_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tok_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tok_dir))


def test_words_are_plain_distinct_lowercase_ascii() -> None:
    words = demo_words()
    assert len(words) >= 2000
    assert len(set(words)) == len(words)
    assert all(w.isascii() and w.isalpha() and w.islower() for w in words)


def test_files_written_and_idempotent(tmp_path: Path) -> None:
    d = ensure_demo_tokenizer(tmp_path / "t")
    names = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}
    assert names <= {p.name for p in d.iterdir()}
    before = {n: (d / n).stat().st_mtime_ns for n in names}
    assert ensure_demo_tokenizer(tmp_path / "t") == d
    assert {n: (d / n).stat().st_mtime_ns for n in names} == before
    (d / "tokenizer.json").write_text("{}")  # a damaged file is repaired
    ensure_demo_tokenizer(d)
    assert (d / "tokenizer.json").stat().st_size > 1000


def test_loads_offline_with_specials_only(tokenizer) -> None:  # type: ignore[no-untyped-def]
    assert len(tokenizer) == len(demo_words()) + len(SPECIAL_TOKENS)
    assert sorted(tokenizer.convert_ids_to_tokens(tokenizer.all_special_ids)) == sorted(SPECIAL_TOKENS)


@pytest.mark.parametrize(
    "text", ["", "baba", "baba bebe  bibi\n bobo", "Hello, world!  unknown-word 12 3", "\t lead and trail \n"]
)
def test_token_count_is_whitespace_word_count(tokenizer, text: str) -> None:  # type: ignore[no-untyped-def]
    assert len(tokenizer.encode(text, add_special_tokens=False)) == len(text.split()) == count_tokens(text)


def test_random_ids_round_trip_exactly(tokenizer) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(1)
    special = set(tokenizer.all_special_ids)
    allowed = [i for i in range(len(tokenizer)) if i not in special]
    for n in (1, 2, 17, 500, 6000):
        ids = [rng.choice(allowed) for _ in range(n)]
        text = tokenizer.decode(ids)
        assert len(text.split()) == n
        assert tokenizer.encode(text, add_special_tokens=False) == ids


def test_chat_template_counts_only_content_words(tokenizer) -> None:  # type: ignore[no-untyped-def]
    from evalscope.perf.plugin.datasets.utils import tokenize_chat_messages

    assert tokenize_chat_messages(tokenizer, [{"role": "user", "content": ""}]) == []
    messages = [
        {"role": "system", "content": "baba bebe"},
        {"role": "user", "content": [{"type": "text", "text": "bibi bobo bubu"}]},
    ]
    assert len(tokenize_chat_messages(tokenizer, messages)) == 5


@pytest.mark.parametrize("chat", [False, True])
def test_evalscope_random_dataset_prompts_have_exact_length(tok_dir: Path, chat: bool) -> None:
    from evalscope.perf.arguments import Arguments
    from evalscope.perf.plugin.datasets.random_dataset import RandomDatasetPlugin

    url = "http://127.0.0.1:1/v1/chat/completions" if chat else "http://127.0.0.1:1/v1/completions"
    for n in (1, 64, 3000):
        args = Arguments(
            model="demo",
            url=url,
            dataset="random",
            tokenizer_path=str(tok_dir),
            min_prompt_length=n,
            max_prompt_length=n,
            number=5,
            max_tokens=8,
        )
        prompts = list(RandomDatasetPlugin(args).build_messages())
        assert len(prompts) == 5
        for prompt in prompts:
            text = prompt[0]["content"] if chat else prompt
            assert isinstance(text, str)
            assert len(text.split()) == n


def test_gen_prompt_decode_to_target_len_exact(tokenizer) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    from evalscope.perf.plugin.datasets.utils import gen_prompt_decode_to_target_len

    allowed = np.arange(len(SPECIAL_TOKENS), len(tokenizer))
    rng = np.random.default_rng(0)
    for n in (1, 100, 6000):
        seq = allowed[rng.integers(0, len(allowed), size=n)].tolist()
        text, ids, mismatch = gen_prompt_decode_to_target_len(tokenizer, seq, n, allowed_tokens=allowed)
        assert mismatch == 0
        assert ids == seq
        assert count_tokens(text) == n
