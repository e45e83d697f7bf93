"""Run history over the store: summaries of past runs and side-by-side comparison (pure over stored data)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .aggregate import CLUSTER
from .store import Store

COMPARED_FIGURES = (
    "requests", "success_rate", "wall_time_s", "output_throughput_tps", "total_throughput_tps",
    "request_throughput_rps", "tpm_total", "tpm_output", "ttft_avg_s", "tpot_avg_s", "itl_avg_s", "latency_avg_s",
)
COMPARED_PERCENTILES = (("ttft_s", (50, 90, 99)), ("tpot_s", (50, 90, 99)), ("latency_s", (50, 90, 99)))


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    started_at: float
    plan_name: str
    nodes: list[str]
    state: str
    verdict: str
    cluster_tpm: dict[str, float]  # case id -> cluster TPM (total)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "started_at": self.started_at, "plan": self.plan_name, "nodes": self.nodes,
                "state": self.state, "verdict": self.verdict,
                "cluster_tpm": {k: (None if math.isnan(v) else v) for k, v in self.cluster_tpm.items()}}


@dataclass(frozen=True)
class Delta:
    case_id: str
    scope: str
    figure: str
    a: float
    b: float

    @property
    def delta(self) -> float:
        return self.b - self.a

    @property
    def delta_pct(self) -> float:
        return (self.b - self.a) / self.a * 100 if self.a else math.nan

    def to_dict(self) -> dict[str, Any]:
        def clean(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {"case": self.case_id, "scope": self.scope, "figure": self.figure, "a": clean(self.a),
                "b": clean(self.b), "delta": clean(self.delta), "delta_pct": clean(self.delta_pct)}


def _flat(figures_json: str) -> dict[str, float]:
    d = json.loads(figures_json)
    out = {k: (math.nan if d.get(k) is None else float(d[k])) for k in COMPARED_FIGURES}
    for metric, points in COMPARED_PERCENTILES:
        base, _, unit = metric.rpartition("_")
        table = d["percentiles"].get(metric, {})
        for p in points:
            v = table.get(str(p))
            out[f"{base}_p{p}_{unit}"] = math.nan if v is None else float(v)
    return out


def summarize(store: Store, run: dict[str, Any]) -> RunSummary:
    tpm = {r["case_id"]: (math.nan if (v := json.loads(r["figures_json"]).get("tpm_total")) is None else v)
           for r in store.figures(run["run_id"]) if r["scope"] == CLUSTER}
    return RunSummary(run["run_id"], run["started_at"], run["plan_name"], json.loads(run["nodes"]), run["state"],
                      run["verdict"] or "", tpm)


def list_runs(store: Store) -> list[RunSummary]:
    return [summarize(store, r) for r in store.runs()]


def compare(store: Store, run_a: str, run_b: str) -> list[Delta]:
    """Every figure both runs have, per shared case and scope (cluster first, then shared nodes)."""
    store.run(run_a), store.run(run_b)  # clear error for an unknown id
    fa = {(r["case_id"], r["scope"]): _flat(r["figures_json"]) for r in store.figures(run_a)}
    fb = {(r["case_id"], r["scope"]): _flat(r["figures_json"]) for r in store.figures(run_b)}
    keys = sorted(set(fa) & set(fb), key=lambda k: (k[0], k[1] != CLUSTER, k[1]))
    out = [Delta(case, scope, fig, fa[(case, scope)][fig], fb[(case, scope)][fig])
           for case, scope in keys for fig in fa[(case, scope)]]
    return out + _hardware_deltas(store, run_a, run_b)


def _hardware_deltas(store: Store, run_a: str, run_b: str) -> list[Delta]:
    """Each measured hardware figure both runs have, per case and accelerator ("n1 #3"; "n1" node-wide): the same
    GPU a week later, or after a repair."""
    def measured(run: str) -> dict[tuple[str, str, str], float]:
        return {(r["case_id"], r["node"] if r["idx"] < 0 else f"{r['node']} #{r['idx']}", r["check"]): r["measured"]
                for r in store.hardware(run) if r["measured"] is not None and r["unit"]}

    ha, hb = measured(run_a), measured(run_b)
    return [Delta(case, scope, fig, ha[(case, scope, fig)], hb[(case, scope, fig)])
            for case, scope, fig in sorted(set(ha) & set(hb))]
