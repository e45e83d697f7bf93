"""Everything a report shows, loaded from the store into typed data.

Renderers (markdown, and the formats that follow) only format what is here;
no figure is computed in a renderer.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetbench.failures import summarize
from fleetbench.figure_catalog import figure as figure_catalog
from fleetbench.figures import Figures
from fleetbench.goodput import Goodput
from fleetbench.hardware import HwRow
from fleetbench.inventory import Inventory, NotAvailable, format_bytes, format_dimm
from fleetbench.repeats import RepeatStat, repeat_stat

from ..aggregate import CLUSTER
from ..drift import DriftFinding
from ..fleetview import assess, drift_summary, parse_inventory
from ..plan import CapacityCase, EvalCase, HardwareCase, PerfCase, Plan, SweepCase, parse_plan
from ..store import Store
from ..verdict import Reason, State, figure_text, parse_state, run_state, threshold_text, worst
from ..yamlfile import Located, parse_yaml

EXAMPLE_CHARS = 160  # an example error line in the Failures table is cut to this many characters


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


def at_point(point: str) -> str:
    """What follows a scope for a sweep's point (" @ in128-out128-p4-n40-loop1"), "" for any other case: the
    one place the tables and lines name a point after its scope."""
    return f" @ {point}" if point else ""


@dataclass(frozen=True)
class VerdictRow:
    scope: str  # a node name or "cluster"
    figure: str
    op: str
    threshold: float
    measured: float
    passed: bool
    note: str
    tolerance: float = 0.0  # op "official": passes when measured >= threshold - tolerance
    point: str = ""  # the sweep point the expectation was judged at; "" for other cases

    @property
    def where(self) -> str:
        """The scope as shown untranslated (XLSX, JSON): "cluster @ in128-out128-p4-n40-loop1" for a point."""
        return self.scope + at_point(self.point)

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
    goodput: Goodput | None = None  # against the sweep's per-request SLO, when it has one

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
    tpm_total: float = math.nan  # the cluster TPM (total) of the point, averaged over its loops (seed 002)
    streams: int = 0  # concurrent streams: parallel on a node, parallel × nodes for the cluster

    @property
    def concurrency(self) -> int:
        return self.streams or self.parallel


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
            tpm_total=mean([r.figures.tpm_total for r in g]),
            streams=max(r.concurrency for r in g),
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
    # the cluster row: the nodes whose samples it pools, and the questions each answered when they all answered
    # the same number (samples = questions × nodes); 0 when they differ. Empty/0 on a node's row.
    nodes: tuple[str, ...] = ()
    questions: int = 0

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
class ValidityRow:
    """One validity sub-check of a step on one scope, as the store keeps it (measured and bound are already
    formatted for people). A failed check makes the step INVALID: its figures cannot be trusted."""

    name: str  # start_skew | node_results | load_generator | clock_uncertainty | min_duration | min_requests | nodes
    scope: str  # a node name or "cluster"
    measured: str
    bound: str
    passed: bool
    detail: str = ""
    point: str = ""  # a sweep point's label; "" for a one-step case


@dataclass(frozen=True)
class FailureRow:
    """Failed requests of one node in one case (all of a sweep's points together), by error class."""

    node: str
    error_class: str  # e.g. "HTTP 422", "connection refused": the part of the error line before its first ": "
    count: int
    example: str  # one error line of this class, cut to EXAMPLE_CHARS


@dataclass(frozen=True)
class LongContextRow:
    """A long-context case on one node: did the long prompt get an answer, and how fast."""

    node: str
    answered: bool  # every request of the node succeeded (and it sent at least one)
    requests: int
    succeeded: int
    ttft_s: float  # average over its successful requests (one request: that request's)
    latency_s: float
    input_tokens: float  # per successful request, as the endpoint's usage reported it
    output_tokens: float
    error: str = ""  # why not answered: the node's job error or its first failed request's error line


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
    # the stored state of the case (case_verdicts, scope "case"; a sweep: the worst over its points): one of
    # controller.verdict.State's values; "" in a store written before states were stored
    state: str = ""
    # node name or "cluster" -> its state in this case (a sweep: the worst over its points)
    scope_states: dict[str, str] = field(default_factory=dict)
    # why the case, a node or the cluster is not PASS, one line each
    reasons: list[Reason] = field(default_factory=list)
    validity: list[ValidityRow] = field(default_factory=list)
    failures: list[FailureRow] = field(default_factory=list)
    # the nodes in the cluster figures and those left out because their job failed; node_count: the run's nodes
    cluster_nodes: list[str] = field(default_factory=list)
    error_nodes: list[str] = field(default_factory=list)
    node_count: int = 0
    # step ("" for a one-step case, else the sweep point) -> (n, N) where the cluster holds n of the run's N nodes
    partial_cluster: dict[str, tuple[int, int]] = field(default_factory=dict)
    step_points: dict[str, str] = field(default_factory=dict)  # each step id of the case -> its sweep point
    # long-context cases: one row per node of the run
    long_context: list[LongContextRow] = field(default_factory=list)
    # scope (a node or "cluster") -> goodput against the case's per-request SLO; empty without an SLO
    goodput: dict[str, Goodput] = field(default_factory=dict)
    # "each": every node loads its endpoint; "split": the totals divided across the agents, one shared endpoint
    load: str = "each"
    # capacity cases: scope -> {max_parallel (max_rate on a rate search), at_top, tpm_total, goodput_tpm,
    # probes: [row per probe run]} (controller/capacity.py), the SLO bounds [{figure, op, threshold}], the preset's
    # name if one was used
    capacity: dict[str, dict[str, Any]] = field(default_factory=dict)
    capacity_slo: list[dict[str, Any]] = field(default_factory=list)
    capacity_preset: str = ""
    capacity_axis: str = "parallel"  # what the search varied: parallel or rate (its answer is max_<axis>)
    # `repeat: N` perf cases: scope -> figure -> its mean and 95 % CI over the runs (fleetbench/repeats.py)
    repeats: dict[str, dict[str, RepeatStat]] = field(default_factory=dict)
    repeat_runs: int = 0
    # hardware cases: every check judged, per node and accelerator (fleetbench.hardware.HwRow)
    hardware: list[HwRow] = field(default_factory=list)
    # hardware cases: node -> the job's result as the agent sent it (devices, backend, stress samples, DCGM)
    hardware_results: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the plan's load on each node: concurrent streams and request rate (-1: no limit); 0/NaN when not a load case
    parallel: int = 0
    rate: float = math.nan

    @property
    def client_bound_nodes(self) -> list[str]:
        return sorted(n for n, s in self.saturation.items() if s.get("saturated"))

    @property
    def verdict(self) -> str:
        """The case's state: the stored one, or (a store without states) fail/error/pass from its verdicts."""
        if self.state:
            return self.state
        if any(s == "error" for s, _ in self.node_states.values()):
            return "fail"
        return "fail" if any(not v.passed for v in self.verdicts) else "pass"

    @property
    def failed_checks(self) -> list[ValidityRow]:
        return [v for v in self.validity if not v.passed]

    def partial(self, point: str = "") -> tuple[int, int] | None:
        """(n, N) when the cluster figures of this step hold only n of the run's N nodes, else None."""
        return self.partial_cluster.get(point)

    def point_of(self, step_id: str) -> str:
        """The sweep point of one of this case's steps ("" for a case of one step)."""
        return self.step_points.get(step_id, "")

    @property
    def answered(self) -> list[LongContextRow]:
        return [r for r in self.long_context if r.answered]

    @property
    def slowest_ttft(self) -> LongContextRow | None:
        """The answered node with the longest TTFT (the cluster's long-context figure)."""
        rows = [r for r in self.answered if not math.isnan(r.ttft_s)]
        return max(rows, key=lambda r: r.ttft_s) if rows else None


@dataclass(frozen=True)
class RunReport:
    run_id: str
    plan_name: str
    model: str
    started_at: float
    finished_at: float
    verdict: str  # one of controller.verdict.State's values (pass, fail, error, invalid, incomplete)
    fleetbench_version: str
    nodes: list[NodeInfo]
    cases: list[CaseReport] = field(default_factory=list)
    plan: Plan | None = None
    # the test environment: one fleet-table row per node (controller/fleetview.py) and the drift check
    environment: list[dict[str, str]] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    # the drift check as data, so the report can word it in its language: findings, nodes checked, not checked
    drift_findings: list[DriftFinding] = field(default_factory=list)
    drift_checked: list[str] = field(default_factory=list)
    drift_unchecked: list[str] = field(default_factory=list)
    # every reason the run is not PASS (case, node or cluster, figure or check, measured, threshold)
    reasons: list[Reason] = field(default_factory=list)
    run_state: str = "finished"  # runs.state: finished, interrupted, error (running while in progress)
    error: str = ""  # why the run stopped early, if it did
    step_cases: dict[str, str] = field(default_factory=dict)  # step id -> the plan's case id (store: steps)

    def case_of(self, step_id: str) -> str:
        """The case of a step id (a reason's `case_id` is its step's id)."""
        return self.step_cases.get(step_id, step_id)


def _figures(raw: str) -> Figures:
    d = json.loads(raw)
    d = {k: (math.nan if v is None else v) for k, v in d.items()}
    d["percentiles"] = {
        m: {int(p): (math.nan if v is None else v) for p, v in t.items()} for m, t in d["percentiles"].items()
    }
    return Figures(**d)


def _perf_command(plan: Plan, url: str, rate: float, parallel: str, number: str, dataset: str, input_tokens: int,
                  output_tokens: int, extra_args: dict[str, Any], range_ratio: float = 1.0,
                  fixed_output: bool = True) -> str:
    low_in, low_out = max(1, int(input_tokens * range_ratio)), max(1, int(output_tokens * range_ratio))
    parts = [
        "evalscope perf", f"--rate {rate:g}" if rate > 0 else "", f"--parallel {parallel}",
        f"--number {number}", f"--model {plan.model}", f"--tokenizer-path {plan.tokenizer}" if plan.tokenizer
        else "", f"--url {url}", f"--api {plan.endpoint.api}", f"--dataset {dataset}",
        f"--max-tokens {output_tokens}", f"--min-tokens {low_out}" if fixed_output else "", "--prefix-length 0",
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


def _redacted(api_key: str) -> str:
    """A report is handed to the customer: the key itself never appears in it."""
    return "***" if api_key and api_key != "EMPTY" else "EMPTY"


def equivalent_command(plan: Plan, case_id: str, url: str) -> str:
    """The evalscope command line(s) a user pastes to reproduce one node's part of a case (a sweep:
    one `evalscope perf` per length pair, parallel and number as evalscope's own paired lists)."""
    case = next(c for c in plan.cases if c.id == case_id)
    if isinstance(case, HardwareCase):
        return ""  # no evalscope command: the agent's hardware job (docs/plan.md)
    if isinstance(case, EvalCase):
        parts = [
            "evalscope eval", f"--model {plan.model}", f"--api-url {api_base(url)}",
            f"--api-key {_redacted(plan.endpoint.api_key)}", "--eval-type openai_api",
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
                          case.dataset, i, o, case.extra_args, case.range_ratio,
                          case.fixed_output)
            for i, o in case.pairs
        ]
        if case.loops > 1:
            lines.append(f"# run the above {case.loops} times (loops)")
        return "\n".join(lines)
    if isinstance(case, CapacityCase):  # one probe; the search picks `parallel`
        return "# one probe at concurrency P per node (the search chooses P):\n" + _perf_command(
            plan, url, case.rate, "P", f"P×{case.requests_per_stream}", case.dataset, case.input_tokens,
            case.output_tokens, case.extra_args, case.range_ratio,
                          case.fixed_output)
    return _perf_command(plan, url, case.rate, str(case.parallel), str(case.number), case.dataset,
                         case.input_tokens, case.output_tokens, case.extra_args, case.range_ratio,
                          case.fixed_output)


# the figures a `repeat: N` case summarizes over its runs (goodput ones when the case has an SLO)
REPEAT_FIGURES = ("tpm_total", "tpm_output", "output_throughput_tps", "request_throughput_rps", "ttft_avg_s",
                  "tpot_avg_s", "latency_avg_s", "ttft_p99_s", "tpot_p99_s", "success_rate", "goodput_tpm",
                  "goodput_ratio")


def repeat_stats(runs: list[dict[str, Figures]], goodput: list[dict[str, Goodput]]) -> dict[str, dict[str, RepeatStat]]:
    """Scope -> figure -> mean and 95 % CI over the runs (each run: scope -> its figures and goodput)."""
    scopes = sorted({s for run in runs for s in run}, key=lambda s: (s == CLUSTER, s))
    out: dict[str, dict[str, RepeatStat]] = {}
    for scope in scopes:
        stats = {}
        for name in REPEAT_FIGURES:
            if name.startswith("goodput_"):
                values = [g[scope].values()[name] for g in goodput if scope in g]
            else:
                values = [run[scope].value(name) for run in runs if scope in run]
            if values:
                stats[name] = repeat_stat(values)
        out[scope] = stats
    return out


def _capacity(stored: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The stored search result with NaN back for the JSON's nulls (figures a probe could not measure)."""
    def num(v: Any) -> Any:
        return math.nan if v is None else v

    out = {}
    for scope, r in stored.items():
        probes = [{k: num(v) if k not in ("slo_figures",) else {f: num(x) for f, x in v.items()}
                   for k, v in p.items()} for p in r.get("probes", [])]
        out[scope] = {**r, "tpm_total": num(r.get("tpm_total")), "goodput_tpm": num(r.get("goodput_tpm")),
                      "probes": probes}
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != CLUSTER, kv[0])))


def node_command(plan: Plan, case_id: str, endpoints: dict[str, str]) -> str:
    """The equivalent command for every node: the command itself when all nodes serve at the same URL (each on
    its own host); else with a placeholder for the endpoint and one line per node giving its value."""
    urls = sorted(set(endpoints.values()))
    if len(urls) <= 1:
        return equivalent_command(plan, case_id, urls[0] if urls else plan.endpoint.url)
    case = next(c for c in plan.cases if c.id == case_id)
    var = "API_URL" if isinstance(case, EvalCase) else "ENDPOINT"
    lines = [f"# {node}: {var}={api_base(url) if var == 'API_URL' else url}"
             for node, url in sorted(endpoints.items())]
    return "\n".join([*lines, equivalent_command(plan, case_id, f"${var}")])


def _verdict_rows(rows: list[dict[str, Any]], point: str = "") -> list[VerdictRow]:
    return [VerdictRow(v["scope"], v["figure"], v["op"], v["threshold"],
                       math.nan if v["measured"] is None else v["measured"], bool(v["passed"]), v["note"] or "",
                       v.get("tolerance") or 0.0, point)
            for v in rows]


def _goodput_of(row: dict[str, Any]) -> Goodput | None:
    g = json.loads(row.get("extra_json") or "{}").get("goodput")
    return Goodput.from_dict(g) if g else None


def _sweep_rows(case: SweepCase, figures: list[dict[str, Any]]) -> list[SweepPointRow]:
    """Every stored point of the sweep, in run order, node scopes first then the cluster."""
    by_step: dict[str, list[dict[str, Any]]] = {}
    for r in figures:
        by_step.setdefault(r["case_id"], []).append(r)
    out = []
    for label, pc in case.points():
        rows = sorted(by_step.get(pc.id, []), key=lambda r: (r["scope"] == CLUSTER, r["scope"]))
        loop = pc.loop
        nodes = sum(1 for r in rows if r["scope"] != CLUSTER)
        out += [SweepPointRow(r["scope"], label, pc.input_tokens, pc.output_tokens, pc.parallel, pc.number, loop,
                              _figures(r["figures_json"]),
                              pc.parallel * (nodes if r["scope"] == CLUSTER else 1),
                              _goodput_of(r)) for r in rows]
    return out


NAN_WORD = re.compile(r"\bnan\b", re.IGNORECASE)
NUMBER = re.compile(r"^\s*(<=|>=|[<>≤≥=]?)\s*([+-]?(?:[\d,]+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(ms|s)?\s*$")


def people(text: str, what: str = "", threshold: bool = False) -> str:
    """A stored measured/threshold string as people read it, formatted by the figure catalogue ("<= 0.02" and
    "<= 20.0 ms" both read "≤ 20 ms" for a threshold; a measured "0.02093" reads "20.93 ms"); text that is not a
    number of a catalogued figure is kept (a check's "saturated"), and never a console NaN."""
    m = NUMBER.match(text or "")
    name = (what or "").split(" ")[0]
    try:
        known = name.startswith("score:") or bool(figure_catalog(name))
    except KeyError:
        known = False
    if m and known:
        op = {"<=": "≤", ">=": "≥"}.get(m.group(1), m.group(1))
        value = float(m.group(2).replace(",", ""))
        if m.group(3) == "ms":
            value /= 1000
        if threshold and op in ("≤", "≥", "<", ">"):
            return threshold_text(name, "max" if op in ("≤", "<") else "min", value)
        return f"{op} {figure_text(name, value)}" if op else figure_text(name, value)
    return NAN_WORD.sub("n/a", text or "")


def _reason(d: dict[str, Any]) -> Reason | None:
    state = parse_state(str(d.get("state") or ""))
    if state is None:
        return None
    what = str(d.get("what") or "")
    return Reason(state, str(d.get("case_id") or ""), str(d.get("scope") or ""), NAN_WORD.sub("n/a", what),
                  people(str(d.get("measured") or ""), what), people(str(d.get("threshold") or ""), what, True))


def _derived_reasons(case_id: str, verdicts: list[tuple[str, VerdictRow]],
                     node_states: dict[str, tuple[str, str]]) -> list[Reason]:
    """A store written before reasons were stored: a reason for each failed expectation (with its step's id)
    and node error (FAIL, the only failing state such a store knew)."""
    out = []
    for step_id, v in verdicts:
        if v.passed:
            continue
        what = v.figure + (f" ({v.note})" if v.note else "")
        out.append(Reason(State.FAIL, step_id, v.scope, what, figure_text(v.figure, v.measured),
                          threshold_text(v.figure, v.op, v.threshold, v.tolerance)))
    for node, (state, err) in node_states.items():
        if state == "error":
            out.append(Reason(State.FAIL, case_id, node, f"job {state}: {err or 'no detail'}"))
    return out


def _derived_states(verdicts: list[VerdictRow], node_states: dict[str, tuple[str, str]], nodes: list[str],
                    has_cluster: bool) -> dict[str, str]:
    """Per scope pass/fail in a store without stored states: fail on a failed expectation or a job error."""
    failed = {v.scope for v in verdicts if not v.passed}
    out = {n: "fail" if n in failed or node_states.get(n, ("", ""))[0] == "error" else "pass" for n in nodes}
    if has_cluster or CLUSTER in failed:
        out[CLUSTER] = "fail" if CLUSTER in failed else "pass"
    return out


def _failure_rows(rows: list[dict[str, Any]]) -> list[FailureRow]:
    """Failed requests per node by error class (fleetbench.failures), a sweep's points together."""
    by_node: dict[str, dict[str, int]] = {}
    for r in rows:
        counts = by_node.setdefault(r["node"], {})
        counts[r["error"]] = counts.get(r["error"], 0) + int(r["count"])
    out = []
    for node, counts in sorted(by_node.items()):
        for fc in summarize(counts.items()):
            example = NAN_WORD.sub("n/a", fc.example)
            if len(example) > EXAMPLE_CHARS:
                example = example[: EXAMPLE_CHARS - 1] + "…"
            out.append(FailureRow(node, fc.error_class, fc.count, example))
    return out


def _long_context_rows(nodes: list[str], figures: dict[str, Figures], states: dict[str, tuple[str, str]],
                       failures: list[FailureRow]) -> list[LongContextRow]:
    out = []
    for n in nodes:
        f = figures.get(n)
        _, err = states.get(n, ("", ""))
        first_failure = next((r.example for r in failures if r.node == n), "")
        if f is None:
            out.append(LongContextRow(n, False, 0, 0, math.nan, math.nan, math.nan, math.nan,
                                      err or first_failure or "no result"))
            continue
        answered = f.requests > 0 and f.succeeded == f.requests
        out.append(LongContextRow(n, answered, f.requests, f.succeeded, f.ttft_avg_s, f.latency_avg_s,
                                  f.input_tokens_avg, f.output_tokens_avg,
                                  "" if answered else (err or first_failure or "no answer")))
    return out


def _score_rows(rows: list[dict[str, Any]], official: dict[str, tuple[float | None, float | None]]) -> \
        list[EvalScoreRow]:
    """A case's scores; the cluster row names the nodes it pools and the questions each answered."""
    out = []
    for r in rows:
        nodes: tuple[str, ...] = ()
        questions = 0
        if r["scope"] == CLUSTER:
            pooled = [x for x in rows if x["scope"] != CLUSTER and (x["dataset"], x["metric"]) ==
                      (r["dataset"], r["metric"]) and x["score"] is not None and (x["samples"] or 0) > 0]
            nodes = tuple(sorted(x["scope"] for x in pooled))
            counts = {x["samples"] for x in pooled}
            questions = counts.pop() if len(counts) == 1 else 0
        off, tol = official.get(r["dataset"], (None, None))
        out.append(EvalScoreRow(r["scope"], r["dataset"], r["metric"], math.nan if r["score"] is None else r["score"],
                                r["samples"] or 0, off, tol, nodes=nodes, questions=questions))
    return out


def _hw_row(r: dict[str, Any]) -> HwRow:
    return HwRow(node=r["node"], index=r["idx"], device=r["device"] or "", sku=r["sku"] or "", check=r["check"],
                 status=r["status"], measured=r["measured"], unit=r["unit"] or "", reference=r["reference"],
                 fraction_of_spec=r["fraction_of_spec"], fleet_median=r["fleet_median"],
                 fleet_fraction=r["fleet_fraction"], detail=NAN_WORD.sub("n/a", r["detail"] or ""))


def _run_verdict(run: dict[str, Any], cases: list[CaseReport]) -> str:
    """The run's state: INCOMPLETE while running or once interrupted; else the stored verdict (old stores:
    pass/fail); else from the cases."""
    state = run.get("state") or ""
    if state in ("running", "interrupted"):
        return State.INCOMPLETE.value
    stored = parse_state(run.get("verdict"))
    if stored is not None:
        return stored.value
    if state == "error":
        return State.ERROR.value
    return run_state([State(c.verdict) for c in cases if parse_state(c.verdict)]).value


def load_report(store: Store, run_id: str) -> RunReport:
    run = store.run(run_id)
    nodes = [
        NodeInfo(r["node"], r["address"], r["endpoint"] or "", r["hostname"] or "", r["agent_version"] or "",
                 r["evalscope_version"] or "", r["clock_offset_s"] or 0.0,
                 math.nan if r["rtt_s"] is None else r["rtt_s"])
        for r in store.run_nodes(run_id)
    ]
    run_node_names = [n.name for n in nodes] or sorted(json.loads(run.get("nodes") or "[]"))
    plan = parse_plan(_located(run["plan_yaml"])) if run["plan_yaml"] else None
    figures = store.figures(run_id)
    case_nodes = store.case_nodes(run_id)
    verdicts = store.verdicts(run_id)
    scores = store.scores(run_id)
    case_verdicts = store.case_verdicts(run_id)
    # the validity rows in the order the orchestrator wrote them (run order, then its order of checks)
    checks = list(store.db.table("validity").rows_where("run_id = ?", [run_id], order_by="rowid"))
    failure_counts = store.failure_counts(run_id)
    hardware_rows = store.hardware(run_id)
    stored_steps = store.steps(run_id)  # a step's case and sweep point, as columns

    def case_of(step: str) -> str:
        return stored_steps[step]["case_id"] if step in stored_steps else step

    def point_of(step: str) -> str:
        return stored_steps[step]["point"] if step in stored_steps else ""

    case_ids = [c.id for c in plan.cases] if plan else sorted({case_of(r["case_id"]) for r in case_nodes})

    def of_case(rows: list[dict[str, Any]], cid: str) -> list[dict[str, Any]]:
        """Rows of a case, a sweep's points included (the rows of every step of the case)."""
        return [r for r in rows if case_of(r["case_id"]) == cid]

    cases = []
    for cid in case_ids:
        case = next((c for c in plan.cases if c.id == cid), None) if plan else None
        node_figs = {r["scope"]: _figures(r["figures_json"]) for r in figures
                     if r["case_id"] == cid and r["scope"] != CLUSTER}
        runs: list[dict[str, Figures]] = []
        run_goodput: list[dict[str, Goodput]] = []
        if isinstance(case, PerfCase) and case.repeat > 1:
            for k in range(1, case.repeat + 1):
                mine_k = [r for r in figures if r["case_id"] == f"{cid}@rep{k}"]
                if mine_k:
                    runs.append({r["scope"]: _figures(r["figures_json"]) for r in mine_k})
                    run_goodput.append({r["scope"]: Goodput.from_dict(g) for r in mine_k
                                        for g in [json.loads(r["extra_json"] or "{}").get("goodput")] if g})
        goodput = {r["scope"]: Goodput.from_dict(g) for r in figures if r["case_id"] == cid
                   for g in [json.loads(r["extra_json"] or "{}").get("goodput")] if g}
        goodput = dict(sorted(goodput.items(), key=lambda kv: (kv[0] == CLUSTER, kv[0])))
        cl = [r for r in figures if r["case_id"] == cid and r["scope"] == CLUSTER]
        extra = json.loads(cl[0]["extra_json"]) if cl else {}
        if not cl and runs:  # a repeated case: its runs' cluster rows say how it was loaded
            first = [r for r in figures if r["case_id"] == f"{cid}@rep1" and r["scope"] == CLUSTER]
            extra = {"load": json.loads(first[0]["extra_json"] or "{}").get("load")} if first else {}
        mine = of_case(case_nodes, cid)
        states: dict[str, tuple[str, str]] = {}
        for r in mine:  # a sweep node's state is its worst point's
            if r["node"] not in states or (r["state"] or "") != "succeeded":
                states[r["node"]] = (r["state"] or "", r["error"] or "")
        summaries = {r["node"]: json.loads(r["evalscope_summary_json"] or "{}") for r in case_nodes
                     if r["case_id"] == cid and r.get("evalscope_summary_json")}
        endpoints = {n.name: n.endpoint for n in nodes if n.endpoint}
        sweep = _sweep_rows(case, figures) if isinstance(case, SweepCase) else []
        official = {v["figure"].partition(":")[2]: (v["threshold"], v.get("tolerance") or 0.0)
                    for v in verdicts if v["case_id"] == cid and v["op"] == "official"}
        # in run order: a sweep's points as the plan runs them; in a step, the nodes, then the cluster
        steps = [pc.id for _, pc in case.points()] if isinstance(case, SweepCase) else [cid]
        ordered = sorted(of_case(verdicts, cid), key=lambda v: (
            steps.index(v["case_id"]) if v["case_id"] in steps else len(steps), v["case_id"], v["scope"] == CLUSTER,
            v["scope"]))
        verdict_rows = []
        for v in ordered:
            point = point_of(v["case_id"])
            verdict_rows += _verdict_rows([v], point)

        # partial clusters: a step whose cluster figures leave out nodes whose job failed
        partial: dict[str, tuple[int, int]] = {}
        cluster_nodes: set[str] = set()
        error_nodes: set[str] = set()
        for r in of_case(figures, cid):
            if r["scope"] != CLUSTER:
                continue
            ex = json.loads(r["extra_json"] or "{}")
            step_nodes = ex.get("nodes") or [f["scope"] for f in figures
                                             if f["case_id"] == r["case_id"] and f["scope"] != CLUSTER]
            left_out = [n for n in ex.get("error_nodes", []) if n not in step_nodes]
            cluster_nodes |= set(step_nodes)
            error_nodes |= set(left_out)
            if left_out or len(step_nodes) < len(run_node_names):
                partial[point_of(r["case_id"])] = (len(step_nodes), len(run_node_names))

        # stored states and reasons (case_verdicts); a store without them: computed as before
        rows = of_case(case_verdicts, cid)
        is_capacity = isinstance(case, CapacityCase)
        if is_capacity:  # a probe outside the SLO is the search working, not the case failing: its own rows only
            rows = [r for r in rows if r["case_id"] == cid]
            verdict_rows = []
        reasons: list[Reason] = []
        for r in sorted(rows, key=lambda r: r["scope"] != "case"):
            for d in r["reasons"]:
                reason = _reason(d)
                if reason is not None and reason not in reasons:
                    reasons.append(reason)
        scope_states: dict[str, str] = {}
        state = ""
        if rows:
            by_scope: dict[str, list[State]] = {}
            for r in rows:
                st = parse_state(r["state"])
                if st is not None:
                    by_scope.setdefault(r["scope"], []).append(st)
            step_states = by_scope.pop("case", [])
            if isinstance(case, SweepCase) and len({r["case_id"] for r in rows if r["scope"] == "case"}) < \
                    len(case.points()):
                step_states.append(State.INCOMPLETE)  # a point was never judged (the run was interrupted)
            state = worst(step_states or [s for v in by_scope.values() for s in v]).value
            order = sorted(by_scope, key=lambda s: (s == CLUSTER, s))
            scope_states = {s: worst(by_scope[s]).value for s in order}
        elif case_verdicts:  # the run stores states, this case has none: never judged
            state = (State.ERROR if run.get("state") == "error" else State.INCOMPLETE).value
            reasons = [Reason(State(state), cid, "", "not run")]
        else:
            as_stored = _verdict_rows(ordered)  # scopes without their point
            reasons = _derived_reasons(cid, [(v["case_id"], r) for v, r in zip(ordered, as_stored, strict=True)],
                                       states)
            has_cluster = bool(cl) or any(case_of(r["case_id"]) == cid and r["scope"] == CLUSTER
                                          for r in figures) or any(s["case_id"] == cid and s["scope"] == CLUSTER
                                                                   for s in scores)
            scope_states = _derived_states(as_stored, states, sorted(set(run_node_names) | set(states)),
                                           has_cluster)
        failures = _failure_rows(of_case(failure_counts, cid))
        ctype = case.type if case else ("sweep" if sweep else "perf")
        cases.append(CaseReport(
            case_id=cid,
            purpose=case.purpose if case else "",
            command=node_command(plan, cid, endpoints) if plan else "",
            node_figures=dict(sorted(node_figs.items())),
            cluster=_figures(cl[0]["figures_json"]) if cl and not is_capacity else None,
            goodput=goodput,
            capacity=_capacity(extra.get("capacity") or {}) if is_capacity else {},
            capacity_slo=list(extra.get("slo") or []) if is_capacity else [],
            capacity_preset=str(extra.get("slo_preset") or "") if is_capacity else "",
            capacity_axis=str(extra.get("axis") or "parallel") if is_capacity else "parallel",
            repeats=repeat_stats(runs, run_goodput) if runs else {},
            repeat_runs=len(runs),
            load=str(extra.get("load") or "each"),
            sum_node_tpm_total=math.nan if extra.get("sum_node_tpm_total") is None else extra["sum_node_tpm_total"],
            sum_node_tpm_output=math.nan if extra.get("sum_node_tpm_output") is None else extra["sum_node_tpm_output"],
            start_skew_s=math.nan if extra.get("start_skew_s") is None else extra["start_skew_s"],
            stragglers=list(extra.get("stragglers", [])),
            node_states=dict(sorted(states.items())),
            evalscope_summaries=summaries,
            saturation={r["node"]: json.loads(r["result_json"]).get("saturation", {}) for r in mine
                        if r.get("result_json") and json.loads(r["result_json"]).get("saturation")},
            verdicts=verdict_rows,
            case_type=ctype,
            sweep=sweep,
            sweep_averages=loop_averages(sweep),
            scores=_score_rows([r for r in scores if r["case_id"] == cid], official),
            state=state,
            scope_states=scope_states,
            reasons=reasons,
            validity=[ValidityRow(r["check"], r["scope"], NAN_WORD.sub("n/a", r["measured"] or ""),
                                  NAN_WORD.sub("n/a", r["bound"] or ""), bool(r["passed"]), r["detail"] or "",
                                  point_of(r["case_id"])) for r in of_case(checks, cid)],
            failures=failures,
            cluster_nodes=sorted(cluster_nodes),
            error_nodes=sorted(error_nodes),
            node_count=len(run_node_names),
            partial_cluster=partial,
            step_points={k: r["point"] for k, r in stored_steps.items() if r["case_id"] == cid},
            parallel=case.parallel if isinstance(case, PerfCase) else 0,
            rate=case.rate if isinstance(case, PerfCase | SweepCase) else math.nan,
            long_context=_long_context_rows(run_node_names or sorted(node_figs), node_figs, states, failures)
            if ctype == "long_context" else [],
            hardware=[_hw_row(r) for r in hardware_rows if r["case_id"] == cid],
            hardware_results={r["node"]: json.loads(r["result_json"]).get("hardware", {}) for r in mine
                              if ctype == "hardware" and r.get("result_json")
                              and json.loads(r["result_json"]).get("hardware")},
        ))
    inventories: dict[str, Inventory | str] = {}
    for r in store.run_nodes(run_id):
        try:
            inventories[r["node"]] = parse_inventory(r["inventory_json"]) if r["inventory_json"] else \
                "inventory not collected"
        except ValueError as exc:
            inventories[r["node"]] = str(exc)
    assessment = assess(inventories, check=False)
    verdict = _run_verdict(run, cases)
    stored_reasons = json.loads(run.get("reasons_json") or "[]")
    run_reasons = [r for r in (_reason(d) for d in stored_reasons) if r is not None]
    if not run_reasons:
        run_reasons = list(dict.fromkeys(r for c in cases for r in c.reasons))
    if run.get("error") and verdict != State.PASS.value and not any(not r.case_id for r in run_reasons):
        run_reasons.insert(0, Reason(State(verdict), "", "", NAN_WORD.sub("n/a", run["error"])))
    return RunReport(
        environment=[{**r, **hardware_details(inv)} if isinstance(inv := inventories.get(r["node"]), Inventory)
                     else r for r in assessment.rows],
        drift=drift_summary(assessment), drift_findings=list(assessment.findings),
        drift_checked=assessment.checked_nodes, drift_unchecked=list(assessment.errors),
        run_id=run_id, plan_name=run["plan_name"], model=run["model"], started_at=run["started_at"],
        finished_at=run["finished_at"] or math.nan, verdict=verdict,
        fleetbench_version=run["fleetbench_version"], nodes=nodes, cases=cases, plan=plan,
        reasons=run_reasons, run_state=run.get("state") or "", error=run.get("error") or "",
        step_cases={k: r["case_id"] for k, r in stored_steps.items()},
    )


def hardware_details(inv: Inventory) -> dict[str, str]:
    """Seed 000's hardware rows of one node, as language-neutral values (the report words them): the full CPU
    model, its sockets, cores and threads; memory as DIMM count × size × type when dmidecode could be read;
    accelerators by model with their count; NICs with a link speed and InfiniBand/RoCE ports."""
    out: dict[str, str] = {}
    if not isinstance(inv.cpu, NotAvailable):
        out["cpu_model"] = inv.cpu.model or inv.cpu.architecture
        out["sockets"] = str(inv.cpu.sockets or "")
        out["cores"] = str(inv.cpu.physical_cores or "")
        out["threads"] = str(inv.cpu.logical_cpus or "")
    if not isinstance(inv.memory, NotAvailable):
        total = inv.memory_size_bytes()
        out["memory_total"] = format_bytes(total) if total else ""
        dimms = inv.memory.dimms
        if not isinstance(dimms, NotAvailable) and dimms:
            groups = Counter((d.size_bytes, d.type) for d in dimms)
            out["dimms"] = " + ".join(f"{n} × {format_dimm(size)}{' ' + kind if kind else ''}"
                                      for (size, kind), n in sorted(groups.items(), key=lambda kv: (-kv[1], -kv[0][0])))
            out["dimm_count"] = str(len(dimms))
    accs = Counter((a.name, a.memory_total_mib) for a in inv.accelerators)
    out["accelerator_models"] = "; ".join(f"{name}{f' {mib:,} MiB' if mib else ''}" for (name, mib) in accs)
    out["accelerator_count"] = str(sum(accs.values()))
    if not isinstance(inv.network, NotAvailable):
        parts = []
        ib = inv.network.ib_ports
        if not isinstance(ib, NotAvailable) and ib:
            by: dict[tuple[str, str], list[str]] = {}
            for port in ib:
                rate = f"{port.rate_gbps:g} Gb/s" if port.rate_gbps else (port.rate or "")
                by.setdefault((port.link_layer or "InfiniBand", rate), []).append(port.device)
            parts += [f"{len(devs)} × {layer} {rate}".rstrip() + f" ({', '.join(devs)})"
                      for (layer, rate), devs in sorted(by.items())]
        nics: dict[int, list[str]] = {}
        for nic in inv.network.nics:
            if nic.speed_mbps and nic.speed_mbps > 0:
                nics.setdefault(nic.speed_mbps, []).append(nic.name)
        parts += [f"{len(names)} × Ethernet {mbps / 1000:g} Gb/s ({', '.join(names)})"
                  for mbps, names in sorted(nics.items(), reverse=True)]
        out["network"] = "; ".join(parts)
    return out


def _located(text: str) -> Located:
    return parse_yaml(text, Path("<stored plan>"), "stored plan")
