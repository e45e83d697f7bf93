"""The largest value every field of a plan case and of a job spec may take, declared once.

An agent sits beside a production engine for weeks: a spec with `parallel = number = 1e9` or a 10 MB model
name must be refused before it costs memory or disk, with a sentence naming the field and the bound. The
plan (fleetbench/plan_schema.py, `ctl plan check`) and the job specs (fleetbench/jobs_schema.py, the agent's
StartJob) both read their bounds from here, so a plan that passes `ctl plan check` is never refused by an
agent for a bound, and the other way round. The figures are far above any acceptance run (docs/plan.md
lists them); raising one is a one-line change here.

`check_json_text` is what the agent runs on a StartJob's spec_json before json.loads: its size and its
nesting depth are read without building anything (a 100,000-deep array must not reach the parser's
recursion).
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

# --- load: per node, per job ---
MAX_PARALLEL = 100_000
"""concurrent streams"""
MAX_NUMBER = 10_000_000
"""requests of one job (a sweep point, a perf case)"""
MAX_TOKENS = 4_194_304
"""input or output tokens of one request (4 Mi: beyond any served context window today)"""
MAX_RATE = 1_000_000.0
"""requests/s"""
MAX_WORKERS = 1024
"""load-generator processes"""
MAX_SECONDS = 7 * 86_400
"""any timeout or duration, seconds (a week)"""
MAX_SWEEP_POINTS = 10_000
"""points of one sweep case (input × output × parallel × loops)"""
MAX_CASES = 1000
"""cases of one plan"""
MAX_BYTES = 1 << 50
"""a byte count (1 PiB)"""
MAX_SEED = (1 << 63) - 1
"""a seed, either sign"""
MAX_COUNT = 1_000_000
"""small counts: repeats, few-shot examples, top_k, retries …"""

# --- eval ---
MAX_DATASETS = 256
"""datasets of one eval case"""
MAX_LIMIT = 10_000_000
"""samples per subset"""
MAX_LIST_ITEMS = 10_000
"""items of a list (subsets, stop sequences, metrics …)"""
MAX_PREFLIGHT_ENTRIES = 10_000
"""checks of one preflight"""

# --- text ---
MAX_NAME = 256
"""a model, case, node, dataset or subset name; a header name"""
MAX_URL = 2048
"""a URL"""
MAX_PATH = 4096
"""a path on the node (Linux PATH_MAX)"""
MAX_SECRET = 8192
"""an API key, a header value"""
MAX_TEXT = 1 << 16
"""free text: a prompt template, a purpose, a description (64 KiB)"""
MAX_HEADERS = 64
"""headers of a request"""
MAX_MAPPING_JSON = 1 << 16
"""a free-form mapping (extra_args, extra_body, filters …) as JSON, bytes (64 KiB)"""

# --- the request itself ---
MAX_SPEC_BYTES = 1 << 20
"""a StartJob's spec_json (1 MiB; a preflight of many cases is the largest real one, ~100 KiB)"""
MAX_JSON_DEPTH = 32
"""nesting of a spec's JSON (the deepest real one, an eval's extra_body, is ~8)"""
MAX_DEADLINE_S = 30 * 86400.0
"""a StartJob's deadline_s, seconds (30 days)"""
MAX_PLAN_BYTES = 4 << 20
"""a plan file (4 MiB)"""


def describe(bound: float) -> str:
    """A bound as the sentences print it: 10000000, 1048576, 1000000.0 -> 1000000."""
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # a JSON string, escapes included
_STEP = [0] * 256  # a byte's change of nesting depth
for _c in b"[{":
    _STEP[_c] = 1
for _c in b"]}":
    _STEP[_c] = -1
_CHUNK = 1 << 16


def deeper_than(text: str, limit: int) -> bool:
    """Whether a JSON text nests arrays and objects more than `limit` deep, read without parsing it.

    Strings are cut out (their brackets are text), then the running depth is summed chunk by chunk at C
    speed (accumulate over a lookup), stopping at the first chunk that goes deeper than `limit`: a 1 MiB
    text takes tens of milliseconds at most, a deep one far less. Unbalanced brackets are left to the
    parser to name."""
    data = _STRING.sub("", text).encode("utf-8", "replace")
    depth = 0
    for start in range(0, len(data), _CHUNK):
        running = list(accumulate(map(_STEP.__getitem__, data[start:start + _CHUNK]), initial=depth))
        if max(running) > limit:
            return True
        depth = running[-1]
    return False


def check_json_text(text: str | bytes, what: str = "spec_json") -> str | None:
    """Why a JSON text is refused before it is parsed (too large, nested too deep), or None."""
    size = len(text)
    if size > MAX_SPEC_BYTES:
        return f"{what} is {size} bytes; the limit is {MAX_SPEC_BYTES} bytes"
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    if deeper_than(raw, MAX_JSON_DEPTH):
        return f"{what} is nested more than {MAX_JSON_DEPTH} deep"
    return None


def reject_constant(name: str) -> Any:
    """json.loads' parse_constant: NaN and Infinity are not JSON (Python's parser takes them by default)."""
    raise ValueError(f"{name} is not a number JSON allows")


def loads(text: str | bytes) -> Any:
    """json.loads without NaN or Infinity (ValueError naming the constant; JSONDecodeError as usual)."""
    return json.loads(text, parse_constant=reject_constant)


def json_value_problem(value: Any, max_bytes: int = MAX_MAPPING_JSON) -> str | None:
    """Why a free-form JSON value (a mapping of extra request fields …) is refused, or None: too large
    as JSON, nested too deep, or holding a number that is not finite."""
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        return "must hold only finite numbers"
    except (TypeError, RecursionError):
        return "must be plain JSON (mappings, lists, strings, numbers, true/false/null)"
    if len(text) > max_bytes:
        return f"must be at most {max_bytes} bytes as JSON, got {len(text)}"
    if deeper_than(text, MAX_JSON_DEPTH):
        return f"must be nested at most {MAX_JSON_DEPTH} deep"
    return None
