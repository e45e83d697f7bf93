"""The report's tables and sentences in one language, as plain strings, shared by the Markdown and HTML
renderers (so both say the same thing). Pure: RunReport in, text out; every number comes from the model,
nothing is computed here but formatting."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from fleetbench.figures import PERCENTILES, Figures

from ..plan import HardwareCase
from ..verdict import Reason, figure_unit, fmt_value
from .i18n import t
from .model import CaseReport, EvalScoreRow, RunReport, SweepAverageRow, SweepPointRow, VerdictRow

# (i18n key, figure, format): evalscope's "Benchmarking summary" keys, in its order, plus TPM.
SUMMARY_ROWS: tuple[tuple[str, str, str], ...] = (
    ("sum.requests", "requests", "{:.0f}"),
    ("sum.succeeded", "succeeded", "{:.0f}"),
    ("sum.failed", "failed", "{:.0f}"),
    ("sum.wall_time", "wall_time_s", "{:.3f}"),
    ("sum.output_tps", "output_throughput_tps", "{:.2f}"),
    ("sum.total_tps", "total_throughput_tps", "{:.2f}"),
    ("sum.rps", "request_throughput_rps", "{:.4f}"),
    ("sum.tpm_total", "tpm_total", "{:,.0f}"),
    ("sum.tpm_output", "tpm_output", "{:,.0f}"),
    ("sum.latency", "latency_avg_s", "{:.4f}"),
    ("sum.ttft", "ttft_avg_s", "{:.4f}"),
    ("sum.tpot", "tpot_avg_s", "{:.4f}"),
    ("sum.itl", "itl_avg_s", "{:.4f}"),
    ("sum.input_avg", "input_tokens_avg", "{:.1f}"),
    ("sum.output_avg", "output_tokens_avg", "{:.1f}"),
)
# (i18n key, percentile metric, format): evalscope's "Percentile results" columns.
PERCENTILE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("pct.ttft", "ttft_s", "{:.4f}"),
    ("pct.itl", "itl_s", "{:.4f}"),
    ("pct.tpot", "tpot_s", "{:.4f}"),
    ("pct.latency", "latency_s", "{:.4f}"),
    ("pct.input_tokens", "input_tokens", "{:.0f}"),
    ("pct.output_tokens", "output_tokens", "{:.0f}"),
    ("pct.output_tps", "output_tps", "{:.2f}"),
    ("pct.total_tps", "total_tps", "{:.2f}"),
)
# the seed-002 sweep table: (i18n key, format) after input, output, concurrency, loop
SWEEP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("sw.latency", "{:.3f}"), ("sw.output_tps", "{:.2f}"), ("sw.ttft", "{:.4f}"), ("sw.tpot", "{:.4f}"),
    ("sw.avg_tps", "{:.2f}"), ("sw.per_request", "{:.2f}"),
)
ENV_HARDWARE = (("env.cpu", "cpu"), ("env.cpus", "cpus"), ("env.memory", "memory"),
                ("env.accelerators", "accelerators"))
ENV_SOFTWARE = (("env.os", "os"), ("env.kernel", "kernel"), ("env.driver", "driver"), ("env.toolkit", "toolkit"))
STATES = ("pass", "fail", "error", "invalid", "incomplete")  # controller.verdict.State's values
CHECKS = ("start_skew", "node_results", "load_generator", "clock_uncertainty", "min_duration", "min_requests",
          "nodes", "hardware_judged")  # the validity sub-checks (controller/validity.py)


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    strong_rows: set[int] = field(default_factory=set)  # row indexes shown in bold (loop averages)


def fmt(value: float | int | None, pattern: str = "{:.4f}", lang: str = "en") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return t("na", lang)
    return pattern.format(value)


def when(ts: float) -> str:
    """Local time of a Unix timestamp (the machine's time zone; the report states its offset)."""
    return "n/a" if ts is None or math.isnan(ts) else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def utc_offset(ts: float) -> str:
    if ts is None or math.isnan(ts):
        return ""
    z = time.strftime("%z", time.localtime(ts))  # e.g. +0800
    return f"{z[:3]}:{z[3:]}" if len(z) == 5 else z


def people(value: float | int | None, unit: str = "", lang: str = "en") -> str:
    """A number for people (controller.verdict.fmt_value: 1,000,000; ms below a second), "n/a" in `lang`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return t("na", lang)
    return fmt_value(value, unit)


def verdict_text(label: str, lang: str) -> str:
    return t(f"verdict.{label}", lang) if label in STATES else label


def scope_name(scope: str, lang: str, case: CaseReport | None = None) -> str:
    """A scope as shown: "cluster" in the report's language; a sweep verdict's "cluster @ point" likewise. With
    `case`, a cluster whose figures leave out a failed node reads "cluster (n of N nodes)"."""
    base, sep, point = scope.partition(" @ ")
    if base != "cluster":
        return scope
    part = case.partial(point) if case is not None else None
    name = t("scope.cluster_partial", lang, n=part[0], total=part[1]) if part else t("scope.cluster", lang)
    return name + sep + point


def expected_text(v: VerdictRow, lang: str) -> str:
    """What an expectation asks, e.g. "≤ 0.9" or "≥ official 60 − 0.5"."""
    if v.op == "official":
        return t("expect.official_short", lang, official=fmt(v.threshold, "{:g}", lang),
                 tolerance=fmt(v.tolerance, "{:g}", lang))
    return f"{op_text(v, lang)} {threshold_value(v, lang)}"


def threshold_value(v: VerdictRow, lang: str) -> str:
    """An expectation's threshold as a number for people (an official score as it is, a figure in seconds in ms
    below one second)."""
    return people(v.threshold, "" if v.op == "official" else figure_unit(v.figure), lang)


def op_text(v: VerdictRow, lang: str) -> str:
    if v.op == "official":
        return f"{t('op.official', lang)} {fmt(v.tolerance, '{:g}', lang)}"
    return t(f"op.{v.op}", lang) if v.op in ("min", "max") else v.op


# ---------------------------------------------------------------------------------------------- basics


def basic_table(report: RunReport, lang: str) -> Table:
    evalscope = ", ".join(sorted({n.evalscope_version for n in report.nodes if n.evalscope_version}))
    return Table([t("col.item", lang), t("col.value", lang)], [
        [t("basic.run", lang), report.run_id],
        [t("basic.plan", lang), report.plan_name],
        [t("basic.model", lang), report.model],
        [t("basic.time", lang), f"{when(report.started_at)} → {when(report.finished_at)} "
                                f"({t('basic.timezone', lang, offset=utc_offset(report.started_at))})"],
        [t("basic.nodes", lang), ", ".join(n.name for n in report.nodes)],
        ["fleetbench", report.fleetbench_version],
        ["evalscope", evalscope or t("na", lang)],
        [t("basic.verdict", lang), verdict_text(report.verdict, lang)],
    ])


def nodes_table(report: RunReport, lang: str) -> Table:
    return Table(
        [t(k, lang) for k in ("col.node", "col.address", "col.host", "col.endpoint", "col.agent",
                              "col.clock_offset", "col.rtt")],
        [[n.name, n.address, n.hostname, n.endpoint, n.agent_version, fmt(n.clock_offset_s, "{:+.4f}", lang),
          fmt(n.rtt_s * 1000, "{:.2f}", lang)] for n in report.nodes])


def _configs(report: RunReport, keys: tuple[tuple[str, str], ...]) -> list[tuple[tuple[str, ...], list[str]]]:
    configs: dict[tuple[str, ...], list[str]] = {}
    for r in report.environment:
        if "error" not in r:
            configs.setdefault(tuple(r.get(k, "") for _, k in keys), []).append(r["node"])
    return list(configs.items())


def hardware_table(report: RunReport, lang: str) -> Table:
    """Seed 000's hardware table, one row per distinct configuration with its machine count (上述机器数量)."""
    rows = [[*cfg, str(len(nodes)), ", ".join(nodes)] for cfg, nodes in _configs(report, ENV_HARDWARE)]
    return Table([t(k, lang) for k, _ in ENV_HARDWARE] + [t("env.machines", lang), t("col.nodes", lang)], rows)


def software_table(report: RunReport, lang: str) -> Table:
    """Seed 000's software table (软件名称 / 版本信息); a value that differs between nodes names its nodes."""

    def values(get: dict[str, str]) -> str:
        by_value: dict[str, list[str]] = {}
        for node, v in get.items():
            by_value.setdefault(v or t("na", lang), []).append(node)
        if len(by_value) == 1:
            return next(iter(by_value))
        return "; ".join(f"{v} ({', '.join(ns)})" for v, ns in by_value.items())

    ok = [r for r in report.environment if "error" not in r]
    rows = [[t(k, lang), values({r["node"]: r.get(key, "") for r in ok})] for k, key in ENV_SOFTWARE] if ok else []
    # the engine and version the endpoint reported (inventory), else the endpoint it was measured at
    engines = {r["node"]: r.get("engine", "") for r in ok}
    endpoints = {n.name: engines.get(n.name) or n.endpoint for n in report.nodes}
    rows.append([t("env.engine", lang), values(endpoints) if endpoints else t("na", lang)])
    rows.append([t("env.evalscope", lang), "evalscope " + values({n.name: n.evalscope_version for n in report.nodes})
                 if report.nodes else t("na", lang)])
    rows.append([t("env.fleetbench", lang), f"fleetbench {report.fleetbench_version}"])
    return Table([t("col.software", lang), t("col.version", lang)], rows)


def environment_errors(report: RunReport, lang: str) -> list[str]:
    return [f"{r['node']}: {r['error']}" for r in report.environment if "error" in r]


def appendix_tables(report: RunReport, lang: str) -> list[tuple[str, Table]]:
    """The full per-node inventory the run stored, one key/value table per node."""
    out = []
    info = {n.name: n for n in report.nodes}
    for r in report.environment:
        rows = [[t("env.hostname", lang), r.get("hostname", "") or (info[r["node"]].hostname if r["node"] in info
                                                                     else "")]]
        if "error" in r:
            rows.append([t("env.error", lang), r["error"]])
        else:
            rows += [[t(k, lang), r.get(key, "")] for k, key in (*ENV_HARDWARE, *ENV_SOFTWARE)]
        n = info.get(r["node"])
        if n is not None:
            rows += [[t("col.address", lang), n.address], [t("col.endpoint", lang), n.endpoint],
                     [t("col.agent", lang), n.agent_version], ["evalscope", n.evalscope_version]]
        out.append((r["node"], Table([t("col.item", lang), t("col.value", lang)], rows)))
    return out


# ---------------------------------------------------------------------------------------------- cases


def case_type_text(case: CaseReport, lang: str) -> str:
    key = f"type.{case.case_type}"
    return t(key, lang) if case.case_type in ("perf", "sweep", "eval", "long_context", "hardware") \
        else case.case_type


def expectation_lines(report: RunReport, case: CaseReport, lang: str) -> list[str]:
    """The case's expectations as the plan states them (预期结果)."""
    pc = next((c for c in report.plan.cases if c.id == case.case_id), None) if report.plan else None
    if pc is None:
        return []
    if isinstance(pc, HardwareCase):
        return hardware_expectations(pc, lang)
    scoped = [(t("expect.case_scope", lang), e) for e in pc.expect]
    if pc.type == "perf" and report.plan is not None:  # the plan's cluster contract is judged on perf cases
        scoped += [(t("scope.cluster", lang), e) for e in report.plan.cluster_expect]
    out = []
    for scope, e in scoped:
        if e.op == "official":
            out.append(t("expect.official", lang, scope=scope, dataset=e.figure.partition(":")[2] or e.figure,
                         official=f"{e.threshold:g}", tolerance=f"{e.tolerance:g}"))
        else:
            out.append(t("expect.line", lang, scope=scope, figure=e.figure, op=t(f"op.{e.op}", lang),
                         threshold=people(e.threshold, figure_unit(e.figure), lang)))
    return out


def verdict_table(case: CaseReport, lang: str) -> Table:
    rows = [[scope_name(v.scope, lang, case), v.figure, op_text(v, lang), threshold_value(v, lang),
             people(v.measured, "" if v.op == "official" else figure_unit(v.figure), lang),
             verdict_text(v.label, lang) + (f" ({v.note})" if v.note else "")]
            for v in case.verdicts]
    return Table([t(k, lang) for k in ("col.scope", "col.figure", "col.op", "col.threshold", "col.measured",
                                       "col.verdict")], rows)


def summary_table(scopes: dict[str, Figures], lang: str, case: CaseReport | None = None) -> Table:
    names = list(scopes)
    rows = [[t(key, lang)] + [fmt(scopes[n].value(fig), pat, lang) for n in names] for key, fig, pat in SUMMARY_ROWS]
    return Table([t("col.key", lang)] + [scope_name(n, lang, case) for n in names], rows)


def cluster_percentiles_title(case: CaseReport, lang: str) -> str:
    part = case.partial()
    if part:
        return t("case.cluster_percentiles_partial", lang, n=part[0], total=part[1])
    return t("case.cluster_percentiles", lang)


def states_table(case: CaseReport, lang: str) -> Table:
    """Each node's and the cluster's state in this case, with the reasons that scope is not PASS."""
    rows = []
    for scope, state in case.scope_states.items():
        mine = [r for r in case.reasons if r.scope == scope]
        rows.append([scope_name(scope, lang, case), verdict_text(state, lang),
                     t("sep.list", lang).join(reason_text(r, lang, case, with_scope=False) for r in mine) or "—"])
    return Table([t("col.scope", lang), t("col.state", lang), t("col.reasons", lang)], rows)


def check_name(name: str, lang: str) -> str:
    """A validity check's name in `lang` ("load_generator: detail" keeps its detail)."""
    head, sep, rest = name.partition(": ")
    return t(f"check.{head}", lang) + sep + rest if head in CHECKS else name


def validity_table(case: CaseReport, lang: str) -> Table:
    """Every validity sub-check: what was measured against its bound; a failed one makes the case INVALID."""
    with_point = any(v.point for v in case.validity)
    rows = []
    for v in case.validity:
        result = verdict_text("pass", lang) if v.passed else t("check.failed", lang)
        row = [v.point] if with_point else []
        rows.append(row + [scope_name(v.scope, lang, case) if v.scope == "cluster" else v.scope,
                           check_name(v.name, lang), v.measured or t("na", lang), v.bound or t("na", lang), result,
                           v.detail])
    header = ([t("sw.point", lang)] if with_point else []) + [
        t(k, lang) for k in ("col.scope", "col.check", "col.measured", "col.bound", "col.result", "col.detail")]
    return Table(header, rows)


def invalid_lines(case: CaseReport, lang: str) -> list[str]:
    """Why an INVALID case is INVALID: each failed check with what it measured."""
    if case.verdict != "invalid":
        return []
    failed = "; ".join(
        t("case.check_line", lang, check=check_name(v.name, lang), scope=scope_name(v.scope, lang, case),
          point=f" @ {v.point}" if v.point else "", measured=v.measured or t("na", lang),
          bound=v.bound or t("na", lang))
        for v in case.failed_checks)
    return [t("case.invalid", lang, checks=failed or t("none", lang))]


def failures_table(case: CaseReport, lang: str) -> Table:
    """Failed requests per node by error class, with one example line each."""
    rows = [[f.node, f.error_class, f"{f.count:,}", f.example] for f in case.failures]
    return Table([t(k, lang) for k in ("col.node", "col.error_class", "col.count", "col.example")], rows)


def long_context_table(case: CaseReport, lang: str) -> Table:
    """Per node: did the long prompt get an answer, its TTFT and latency, and its input and output tokens."""
    rows = [[r.node, t("lc.yes", lang) if r.answered else t("lc.no", lang), people(r.ttft_s, "s", lang),
             people(r.latency_s, "s", lang), people(r.input_tokens, "", lang), people(r.output_tokens, "", lang),
             r.error or "—"] for r in case.long_context]
    return Table([t(k, lang) for k in ("col.node", "lc.answered", "lc.ttft", "lc.latency", "lc.input", "lc.output",
                                       "col.note")], rows)


def long_context_line(case: CaseReport, lang: str) -> str:
    """The cluster's long-context result: how many nodes answered, and the slowest TTFT among them."""
    slow = case.slowest_ttft
    total = case.node_count or len(case.long_context)
    if slow is None:
        return t("lc.cluster_none", lang, n=len(case.answered), total=total)
    return t("lc.cluster", lang, n=len(case.answered), total=total, ttft=people(slow.ttft_s, "s", lang),
             node=slow.node)


def percentile_table(f: Figures, lang: str) -> Table:
    rows = [[f"{p}%"] + [fmt(f.percentiles.get(m, {}).get(p, math.nan), pat, lang) for _, m, pat in PERCENTILE_COLUMNS]
            for p in PERCENTILES]
    return Table([t("col.percentile", lang)] + [t(k, lang) for k, _, _ in PERCENTILE_COLUMNS], rows)


def sweep_scope_name(case: CaseReport, scope: str, lang: str) -> str:
    """A sweep table's scope; the cluster's names the points whose cluster left out a failed node."""
    if scope != "cluster" or not case.partial_cluster:
        return scope_name(scope, lang)
    points = "; ".join(t("scope.partial_point", lang, point=p, n=n, total=total)
                       for p, (n, total) in sorted(case.partial_cluster.items()))
    return t("scope.cluster_partial_points", lang, points=points)


def sweep_scopes(case: CaseReport) -> list[str]:
    """Scopes of a sweep in report order: the cluster first, then the nodes."""
    scopes = sorted({r.scope for r in case.sweep}, key=lambda s: (s != "cluster", s))
    return scopes


def _point_values(r: SweepPointRow | SweepAverageRow) -> list[float]:
    if isinstance(r, SweepPointRow):
        f = r.figures
        return [f.latency_avg_s, f.output_throughput_tps, f.ttft_avg_s, f.tpot_avg_s, r.avg_tps, r.per_request_tps]
    return [r.latency_avg_s, r.output_throughput_tps, r.ttft_avg_s, r.tpot_avg_s, r.avg_tps, r.per_request_tps]


def sweep_table(case: CaseReport, scope: str, lang: str) -> Table:
    """Seed 002's table for one scope: a row per loop, and after a point's loops its loop-average row
    (only where the point ran more than once)."""
    header = [t(k, lang) for k in ("sw.input", "sw.output", "sw.parallel", "sw.loop")] + \
        [t(k, lang) for k, _ in SWEEP_COLUMNS]
    mine = [r for r in case.sweep if r.scope == scope]
    order: list[tuple[int, int, int]] = []
    for r in mine:
        if (r.input_tokens, r.output_tokens, r.parallel) not in order:
            order.append((r.input_tokens, r.output_tokens, r.parallel))
    avgs = {(a.input_tokens, a.output_tokens, a.parallel): a for a in case.sweep_averages if a.scope == scope}
    rows: list[list[str]] = []
    strong: set[int] = set()
    for key in order:
        loops = sorted((r for r in mine if (r.input_tokens, r.output_tokens, r.parallel) == key), key=lambda r: r.loop)
        for r in loops:
            rows.append([str(key[0]), str(key[1]), str(key[2]), str(r.loop)] +
                        [fmt(v, pat, lang) for v, (_, pat) in zip(_point_values(r), SWEEP_COLUMNS, strict=True)])
        a = avgs.get(key)
        if a is not None and a.loops > 1:
            strong.add(len(rows))
            rows.append([str(key[0]), str(key[1]), str(key[2]), t("sw.avg", lang, loops=a.loops)] +
                        [fmt(v, pat, lang) for v, (_, pat) in zip(_point_values(a), SWEEP_COLUMNS, strict=True)])
    return Table(header, rows, strong)


def samples_text(s: EvalScoreRow, lang: str) -> str:
    """A node's samples; the cluster's as the questions counted once times the nodes pooled, with their names."""
    if s.scope != "cluster" or not s.nodes:
        return str(s.samples)
    names = ", ".join(s.nodes)
    if s.questions:
        return t("ev.pooled", lang, questions=f"{s.questions:,}", nodes=len(s.nodes), names=names)
    return t("ev.pooled_uneven", lang, samples=f"{s.samples:,}", names=names)


def scores_table(case: CaseReport, lang: str) -> Table:
    rows = []
    for s in sorted(case.scores, key=lambda s: (s.dataset, s.scope != "cluster", s.scope)):
        passed = s.passed
        verdict = t("verdict.none", lang) if passed is None else verdict_text("pass" if passed else "fail", lang)
        rows.append([scope_name(s.scope, lang), s.dataset, s.metric, samples_text(s, lang),
                     fmt(s.score, "{:.2f}", lang),
                     fmt(s.official, "{:.2f}", lang), fmt(s.tolerance, "{:g}", lang),
                     fmt(s.delta, "{:+.2f}", lang), verdict])
    return Table([t(k, lang) for k in ("col.scope", "ev.dataset", "ev.metric", "ev.samples", "ev.score",
                                       "ev.official", "ev.tolerance", "ev.delta", "col.verdict")], rows)


def saturation_lines(case: CaseReport, lang: str) -> list[str]:
    out = []
    for node in case.client_bound_nodes:
        s = case.saturation[node]
        lag = s.get("lag_p95_s", s.get("lag_max_s"))
        out.append(t("case.saturated", lang, node=node, cpu=fmt(s.get("cpu_max"), "{:.0%}", lang),
                     lag=fmt(None if lag is None else lag * 1000, "{:.0f}", lang)))
    return out


def node_state_lines(case: CaseReport, lang: str) -> list[str]:
    return [t("case.node_state", lang, node=n, state=s, error=e or t("case.no_detail", lang))
            for n, (s, e) in case.node_states.items() if s != "succeeded"]


def skew_line(case: CaseReport, lang: str) -> str:
    return t("case.skew", lang, skew=fmt(case.start_skew_s, "{:.3f}", lang),
             stragglers=", ".join(case.stragglers) or t("none", lang))


# ---------------------------------------------------------------------------------------------- conclusion


def conclusion_lines(report: RunReport, lang: str) -> list[str]:
    """Per case: the cluster TPM with its formula and the numbers in it, stragglers; sweep best point; scores
    with the nodes they pool; long context: who answered and the slowest TTFT; a partial cluster's nodes."""
    out = []
    for case in report.cases:
        c = case.cluster
        if case.case_type == "long_context":
            out.append(t("concl.long_context", lang, case=case.case_id, result=long_context_line(case, lang)))
        elif case.hardware:
            lines = hw_summary_lines(case, lang)
            out.append(t("concl.hardware", lang, case=case.case_id, result=" ".join([lines[0], *lines[1:][-1:]])
                         if any(r.status in ("fail", "error") for r in case.hardware) else lines[0]))
        elif case.sweep:
            cluster_rows = [r for r in case.sweep if r.scope == "cluster"] or case.sweep
            best = max(cluster_rows, key=lambda r: -1.0 if math.isnan(r.figures.tpm_total) else r.figures.tpm_total)
            out.append(t("concl.sweep", lang, case=case.case_id, points=len({r.point for r in case.sweep}),
                         tpm=fmt(best.figures.tpm_total, "{:,.0f}", lang), point=best.point,
                         tps=fmt(best.figures.output_throughput_tps, "{:.2f}", lang)))
        elif case.scores:
            for s in [s for s in case.scores if s.scope == "cluster"] or case.scores:
                pooled = samples_text(s, lang)
                if s.official is None:
                    out.append(t("concl.eval_plain", lang, case=case.case_id, dataset=s.dataset,
                                 score=fmt(s.score, "{:.2f}", lang), pooled=pooled))
                else:
                    out.append(t("concl.eval", lang, case=case.case_id, dataset=s.dataset,
                                 score=fmt(s.score, "{:.2f}", lang), official=f"{s.official:g}",
                                 tolerance=f"{s.tolerance or 0:g}", pooled=pooled,
                                 verdict=verdict_text("pass" if s.passed else "fail", lang)))
        elif c is not None:
            window = fmt(c.wall_time_s, "{:.3f}", lang)
            out.append(t("concl.tpm", lang, case=case.case_id, cluster=scope_name("cluster", lang, case),
                         input=f"{c.input_tokens:,}", output=f"{c.output_tokens:,}", window=window,
                         tpm_total=fmt(c.tpm_total, "{:,.0f}", lang), tpm_output=fmt(c.tpm_output, "{:,.0f}", lang),
                         sum_total=fmt(case.sum_node_tpm_total, "{:,.0f}", lang),
                         sum_output=fmt(case.sum_node_tpm_output, "{:,.0f}", lang)))
        else:
            out.append(t("concl.no_result", lang, case=case.case_id))
        part = case.partial()
        if part and case.case_type != "long_context":
            out.append(t("concl.partial", lang, case=case.case_id, n=part[0], total=part[1],
                         nodes=", ".join(case.error_nodes) or t("none", lang)))
        if case.stragglers and case.case_type != "long_context":
            out.append(t("concl.stragglers", lang, case=case.case_id, nodes=", ".join(case.stragglers)))
    return out


def state_help(state: str, lang: str) -> str:
    """What a state means for the operator (controller/verdict.py)."""
    return t(f"state.{state}", lang) if state in STATES else ""


def overall_line(report: RunReport, lang: str) -> str:
    return t("concl.overall", lang, verdict=verdict_text(report.verdict, lang), help=state_help(report.verdict, lang))


def reason_text(r: Reason, lang: str, case: CaseReport | None = None, with_scope: bool = True) -> str:
    """One reason for people: state, case, node or cluster, figure or check, measured, threshold."""
    scope = ""
    if with_scope and r.scope:
        if r.scope == "cluster":
            part = case.partial(r.case_id.partition("@")[2]) if case is not None else None
            scope = t("scope.cluster_partial", lang, n=part[0], total=part[1]) if part else t("scope.cluster", lang)
        else:
            scope = t("reason.node", lang, node=r.scope)
    what = check_name(r.what, lang)
    measured = t("reason.measured", lang, value=r.measured) if r.measured else ""
    expected = t("reason.expected", lang, value=r.threshold) if r.threshold else ""
    state = verdict_text(r.state.value, lang)
    if not with_scope:  # inside its case's table: the sweep point only
        point = r.case_id.partition("@")[2]
        return t("reason.short", lang, state=state, point=f" @ {point}" if point else "", what=what,
                 measured=measured, expected=expected)
    if not r.case_id and not scope:
        return t("reason.run", lang, state=state, what=what, measured=measured, expected=expected)
    where = " ".join(p for p in (f"`{r.case_id}`" if r.case_id else "", scope) if p)
    return t("reason.line", lang, state=state, where=where, what=what, measured=measured, expected=expected)


def failure_reasons(report: RunReport, lang: str) -> list[str]:
    """Every reason the run is not PASS, one line each."""
    cases = {c.case_id: c for c in report.cases}
    return [reason_text(r, lang, cases.get(r.case_id.partition("@")[0])) for r in report.reasons]


# --- hardware cases ------------------------------------------------------------------------------------


def hardware_expectations(case: HardwareCase, lang: str) -> list[str]:
    out = []
    for fig, (frac, low) in case.expect.items():
        if frac is not None:
            out.append(t("hw.expect", lang, figure=fig, fraction=f"{frac:.0%}"))
        if low is not None:
            out.append(t("hw.expect_min", lang, figure=fig, min=f"{low:,g}"))
    out.append(t("hw.expect_fleet", lang, tolerance=f"{case.fleet_tolerance:.0%}"))
    return out


def hw_value(v: float | None, unit: str = "", lang: str = "en") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3g}"
    return f"{text} {unit}".strip()


def hw_accelerator(index: int, device: str, lang: str) -> str:
    return t("hw.node_wide", lang) if index < 0 else f"#{index} {device}".strip()


def hw_status(status: str, lang: str) -> str:
    return t(f"hw_status.{status}", lang) if status in ("pass", "fail", "skipped", "error") else status


def hw_checks_table(case: CaseReport, lang: str) -> Table:
    """Every check of every node and accelerator: measured, spec, fraction of spec, fleet median, verdict, why."""
    rows = [[r.node, hw_accelerator(r.index, r.device, lang), r.check, hw_value(r.measured, r.unit, lang),
             hw_value(r.reference, r.unit, lang),
             "—" if r.fraction_of_spec is None else f"{r.fraction_of_spec:.0%}",
             hw_value(r.fleet_median, r.unit, lang), hw_status(r.status, lang), r.detail]
            for r in case.hardware]
    return Table([t("col.node", lang), t("hw.accel", lang), t("hw.check", lang), t("hw.measured", lang),
                  t("hw.reference", lang), t("hw.fraction", lang), t("hw.median", lang), t("hw.status", lang),
                  t("hw.detail", lang)], rows)


def hw_summary_lines(case: CaseReport, lang: str) -> list[str]:
    """Counts of each verdict, what ran the kernels on each node, and every failed accelerator by node and index."""
    n = {s: sum(1 for r in case.hardware if r.status == s) for s in ("pass", "fail", "skipped", "error")}
    out = [t("hw.count", lang, passed=n["pass"], failed=n["fail"], skipped=n["skipped"], errors=n["error"])]
    for node, res in sorted(case.hardware_results.items()):
        if res.get("backend"):
            out.append(t("hw.backend", lang, node=node, backend=res["backend"]))
    bad = [f"{r.node} {hw_accelerator(r.index, r.device, lang)} {r.check}" for r in case.hardware
           if r.status in ("fail", "error")]
    if bad:
        out.append(t("hw.outliers", lang, items="; ".join(bad)))
    return out


def hw_level(report: RunReport, case: CaseReport) -> str:
    pc = next((c for c in report.plan.cases if c.id == case.case_id), None) if report.plan else None
    return pc.level if isinstance(pc, HardwareCase) else ""
