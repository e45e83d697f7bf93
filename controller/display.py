"""Figures for people on the terminal (`ctl show`, `ctl compare`): one name -> label, unit and format.

Every number `ctl show` and `ctl compare` print goes through `fmt_figure` / `fmt_delta`, so the display can
switch to a shared figure catalogue in one place. Latencies are shown in ms with two decimals (evalscope 1.14
prints ms), so 20.07 ms stands out against a 20 ms limit.
"""

from __future__ import annotations

import math

# figure -> (label, unit, which way is better: "higher" | "lower")
FIGURES: dict[str, tuple[str, str, str]] = {
    "tpm_total": ("TPM (total)", "tok/min", "higher"),
    "tpm_output": ("TPM (output)", "tok/min", "higher"),
    "ttft_avg_s": ("TTFT avg", "ms", "lower"),
    "ttft_p99_s": ("TTFT p99", "ms", "lower"),
    "tpot_avg_s": ("TPOT avg", "ms", "lower"),
    "tpot_p99_s": ("TPOT p99", "ms", "lower"),
    "latency_avg_s": ("latency avg", "ms", "lower"),
    "output_throughput_tps": ("output tok/s", "tok/s", "higher"),
    "total_throughput_tps": ("total tok/s", "tok/s", "higher"),
    "request_throughput_rps": ("requests/s", "req/s", "higher"),
    "success_rate": ("success rate", "%", "higher"),
    "score": ("score", "points", "higher"),
}


def figure_label(figure: str) -> str:
    """`score:gsm8k` -> "score gsm8k"; `tpm_total@p4` -> "TPM (total) p4"; known names by FIGURES."""
    base, _, tail = figure.replace(":", "@").partition("@")
    label = FIGURES.get(base, (base, "", ""))[0]
    return f"{label} {tail}" if tail else label


def _base(figure: str) -> str:
    return figure.replace(":", "@").partition("@")[0]


def better_direction(figure: str) -> str:
    return FIGURES.get(_base(figure), ("", "", "higher"))[2]


def fmt_figure(figure: str, value: float | None, scale: float | None = None) -> str:
    """One figure's value for people: `1,234,567 tok/min`, `20.07 ms`, `99.22 %`, `80.00`; `n/a` for none.
    `scale`: the magnitude that picks the precision (a Δ is shown with as many decimals as its values)."""
    if value is None or math.isnan(value):
        return "n/a"
    unit = FIGURES.get(_base(figure), ("", "", ""))[1]
    if unit == "ms":
        return f"{value * 1000:,.2f} ms"
    if unit == "%":
        return f"{value * 100:.2f} %"
    if unit == "tok/min":
        return f"{value:,.0f}"
    if unit in ("tok/s", "req/s"):
        big = abs(value if scale is None or math.isnan(scale) else scale) >= 10
        return f"{value:,.1f}" if big else f"{value:,.3f}"
    if unit == "points":
        return f"{value:.2f}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def fmt_delta(figure: str, delta: float, scale: float | None = None) -> str:
    """The signed difference B − A in the figure's own display unit (`+1.50 ms`, `-12,000`), with the
    precision of values of magnitude `scale` (default: the delta's own)."""
    if math.isnan(delta):
        return "n/a"
    text = fmt_figure(figure, abs(delta), scale)
    sign = "+" if delta > 0 else "-" if delta < 0 else "±"
    return sign + text


def fmt_pct(pct: float) -> str:
    return "n/a" if math.isnan(pct) else f"{pct:+.1f}%"
