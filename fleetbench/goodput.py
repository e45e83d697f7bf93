"""Goodput: the share of requests that met a per-request SLO, and the throughput they carried.

Kept apart from fleetbench/figures.py because it needs one more input than records (the SLO) and is
absent when a case gives none. Pure functions over records; the wall time is the same window the
figures divide by (a node's own window, or the cluster's common window), so goodput TPM and TPM
compare directly: goodput_tpm <= tpm_total always, equal when every request met the SLO.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fleetbench.records import RequestRecord

DEFINITIONS: dict[str, str] = {
    "goodput_ratio": "Goodput ratio: requests meeting the per-request SLO / all requests; a request meets it when it "
    "succeeded, its TTFT is at most ttft_s, its TPOT at most tpot_s (only for more than one output token) and its "
    "latency at most latency_s (each limit only when given); failed requests count as misses.",
    "goodput_tps": "Goodput throughput: output tokens of requests meeting the SLO / wall time "
    "(the same window as output throughput).",
    "goodput_tpm": "Goodput TPM: input + output tokens of requests meeting the SLO / wall time x 60 "
    "(comparable to TPM total).",
    "goodput_rps": "Goodput request rate: requests meeting the SLO / wall time.",
}

# figure name -> what it is (for `expect` blocks, docs/figures.md)
FIGURES: dict[str, str] = {
    "goodput_ratio": "requests meeting the case's per-request SLO / all requests (0 to 1)",
    "goodput_requests": "requests meeting the case's per-request SLO",
    "goodput_rps": "requests meeting the SLO / wall time, requests/s",
    "goodput_tps": "output tokens of requests meeting the SLO / wall time, tokens/s",
    "goodput_tpm": "input + output tokens of requests meeting the SLO / wall time × 60",
}

# MLPerf Inference server-scenario latency constraints (p99 TTFT, p99 TPOT, seconds), usable by name.
SLO_PRESETS: dict[str, tuple[float, float]] = {
    "mlperf-llama2-70b": (2.0, 0.2),
    "mlperf-llama2-70b-interactive": (0.45, 0.04),
    "mlperf-llama3.1-405b": (6.0, 0.175),
    "mlperf-mixtral-8x7b": (2.0, 0.2),
    "mlperf-deepseek-r1": (2.0, 0.08),
}


@dataclass(frozen=True)
class Slo:
    """Per-request limits in seconds; None = not limited."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    latency_s: float | None = None

    def describe(self) -> str:
        parts = [f"{name} <= {value:g} s" for name, value in
                 (("TTFT", self.ttft_s), ("TPOT", self.tpot_s), ("latency", self.latency_s)) if value is not None]
        return ", ".join(parts)


def preset_slo(name: str) -> Slo:
    """The per-request SLO of an MLPerf preset (its p99 limits applied to each request)."""
    ttft, tpot = SLO_PRESETS[name]
    return Slo(ttft_s=ttft, tpot_s=tpot)


def meets(record: RequestRecord, slo: Slo) -> bool:
    """Whether one request met the SLO; a failed request never does."""
    if not record.success:
        return False
    if slo.ttft_s is not None and not record.ttft_s <= slo.ttft_s:
        return False
    if slo.tpot_s is not None and record.output_tokens > 1 and not record.tpot_s <= slo.tpot_s:
        return False
    return slo.latency_s is None or record.latency_s <= slo.latency_s


@dataclass(frozen=True)
class Goodput:
    """Goodput of one scope (a node or the cluster) over `wall_time_s`."""

    slo: Slo
    requests: int
    good: int
    input_tokens: int  # of the requests meeting the SLO
    output_tokens: int
    wall_time_s: float

    @property
    def ratio(self) -> float:
        return self.good / self.requests if self.requests else math.nan

    def _per_s(self, x: float) -> float:
        w = self.wall_time_s
        return x / w if w and w > 0 and not math.isnan(w) else math.nan

    @property
    def rps(self) -> float:
        return self._per_s(self.good)

    @property
    def tps(self) -> float:
        return self._per_s(self.output_tokens)

    @property
    def tpm(self) -> float:
        return self._per_s(self.input_tokens + self.output_tokens) * 60

    def values(self) -> dict[str, float]:
        """Figure name -> value, as `expect` names them."""
        return {"goodput_ratio": self.ratio, "goodput_requests": float(self.good), "goodput_rps": self.rps,
                "goodput_tps": self.tps, "goodput_tpm": self.tpm}

    def to_dict(self) -> dict[str, Any]:
        return {"slo": asdict(self.slo), "requests": self.requests, "good": self.good,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "wall_time_s": self.wall_time_s, **self.values()}

    @classmethod
    def merge(cls, parts: Sequence[Goodput], wall_time_s: float) -> Goodput:
        """The goodput of the union of several record sets (the cluster's: every node's requests, counted once
        each) over `wall_time_s` (the common window): counts add up."""
        slo = parts[0].slo if parts else Slo()
        return cls(slo, sum(p.requests for p in parts), sum(p.good for p in parts),
                   sum(p.input_tokens for p in parts), sum(p.output_tokens for p in parts), wall_time_s)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Goodput:
        wall = d.get("wall_time_s")
        return cls(Slo(**d["slo"]), int(d["requests"]), int(d["good"]), int(d["input_tokens"]),
                   int(d["output_tokens"]), math.nan if wall is None else float(wall))


def compute_goodput(records: Sequence[RequestRecord] | Iterable[RequestRecord], slo: Slo,
                    wall_time_s: float) -> Goodput:
    """Goodput of a set of records over the window `wall_time_s` (the figures' wall time of the same set).
    Records held as columns (fleetbench.columns.RecordColumns) are counted vectorized, with the same rule."""
    if all(hasattr(records, k) for k in ("success", "ttft_s", "tpot_s", "latency_s", "output_tokens")):
        return _columns_goodput(records, slo, wall_time_s)
    requests = good = tok_in = tok_out = 0
    for r in records:
        requests += 1
        if meets(r, slo):
            good += 1
            tok_in += r.input_tokens
            tok_out += r.output_tokens
    return Goodput(slo, requests, good, tok_in, tok_out, wall_time_s)


def _columns_goodput(cols: Any, slo: Slo, wall_time_s: float) -> Goodput:
    """`meets` on every record at once (numpy arrays; a NaN time never meets a limit, as in `meets`)."""
    ok = cols.success.astype(bool).copy()
    if slo.ttft_s is not None:
        ok &= cols.ttft_s <= slo.ttft_s
    if slo.tpot_s is not None:
        ok &= (cols.output_tokens <= 1) | (cols.tpot_s <= slo.tpot_s)
    if slo.latency_s is not None:
        ok &= cols.latency_s <= slo.latency_s
    return Goodput(slo, len(cols), int(ok.sum()), int(cols.input_tokens[ok].sum()), int(cols.output_tokens[ok].sum()),
                   wall_time_s)
