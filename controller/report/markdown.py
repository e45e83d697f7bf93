"""The acceptance report as Markdown (the seed-000 shape: basics, environment, cases, conclusion)."""

from __future__ import annotations

import math
import time

from fleetbench.figures import DEFINITIONS, PERCENTILES, Figures

from .model import CaseReport, RunReport

SUMMARY_ROWS: tuple[tuple[str, str, str], ...] = (
    # (label, figure, format)
    ("Requests", "requests", "{:.0f}"),
    ("Succeeded", "succeeded", "{:.0f}"),
    ("Failed", "failed", "{:.0f}"),
    ("Wall time (s)", "wall_time_s", "{:.3f}"),
    ("Output throughput (tok/s)", "output_throughput_tps", "{:.2f}"),
    ("Total throughput (tok/s)", "total_throughput_tps", "{:.2f}"),
    ("Request throughput (req/s)", "request_throughput_rps", "{:.4f}"),
    ("TPM total (tok/min)", "tpm_total", "{:,.0f}"),
    ("TPM output (tok/min)", "tpm_output", "{:,.0f}"),
    ("Avg latency (s)", "latency_avg_s", "{:.4f}"),
    ("Avg TTFT (s)", "ttft_avg_s", "{:.4f}"),
    ("Avg TPOT (s)", "tpot_avg_s", "{:.4f}"),
    ("Avg ITL (s)", "itl_avg_s", "{:.4f}"),
    ("Avg input tokens", "input_tokens_avg", "{:.1f}"),
    ("Avg output tokens", "output_tokens_avg", "{:.1f}"),
)
PERCENTILE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("TTFT (s)", "ttft_s", "{:.4f}"),
    ("ITL (s)", "itl_s", "{:.4f}"),
    ("TPOT (s)", "tpot_s", "{:.4f}"),
    ("Latency (s)", "latency_s", "{:.4f}"),
    ("Input tokens", "input_tokens", "{:.0f}"),
    ("Output tokens", "output_tokens", "{:.0f}"),
    ("Output (tok/s)", "output_tps", "{:.2f}"),
    ("Total (tok/s)", "total_tps", "{:.2f}"),
)


def fmt(value: float, pattern: str = "{:.4f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return pattern.format(value)


def when(ts: float) -> str:
    return "n/a" if ts is None or math.isnan(ts) else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def summary_table(scopes: dict[str, Figures]) -> list[str]:
    names = list(scopes)
    rows = [[label] + [fmt(scopes[n].value(fig), pat) for n in names] for label, fig, pat in SUMMARY_ROWS]
    return table(["Key"] + names, rows)


def percentile_table(f: Figures) -> list[str]:
    rows = [[f"{p}%"] + [fmt(f.percentiles[m].get(p, math.nan), pat) for _, m, pat in PERCENTILE_COLUMNS]
            for p in PERCENTILES]
    return table(["Percentile"] + [label for label, _, _ in PERCENTILE_COLUMNS], rows)


def case_section(n: int, case: CaseReport) -> list[str]:
    out = [f"### 2.{n} Case `{case.case_id}` — verdict: **{case.verdict.upper()}**", ""]
    if case.purpose:
        out += [f"Purpose: {case.purpose}", ""]
    if case.command:
        out += ["Equivalent command (per node):", "", "```", case.command, "```", ""]
    if case.verdicts:
        out += ["Expectations:", ""]
        rows = [[v.scope, v.figure, ">=" if v.op == "min" else "<=", f"{v.threshold:g}", fmt(v.measured, "{:.6g}"),
                 v.label.upper() + (f" ({v.note})" if v.note else "")] for v in case.verdicts]
        out += table(["Scope", "Figure", "Op", "Threshold", "Measured", "Verdict"], rows) + [""]
    for node in case.client_bound_nodes:
        s = case.saturation[node]
        out += [f"> **Warning — {node}: the load generator was saturated** (CPU up to {s['cpu_max']:.0%} of a core, "
                f"event-loop lag p95 {s.get('lag_p95_s', s['lag_max_s']) * 1000:.0f} ms): "
                "this node's figures may measure the client, not the server. "
                "Re-run with fewer streams per worker.", ""]
    failed_nodes = {n: e for n, (s, e) in case.node_states.items() if s != "succeeded"}
    for node, err in failed_nodes.items():
        out += [f"- node **{node}**: {case.node_states[node][0]} — {err or 'no detail'}"]
    if failed_nodes:
        out.append("")
    if case.cluster is not None:
        scopes = dict(case.node_figures)
        scopes["cluster"] = case.cluster
        out += ["Summary (per node and cluster; cluster = union of all nodes' records over the common window):", ""]
        out += summary_table(scopes) + [""]
        out += [f"Start skew between nodes: {fmt(case.start_skew_s, '{:.3f}')} s. "
                f"Stragglers: {', '.join(case.stragglers) or 'none'}.", ""]
        out += ["Cluster percentiles (union of all nodes' successful requests):", ""]
        out += percentile_table(case.cluster) + [""]
        for node, figs in case.node_figures.items():
            out += [f"Percentiles of node {node}:", ""] + percentile_table(figs) + [""]
    return out


ENV_COLUMNS = (("CPU", "cpu"), ("CPUs", "cpus"), ("Memory", "memory"), ("Accelerators", "accelerators"),
               ("Driver", "driver"), ("CUDA/CANN/DTK", "toolkit"), ("OS", "os"), ("Kernel", "kernel"))


def environment_section(report: RunReport) -> list[str]:
    """Seed 000's hardware table (one row per distinct configuration, with its machine count),
    the per-node table, and the drift check in plain words."""
    out = ["### 1.2 Test environment", ""]
    ok = [r for r in report.environment if "error" not in r]
    if ok:
        configs: dict[tuple[str, ...], list[str]] = {}
        for r in ok:
            configs.setdefault(tuple(r.get(k, "") for _, k in ENV_COLUMNS), []).append(r["node"])
        rows = [[*cfg, str(len(nodes)), ", ".join(nodes)] for cfg, nodes in configs.items()]
        out += table([label for label, _ in ENV_COLUMNS] + ["Machines", "Nodes"], rows) + [""]
    for r in report.environment:
        if "error" in r:
            out.append(f"- node {r['node']}: {r['error']}")
    out += [*report.drift, ""]
    return out


def render_markdown(report: RunReport) -> str:
    out = [f"# Acceptance report: {report.plan_name}", ""]
    out += ["## 1. Basic information", ""]
    out += table(["Item", "Value"], [
        ["Run", report.run_id], ["Plan", report.plan_name], ["Model", report.model],
        ["Time", f"{when(report.started_at)} → {when(report.finished_at)}"],
        ["Nodes", ", ".join(n.name for n in report.nodes)],
        ["fleetbench", report.fleetbench_version],
        ["evalscope", ", ".join(sorted({n.evalscope_version for n in report.nodes if n.evalscope_version}))],
        ["Verdict", f"**{report.verdict.upper()}**"],
    ]) + [""]
    out += ["### 1.1 Nodes", ""]
    out += table(["Node", "Address", "Host", "Endpoint", "Agent", "Clock offset (s)", "RTT (ms)"], [
        [n.name, n.address, n.hostname, n.endpoint, n.agent_version, fmt(n.clock_offset_s, "{:+.4f}"),
         fmt(n.rtt_s * 1000, "{:.2f}")] for n in report.nodes
    ]) + [""]
    out += environment_section(report)
    out += ["## 2. Test cases", ""]
    for i, case in enumerate(report.cases, 1):
        out += case_section(i, case)
    out += ["## 3. Conclusion", ""]
    for case in report.cases:
        c = case.cluster
        if c is None:
            out += [f"- `{case.case_id}`: no node produced a result."]
            continue
        out += [
            f"- `{case.case_id}`: cluster TPM (total) = total throughput × 60 = "
            f"Σ(input+output tokens) / window × 60 = ({c.input_tokens:,} + {c.output_tokens:,}) / "
            f"{fmt(c.wall_time_s, '{:.3f}')} s × 60 = **{fmt(c.tpm_total, '{:,.0f}')}** tok/min; "
            f"output TPM = {c.output_tokens:,} / {fmt(c.wall_time_s, '{:.3f}')} s × 60 = "
            f"**{fmt(c.tpm_output, '{:,.0f}')}** tok/min; Σ per-node TPM (total) = "
            f"{fmt(case.sum_node_tpm_total, '{:,.0f}')}, (output) = {fmt(case.sum_node_tpm_output, '{:,.0f}')}."
        ]
    reasons = [f"`{c.case_id}` {v.scope}: {v.figure} = {fmt(v.measured, '{:.6g}')} "
               f"(expected {'>=' if v.op == 'min' else '<='} {v.threshold:g}){' — ' + v.note if v.note else ''}"
               for c in report.cases for v in c.verdicts if not v.passed]
    out += ["", f"Overall verdict: **{report.verdict.upper()}**", ""]
    if reasons:
        out += ["Reasons:", ""] + [f"- {r}" for r in reasons] + [""]
    out += ["## 4. Definitions", ""] + [f"- **{k}**: {v}" for k, v in DEFINITIONS.items()] + [""]
    return "\n".join(out)
