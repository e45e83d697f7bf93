"""Everything a report shows, loaded from the store into typed data.

Renderers (markdown, and the formats that follow) only format what is here;
no figure is computed in a renderer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetbench.agent.inventory import Inventory
from fleetbench.figures import Figures

from ..aggregate import CLUSTER
from ..fleetview import assess, drift_summary, parse_inventory
from ..plan import EvalCase, Plan, SweepCase, parse_plan
from ..store import Store
from ..yamlfile import Located, parse_yaml


@dataclass(frozen=True)
class NodeInfo:
    name: str
    address: str
    endpoint: str
    hostname: str
    agent_version: str
    evalscope_version: str
    clock_offset_s: float
    rtt_s: float


@dataclass(frozen=True)
class VerdictRow:
    scope: str
    figure: str
    op: str
    threshold: float
    measured: float
    passed: bool
    note: str
    tolerance: float = 0.0  # op "official": passes when measured >= threshold - tolerance

    @property
    def label(self) -> str:
        if self.passed:
            return "pass"
        return "error" if self.note else "fail"


@dataclass(frozen=True)
class SweepPointRow:
    """One point of a sweep case on one scope (a node, or the cluster): a row of the seed-002 table."""

    scope: str  # node name or "cluster"
    point: str  # e.g. "in128-out128-p4-n40-loop1"
    input_tokens: int
    output_tokens: int
    parallel: int
    number: int
    loop: int  # 1-based
    figures: Figures
    # concurrent streams behind these figures: `parallel` on a node, parallel × nodes for the cluster
    streams: int = 0

    @property
    def concurrency(self) -> int:
        return self.streams or self.parallel

    @property
    def avg_tps(self) -> float:
        """Avg TPS = 1 / TPOT: the tokens per second one stream sees while decoding."""
        t = self.figures.tpot_avg_s
        return 1.0 / t if t and t == t else math.nan

    @property
    def per_request_tps(self) -> float:
        """Per-request throughput = output throughput / concurrency (for the cluster: every node's streams)."""
        return self.figures.output_throughput_tps / self.concurrency if self.concurrency else math.nan


@dataclass(frozen=True)
class SweepAverageRow:
    """The mean over loops of one (scope, input, output, parallel) point: the seed-002 "loop average" row."""

    scope: str
    input_tokens: int
    output_tokens: int
    parallel: int
    loops: int
    latency_avg_s: float
    output_throughput_tps: float
    ttft_avg_s: float
    tpot_avg_s: float
    avg_tps: float
    per_request_tps: float


def loop_averages(rows: list[SweepPointRow]) -> list[SweepAverageRow]:
    """Average each figure of the seed-002 table over a point's loops (plain mean of the per-loop values)."""
    groups: dict[tuple[str, int, int, int], list[SweepPointRow]] = {}
    for r in rows:
        groups.setdefault((r.scope, r.input_tokens, r.output_tokens, r.parallel), []).append(r)

    def mean(values: list[float]) -> float:
        vals = [v for v in values if v == v]
        return sum(vals) / len(vals) if vals else math.nan

    return [
        SweepAverageRow(
            scope=k[0], input_tokens=k[1], output_tokens=k[2], parallel=k[3], loops=len(g),
            latency_avg_s=mean([r.figures.latency_avg_s for r in g]),
            output_throughput_tps=mean([r.figures.output_throughput_tps for r in g]),
            ttft_avg_s=mean([r.figures.ttft_avg_s for r in g]),
            tpot_avg_s=mean([r.figures.tpot_avg_s for r in g]),
            avg_tps=mean([r.avg_tps for r in g]),
            per_request_tps=mean([r.per_request_tps for r in g]),
        )
        for k, g in groups.items()
    ]


@dataclass(frozen=True)
class EvalScoreRow:
    """One dataset's accuracy on one scope; scores are percentages (0-100), as official model cards quote them.
    `official`/`tolerance` come from the case's `score: {official, tolerance}` expectation."""

    scope: str  # node name or "cluster" (the cluster pools every node's samples)
    dataset: str
    metric: str
    score: float
    samples: int
    official: float | None = None
    tolerance: float | None = None

    @property
    def delta(self) -> float:
        return self.score - self.official if self.official is not None else math.nan

    @property
    def passed(self) -> bool | None:
        """At most `tolerance` points below the official score (the plan's rule, controller/plan.py);
        None when no official score was given."""
        if self.official is None:
            return None
        return self.score >= self.official - (self.tolerance or 0.0) - 1e-9


@dataclass(frozen=True)
class CaseReport:
    case_id: str
    purpose: str
    command: str
    node_figures: dict[str, Figures]
    cluster: Figures | None
    sum_node_tpm_total: float
    sum_node_tpm_output: float
    start_skew_s: float
    stragglers: list[str]
    node_states: dict[str, tuple[str, str]]  # node -> (state, error)
    evalscope_summaries: dict[str, dict[str, Any]]
    verdicts: list[VerdictRow]
    # node -> the load generator's saturation check (agent/saturation.py), when the agent sent one
    saturation: dict[str, dict[str, Any]] = field(default_factory=dict)
    case_type: str = "perf"  # perf | sweep | eval | long_context
    # sweep cases: one row per (scope, point), in run order, and the loop averages
    sweep: list[SweepPointRow] = field(default_factory=list)
    sweep_averages: list[SweepAverageRow] = field(default_factory=list)
    # eval cases: one row per (scope, dataset)
    scores: list[EvalScoreRow] = field(default_factory=list)

    @property
    def client_bound_nodes(self) -> list[str]:
        return sorted(n for n, s in self.saturation.items() if s.get("saturated"))

    @property
    def verdict(self) -> str:
        if any(not v.passed for v in self.verdicts) or any(s == "error" for s, _ in self.node_states.values()):
            return "fail"
        return "pass"


@dataclass(frozen=True)
class RunReport:
    run_id: str
    plan_name: str
    model: str
    started_at: float
    finished_at: float
    verdict: str
    fleetbench_version: str
    nodes: list[NodeInfo]
    cases: list[CaseReport] = field(default_factory=list)
    plan: Plan | None = None
    # the test environment: one fleet-table row per node (controller/fleetview.py) and the drift check
    environment: list[dict[str, str]] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)


def _figures(raw: str) -> Figures:
    d = json.loads(raw)
    d = {k: (math.nan if v is None else v) for k, v in d.items()}
    d["percentiles"] = {
        m: {int(p): (math.nan if v is None else v) for p, v in t.items()} for m, t in d["percentiles"].items()
    }
    return Figures(**d)


def _perf_command(plan: Plan, url: str, rate: float, parallel: str, number: str, dataset: str, input_tokens: int,
                  output_tokens: int, extra_args: dict[str, Any], range_ratio: float = 1.0) -> str:
    low_in, low_out = max(1, int(input_tokens * range_ratio)), max(1, int(output_tokens * range_ratio))
    parts = [
        "evalscope perf", f"--rate {rate:g}" if rate > 0 else "", f"--parallel {parallel}",
        f"--number {number}", f"--model {plan.model}", f"--tokenizer-path {plan.tokenizer}" if plan.tokenizer
        else "", f"--url {url}", f"--api {plan.endpoint.api}", f"--dataset {dataset}",
        f"--max-tokens {output_tokens}", f"--min-tokens {low_out}", "--prefix-length 0",
        f"--min-prompt-length {low_in}", f"--max-prompt-length {input_tokens}",
        f"--extra-args '{json.dumps(extra_args)}'" if extra_args else "",
    ]
    return " ".join(p for p in parts if p)


def api_base(url: str) -> str:
    """The OpenAI base URL (…/v1) of a completions or chat-completions endpoint URL."""
    for suffix in ("/chat/completions", "/completions"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


def equivalent_command(plan: Plan, case_id: str, url: str) -> str:
    """The evalscope command line(s) a user pastes to reproduce one node's part of a case (a sweep:
    one `evalscope perf` per length pair, parallel and number as evalscope's own paired lists)."""
    case = next(c for c in plan.cases if c.id == case_id)
    if isinstance(case, EvalCase):
        parts = [
            "evalscope eval", f"--model {plan.model}", f"--api-url {api_base(url)}",
            f"--api-key {plan.endpoint.api_key or 'EMPTY'}", "--eval-type openai_api",
            f"--datasets {' '.join(case.datasets)}",
            f"--dataset-args '{json.dumps(case.dataset_args)}'" if case.dataset_args else "",
            f"--generation-config '{json.dumps(case.generation_config)}'" if case.generation_config else "",
            f"--eval-batch-size {case.eval_batch_size}", f"--limit {case.limit}" if case.limit else "",
            "--stream" if case.stream else "", f"--timeout {case.timeout_s}" if case.timeout_s else "",
        ]
        return " ".join(p for p in parts if p)
    if isinstance(case, SweepCase):
        lines = [
            _perf_command(plan, url, case.rate, " ".join(map(str, case.parallel)), " ".join(map(str, case.number)),
                          case.dataset, i, o, case.extra_args, case.range_ratio)
            for i, o in case.pairs
        ]
        if case.loops > 1:
            lines.append(f"# run the above {case.loops} times (loops)")
        return "\n".join(lines)
    return _perf_command(plan, url, case.rate, str(case.parallel), str(case.number), case.dataset,
                         case.input_tokens, case.output_tokens, case.extra_args, case.range_ratio)


def _verdict_rows(rows: list[dict[str, Any]], scope_suffix: str = "") -> list[VerdictRow]:
    return [VerdictRow(v["scope"] + scope_suffix, v["figure"], v["op"], v["threshold"],
                       math.nan if v["measured"] is None else v["measured"], bool(v["passed"]), v["note"] or "",
                       v.get("tolerance") or 0.0)
            for v in rows]


def _sweep_rows(case: SweepCase, figures: list[dict[str, Any]]) -> list[SweepPointRow]:
    """Every stored point of the sweep, in run order, node scopes first then the cluster."""
    by_step: dict[str, list[dict[str, Any]]] = {}
    for r in figures:
        by_step.setdefault(r["case_id"], []).append(r)
    out = []
    for label, pc in case.points():
        rows = sorted(by_step.get(pc.id, []), key=lambda r: (r["scope"] == CLUSTER, r["scope"]))
        loop = int(label.rsplit("loop", 1)[1])
        nodes = sum(1 for r in rows if r["scope"] != CLUSTER)
        out += [SweepPointRow(r["scope"], label, pc.input_tokens, pc.output_tokens, pc.parallel, pc.number, loop,
                              _figures(r["figures_json"]),
                              pc.parallel * (nodes if r["scope"] == CLUSTER else 1)) for r in rows]
    return out


def load_report(store: Store, run_id: str) -> RunReport:
    run = store.run(run_id)
    nodes = [
        NodeInfo(r["node"], r["address"], r["endpoint"] or "", r["hostname"] or "", r["agent_version"] or "",
                 r["evalscope_version"] or "", r["clock_offset_s"] or 0.0,
                 math.nan if r["rtt_s"] is None else r["rtt_s"])
        for r in store.run_nodes(run_id)
    ]
    plan = parse_plan(_located(run["plan_yaml"])) if run["plan_yaml"] else None
    figures = store.figures(run_id)
    case_nodes = store.case_nodes(run_id)
    verdicts = store.verdicts(run_id)
    scores = store.scores(run_id)
    case_ids = [c.id for c in plan.cases] if plan else sorted({r["case_id"].split("@")[0] for r in case_nodes})

    def of_case(rows: list[dict[str, Any]], cid: str) -> list[dict[str, Any]]:
        """Rows of a case, a sweep's points included (their case_id is "<case>@<point>")."""
        return [r for r in rows if r["case_id"] == cid or r["case_id"].startswith(cid + "@")]

    cases = []
    for cid in case_ids:
        case = next((c for c in plan.cases if c.id == cid), None) if plan else None
        node_figs = {r["scope"]: _figures(r["figures_json"]) for r in figures
                     if r["case_id"] == cid and r["scope"] != CLUSTER}
        cl = [r for r in figures if r["case_id"] == cid and r["scope"] == CLUSTER]
        extra = json.loads(cl[0]["extra_json"]) if cl else {}
        mine = of_case(case_nodes, cid)
        states: dict[str, tuple[str, str]] = {}
        for r in mine:  # a sweep node's state is its worst point's
            if r["node"] not in states or (r["state"] or "") != "succeeded":
                states[r["node"]] = (r["state"] or "", r["error"] or "")
        summaries = {r["node"]: json.loads(r["evalscope_summary_json"] or "{}") for r in case_nodes
                     if r["case_id"] == cid and r.get("evalscope_summary_json")}
        url = nodes[0].endpoint if nodes else ""
        sweep = _sweep_rows(case, figures) if isinstance(case, SweepCase) else []
        official = {v["figure"].partition(":")[2]: (v["threshold"], v.get("tolerance") or 0.0)
                    for v in verdicts if v["case_id"] == cid and v["op"] == "official"}
        case_verdicts = _verdict_rows([v for v in verdicts if v["case_id"] == cid])
        for v in verdicts:
            if v["case_id"].startswith(cid + "@"):
                case_verdicts += _verdict_rows([v], f" @ {v['case_id'].split('@', 1)[1]}")
        cases.append(CaseReport(
            case_id=cid,
            purpose=case.purpose if case else "",
            command=equivalent_command(plan, cid, url) if plan else "",
            node_figures=dict(sorted(node_figs.items())),
            cluster=_figures(cl[0]["figures_json"]) if cl else None,
            sum_node_tpm_total=extra.get("sum_node_tpm_total") or math.nan,
            sum_node_tpm_output=extra.get("sum_node_tpm_output") or math.nan,
            start_skew_s=math.nan if extra.get("start_skew_s") is None else extra["start_skew_s"],
            stragglers=list(extra.get("stragglers", [])),
            node_states=dict(sorted(states.items())),
            evalscope_summaries=summaries,
            saturation={r["node"]: json.loads(r["result_json"]).get("saturation", {}) for r in mine
                        if r.get("result_json") and json.loads(r["result_json"]).get("saturation")},
            verdicts=case_verdicts,
            case_type=case.type if case else ("sweep" if sweep else "perf"),
            sweep=sweep,
            sweep_averages=loop_averages(sweep),
            scores=[EvalScoreRow(r["scope"], r["dataset"], r["metric"],
                                 math.nan if r["score"] is None else r["score"], r["samples"] or 0,
                                 *official.get(r["dataset"], (None, None)))
                    for r in scores if r["case_id"] == cid],
        ))
    inventories: dict[str, Inventory | str] = {}
    for r in store.run_nodes(run_id):
        try:
            inventories[r["node"]] = parse_inventory(r["inventory_json"]) if r["inventory_json"] else \
                "inventory not collected"
        except ValueError as exc:
            inventories[r["node"]] = str(exc)
    assessment = assess(inventories, check=False)
    return RunReport(
        environment=assessment.rows, drift=drift_summary(assessment),
        run_id=run_id, plan_name=run["plan_name"], model=run["model"], started_at=run["started_at"],
        finished_at=run["finished_at"] or math.nan, verdict=run["verdict"] or run["state"],
        fleetbench_version=run["fleetbench_version"], nodes=nodes, cases=cases, plan=plan,
    )


def _located(text: str) -> Located:
    return parse_yaml(text, Path("<stored plan>"), "stored plan")
