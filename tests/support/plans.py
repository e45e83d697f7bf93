"""Plan texts the integration tests run on local fleets: the header they share and the cases several of them run."""

from __future__ import annotations

from pathlib import Path

# the plan's endpoint when the fleet file's are the ones used: `ctl run --fleet` sends each node's load to its own
NO_ENDPOINT = "http://127.0.0.1:9/v1/completions"

# two loops over (parallel 1, number 2) and (parallel 2, number 4), 16 tokens in and exactly 8 out: four steps
SWEEP_CASE = """\
  - id: sweep
    type: sweep
    parallel: [1, 2]
    number: [2, 4]
    input_tokens: [16]
    output_tokens: [8]
    loops: 2
    extra_args: {ignore_eos: true}
    expect:
      success_rate: {min: 1.0}
"""


def plan_text(name: str, tokenizer: Path | str, cases: str, *, endpoint: str = NO_ENDPOINT) -> str:
    """A plan of the demo model named `name`: its `cases` (YAML list items as written, two spaces in) with
    `tokenizer`, against `endpoint`."""
    return f"name: {name}\nmodel: demo\nendpoint: {{url: {endpoint}}}\ntokenizer: {tokenizer}\ncases:\n{cases}"


def load_case(parallel: int, number: int, output_tokens: int, *, expect: str = "") -> str:
    """Case `load`: `number` requests of 64 tokens, each made to answer exactly `output_tokens` (ignore_eos),
    `parallel` at a time; every one must succeed, and the `expect` lines (`figure: {op: value}`) hold."""
    wanted = "".join(f"      {line}\n" for line in [*expect.splitlines(), "success_rate: {min: 1.0}"])
    return (f"  - id: load\n    parallel: {parallel}\n    number: {number}\n    input_tokens: 64\n"
            f"    output_tokens: {output_tokens}\n    extra_args: {{ignore_eos: true}}\n    expect:\n{wanted}")
