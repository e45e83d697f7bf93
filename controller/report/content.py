"""The report's tables and sentences in one language, as plain strings, shared by the Markdown and HTML
renderers (so both say the same thing). Pure: RunReport in, text out; every number comes from the model,
nothing is computed here but formatting."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from fleetbench.figure_catalog import FIGURES, METRICS, figure, format_value, percentile_label
from fleetbench.figures import Figures

from ..plan import CapacityCase, HardwareCase
from ..verdict import Reason, fmt_value
from .i18n import TEXT, t
from .model import (
    CaseReport,
    EvalScoreRow,
    RunReport,
    SweepAverageRow,
    SweepPointRow,
    VerdictRow,
    at_point,
)

# The summary's rows: evalscope's "Benchmarking summary" (seed 000), in its order, plus TPM; labels, units and
# formats come from the figure catalogue (fleetbench/figure_catalog.py).
SUMMARY_FIGURES: tuple[str, ...] = (
    "wall_time_s", "concurrency", "request_rate", "requests", "succeeded", "failed", "output_throughput_tps",
    "total_throughput_tps", "request_throughput_rps", "tpm_total", "tpm_output", "latency_avg_s", "ttft_avg_s",
    "tpot_avg_s", "itl_avg_s", "input_tokens_avg", "output_tokens_avg",
)
LOAD_FIGURES = ("concurrency", "request_rate")  # from the plan, not the records
# evalscope's "Percentile results" columns (keys of Figures.percentiles)
PERCENTILE_COLUMNS: tuple[str, ...] = tuple(METRICS)
# the body's short per-scope percentile table: p50 and p99 of the latencies (the full tables are in the appendix)
SHORT_PERCENTILES: tuple[int, ...] = (50, 99)
SHORT_METRICS: tuple[str, ...] = ("ttft_s", "tpot_s", "itl_s", "latency_s")
# the seed-002 sweep table after input, output, concurrency, loop; then the point's TPM (total)
SWEEP_FIGURES: tuple[str, ...] = (
    "latency_avg_s", "output_throughput_tps", "ttft_avg_s", "tpot_avg_s", "avg_tps", "per_request_tps", "tpm_total",
)
ENV_HARDWARE = (("env.cpu", "cpu"), ("env.cpus", "cpus"), ("env.memory", "memory"),
                ("env.accelerators", "accelerators"))
# seed 000's hardware details (model.hardware_details), in the spreadsheet and the per-node appendix
ENV_DETAILS = (("env.cpu_model", "cpu_model"), ("env.sockets", "sockets"), ("env.cores", "cores"),
               ("env.threads", "threads"), ("env.dimms", "dimms"), ("env.accelerator_count", "accelerator_count"),
               ("env.network", "network"))
ENV_SOFTWARE = (("env.os", "os"), ("env.kernel", "kernel"), ("env.driver", "driver"), ("env.toolkit", "toolkit"))
STATES = ("pass", "fail", "error", "invalid", "incomplete")  # controller.verdict.State's values
CHECKS = ("start_skew", "node_results", "load_generator", "clock_uncertainty", "min_duration", "min_requests",
          "nodes", "warmup", "hardware_judged")  # the validity sub-checks (controller/validity.py)


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


def scope_name(scope: str, lang: str, case: CaseReport | None = None, point: str = "") -> str:
    """A scope as shown: "cluster" in the report's language, then the sweep `point` if any ("cluster @ point").
    With `case`, a cluster whose figures leave out a failed node reads "cluster (n of N nodes)"."""
    if scope != "cluster":
        return scope + at_point(point)
    part = case.partial(point) if case is not None else None
    name = t("scope.cluster_partial", lang, n=part[0], total=part[1]) if part else t("scope.cluster", lang)
    return name + at_point(point)


def official_text(official: float, tolerance: float, lang: str) -> str:
    """An accuracy threshold by its effective value first: "≥ 59.5 (official 60 − 0.5)"."""
    return t("expect.official_short", lang, effective=f"{official - (tolerance or 0.0):g}", official=f"{official:g}",
             tolerance=f"{tolerance or 0.0:g}")


def threshold_value(v: VerdictRow, lang: str) -> str:
    """An expectation's limit for people, from the figure catalogue ("20 ms", "1,000,000 tok/min"); an official
    score by the value it is judged against."""
    if v.op == "official":
        return official_text(v.threshold, v.tolerance, lang).removeprefix("≥ ")
    return threshold_number(v.figure, v.threshold, lang)


def threshold_number(name: str, value: float, lang: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return t("na", lang)
    try:
        return figure(name).threshold(value)
    except KeyError:
        return f"{value:g}"


def measured_text(name: str, value: float, lang: str) -> str:
    """A measured figure for people (figure catalogue: "20.93 ms"); a score as it is, n/a in `lang`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return t("na", lang)
    return format_value(name, value)


def op_text(v: VerdictRow, lang: str) -> str:
    if v.op == "official":
        return t("op.min", lang)
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


HARDWARE_KEYS = ("cpu_model", "sockets", "cores", "threads", "dimms", "dimm_count", "memory_total",
                 "accelerator_models", "accelerator_count", "network", "cpu", "memory", "accelerators")


def hardware_tables(report: RunReport, lang: str) -> list[tuple[str, Table]]:
    """Seed 000's hardware table (硬件名称 / 配置信息 / 数量), one per distinct configuration: the full CPU model
    with its cores and threads (count: sockets), memory as DIMM count × size × type, accelerators, NICs and
    InfiniBand ports, and the machines it describes (上述机器数量). Titled "Configuration n" when several."""
    configs: dict[tuple[str, ...], list[str]] = {}
    for r in report.environment:
        if "error" not in r:
            configs.setdefault(tuple(r.get(k, "") for k in HARDWARE_KEYS), []).append(r["node"])
    out = []
    for i, (cfg, nodes) in enumerate(configs.items(), 1):
        d = dict(zip(HARDWARE_KEYS, cfg, strict=True))
        none = t("none", lang)
        cpu = d["cpu_model"] or d["cpu"] or t("na", lang)
        if d["cores"] and d["threads"]:
            cpu = t("env.cpu_detail", lang, model=cpu, cores=d["cores"], threads=d["threads"])
        memory = t("env.memory_detail", lang, dimms=d["dimms"], total=d["memory_total"]) if d["dimms"] else \
            (d["memory_total"] or d["memory"] or t("na", lang))
        accelerators = d["accelerator_models"] if "accelerator_count" in d and d["accelerator_count"] not in ("", "0") \
            else (none if d["accelerator_count"] == "0" or d["accelerators"] in ("", "none") else d["accelerators"])
        rows = [[t("env.cpu", lang), cpu, d["sockets"]],
                [t("env.memory", lang), memory, d["dimm_count"]],
                [t("env.accelerators", lang), accelerators, d["accelerator_count"] if d["accelerator_count"] != "0"
                 else ""],
                [t("env.network", lang), d["network"] or none, ""],
                [t("env.machines", lang), ", ".join(nodes), str(len(nodes))]]
        title = t("env.config", lang, n=i) if len(configs) > 1 else ""
        out.append((title, Table([t("col.hardware", lang), t("col.config", lang), t("env.count", lang)], rows)))
    return out


def drift_lines(report: RunReport, lang: str) -> list[str]:
    """The drift check in the report's language (English: controller.fleetview.drift_summary's lines)."""
    if lang == "en" or not (report.drift_findings or report.drift_checked):
        return [NONE_WORD.sub(t("none", lang), line) if lang != "en" else line for line in report.drift]
    nodes = ", ".join(report.drift_checked)
    if report.drift_findings:
        n = len(report.drift_findings)
        return [t("drift.findings", lang, n=n, nodes=len(report.drift_checked))] + [
            "  - " + t("drift.finding", lang, node=f.node, field=t(f"drift.{f.field}", lang) if f"drift.{f.field}"
                       in TEXT else f.field, value=_none(f.value, lang), majority=_none(f.majority_value, lang))
            for f in report.drift_findings]
    line = t("drift.none" if len(report.drift_checked) > 1 else "drift.none_one", lang, nodes=nodes)
    if report.drift_unchecked:
        line += t("drift.unchecked", lang, nodes=", ".join(report.drift_unchecked))
    return [line]


NONE_WORD = re.compile(r"\bnone\b")


def _none(value: str, lang: str) -> str:
    return {"none": t("none", lang), "no majority": t("drift.no_majority", lang)}.get(value, value)


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
            rows += [[t(k, lang), r.get(key, "")] for k, key in (*ENV_HARDWARE, *ENV_DETAILS, *ENV_SOFTWARE)
                     if key in r or (k, key) not in ENV_DETAILS]
        n = info.get(r["node"])
        if n is not None:
            rows += [[t("col.address", lang), n.address], [t("col.endpoint", lang), n.endpoint],
                     [t("col.agent", lang), n.agent_version], ["evalscope", n.evalscope_version]]
        out.append((r["node"], Table([t("col.item", lang), t("col.value", lang)], rows)))
    return out


# ---------------------------------------------------------------------------------------------- cases


def case_type_text(case: CaseReport, lang: str) -> str:
    key = f"type.{case.case_type}"
    return t(key, lang) if case.case_type in ("perf", "sweep", "eval", "long_context", "capacity",
                                              "hardware") else case.case_type


def expectation_lines(report: RunReport, case: CaseReport, lang: str) -> list[str]:
    """The case's expectations as the plan states them (预期结果)."""
    pc = next((c for c in report.plan.cases if c.id == case.case_id), None) if report.plan else None
    if pc is None:
        return []
    if isinstance(pc, HardwareCase):
        return hardware_expectations(pc, lang)
    bounds = pc.slo if isinstance(pc, CapacityCase) else pc.expect  # a capacity search: its SLO at every probe
    scoped = [(t("expect.case_scope", lang), e) for e in bounds]
    if pc.type == "perf" and report.plan is not None:  # the plan's cluster contract is judged on perf cases
        scoped += [(t("scope.cluster", lang), e) for e in report.plan.cluster_expect]
    out = []
    for scope, e in scoped:
        if e.op == "official":
            out.append(t("expect.official", lang, scope=scope, dataset=e.figure.partition(":")[2] or e.figure,
                         threshold=official_text(e.threshold, e.tolerance, lang)))
        else:
            out.append(t("expect.line", lang, scope=scope, figure=e.figure, op=t(f"op.{e.op}", lang),
                         threshold=threshold_number(e.figure, e.threshold, lang)))
    return out


def verdict_table(case: CaseReport, lang: str) -> Table:
    rows = [[scope_name(v.scope, lang, case, v.point), v.figure, op_text(v, lang), threshold_value(v, lang),
             measured_text(v.figure, v.measured, lang),
             verdict_text(v.label, lang) + (f" ({v.note})" if v.note else "")]
            for v in case.verdicts]
    return Table([t(k, lang) for k in ("col.scope", "col.figure", "col.op", "col.threshold", "col.measured",
                                       "col.verdict")], rows)


def load_text(case: CaseReport, scope: str, name: str, lang: str) -> str:
    """The plan's load on a scope: a node's concurrency or rate as the plan gives it; the cluster's as the total
    with how it is made, "8 (4 × 2 nodes)". A rate of -1 is evalscope's "no limit"."""
    per_node = float(case.parallel if name == "concurrency" else case.rate)
    if math.isnan(per_node):
        return t("na", lang)
    if name == "request_rate" and per_node <= 0:
        return t("load.no_limit", lang)
    text = FIGURES[name].number(per_node)
    nodes = len(case.cluster_nodes) or len(case.node_figures)
    if scope != "cluster" or nodes <= 1:
        return text
    return t("load.cluster", lang, total=FIGURES[name].number(per_node * nodes), per_node=text, nodes=nodes)


def summary_table(scopes: dict[str, Figures], lang: str, case: CaseReport | None = None) -> Table:
    """evalscope's summary, one column per node and the cluster; the plan's load rows when the case has one."""
    names = list(scopes)
    rows = []
    for fig in SUMMARY_FIGURES:
        f = FIGURES[fig]
        if fig in LOAD_FIGURES:
            if case is not None and case.parallel:
                rows.append([f.label(lang)] + [load_text(case, n, fig, lang) for n in names])
            continue
        rows.append([f.label(lang)] + [f.number(scopes[n].value(fig), t("na", lang)) for n in names])
    return Table([t("col.key", lang)] + [scope_name(n, lang, case) for n in names], rows)


def goodput_table(case: CaseReport, lang: str) -> Table:
    """Per scope: the requests that met the per-request SLO and the throughput they carried, beside TPM total."""
    names = list(case.goodput)
    figs = dict(case.node_figures)
    if case.cluster is not None:
        figs["cluster"] = case.cluster
    good = case.goodput
    rows = [
        [t("gp.met", lang)] + [f"{good[n].good:,} / {good[n].requests:,}" for n in names],
        [t("gp.ratio", lang)] + [fmt(good[n].ratio * 100, "{:.2f} %", lang) for n in names],
        [t("gp.rps", lang)] + [fmt(good[n].rps, "{:.4f}", lang) for n in names],
        [t("gp.tps", lang)] + [fmt(good[n].tps, "{:.2f}", lang) for n in names],
        [t("gp.tpm", lang)] + [fmt(good[n].tpm, "{:,.0f}", lang) for n in names],
        [FIGURES["tpm_total"].label(lang)] + [fmt(figs[n].tpm_total if n in figs else None, "{:,.0f}", lang)
                                              for n in names],
    ]
    return Table([t("col.key", lang)] + [scope_name(n, lang, case) for n in names], rows)


def goodput_title(case: CaseReport, lang: str) -> str:
    slo = next(iter(case.goodput.values())).slo
    return t("gp.title", lang, slo=slo.describe())


# (axis, load) -> i18n keys of what a capacity search varied, and of its answer with the unit
_CAP_WHAT = {("parallel", "each"): "cap.what.parallel.each", ("parallel", "split"): "cap.what.parallel.split",
             ("rate", "each"): "cap.what.rate.each", ("rate", "split"): "cap.what.rate.split"}
_CAP_AMOUNT = {("parallel", "each"): "cap.amount.parallel.each", ("parallel", "split"): "cap.amount.parallel.split",
               ("rate", "each"): "cap.amount.rate.each", ("rate", "split"): "cap.amount.rate.split"}


def capacity_what(case: CaseReport, lang: str) -> str:
    """What the search varied, in words: concurrency or request rate, per node or the total on one endpoint."""
    return t(_CAP_WHAT[case.capacity_axis, case.load], lang, n=case.node_count or len(case.node_figures))


def capacity_found(r: dict[str, Any], case: CaseReport) -> Any:
    """A scope's answer (max_parallel or max_rate), None when nothing held."""
    return r.get(f"max_{case.capacity_axis}")


def capacity_number(case: CaseReport, value: Any) -> str:
    """A searched value as written: a concurrency with thousands separators, a rate as given (12.5)."""
    return f"{value:g}" if case.capacity_axis == "rate" else f"{int(value):,}"


def capacity_amount(case: CaseReport, value: Any, lang: str) -> str:
    """The answer with its unit, for conclusions: "**4** concurrent requests per node", "**12.5** requests/s ..."."""
    return t(_CAP_AMOUNT[case.capacity_axis, case.load], lang, v=capacity_number(case, value),
             n=case.node_count or len(case.node_figures))


def _probe_value(p: dict[str, Any]) -> float:
    return float(p["value"] if "value" in p else p["parallel"])  # runs stored before rate searches: no "value"


def capacity_points(case: CaseReport, scope: str = "cluster") -> list[dict[str, float]]:
    """Per probed value (concurrency or rate) of `scope`, in order: the worst of its runs (lowest TPM and goodput
    TPM, highest p99 TTFT and TPOT) and whether every run held the SLO — what the charts and the probe table show."""
    by_value: dict[float, list[dict[str, Any]]] = {}
    for p in case.capacity.get(scope, {}).get("probes", []):
        if p["state"] not in ("invalid", "error"):  # run again: its figures are not the search's
            by_value.setdefault(_probe_value(p), []).append(p)

    def worst(rows: list[dict[str, Any]], key: str, pick: Any) -> float:
        values = [r[key] for r in rows if not math.isnan(r[key])]
        return float(pick(values)) if values else math.nan

    return [{"value": value, "runs": float(len(rows)), "within": float(all(r["within_slo"] for r in rows)),
             "tpm_total": worst(rows, "tpm_total", min), "goodput_tpm": worst(rows, "goodput_tpm", min),
             "ttft_p99_s": worst(rows, "ttft_p99_s", max), "tpot_p99_s": worst(rows, "tpot_p99_s", max)}
            for value, rows in sorted(by_value.items())]


def capacity_slo_text(case: CaseReport, lang: str) -> str:
    bounds = "; ".join(f"{b['figure']} {'>=' if b['op'] == 'min' else '<='} "
                       f"{figure(b['figure']).threshold(b['threshold'], t('na', lang))}" for b in case.capacity_slo)
    return f"{case.capacity_preset}: {bounds}" if case.capacity_preset else bounds


def at_top_note(result: dict[str, Any], lang: str) -> str:
    """" (the range's max: may be higher)" after an answer the search could not bound from above, else ""."""
    return t("cap.at_top", lang) if result.get("at_top") else ""


def capacity_table(case: CaseReport, lang: str) -> Table:
    """Per scope: the highest concurrency (or rate) within the SLO, the TPM and goodput TPM there."""
    rows = []
    for scope, r in case.capacity.items():
        found = capacity_found(r, case)
        value = t("cap.none", lang) if found is None else capacity_number(case, found) + at_top_note(r, lang)
        rows.append([scope_name(scope, lang, case), value, fmt(r["tpm_total"], "{:,.0f}", lang),
                     fmt(r["goodput_tpm"], "{:,.0f}", lang)])
    return Table([t("col.scope", lang), t("cap.max_parallel", lang, what=capacity_what(case, lang)),
                  FIGURES["tpm_total"].label(lang), t("gp.tpm", lang)], rows)


def capacity_probe_table(case: CaseReport, lang: str) -> Table:
    """Every probe in run order: the value probed, try, the cluster's figures, and which scopes held the SLO (no
    node column under `load: split`: the nodes are load generators there, the cluster the only scope)."""
    cluster = case.capacity.get("cluster", {}).get("probes", [])
    scopes = [s for s in case.capacity if s != "cluster"]
    na = t("na", lang)
    node_rows = {s: {(_probe_value(p), p["attempt"]): p for p in case.capacity[s]["probes"]} for s in scopes}
    rows = []
    for p in cluster:
        key = (_probe_value(p), p["attempt"])
        held = [s for s in scopes if node_rows[s].get(key, {}).get("within_slo")]
        rows.append([capacity_number(case, _probe_value(p)), f"{p['attempt']}", verdict_text(p["state"], lang),
                     t("cap.yes", lang) if p["within_slo"] else t("cap.no", lang),
                     *([", ".join(held) or t("none", lang)] if scopes else []),
                     fmt(p["tpm_total"], "{:,.0f}", lang),
                     fmt(p["goodput_tpm"], "{:,.0f}", lang), figure("ttft_p99_s").format(p["ttft_p99_s"], na),
                     figure("tpot_p99_s").format(p["tpot_p99_s"], na)])
    return Table([t("cap.parallel", lang, what=capacity_what(case, lang)), t("cap.try", lang),
                  t("col.verdict", lang), t("cap.cluster_within", lang),
                  *([t("cap.nodes_within", lang)] if scopes else []), FIGURES["tpm_total"].label(lang),
                  t("gp.tpm", lang), t("cap.ttft_p99", lang), t("cap.tpot_p99", lang)], rows)


# a `repeat: N` case's figures (controller/report/model.REPEAT_FIGURES): i18n key and format
REPEAT_ROWS: tuple[str, ...] = ("tpm_total", "tpm_output", "output_throughput_tps", "request_throughput_rps",
                                 "ttft_avg_s", "tpot_avg_s", "latency_avg_s", "ttft_p99_s", "tpot_p99_s",
                                 "success_rate", "goodput_tpm", "goodput_ratio")


def repeat_table(case: CaseReport, lang: str) -> Table:
    """Per figure and scope: mean ± the 95 % CI's half-width over the runs, and the spread; a spread over 5 % is
    flagged."""
    scopes = list(case.repeats)
    rows = []
    na = t("na", lang)
    for name in REPEAT_ROWS:
        if not any(name in case.repeats[sc] for sc in scopes):
            continue
        fig = figure(name)
        cells = [fig.label(lang)]
        for sc in scopes:
            st = case.repeats[sc].get(name)
            if st is None or st.n == 0:
                cells.append(na)
                continue
            text = f"{fig.number(st.mean, na)} ± {fig.number(st.ci95, na)}"
            if not math.isnan(st.spread):
                text += " " + t("rep.spread", lang, spread=f"{st.spread * 100:.1f}")
            if st.flagged:
                text += " " + t("rep.flag", lang)
            cells.append(text)
        rows.append(cells)
    return Table([t("col.key", lang)] + [scope_name(sc, lang, case) for sc in scopes], rows)


def repeat_title(case: CaseReport, lang: str) -> str:
    flagged = sorted({name for sc in case.repeats.values() for name, st in sc.items() if st.flagged})
    return t("rep.title", lang, n=case.repeat_runs) + (" " + t("rep.flagged", lang, names=", ".join(flagged))
                                                        if flagged else "")


def tpm_label_line(case: CaseReport, lang: str) -> str:
    """Which TPM each column shows: a node's own, the cluster union over the common window, Σ of the nodes, or, with
    `load: split`, one shared endpoint loaded from N agents."""
    if case.load == "split":
        return t("tpm.split", lang, n=len(case.node_figures))
    return t("tpm.each", lang)


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
                           check_name(v.name, lang), value_text(v.measured, lang) or t("na", lang),
                           value_text(signs(v.bound), lang) or t("na", lang),
                           result,
                           v.detail])
    header = ([t("sw.point", lang)] if with_point else []) + [
        t(k, lang) for k in ("col.scope", "col.check", "col.measured", "col.bound", "col.result", "col.detail")]
    return Table(header, rows)


CHECK_VALUES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^saturated$"), "val.saturated"),
    (re.compile(r"^not saturated$"), "val.not_saturated"),
    (re.compile(r"^(?P<n>[\d,]+) of (?P<total>[\d,]+) nodes$"), "val.n_of_nodes"),
    (re.compile(r"^(?P<n>[\d,]+) of (?P<total>[\d,]+)$"), "val.n_of"),
    (re.compile(r"^(?P<n>[\d,]+) requests completed$"), "val.requests_completed"),
    (re.compile(r"^(?P<n>[\d,]+) scored samples$"), "val.scored_samples"),
    (re.compile(r"^job failed: (?P<error>.*)$", re.S), "val.job_failed"),
)


def value_text(text: str, lang: str) -> str:
    """A stored check value or reason in `lang` ("1 of 2 nodes" reads "1 / 2 个节点"); an error line itself
    stays as the server wrote it."""
    if lang == "en" or not text:
        return text
    for pattern, key in CHECK_VALUES:
        m = pattern.match(text)
        if m:
            return t(key, lang, **m.groupdict())
    return text


def signs(text: str) -> str:
    """A stored bound's comparison as people write it: "<= 1.136 s" reads "≤ 1.136 s"."""
    for plain, sign in (("<=", "≤"), (">=", "≥")):
        if text.startswith(plain):
            return sign + text[len(plain):]
    return text


def invalid_lines(case: CaseReport, lang: str) -> list[str]:
    """Why an INVALID case is INVALID: each failed check with what it measured."""
    if case.verdict != "invalid":
        return []
    failed = "; ".join(
        t("case.check_line", lang, check=check_name(v.name, lang), scope=scope_name(v.scope, lang, case),
          point=at_point(v.point), measured=value_text(v.measured, lang) or t("na", lang),
          bound=value_text(signs(v.bound), lang) or t("na", lang))
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


def percentile_points(f: Figures) -> list[int]:
    """The percentiles the figures hold (the run's percentile set), ascending."""
    return sorted({p for table in f.percentiles.values() for p in table})


def percentile_table(f: Figures, lang: str) -> Table:
    """evalscope's "Percentile results" for one scope: a row per percentile (min/max when the set has them)."""
    na = t("na", lang)
    rows = [[percentile_label(p)] + [METRICS[m].number(f.percentiles.get(m, {}).get(p, math.nan), na)
                                     for m in PERCENTILE_COLUMNS] for p in percentile_points(f)]
    return Table([t("col.percentile", lang)] + [METRICS[m].label(lang) for m in PERCENTILE_COLUMNS], rows)


def node_percentile_cases(report: RunReport) -> list[CaseReport]:
    """The cases whose per-node percentile tables go to the appendix: load cases with a cluster figure."""
    return [case for case in report.cases if case.case_type != "long_context" and case.cluster is not None
            and case.node_figures]


def short_percentile_table(case: CaseReport, lang: str) -> Table:
    """The body's per-node row: p50 and p99 of TTFT, TPOT, ITL and latency for each node and the cluster (the
    full per-node tables are in the appendix and the spreadsheet)."""
    scopes: dict[str, Figures] = dict(case.node_figures)
    if case.cluster is not None:
        scopes["cluster"] = case.cluster
    na = t("na", lang)
    header = [t("col.scope", lang)] + [f"{METRICS[m].label(lang, unit=False)} p{p} ({METRICS[m].display_unit})"
                                       for m in SHORT_METRICS for p in SHORT_PERCENTILES]
    rows = [[scope_name(s, lang, case)] + [METRICS[m].number(f.percentiles.get(m, {}).get(p, math.nan), na)
                                           for m in SHORT_METRICS for p in SHORT_PERCENTILES]
            for s, f in scopes.items() if f.succeeded]
    return Table(header, rows)


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
        return [f.latency_avg_s, f.output_throughput_tps, f.ttft_avg_s, f.tpot_avg_s, r.avg_tps, r.per_request_tps,
                f.tpm_total]
    return [r.latency_avg_s, r.output_throughput_tps, r.ttft_avg_s, r.tpot_avg_s, r.avg_tps, r.per_request_tps,
            r.tpm_total]


def concurrency_text(parallel: int, streams: int, lang: str) -> str:
    """A sweep point's concurrency: a node's as the plan gives it; the cluster's "8 (4 × 2 nodes)"."""
    if not streams or streams == parallel or not parallel:
        return str(parallel)
    return t("load.cluster", lang, total=f"{streams:,}", per_node=parallel, nodes=streams // parallel)


def sweep_table(case: CaseReport, scope: str, lang: str) -> Table:
    """Seed 002's table for one scope: a row per loop, and after a point's loops its loop-average row
    (only where the point ran more than once); the last column is the point's TPM (total)."""
    header = [t(k, lang) for k in ("sw.input", "sw.output", "sw.parallel", "sw.loop")] + \
        [FIGURES[f].label(lang) for f in SWEEP_FIGURES]
    na = t("na", lang)
    mine = [r for r in case.sweep if r.scope == scope]
    with_goodput = any(r.goodput is not None for r in mine)  # the sweep has an SLO: goodput per point, loop rows
    if with_goodput:
        header += [t("gp.ratio", lang), t("gp.tpm", lang)]
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
            rows.append([str(key[0]), str(key[1]), concurrency_text(r.parallel, r.concurrency, lang), str(r.loop)] +
                        [FIGURES[f].number(v, na) for v, f in zip(_point_values(r), SWEEP_FIGURES, strict=True)] +
                        ([FIGURES["goodput_ratio"].format(r.goodput.ratio, na) if r.goodput else na,
                          FIGURES["goodput_tpm"].number(r.goodput.tpm if r.goodput else None, na)]
                         if with_goodput else []))
        a = avgs.get(key)
        if a is not None and a.loops > 1:
            strong.add(len(rows))
            rows.append([str(key[0]), str(key[1]), concurrency_text(a.parallel, a.concurrency, lang),
                         t("sw.avg", lang, loops=a.loops)] +
                        [FIGURES[f].number(v, na) for v, f in zip(_point_values(a), SWEEP_FIGURES, strict=True)] +
                        (["", ""] if with_goodput else []))
    return Table(header, rows, strong)


def best_sweep_point(case: CaseReport) -> SweepAverageRow | None:
    """The point with the highest cluster TPM (total) averaged over its loops (seed 002 compares loop averages,
    never a lucky single loop); the nodes' scope when the sweep has no cluster rows."""
    scope = "cluster" if any(a.scope == "cluster" for a in case.sweep_averages) else None
    rows = [a for a in case.sweep_averages if scope is None or a.scope == scope]
    rows = [a for a in rows if not math.isnan(a.tpm_total)]
    return max(rows, key=lambda a: a.tpm_total) if rows else None


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
        if case.case_type == "capacity":
            r = case.capacity.get("cluster", {})
            n_probes = len(r.get("probes", []))
            found = capacity_found(r, case)
            if found is None:
                out.append(t("concl.capacity_none", lang, case=case.case_id, probes=n_probes,
                             what=capacity_what(case, lang)))
            else:
                amount = capacity_amount(case, found, lang) + at_top_note(r, lang)
                out.append(t("concl.capacity", lang, case=case.case_id, amount=amount,
                             probes=n_probes,
                             tpm=fmt(r["tpm_total"], "{:,.0f}", lang), goodput=fmt(r["goodput_tpm"], "{:,.0f}", lang),
                             slo=capacity_slo_text(case, lang)))
            continue
        if case.repeats and "cluster" in case.repeats and "tpm_total" in case.repeats["cluster"]:
            st = case.repeats["cluster"]["tpm_total"]
            out.append(t("concl.repeat", lang, case=case.case_id, n=st.n, mean=fmt(st.mean, "{:,.0f}", lang),
                         ci=fmt(st.ci95, "{:,.0f}", lang), spread=fmt(st.spread * 100, "{:.1f}", lang)))
            continue
        if case.case_type == "long_context":
            out.append(t("concl.long_context", lang, case=case.case_id, result=long_context_line(case, lang)))
        elif case.hardware:
            lines = hw_summary_lines(case, lang)
            out.append(t("concl.hardware", lang, case=case.case_id, result=" ".join([lines[0], *lines[1:][-1:]])
                         if any(r.status in ("fail", "error") for r in case.hardware) else lines[0]))
        elif case.sweep:
            best = best_sweep_point(case)
            points = len({r.point for r in case.sweep})
            if best is None:
                out.append(t("concl.no_result", lang, case=case.case_id))
            else:
                out.append(t("concl.sweep", lang, case=case.case_id, points=points, loops=best.loops,
                             tpm=FIGURES["tpm_total"].number(best.tpm_total), input=best.input_tokens,
                             output=best.output_tokens,
                             concurrency=concurrency_text(best.parallel, best.concurrency, lang),
                             tps=FIGURES["output_throughput_tps"].number(best.output_throughput_tps)))
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
            key = "concl.tpm_split" if case.load == "split" else "concl.tpm"
            out.append(t(key, lang, n=len(case.node_figures), case=case.case_id,
                         cluster=scope_name("cluster", lang, case),
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
    point = case.point_of(r.case_id) if case is not None else ""  # a reason's case_id is its step's id
    scope = ""
    if with_scope and r.scope:
        if r.scope == "cluster":
            part = case.partial(point) if case is not None else None
            scope = t("scope.cluster_partial", lang, n=part[0], total=part[1]) if part else t("scope.cluster", lang)
        else:
            scope = t("reason.node", lang, node=r.scope)
    what = value_text(check_name(r.what, lang), lang)
    measured = t("reason.measured", lang, value=value_text(r.measured, lang)) if r.measured else ""
    expected = t("reason.expected", lang, value=value_text(signs(localized_threshold(r.threshold, lang)), lang)) \
        if r.threshold else ""
    state = verdict_text(r.state.value, lang)
    if not with_scope:  # inside its case's table: the sweep point only
        return t("reason.short", lang, state=state, point=at_point(point), what=what,
                 measured=measured, expected=expected)
    if not r.case_id and not scope:
        return t("reason.run", lang, state=state, what=what, measured=measured, expected=expected)
    where = " ".join(p for p in (f"`{r.case_id}`" if r.case_id else "", scope) if p)
    return t("reason.line", lang, state=state, where=where, what=what, measured=measured, expected=expected)


OFFICIAL = re.compile(r"^≥ \S+ \(official (?P<official>[\d.]+) − (?P<tolerance>[\d.]+)\)$")


def localized_threshold(text: str, lang: str) -> str:
    """A stored threshold (language-neutral, controller.verdict.threshold_text) in `lang`: an official score's
    "≥ 59.5 (official 60 − 0.5)" is worded by the report's language."""
    m = OFFICIAL.match(text)
    return official_text(float(m["official"]), float(m["tolerance"]), lang) if m else text


def failure_reasons(report: RunReport, lang: str) -> list[str]:
    """Every reason the run is not PASS, one line each."""
    cases = {c.case_id: c for c in report.cases}
    return [reason_text(r, lang, cases.get(report.case_of(r.case_id))) for r in report.reasons]


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
