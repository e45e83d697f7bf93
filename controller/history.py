"""Run history over the store: summaries of past runs, the run references users type (a unique prefix,
`latest`, `latest~N`), and every stored figure and hardware measurement two runs share (`compare`, the flat
list; `ctl compare` shows controller/compare.py's selection plus the hardware deltas)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from fleetbench.errors import StoreError

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
    cluster_tpm: dict[str, float]  # case id (a sweep's step: case@point) -> cluster TPM (total)
    case_types: dict[str, str] = field(default_factory=dict)  # case id -> perf | sweep | eval | long_context

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


LATEST = "latest"


def resolve_run_ref(ref: str, ids_newest_first: list[str], where: str) -> str:
    """A run as a user types it: the full id, a unique prefix of one, `latest` or `latest~N` (N runs
    before the newest, as git's `HEAD~N`). `where` names the store in the error."""
    ref = ref.strip()
    if ref in ids_newest_first:
        return ref
    if ref == LATEST or ref.startswith(LATEST + "~"):
        back = ref[len(LATEST) + 1:] if ref != LATEST else "0"
        if not back.isdigit():
            raise StoreError(f"{ref!r} is not a run: after {LATEST}~ comes a number (latest~1 is the run before "
                             "the newest)")
        if not ids_newest_first:
            raise StoreError(f"no runs in {where}")
        n = int(back)
        if n >= len(ids_newest_first):
            raise StoreError(f"{ref}: {where} holds only {len(ids_newest_first)} run(s) (latest~"
                             f"{len(ids_newest_first) - 1} is the oldest)")
        return ids_newest_first[n]
    matches = [i for i in ids_newest_first if i.startswith(ref)] if ref else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(matches[:5]) + (" …" if len(matches) > 5 else "")
        raise StoreError(f"run id prefix {ref!r} is ambiguous in {where}: {len(matches)} runs match ({shown}); "
                         "type more of the id")
    raise StoreError(f"no run {ref!r} in {where}; `ctl runs` lists the runs it holds (a unique prefix of an "
                     "id, latest and latest~N work too)")


def resolve_run(store: Store, ref: str) -> str:
    """The full run id `ref` names in `store` (see resolve_run_ref)."""
    return resolve_run_ref(ref, store.run_ids(), str(store.path))


def headline_tpm(summary: RunSummary) -> tuple[str, float]:
    """The run's one headline figure for a one-line listing (case or step id, cluster TPM): the first perf
    case's, else the best sweep point's; ("", nan) when none has one. A long-context request's TPM says
    nothing about capacity and is never the headline."""
    known = {c: v for c, v in summary.cluster_tpm.items() if not math.isnan(v)}
    for case, kind in summary.case_types.items():
        if kind == "perf" and case in known:
            return case, known[case]
    points = [(c, v) for c, v in known.items() if summary.case_types.get(c.partition("@")[0]) == "sweep"]
    return max(points, key=lambda cv: cv[1]) if points else ("", math.nan)


def summarize(store: Store, run: dict[str, Any]) -> RunSummary:
    tpm = {r["case_id"]: (math.nan if (v := json.loads(r["figures_json"]).get("tpm_total")) is None else v)
           for r in store.figures(run["run_id"]) if r["scope"] == CLUSTER}
    return RunSummary(run["run_id"], run["started_at"], run["plan_name"], json.loads(run["nodes"]), run["state"],
                      run["verdict"] or "", tpm, _case_types(run.get("plan_yaml") or ""))


def _case_types(plan_yaml: str) -> dict[str, str]:
    """Case id -> type from a stored plan's YAML (read leniently: a listing never fails on an old plan)."""
    try:
        doc = yaml.safe_load(plan_yaml) or {}
        return {str(c["id"]): str(c.get("type", "perf")) for c in doc.get("cases", []) if isinstance(c, dict)}
    except (yaml.YAMLError, AttributeError, KeyError, TypeError):
        return {}


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
    return out + hardware_deltas(store, run_a, run_b)


def hardware_deltas(store: Store, run_a: str, run_b: str) -> list[Delta]:
    """Each measured hardware figure both runs have, per case and accelerator ("n1 #3"; "n1" node-wide): the same
    GPU a week later, or after a repair."""
    def measured(run: str) -> dict[tuple[str, str, str], float]:
        return {(r["case_id"], r["node"] if r["idx"] < 0 else f"{r['node']} #{r['idx']}", r["check"]): r["measured"]
                for r in store.hardware(run) if r["measured"] is not None and r["unit"]}

    ha, hb = measured(run_a), measured(run_b)
    return [Delta(case, scope, fig, ha[(case, scope, fig)], hb[(case, scope, fig)])
            for case, scope, fig in sorted(set(ha) & set(hb))]
