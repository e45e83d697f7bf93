"""Secrets in job specs and plans: API keys and request headers, kept out of what is written to disk.

A job spec carries the engine's API key and request headers (Authorization, cookies, custom tokens). The
agent needs them only while the job runs: `split` takes them out of the spec that goes into job.json and
agent.sqlite (each value replaced by `***`), the job process gets them through its environment
(`SECRETS_ENV`) and `merge` puts them back; when the job has ended the agent scrubs their values from the
job's files (evalscope logs its arguments). Every header value counts as a secret: a header is how an
engine is authenticated, and telling an auth header from another by its name is a guess.

The controller stores a plan with its API key redacted (`redact_plan_text`) and writes reports from it.
Pure functions over plain data; the callers do the I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import yaml

REDACTED = "***"
SECRETS_ENV = "FLEETBENCH_JOB_SECRETS"
SECRET_KEYS = ("api_key",)  # a string value under one of these keys is a secret
HEADER_KEYS = ("headers", "extra_headers")  # every string value of a mapping under these keys is
NOT_SECRET = ("", "EMPTY", REDACTED)  # what OpenAI-compatible engines take for "no key"
MIN_SCRUB = 4  # shorter values are not searched for in files: "abc" would match in every log line

Path_ = tuple[str | int, ...]


def split(doc: Any) -> tuple[Any, dict[str, str]]:
    """(the document with every secret replaced by ***, {path: secret}); paths are `a/0/b` strings."""
    found: dict[str, str] = {}

    def walk(node: Any, path: Path_, header: bool) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                here = (*path, key)
                if isinstance(value, str) and (header or key in SECRET_KEYS) and value not in NOT_SECRET:
                    found["/".join(map(str, here))] = value
                    out[key] = REDACTED
                else:
                    out[key] = walk(value, here, key in HEADER_KEYS and isinstance(value, dict))
            return out
        if isinstance(node, list):
            return [walk(v, (*path, i), False) for i, v in enumerate(node)]
        return node

    return walk(doc, (), False), found


def merge(doc: Any, secrets: dict[str, str]) -> Any:
    """`doc` with each secret put back at its path (the inverse of `split`)."""
    for path, value in secrets.items():
        node = doc
        *parents, last = path.split("/")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return doc


def scrub(data: bytes, secrets: Iterable[str]) -> bytes:
    """`data` with every occurrence of each secret (as written, and as JSON writes it) replaced by ***."""
    for value in sorted(set(secrets), key=len, reverse=True):  # a longer secret containing a shorter one first
        if len(value) < MIN_SCRUB:
            continue
        for form in {value, json.dumps(value)[1:-1]}:
            data = data.replace(form.encode(), REDACTED.encode())
    return data


def redact_plan_text(text: str, api_key: str) -> str:
    """The plan's YAML as the store keeps it: its API key replaced by *** wherever it appears (the endpoint's
    `api_key:`, any copy of it, a comment), comments and line numbers kept. Where a plain replacement would
    not read back as the same plan with `api_key: ***` (the key inside a longer quoted string), the plan is
    written anew from its parsed form instead."""
    if api_key in NOT_SECRET:
        return text
    quoted = f'"{REDACTED}"'
    out = text.replace(json.dumps(api_key), quoted).replace(f"'{api_key}'", quoted).replace(api_key, quoted)
    original = yaml.safe_load(text)
    try:
        again = yaml.safe_load(out)
    except yaml.YAMLError:
        again = None
    expected = _replace_in_strings(original, api_key)
    if again != expected or api_key in out:
        out = yaml.safe_dump(expected, sort_keys=False, allow_unicode=True)
    return out


def _replace_in_strings(node: Any, secret: str) -> Any:
    if isinstance(node, str):
        return node.replace(secret, REDACTED)
    if isinstance(node, int | float) and not isinstance(node, bool) and str(node) == secret:
        return REDACTED  # `api_key: 12345678`: the plan reads it as text
    if isinstance(node, dict):
        return {k: _replace_in_strings(v, secret) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_in_strings(v, secret) for v in node]
    return node
