"""`ctl compare A B`: two stored runs side by side, the figures an operator decides on, regressions marked.

Pure over two RunReports (controller/report/model.py): per shared case the cluster's TPM, TTFT and TPOT
(avg, p99), throughputs and success rate; a sweep's cluster TPM per point (mean over its loops); an eval's
scores; each case's verdict in A and B. Per-node rows are the same figures on each node both runs share.

A change is a regression when it goes the wrong way (lower TPM, higher TTFT …) by more than `threshold_pct`
percent; a success rate or score that drops at all is one. Improvements are marked likewise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .aggregate import CLUSTER
from .display import better_direction, figure_label
from .report.model import CaseReport, RunReport

LOAD_FIGURES = ("tpm_total", "ttft_avg_s", "ttft_p99_s", "tpot_avg_s", "tpot_p99_s", "output_throughput_tps",
                "request_throughput_rps", "success_rate")
LONG_CONTEXT_FIGURES = ("ttft_avg_s", "latency_avg_s", "success_rate")
STRICT = ("success_rate", "score")  # any drop is a regression
DEFAULT_THRESHOLD_PCT = 5.0


@dataclass(frozen=True)
class Row:
    case_id: str
    scope: str  # "cluster" or a node name
    figure: str  # a figure name; `tpm_total@p4-in256-out32` for a sweep point; `score:gsm8k` for an eval
    a: float
    b: float
    change: str = ""  # "regression" | "improvement" | ""

    @property
    def delta(self) -> float:
        return self.b - self.a

    @property
    def delta_pct(self) -> float:
        return (self.b - self.a) / abs(self.a) * 100 if self.a and not math.isnan(self.a) else math.nan

    def to_dict(self) -> dict[str, Any]:
        def clean(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {"case": self.case_id, "scope": self.scope, "figure": self.figure, "label": figure_label(self.figure),
                "better": better_direction(self.figure), "a": clean(self.a), "b": clean(self.b),
                "delta": clean(self.delta), "delta_pct": clean(self.delta_pct), "change": self.change}


@dataclass(frozen=True)
class VerdictChange:
    case_id: str  # "" for the run
    a: str
    b: str

    @property
    def changed(self) -> bool:
        return self.a != self.b

    @property
    def change(self) -> str:
        rank = {"pass": 0, "fail": 1, "invalid": 1, "incomplete": 1, "error": 1, "": 1}
        if not self.changed:
            return ""
        return "regression" if rank.get(self.b, 1) > rank.get(self.a, 1) else \
            "improvement" if rank.get(self.b, 1) < rank.get(self.a, 1) else "changed"

    def to_dict(self) -> dict[str, Any]:
        return {"case": self.case_id or None, "a": self.a, "b": self.b, "changed": self.changed,
                "change": self.change}


@dataclass
class Comparison:
    run_a: str
    run_b: str
    verdicts: list[VerdictChange]  # the run first, then every shared case
    rows: list[Row]  # cluster rows of every shared case (in A's case order), then per-node rows
    only_a: list[str] = field(default_factory=list)  # cases only one run has
    only_b: list[str] = field(default_factory=list)
    threshold_pct: float = DEFAULT_THRESHOLD_PCT

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.change == "regression"]

    def to_dict(self) -> dict[str, Any]:
        return {"run_a": self.run_a, "run_b": self.run_b, "threshold_pct": self.threshold_pct,
                "verdicts": [v.to_dict() for v in self.verdicts], "rows": [r.to_dict() for r in self.rows],
                "regressions": len(self.regressions), "only_in_a": self.only_a, "only_in_b": self.only_b}


def classify(figure: str, a: float, b: float, threshold_pct: float) -> str:
    """regression / improvement / "" for one figure going from a to b."""
    if math.isnan(a) or math.isnan(b) or a == b:
        return ""
    worse = b < a if better_direction(figure) == "higher" else b > a
    base = figure.replace(":", "@").partition("@")[0]
    if base not in STRICT:
        pct = abs(b - a) / abs(a) * 100 if a else math.inf
        if pct <= threshold_pct:
            return ""
    return "regression" if worse else "improvement"


def _scope_values(case: CaseReport, scope: str) -> dict[str, float]:
    """The compared figures of one case on one scope (cluster or a node); empty when it has none."""
    out: dict[str, float] = {}
    if case.case_type == "sweep":
        groups: dict[tuple[int, int, int], list[float]] = {}
        for r in case.sweep:
            if r.scope == scope:
                groups.setdefault((r.parallel, r.input_tokens, r.output_tokens), []).append(r.figures.tpm_total)
        for (p, i, o), values in groups.items():
            vals = [v for v in values if not math.isnan(v)]
            out[f"tpm_total@p{p}-in{i}-out{o}"] = sum(vals) / len(vals) if vals else math.nan
        return out
    if case.case_type == "eval":
        mine = [s for s in case.scores if s.scope == scope]
        for s in mine:  # `score:gsm8k`; `score:gsm8k/metric` when a dataset has several metrics
            several = sum(1 for x in mine if x.dataset == s.dataset) > 1
            out[f"score:{s.dataset}" + (f"/{s.metric}" if several else "")] = s.score
        return out
    figures = case.cluster if scope == CLUSTER else case.node_figures.get(scope)
    if figures is None:
        return out
    names = LONG_CONTEXT_FIGURES if case.case_type == "long_context" else LOAD_FIGURES
    for name in names:
        try:
            out[name] = figures.value(name)
        except KeyError:
            continue
    return out


def compare_reports(a: RunReport, b: RunReport, per_node: bool = False,
                    threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> Comparison:
    """Cluster rows of every case both runs have, in A's order; then, with `per_node`, each shared node's."""
    cases_b = {c.case_id: c for c in b.cases}
    shared = [c for c in a.cases if c.case_id in cases_b]
    verdicts = [VerdictChange("", a.verdict, b.verdict)]
    verdicts += [VerdictChange(c.case_id, c.verdict, cases_b[c.case_id].verdict) for c in shared]
    rows: list[Row] = []
    scopes = [CLUSTER]
    if per_node:
        nodes_b = {n.name for n in b.nodes}
        scopes += [n.name for n in a.nodes if n.name in nodes_b]
    for scope in scopes:
        for ca in shared:
            va, vb = _scope_values(ca, scope), _scope_values(cases_b[ca.case_id], scope)
            for fig in [f for f in va if f in vb]:
                rows.append(Row(ca.case_id, scope, fig, va[fig], vb[fig],
                                classify(fig, va[fig], vb[fig], threshold_pct)))
    return Comparison(a.run_id, b.run_id, verdicts, rows,
                      only_a=[c.case_id for c in a.cases if c.case_id not in cases_b],
                      only_b=[c.case_id for c in b.cases if c.case_id not in {x.case_id for x in a.cases}],
                      threshold_pct=threshold_pct)
