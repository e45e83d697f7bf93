"""The report as JSON for machines: schema `fleetbench.report/1` (docs/report-json.md).

Every figure and verdict the Markdown shows, as numbers (NaN as null), taken from the
same RunReport the other renderers use.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from fleetbench.figure_catalog import FIGURES
from fleetbench.figures import DEFINITIONS, Figures

from .model import RunReport, VerdictRow

SCHEMA = "fleetbench.report/1"


def _num(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {str(k): _num(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_num(x) for x in v]
    return v


def _verdict(v: VerdictRow) -> dict[str, Any]:
    """An expectation's verdict; `scope` as the document has always given it ("cluster @ <point>" for a sweep)."""
    row = {k: x for k, x in asdict(v).items() if k != "point"}
    return _num(row | {"scope": v.where, "label": v.label})


def _figures(f: Figures | None) -> dict[str, Any] | None:
    return None if f is None else _num(asdict(f))


def report_document(report: RunReport) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "run_id": report.run_id,
        "plan": report.plan_name,
        "model": report.model,
        "started_at": _num(report.started_at),
        "finished_at": _num(report.finished_at),
        "verdict": report.verdict,
        "state": report.run_state,
        "error": report.error,
        "reasons": [r.to_dict() for r in report.reasons],
        "fleetbench_version": report.fleetbench_version,
        "nodes": [_num(asdict(n)) for n in report.nodes],
        "environment": report.environment,
        "drift": report.drift,
        "cases": [
            {
                "id": c.case_id,
                "purpose": c.purpose,
                "command": c.command,
                "verdict": c.verdict,
                "state": c.verdict,
                "cluster_state": c.scope_states.get("cluster"),
                "reasons": [r.to_dict() for r in c.reasons],
                "nodes": {n: _figures(f) for n, f in c.node_figures.items()},
                "cluster": _figures(c.cluster),
                "load": c.load,
                "tpm_basis": "one_endpoint" if c.load == "split" else "cluster_union",
                "goodput": {scope: _num(g.to_dict()) for scope, g in c.goodput.items()},
                "capacity": {scope: _num(r) for scope, r in c.capacity.items()} if c.case_type == "capacity"
                else None,
                "capacity_slo": c.capacity_slo,
                # what a capacity search varied: "parallel" (answer max_parallel) or "rate" (max_rate, req/s)
                "capacity_axis": c.capacity_axis if c.case_type == "capacity" else None,
                "repeats": {scope: {name: _num({**asdict(st), "spread": st.spread, "flagged": st.flagged})
                                    for name, st in stats.items()} for scope, stats in c.repeats.items()},
                "repeat_runs": c.repeat_runs,
                "sum_node_tpm_total": _num(c.sum_node_tpm_total),
                "sum_node_tpm_output": _num(c.sum_node_tpm_output),
                "start_skew_s": _num(c.start_skew_s),
                "stragglers": c.stragglers,
                "node_states": {n: {"state": c.node_states.get(n, ("", ""))[0],
                                    "error": c.node_states.get(n, ("", ""))[1],
                                    "verdict": c.scope_states.get(n)}
                                for n in sorted(set(c.node_states) | (set(c.scope_states) - {"cluster"}))},
                "validity": [asdict(v) for v in c.validity],
                "failures": [asdict(f) for f in c.failures],
                "cluster_nodes": c.cluster_nodes,
                "error_nodes": c.error_nodes,
                "node_count": c.node_count,
                "partial_cluster": {p: {"nodes": n, "of": total} for p, (n, total) in c.partial_cluster.items()},
                "long_context": [_num(asdict(r)) for r in c.long_context],
                "saturation": c.saturation,
                "evalscope_summaries": c.evalscope_summaries,
                "verdicts": [_verdict(v) for v in c.verdicts],
                "case_type": c.case_type,
                "sweep": [
                    {"scope": r.scope, "point": r.point, "input_tokens": r.input_tokens,
                     "output_tokens": r.output_tokens, "parallel": r.parallel, "number": r.number, "loop": r.loop,
                     "avg_tps": _num(r.avg_tps), "per_request_tps": _num(r.per_request_tps),
                     "figures": _figures(r.figures),
                     "goodput": _num(r.goodput.to_dict()) if r.goodput else None}
                    for r in c.sweep
                ],
                "sweep_averages": [_num(asdict(a)) for a in c.sweep_averages],
                "scores": [_num(asdict(s)) | {"nodes": list(s.nodes), "delta": _num(s.delta), "passed": s.passed}
                           for s in c.scores],
                "hardware": [_num(asdict(r)) for r in c.hardware],
                "hardware_results": c.hardware_results,
            }
            for c in report.cases
        ],
        "definitions": DEFINITIONS,
        "figures": {f.name: {"unit": f.unit, "shown_unit": f.display_unit, "label": {"en": f.en, "zh": f.zh},
                             "definition": f.definition or None}
                    for f in FIGURES.values()},
    }


def render_json(report: RunReport) -> str:
    return json.dumps(report_document(report), indent=2, ensure_ascii=False, allow_nan=False)
