"""The capacity search: the highest per-node concurrency (or request rate) at which every SLO bound holds, for
each scope (every node and the cluster) at once. Pure: it proposes the next probe and is told each probe's outcome
per scope; the orchestrator runs each probe as one synchronized step on all nodes.

A bracket first (the range's min, then doubling), then a binary search inside each scope's bracket, until the
highest passing and the lowest failing value are `step` apart (or, for a rate, within `ratio` of each other). A
probe's outcome updates every scope, so one run of the fleet serves all brackets. A value counts as within the SLO
for a scope only when every one of its runs held it, and the answer is run `confirm` times before it is taken: noise
can lower the answer (a spurious failure), never raise it — a wrong capacity is a wrong PASS. A failure is never
rerun: one is enough to exclude it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_PROBES_FACTOR = 4  # the search gives up (INVALID) after this × the probes a clean search needs
RATE_RATIO = 0.05  # a rate search without rate_step stops when the lowest failing rate is within 5 % of the answer


Value = int | float  # a concurrency (whole) or a request rate (req/s)


@dataclass
class CapacitySearch:
    lo: Value
    hi: Value
    scopes: Sequence[str]
    confirm: int = 2
    step: Value = 1  # absolute resolution: stop when the highest passing and lowest failing are this close
    ratio: float = 0.0  # relative resolution (rates): also stop when lowest failing <= highest passing × (1 + ratio)
    # value -> one {scope: within SLO} per run, in run order
    runs: dict[Value, list[dict[str, bool]]] = field(default_factory=dict)
    order: list[tuple[Value, int]] = field(default_factory=list)  # (value, attempt) in run order

    @property
    def whole(self) -> bool:
        """Searching a concurrency (whole numbers), not a rate."""
        return isinstance(self.lo, int) and isinstance(self.hi, int) and isinstance(self.step, int)

    def record(self, parallel: Value, passed: Mapping[str, bool]) -> None:
        self.runs.setdefault(parallel, []).append(dict(passed))
        self.order.append((parallel, len(self.runs[parallel])))

    def held(self, parallel: Value, scope: str) -> bool | None:
        """Within the SLO at `parallel` for `scope`: False if any run failed, True if every run passed (at least
        one), None if never run."""
        runs = self.runs.get(parallel)
        if not runs:
            return None
        return all(r.get(scope, False) for r in runs)

    def bracket(self, scope: str) -> tuple[Value | None, Value | None]:
        """(highest value held, lowest failed) for `scope`; a pass above the lowest failure is noise on a
        monotone curve and is not taken."""
        failed = min((p for p in self.runs if self.held(p, scope) is False), default=None)
        passed = max((p for p in self.runs if self.held(p, scope) and (failed is None or p < failed)), default=None)
        return passed, failed

    def resolved(self, passed: Value, failed: Value) -> bool:
        """The bracket is as narrow as the search's resolution asks."""
        return failed - passed <= self.step or (self.ratio > 0 and failed <= passed * (1 + self.ratio))

    def _mid(self, passed: Value, failed: Value) -> Value | None:
        """The next value inside (passed, failed): the midpoint; a rate rounded to 4 significant digits (readable
        step ids and tables), None when rounding leaves nothing strictly between them."""
        if self.whole:
            return (int(passed) + int(failed)) // 2
        mid = float(f"{(passed + failed) / 2:.4g}")
        return mid if passed < mid < failed else None

    def _next_for(self, scope: str) -> Value | None:
        passed, failed = self.bracket(scope)
        if passed is None:
            return None if failed == self.lo else self.lo
        if failed is None:
            return None if passed >= self.hi else min(passed * 2, self.hi)
        if not self.resolved(passed, failed):
            return self._mid(passed, failed)
        return None

    def next_probe(self) -> Value | None:
        """The next value to run, or None when every scope's answer is found and confirmed."""
        for scope in self.scopes:
            nxt = self._next_for(scope)
            if nxt is not None:
                return nxt
        for scope in self.scopes:  # every bracket closed: confirm each answer
            passed, _ = self.bracket(scope)
            if passed is not None and len(self.runs[passed]) < self.confirm:
                return passed
        return None

    def answer(self, scope: str) -> Value | None:
        """The highest value held in every one of at least `confirm` runs; None if none is."""
        passed, _ = self.bracket(scope)
        if passed is None or len(self.runs[passed]) < self.confirm:
            return None
        return passed

    def at_top(self, scope: str) -> bool:
        """The answer is the range's max: the capacity may be higher than the range let the search see."""
        return self.answer(scope) == self.hi

    def probe_budget(self) -> int:
        """A bound on the probes: a clean search needs at most the bracket's doublings + 1, a bisection per scope
        and the confirmations; noise can reopen a bracket, so the guard is a multiple of that."""
        span = max(self.hi - self.lo, 1)
        doublings = max(1, math.ceil(math.log2(max(self.hi / max(self.lo, 1e-9), 1.0))) + 1)
        resolution = max(self.step, self.lo * self.ratio) if self.step or self.ratio else 1
        bisections = max(1, math.ceil(math.log2(max(span / resolution, 1.0))) + 1)
        return MAX_PROBES_FACTOR * (doublings + 1 + len(self.scopes) * (bisections + self.confirm))


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def probe_row(scope: str, parallel: int, attempt: int, state: str, within: bool, figures: Mapping[str, Any],
              extra: Mapping[str, Any], verdicts: Sequence[Any], rate: float = -1.0,
              value: Value | None = None) -> dict[str, Any]:
    """One probe on one scope, from its stored figures (the store's JSON: figures and their extra) and verdicts:
    the figures the report draws (TPM, goodput TPM, p99 TTFT and TPOT) and each SLO figure as measured. `value`
    is the searched one (the concurrency, or the rate on a rate search); `parallel` and `rate` are what was sent."""
    pct = figures.get("percentiles") or {}

    def p99(metric: str) -> float:
        return _num((pct.get(metric) or {}).get("99"))

    goodput = extra.get("goodput") or {}
    return {
        "scope": scope, "value": parallel if value is None else value, "parallel": parallel, "rate": rate,
        "attempt": attempt, "state": state, "within_slo": within,
        "requests": int(figures.get("requests") or 0), "success_rate": _num(figures.get("success_rate")),
        "tpm_total": _num(figures.get("tpm_total")), "tpm_output": _num(figures.get("tpm_output")),
        "goodput_tpm": _num(goodput.get("goodput_tpm")), "goodput_ratio": _num(goodput.get("goodput_ratio")),
        "ttft_p99_s": p99("ttft_s"), "tpot_p99_s": p99("tpot_s"),
        "slo_figures": {v.expectation.figure: v.measured for v in verdicts},
    }


def capacity_result(search: CapacitySearch, rows: Sequence[Mapping[str, Any]],
                    axis: str = "parallel") -> dict[str, dict[str, Any]]:
    """Per scope: the answer (`max_parallel`, or `max_rate` on a rate search; None when nothing held), whether it is
    the range's top, the TPM and goodput TPM there (the lowest of its runs: what the fleet sustained every time),
    and every probe of the scope in run order (an invalid one included: it was run again)."""
    out: dict[str, dict[str, Any]] = {}
    for scope in search.scopes:
        mine = [dict(r) for r in rows if r["scope"] == scope]
        found = search.answer(scope)
        # the runs the search counted at the answer (an invalid probe was run again and is not one of them)
        there = [r for r in mine if r["value"] == found and r["state"] not in ("invalid", "error")]

        def lowest(key: str, rows_there: list[dict[str, Any]] = there) -> float:
            values = [r[key] for r in rows_there if not math.isnan(r[key])]
            return min(values) if values else math.nan

        out[scope] = {f"max_{axis}": found, "at_top": search.at_top(scope), "tpm_total": lowest("tpm_total"),
                      "goodput_tpm": lowest("goodput_tpm"), "probes": mine}
    return out
