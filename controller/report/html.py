"""The acceptance report as one self-contained HTML file: inline CSS, charts as inline SVG drawn here in
Python (no script, no CDN, nothing fetched), readable on screen and printed to PDF.

Charts: per case, TPM and output throughput per node beside the cluster (bars), TTFT and TPOT percentile
curves per node; per sweep, output throughput and latency (avg latency, avg TTFT) against concurrency, one
line per (input, output) pair, from the loop averages; per eval case, each scope's score against the
official one. Tables and sentences come from content.py, shared with the Markdown report."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable

from fleetbench.figure_catalog import METRICS, figure
from fleetbench.figures import DEFINITIONS, Figures

from . import content as c
from .content import Table
from .i18n import check_lang, definition, t
from .model import CaseReport, RunReport, SweepAverageRow

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
CLUSTER_COLOR = "#333333"
W, H = 540, 290
ML, MR, MT, MB = 70, 16, 34, 46  # margins: left, right, top, bottom

CSS = """
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #d0d4d9; --pass: #137333; --fail: #c5221f; --head: #f1f3f4;
        --error: #7b1fa2; --invalid: #b06000; --incomplete: #5f6368; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "WenQuanYi Micro Hei", "Segoe UI",
       "DejaVu Sans", Arial,
       sans-serif; color: var(--fg); margin: 0 auto; max-width: 1180px; padding: 24px 32px; line-height: 1.45;
       font-size: 14px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; border-bottom: 2px solid var(--fg); padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 16px; margin-top: 24px; }
h4 { font-size: 14px; margin: 16px 0 6px; color: var(--muted); }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 12.5px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: var(--head); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.strong td { font-weight: 700; background: #fafafa; white-space: nowrap; }
td.pass { color: var(--pass); font-weight: 600; } td.fail { color: var(--fail); font-weight: 600; }
td.error { color: var(--error); font-weight: 600; } td.invalid { color: var(--invalid); font-weight: 600; }
td.incomplete { color: var(--incomplete); font-weight: 600; }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: 8px 10px; white-space: pre-wrap;
      word-break: break-all; font-size: 12px; }
code { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: 12px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff; font-weight: 700; }
.verdict.pass { background: var(--pass); } .verdict.fail { background: var(--fail); }
.verdict.error { background: var(--error); } .verdict.invalid { background: var(--invalid); }
.verdict.incomplete { background: var(--incomplete); }
.state-help { color: var(--muted); }
.warn { border-left: 4px solid #e37400; background: #fef7e0; padding: 6px 10px; margin: 8px 0; }
.invalid-note { border-left: 4px solid var(--invalid); background: #fef7e0; padding: 6px 10px; margin: 8px 0; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 12px; }
.chart { border: 1px solid var(--line); background: #fff; }
.chart text { font-family: inherit; }
.muted { color: var(--muted); }
ul { padding-left: 22px; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
html:lang(zh-CN) body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
       "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei", "Segoe UI", "DejaVu Sans", Arial, sans-serif; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5px; }
  h2, h3, h4, p.caption { break-after: avoid; page-break-after: avoid; }
  .keep { break-inside: avoid; page-break-inside: avoid; }
  table, .chart, pre { break-inside: avoid; }
  tr, td, th { break-inside: avoid; }
  thead { display: table-header-group; }
  h2.cases { break-before: page; } h2.cases + section.case { break-before: auto; }
  table { font-size: 9.5px; } th, td { padding: 2px 5px; }
  .chart { width: 48%; height: auto; }
  section.case { break-before: page; }
  a { color: inherit; text-decoration: none; }
}
"""


KEEP_HEAD = ("<h2", "<h3", "<h4", "<p")
KEEP_BODY = ("<table", "<pre", '<div class="charts"', "<ul")


def keep_with_next(parts: list[str]) -> list[str]:
    """Each heading or caption in one block with what it introduces, so print never leaves it alone at the
    bottom of a page (CSS .keep: break-inside avoid; a block taller than a page still breaks)."""
    out: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if part.startswith(KEEP_HEAD) and i + 1 < len(parts) and parts[i + 1].startswith(KEEP_BODY) \
                and "<table" not in part:
            out.append(f'<div class="keep">{part}{parts[i + 1]}</div>')
            i += 2
            continue
        out.append(part)
        i += 1
    return out


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def inline(text: str) -> str:
    """The shared sentences use Markdown's **bold** and `code`; as HTML, escaped first."""
    out = esc(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


# verdict cells (both languages) are coloured, one colour per state
VERDICT_CLASS = {**{t(f"verdict.{v}", lang): v for v in c.STATES for lang in ("en", "zh")},
                 **{t("check.failed", lang): "invalid" for lang in ("en", "zh")}}
NUMERIC = re.compile(r"^[+\-−]?[\d,]*\.?\d+(e[+-]?\d+)?%?( ms| s)?$")  # a number, or a time with its unit


def html_table(tab: Table) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in tab.header)
    rows = []
    for i, r in enumerate(tab.rows):
        cls = ' class="strong"' if i in tab.strong_rows else ""
        cells = "".join(_cell(x) for x in r)
        rows.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cell(x: str) -> str:
    if NUMERIC.match(x):
        return f'<td class="num">{esc(x)}</td>'
    cls = VERDICT_CLASS.get(x) or VERDICT_CLASS.get(x.split(" (")[0])
    return f'<td class="{cls}">{inline(x)}</td>' if cls else f"<td>{inline(x)}</td>"


def verdict_badge(label: str, lang: str) -> str:
    cls = label if label in c.STATES else "incomplete"
    return f'<span class="verdict {cls}">{esc(c.verdict_text(label, lang))}</span>'


# ---------------------------------------------------------------------------------------------- SVG charts


def nice_max(v: float) -> float:
    """The smallest 1/2/2.5/5 × 10^k not below v (the top of a y axis starting at 0)."""
    if not v or v <= 0 or math.isnan(v):
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    return next(m * e for m in (1, 2, 2.5, 5, 10) if m * e >= v * (1 - 1e-12))


def tick_label(v: float) -> str:
    """An axis tick, short enough never to reach the axis title: 200k, 1.5M (tables carry the exact values)."""
    if v == 0:
        return "0"
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:.3g}M"
    if abs(v) >= 10_000:
        return f"{v / 1000:.3g}k"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


LEGEND_ROW = 15  # px per legend row
CHAR_W = 6.2  # px per character of an 11px label (a generous average, so entries never overlap)


def _legend_rows(entries: list[tuple[str, str, bool]]) -> list[list[tuple[str, str, bool]]]:
    """Legend entries (name, colour, dashed) laid out left to right in rows across the chart's width."""
    rows: list[list[tuple[str, str, bool]]] = [[]]
    x = float(ML)
    for e in entries:
        w = 20 + CHAR_W * len(e[0]) + 12
        if rows[-1] and x + w > W - MR:
            rows.append([])
            x = float(ML)
        rows[-1].append(e)
        x += w
    return [r for r in rows if r]


def _frame(title: str, ymax: float, ylabel: str, xlabel: str, legend: list[tuple[str, str, bool]]) -> \
        tuple[list[str], int]:
    """The chart's frame; its legend in a band between the title and the plot, so it never covers data.
    Returns the SVG parts and the plot's top."""
    rows = _legend_rows(legend)
    pad = 6 if rows else 0
    mt = MT + pad + LEGEND_ROW * len(rows)
    h = H + pad + LEGEND_ROW * len(rows)
    pw, ph = W - ML - MR, H - MT - MB
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" '
           f'viewBox="0 0 {W} {h}" role="img" aria-label="{esc(title)}">',
           f"<title>{esc(title)}</title>",
           f'<text x="{W / 2:.1f}" y="18" text-anchor="middle" font-size="13" font-weight="600">{esc(title)}</text>']
    for r, row in enumerate(rows):
        x, y = float(ML), float(MT - 4 + LEGEND_ROW * r)
        for name, color, dashed in row:
            dash = ' stroke-dasharray="5 3"' if dashed else ""
            out.append(f'<line class="legend" x1="{x:.1f}" y1="{y:.1f}" x2="{x + 16:.1f}" y2="{y:.1f}" '
                       f'stroke="{color}" stroke-width="{2 if not dashed else 1.5}"{dash}/>')
            out.append(f'<text x="{x + 20:.1f}" y="{y + 4:.1f}" font-size="11">{esc(name)}</text>')
            x += 20 + CHAR_W * len(name) + 12
    for i in range(6):
        v = ymax * i / 5
        y = mt + ph - ph * i / 5
        out.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{ML + pw}" y2="{y:.1f}" stroke="#e3e6e8" stroke-width="1"/>')
        out.append(f'<text x="{ML - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{esc(tick_label(v))}</text>')
    out.append(f'<line x1="{ML}" y1="{mt}" x2="{ML}" y2="{mt + ph}" stroke="#555" stroke-width="1"/>')
    out.append(f'<line x1="{ML}" y1="{mt + ph}" x2="{ML + pw}" y2="{mt + ph}" stroke="#555" stroke-width="1"/>')
    out.append(f'<text x="14" y="{mt + ph / 2:.1f}" text-anchor="middle" font-size="11" '
               f'transform="rotate(-90 14 {mt + ph / 2:.1f})">{esc(ylabel)}</text>')
    out.append(f'<text x="{ML + pw / 2:.1f}" y="{h - 6}" text-anchor="middle" font-size="11">{esc(xlabel)}</text>')
    return out, mt


def _reference_lines(references: list[tuple[str, float]], ymax: float, mt: int) -> list[str]:
    """Dashed horizontal lines (an SLO threshold, an official score), named in the legend, not on the plot."""
    pw, ph = W - ML - MR, H - MT - MB
    out = []
    for name, value in references:
        y = mt + ph - ph * value / ymax
        out.append(f'<line class="reference" x1="{ML}" y1="{y:.1f}" x2="{ML + pw}" y2="{y:.1f}" stroke="{REF_COLOR}" '
                   f'stroke-width="1.5" stroke-dasharray="5 3"><title>{esc(name)}</title></line>')
    return out


REF_COLOR = "#c5221f"


def line_chart(title: str, series: list[tuple[str, str, list[tuple[float, float]]]], xlabel: str, ylabel: str,
               categorical: bool = False, references: list[tuple[str, float]] | None = None,
               marker: tuple[str, float] | None = None, xtick: Callable[[float], str] = tick_label) -> str:
    """Lines with markers. `categorical`: the distinct x values evenly spaced (concurrency 1, 2, 4, … 128).
    `references`: dashed threshold lines (the plan's SLO), the y axis reaching above them; `marker`: a vertical
    line at one x (a capacity search's answer), labelled."""
    refs = [(n, v) for n, v in (references or []) if not math.isnan(v) and v > 0]
    pts = [(x, y) for _, _, s in series for x, y in s if not math.isnan(y)]
    if not pts:
        return ""
    ymax = nice_max(max([y for _, y in pts] + [v for _, v in refs]))
    xs = sorted({x for x, _ in pts})
    pw, ph = W - ML - MR, H - MT - MB
    if categorical:
        pos = {x: ML + pw * (i + 0.5) / len(xs) for i, x in enumerate(xs)}
        xticks = [(pos[x], xtick(x)) for x in xs]
    else:
        lo, hi = xs[0], xs[-1] if xs[-1] > xs[0] else xs[0] + 1
        pos = {x: ML + pw * (x - lo) / (hi - lo) for x in xs}
        xticks = [(pos[x], xtick(x)) for x in xs]
    legend = [(name, color, False) for name, color, _ in series] + [(n, REF_COLOR, True) for n, _ in refs]
    out, mt = _frame(title, ymax, ylabel, xlabel, legend)
    for px, label in xticks:
        out.append(f'<text x="{px:.1f}" y="{mt + ph + 15}" text-anchor="middle" font-size="11">{esc(label)}</text>')
    out += _reference_lines(refs, ymax, mt)
    for name, color, s in series:
        good = [(pos[x], mt + ph - ph * y / ymax) for x, y in s if not math.isnan(y)]
        if not good:
            continue
        d = " ".join(f"{'M' if i == 0 else 'L'}{px:.1f},{py:.1f}" for i, (px, py) in enumerate(good))
        out.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"><title>{esc(name)}</title></path>')
        out += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}"/>' for px, py in good]
    if marker is not None and marker[1] in pos:
        x = pos[marker[1]]
        out.append(f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{mt + ph}" stroke="#137333" stroke-width="1.5" '
                   f'stroke-dasharray="2 3"/>')
        out.append(f'<text x="{x + 4:.1f}" y="{mt + 12}" font-size="11" fill="#137333">{esc(marker[0])}</text>')
    return "\n".join(out + ["</svg>"])


def bar_chart(title: str, bars: list[tuple[str, float, str]], ylabel: str, value_fmt: str = "{:,.0f}",
              reference: tuple[str, float] | None = None) -> str:
    """Vertical bars with their values on top; an optional dashed reference line (the official score), named in
    the legend above the plot so its label never meets a bar's value."""
    vals = [v for _, v, _ in bars if not math.isnan(v)]
    if not any(vals):  # nothing, or only zeros, to draw (every request failed): the tables say so
        return ""
    ymax = nice_max(max(vals + ([reference[1]] if reference else [])) * 1.08)  # room for the value labels
    pw, ph = W - ML - MR, H - MT - MB
    out, mt = _frame(title, ymax, ylabel, "", [(reference[0], REF_COLOR, True)] if reference else [])
    slot = pw / len(bars)
    bw = min(60.0, slot * 0.6)
    for i, (name, v, color) in enumerate(bars):
        cx = ML + slot * (i + 0.5)
        out.append(f'<text x="{cx:.1f}" y="{mt + ph + 15}" text-anchor="middle" font-size="11">{esc(name)}</text>')
        if math.isnan(v):
            continue
        bh = ph * v / ymax
        out.append(f'<rect x="{cx - bw / 2:.1f}" y="{mt + ph - bh:.1f}" width="{bw:.1f}" height="{bh:.1f}" '
                   f'fill="{color}"><title>{esc(name)}: {esc(value_fmt.format(v))}</title></rect>')
        out.append(f'<text class="value" x="{cx:.1f}" y="{mt + ph - bh - 4:.1f}" text-anchor="middle" '
                   f'font-size="11">{esc(value_fmt.format(v))}</text>')
    if reference is not None:
        out += _reference_lines([reference], ymax, mt)
    return "\n".join(out + ["</svg>"])


def capacity_charts(case: CaseReport, lang: str) -> list[str]:
    """The cluster's TPM and goodput TPM, p99 TTFT and p99 TPOT against the searched value (concurrency or rate; the
    worst run at each), the SLO's limits as dashed lines and the found value marked."""
    points = c.capacity_points(case)
    if not points:
        return []
    found = c.capacity_found(case.capacity.get("cluster", {}), case)
    marker = (t("cap.found", lang, n=c.capacity_number(case, found)), float(found)) if found is not None else None
    what = c.capacity_what(case, lang)
    # a rate search's probes can be 5 % apart (14, 14.5, 15): each tick as probed, never two alike
    xtick = (lambda v: f"{v:g}") if case.capacity_axis == "rate" else tick_label

    def series(key: str) -> list[tuple[float, float]]:
        return [(p["value"], p[key]) for p in points]

    def limits(metric: str) -> list[tuple[str, float]]:
        return [(t("series.slo", lang, figure=b["figure"], limit=figure(b["figure"]).threshold(b["threshold"])),
                 b["threshold"])
                for b in case.capacity_slo if b["op"] == "max" and b["figure"].startswith(metric + "_")]

    axis = what
    charts = [line_chart(t("chart.cap_tpm", lang, case=case.case_id, what=what),
                         [(figure("tpm_total").label(lang), PALETTE[0], series("tpm_total")),
                          (t("gp.tpm", lang), PALETTE[2], series("goodput_tpm"))], axis, t("axis.tpm", lang),
                         categorical=True, marker=marker, xtick=xtick),
              line_chart(t("chart.cap_ttft", lang, case=case.case_id, what=what),
                         [(t("cap.ttft_p99", lang), PALETTE[1], series("ttft_p99_s"))], axis, t("axis.seconds", lang),
                         categorical=True, references=limits("ttft"), marker=marker,
                         xtick=xtick),
              line_chart(t("chart.cap_tpot", lang, case=case.case_id, what=what),
                         [(t("cap.tpot_p99", lang), PALETTE[3], series("tpot_p99_s"))], axis, t("axis.seconds", lang),
                         categorical=True, references=limits("tpot"), marker=marker,
                         xtick=xtick)]
    return [ch for ch in charts if ch]


def _scope_colors(names: list[str]) -> dict[str, str]:
    nodes = [n for n in names if n != "cluster"]
    colors = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(nodes)}
    colors["cluster"] = CLUSTER_COLOR
    return colors


HW_CHART_FIGURES = ("gemm_bf16_tflops", "memcpy_d2d_gbps", "h2d_gbps", "d2h_gbps", "stress_gemm_bf16_tflops")
OUTLIER_COLOR = "#c5221f"


def hardware_charts(case: CaseReport, lang: str) -> list[str]:
    """Per figure, a bar per accelerator (node #index) with the SKU's spec as a dashed line; a failed
    accelerator (below spec or an outlier of the fleet) in red."""
    charts = []
    for fig in HW_CHART_FIGURES:
        rows = [r for r in case.hardware if r.check == fig and r.measured is not None]
        if not rows:
            continue
        refs = [r.reference for r in rows if r.reference]
        reference = (f"{t('hw.spec_line', lang)} {c.hw_value(refs[0], rows[0].unit, lang)}", refs[0]) \
            if refs and len(set(refs)) == 1 else None
        bars = [(f"{r.node}#{r.index}", float(r.measured or 0.0),
                 OUTLIER_COLOR if r.status == "fail" else PALETTE[0]) for r in rows]
        charts.append(bar_chart(t("case.hardware_chart", lang, figure=f"{fig} ({rows[0].unit})"), bars, rows[0].unit,
                                "{:,.0f}", reference))
    return [ch for ch in charts if ch]


def slo_lines(case: CaseReport, base: str, lang: str) -> list[tuple[str, float]]:
    """The plan's upper bounds on a latency (base "ttft" or "tpot": its average or a percentile) as dashed
    lines on that latency's chart, in the chart's unit (ms), each named with its figure and limit."""
    out: dict[str, tuple[str, float]] = {}
    for v in case.verdicts:
        if v.op == "max" and v.figure.startswith(base + "_") and v.figure.endswith("_s"):
            name = t("series.slo", lang, figure=v.figure, limit=c.threshold_number(v.figure, v.threshold, lang))
            out[name] = (name, v.threshold * METRICS[f"{base}_s"].scale)
    return list(out.values())


def case_charts(case: CaseReport, lang: str) -> list[str]:
    charts: list[str] = []
    if case.case_type == "capacity":
        return capacity_charts(case, lang)
    if case.hardware:
        return hardware_charts(case, lang)
    if case.case_type == "long_context":  # one request per node: its TTFT, no throughput or percentiles
        colors = _scope_colors([r.node for r in case.long_context])
        if any(not math.isnan(r.ttft_s) for r in case.long_context):
            charts.append(bar_chart(t("chart.lc_ttft", lang, case=case.case_id),
                                    [(r.node, r.ttft_s, colors[r.node]) for r in case.long_context],
                                    t("axis.seconds", lang), "{:,.2f}"))
    elif case.cluster is not None:
        scopes: dict[str, Figures] = {**case.node_figures, "cluster": case.cluster}
        colors = _scope_colors(list(scopes))
        label = {s: c.scope_name(s, lang, case) for s in scopes}
        charts.append(bar_chart(t("chart.tpm_bars", lang, case=case.case_id),
                                [(label[s], f.tpm_total, colors[s]) for s, f in scopes.items()], t("axis.tpm", lang)))
        charts.append(bar_chart(t("chart.tps_bars", lang, case=case.case_id),
                                [(label[s], f.output_throughput_tps, colors[s]) for s, f in scopes.items()],
                                t("axis.tps", lang), "{:,.1f}"))
        for key, metric in (("chart.ttft_pct", "ttft_s"), ("chart.tpot_pct", "tpot_s")):
            scale = METRICS[metric].scale  # ms, as the tables show them
            series = [(label[s], colors[s], sorted(f.percentiles.get(metric, {}).items())) for s, f in scopes.items()]
            charts.append(line_chart(t(key, lang, case=case.case_id),
                                     [(n, col, [(float(p), v * scale) for p, v in s]) for n, col, s in series],
                                     t("axis.percentile", lang), METRICS[metric].display_unit, categorical=True,
                                     references=slo_lines(case, metric.split("_")[0], lang)))
    if case.sweep:
        scope = "cluster" if any(r.scope == "cluster" for r in case.sweep) else c.sweep_scopes(case)[0]
        avgs: list[SweepAverageRow] = [a for a in case.sweep_averages if a.scope == scope]
        pairs = sorted({(a.input_tokens, a.output_tokens) for a in avgs})
        name = c.scope_name(scope, lang)

        def of(pair: tuple[int, int], attr: str) -> list[tuple[float, float]]:
            return sorted((float(a.parallel), float(getattr(a, attr))) for a in avgs
                          if (a.input_tokens, a.output_tokens) == pair)

        pair_name = {p: t("series.pair", lang, input=p[0], output=p[1]) for p in pairs}
        streams = max((a.concurrency // a.parallel for a in avgs if a.parallel), default=1)
        xlabel = t("axis.concurrency_nodes", lang, nodes=streams) if streams > 1 else t("axis.concurrency", lang)
        charts.append(line_chart(
            t("chart.sweep_tps", lang, case=case.case_id, scope=name),
            [(pair_name[p], PALETTE[i % len(PALETTE)], of(p, "output_throughput_tps")) for i, p in enumerate(pairs)],
            xlabel, t("axis.tps", lang), categorical=True))
        lat = []
        for i, p in enumerate(pairs):
            col = PALETTE[i % len(PALETTE)]
            lat.append((f"{pair_name[p]} — {t('series.latency', lang)}", col, of(p, "latency_avg_s")))
            lat.append((f"{pair_name[p]} — {t('series.ttft', lang)}", PALETTE[(i + 5) % len(PALETTE)],
                        of(p, "ttft_avg_s")))
        charts.append(line_chart(t("chart.sweep_latency", lang, case=case.case_id, scope=name), lat,
                                 xlabel, t("axis.seconds", lang), categorical=True))
    if case.scores:
        for dataset in sorted({s.dataset for s in case.scores}):
            # one bar order everywhere: the nodes, then the cluster (as the TPM and throughput bars)
            rows = sorted((s for s in case.scores if s.dataset == dataset), key=lambda s: (s.scope == "cluster",
                                                                                          s.scope))
            colors = _scope_colors([s.scope for s in rows])
            official = rows[0].official
            ref = (t("series.official", lang, official=f"{official:g}"), official) if official is not None else None
            charts.append(bar_chart(f"{t('chart.scores', lang, case=case.case_id)} — {dataset}",
                                    [(c.scope_name(s.scope, lang), s.score, colors[s.scope]) for s in rows],
                                    t("axis.score", lang), "{:.1f}", ref))
    return [ch for ch in charts if ch]


# ---------------------------------------------------------------------------------------------- sections


def _percentiles(f: Figures, lang: str) -> str:
    return html_table(c.percentile_table(f, lang)) if f.succeeded else f"<p>{esc(t('case.no_success', lang))}</p>"


def case_section(n: int, case: CaseReport, report: RunReport, lang: str) -> list[str]:
    out = [f'<section class="case" id="case-{esc(case.case_id)}">',
           f"<h3>{esc(t('sec.case_plain', lang, n=n, case=case.case_id, verdict=''))}"
           f"{verdict_badge(case.verdict, lang)}</h3>"]
    out.append(html_table(Table([t("col.item", lang), t("col.value", lang)], [
        [t("case.type", lang), c.case_type_text(case, lang)],
        [t("case.purpose", lang), case.purpose or t("na", lang)],
        [t("case.expectations", lang), "; ".join(c.expectation_lines(report, case, lang))
         or t("case.no_expectations", lang)],
    ])))
    if case.command:
        out += [f"<h4>{esc(t('case.command', lang))}</h4>", f"<pre><code>{esc(case.command)}</code></pre>"]
    out.append(f"<h4>{esc(t('case.results', lang))}</h4>")
    out += [f'<div class="warn">{inline(line)}</div>' for line in c.saturation_lines(case, lang)]
    states = c.node_state_lines(case, lang)
    if states:
        out.append("<ul>" + "".join(f"<li>{inline(s)}</li>" for s in states) + "</ul>")
    if case.scope_states:
        out += [f"<p><strong>{esc(t('case.states', lang))}</strong></p>", html_table(c.states_table(case, lang))]
    out += [f'<div class="invalid-note">{inline(line)}</div>' for line in c.invalid_lines(case, lang)]
    charts = case_charts(case, lang)
    if charts:
        out.append('<div class="charts">' + "".join(charts) + "</div>")
    if case.hardware:
        out += [f"<p><strong>{esc(t('case.hardware', lang, level=c.hw_level(report, case)))}</strong></p>",
                "<ul>" + "".join(f"<li>{inline(line)}</li>" for line in c.hw_summary_lines(case, lang)) + "</ul>",
                html_table(c.hw_checks_table(case, lang))]
    if case.repeats:
        out += [f"<p><strong>{esc(c.repeat_title(case, lang))}</strong></p>", html_table(c.repeat_table(case, lang))]
    if case.case_type == "capacity":
        if case.capacity:
            title = t("cap.title", lang, slo=c.capacity_slo_text(case, lang), what=c.capacity_what(case, lang))
            out += [f"<p><strong>{esc(title)}</strong></p>",
                    html_table(c.capacity_table(case, lang)), f"<p>{esc(t('cap.probes', lang))}</p>",
                    html_table(c.capacity_probe_table(case, lang))]
    elif case.case_type == "long_context":
        out += [f"<p><strong>{esc(t('case.long_context', lang))}</strong></p>",
                html_table(c.long_context_table(case, lang)), f"<p>{inline(c.long_context_line(case, lang))}</p>"]
    elif case.cluster is not None:
        scopes = {**case.node_figures, "cluster": case.cluster}
        out += [f"<p>{inline(t('case.summary', lang))}</p>", html_table(c.summary_table(scopes, lang, case)),
                f"<p>{inline(c.tpm_label_line(case, lang))}</p>", f"<p>{inline(c.skew_line(case, lang))}</p>"]
        if case.goodput:
            out += [f"<p>{inline(c.goodput_title(case, lang))}</p>", html_table(c.goodput_table(case, lang))]
        out += [f"<p>{inline(c.cluster_percentiles_title(case, lang))}</p>", _percentiles(case.cluster, lang)]
        short = c.short_percentile_table(case, lang)
        if short.rows:
            out += [f"<p>{inline(t('case.short_percentiles', lang))}</p>", html_table(short)]
    if case.sweep:
        out.append(f'<p class="muted">{inline(t("case.sweep_note", lang))}</p>')
        for scope in c.sweep_scopes(case):
            out += [f"<p><strong>{esc(t('case.sweep', lang, scope=c.sweep_scope_name(case, scope, lang)))}"
                    "</strong></p>", html_table(c.sweep_table(case, scope, lang))]
    if case.scores:
        out += [f"<p><strong>{esc(t('case.scores', lang))}</strong> — {inline(t('case.scores_note', lang))}</p>",
                html_table(c.scores_table(case, lang))]
    if case.cluster is None and not case.sweep and not case.scores and not case.long_context and not case.hardware:
        out.append(f"<p>{esc(t('case.no_result', lang))}</p>")
    if case.failures:
        out += [f"<h4>{esc(t('case.failures', lang))}</h4>", html_table(c.failures_table(case, lang))]
    if case.validity:
        out += [f"<h4>{esc(t('case.validity', lang))}</h4>", html_table(c.validity_table(case, lang))]
    if case.verdicts:
        out += [f"<h4>{esc(t('case.verdicts', lang))}</h4>", html_table(c.verdict_table(case, lang))]
    out.append("</section>")
    return keep_with_next(out)


def render_html(report: RunReport, lang: str = "en") -> str:
    check_lang(lang)
    title = t("title", lang, plan=report.plan_name)
    out = ["<!DOCTYPE html>", f'<html lang="{"zh-CN" if lang == "zh" else "en"}">', "<head>",
           '<meta charset="utf-8">', '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{esc(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
           f"<h1>{esc(title)} {verdict_badge(report.verdict, lang)}</h1>",
           f'<p class="state-help">{inline(c.verdict_text(report.verdict, lang))}: '
           f"{inline(c.state_help(report.verdict, lang))}</p>",
           f"<h2>{esc(t('sec.basic', lang))}</h2>", html_table(c.basic_table(report, lang)),
           f"<h3>{esc(t('sec.nodes', lang))}</h3>", html_table(c.nodes_table(report, lang)),
           f"<h3>{esc(t('sec.environment', lang))}</h3>"]
    hardware = c.hardware_tables(report, lang)
    if hardware:
        out.append(f"<h4>{esc(t('sec.hardware', lang))}</h4>")
        for title, tab in hardware:
            out += ([f"<p><strong>{esc(title)}</strong></p>"] if title else []) + [html_table(tab)]
    out += [f"<h4>{esc(t('sec.software', lang))}</h4>", html_table(c.software_table(report, lang))]
    errors = c.environment_errors(report, lang)
    if errors:
        out.append("<ul>" + "".join(f"<li>{esc(e)}</li>" for e in errors) + "</ul>")
    out += [f"<h4>{esc(t('sec.drift', lang))}</h4>", f"<pre>{esc(chr(10).join(c.drift_lines(report, lang)))}</pre>"]
    out.append(f'<h2 class="cases">{esc(t("sec.cases", lang))}</h2>')
    for i, case in enumerate(report.cases, 1):
        out += case_section(i, case, report, lang)
    out += [f"<h2>{esc(t('sec.conclusion', lang))}</h2>",
            "<ul>" + "".join(f"<li>{inline(line)}</li>" for line in c.conclusion_lines(report, lang)) + "</ul>",
            f"<p>{verdict_badge(report.verdict, lang)} {inline(c.overall_line(report, lang))}</p>"]
    reasons = c.failure_reasons(report, lang)
    if reasons:
        out += [f"<p>{esc(t('concl.reasons', lang))}</p>",
                "<ul>" + "".join(f"<li>{inline(r)}</li>" for r in reasons) + "</ul>"]
    elif report.verdict == "pass":
        out.append(f"<p>{esc(t('concl.all_passed', lang))}</p>")
    out += [f"<h2>{esc(t('sec.definitions', lang))}</h2>",
            "<ul>" + "".join(f"<li><strong>{esc(k)}</strong>: {esc(definition(k, lang))}</li>"
                             for k in DEFINITIONS) + "</ul>"]
    appendix = c.appendix_tables(report, lang)
    if appendix:
        out.append(f"<h2>{esc(t('sec.appendix', lang))}</h2>")
        for node, tab in appendix:
            out += [f"<h3>{esc(node)}</h3>", html_table(tab)]
    per_node = c.node_percentile_cases(report)
    if per_node:
        out.append(f"<h2>{esc(t('sec.appendix_percentiles', lang))}</h2>")
        for case in per_node:
            for node, figs in case.node_figures.items():
                out += [f"<h3>{inline(t('case.node_percentiles_of', lang, case=case.case_id, node=node))}</h3>",
                        _percentiles(figs, lang)]
    out += [f"<footer>{esc(t('html.generated', lang, version=report.fleetbench_version, run=report.run_id))}"
            "</footer>", "</body>", "</html>", ""]
    return "\n".join(keep_with_next(out))
