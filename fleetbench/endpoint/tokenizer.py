"""A tiny, offline Hugging Face tokenizer for the loopback endpoint.

The demo and the tests need a tokenizer that evalscope can load with
`--tokenizer-path` and that agrees *exactly* with the endpoint on how many
tokens a text has, so that "input tokens" and "output tokens" in a report
can be checked to the token.

The tokenizer is a WordLevel model over a fixed list of plain lowercase ASCII
words with a whitespace-split pre-tokenizer: one token is one
whitespace-separated word (an unknown word is one `<unk>`). Hence for any text

    len(tokenizer.encode(text, add_special_tokens=False)) == len(text.split())

and decoding ids gives the words joined by single spaces, which re-encodes to
the same ids. evalscope's `random` dataset decodes random ids and re-encodes
them until the length matches; with this tokenizer the first round trip is
already exact, so a prompt of N requested tokens has exactly N words.

The chat template joins the message contents with one space and adds nothing
else, so a chat request's prompt tokens are the words of its contents.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "SPECIAL_TOKENS", "count_tokens", "demo_words", "ensure_demo_tokenizer"]

SPECIAL_TOKENS: tuple[str, ...] = ("<unk>", "<s>", "</s>")

# Joins contents with a single space; no role markers, no generation prompt,
# so an empty message has zero tokens (evalscope subtracts the template length).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}"
    "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if not loop.last %} {% endif %}"
    "{% endfor %}"
)

_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "n", "r", "s")
_WORD_COUNT = 4096


@lru_cache(maxsize=1)
def demo_words() -> tuple[str, ...]:
    """The vocabulary's plain words, in id order after the special tokens.

    Deterministic pseudo-words (consonant-vowel syllables), all distinct,
    lowercase ASCII letters only, so no normaliser or clean-up step can split
    or merge them.
    """
    syllables = [o + v for o in _ONSETS for v in _VOWELS]  # 90
    words: list[str] = []
    for coda in _CODAS:
        for a in syllables:
            for b in syllables:
                words.append(a + b + coda)
                if len(words) == _WORD_COUNT:
                    return tuple(words)
    return tuple(words)


def count_tokens(text: str) -> int:
    """Tokens in `text` for the demo tokenizer: its whitespace-separated words."""
    return len(text.split())


def _files() -> dict[str, bytes]:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in demo_words():
        vocab[word] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # Registered as special so that decode(skip_special_tokens=True) drops them
    # and evalscope's random dataset never samples them.
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer_json = tok.to_str(pretty=True)

    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "<unk>",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "model_max_length": 10_000_000,
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False,
        "add_eos_token": False,
        "chat_template": CHAT_TEMPLATE,
    }
    special_map = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
    dump = lambda obj: (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()  # noqa: E731
    return {
        "tokenizer.json": tokenizer_json.encode() + b"\n",
        "tokenizer_config.json": dump(tokenizer_config),
        "special_tokens_map.json": dump(special_map),
    }


def ensure_demo_tokenizer(path: Path | str) -> Path:
    """Write the demo tokenizer into directory `path` (created if needed) and return it.

    Idempotent and safe to call from several processes at once: a file is
    rewritten only when its content differs, through a temporary file and an
    atomic rename. Loadable offline with `AutoTokenizer.from_pretrained(path)`.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, content in _files().items():
        target = path / name
        try:
            if target.read_bytes() == content:
                continue
        except OSError:
            pass
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=path)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path
