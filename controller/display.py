"""Figures for people on the terminal (`ctl show`, `ctl compare`), through the figure catalogue.

Units, decimals and display formats come from fleetbench/figure_catalog.py, as in the reports, so a figure
reads the same in `ctl show`, `ctl compare` and the report (TTFT/TPOT in ms with two decimals: 20.07 ms
stands out against a 20 ms limit). This module adds only what a narrow terminal needs: short row labels,
which way each compared figure is better, and signed differences. Names not in the catalogue (an eval's
`score:<dataset>`, in points) are shown with two decimals.
"""

from __future__ import annotations

import math

from fleetbench.figure_catalog import Figure
from fleetbench.figure_catalog import figure as catalog_figure

# compared figure -> (short label for an 80-column table, which way is better)
SHORT: dict[str, tuple[str, str]] = {
    "tpm_total": ("TPM", "higher"),
    "tpm_output": ("TPM output", "higher"),
    "ttft_avg_s": ("TTFT avg", "lower"),
    "ttft_p99_s": ("TTFT p99", "lower"),
    "tpot_avg_s": ("TPOT avg", "lower"),
    "tpot_p99_s": ("TPOT p99", "lower"),
    "latency_avg_s": ("latency avg", "lower"),
    "output_throughput_tps": ("output", "higher"),
    "total_throughput_tps": ("total", "higher"),
    "request_throughput_rps": ("requests", "higher"),
    "success_rate": ("success rate", "higher"),
    "score": ("score", "higher"),
}


def _base(figure: str) -> str:
    """`tpm_total@p8-in256-out32` -> tpm_total; `score:gsm8k` -> score."""
    return figure.replace(":", "@").partition("@")[0]


def _catalog(figure: str) -> Figure | None:
    try:
        return catalog_figure(_base(figure))
    except KeyError:
        return None


def _none(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def figure_label(figure: str, unit: bool = True) -> str:
    """A short row label with the unit its cells are in: `TPOT avg (ms)`, `TPM (tok/min)`; a sweep point's
    `TPM p8-in256-out32`, an eval's `score gsm8k`."""
    base, _, tail = figure.replace(":", "@").partition("@")
    label = SHORT.get(base, (base, ""))[0]
    if tail:
        return f"{label} {tail}"
    cat = _catalog(figure)
    if unit and cat is not None and cat.unit != "ratio":
        return f"{label} ({cat.display_unit})"
    return label


def better_direction(figure: str) -> str:
    return SHORT.get(_base(figure), ("", "higher"))[1]


def fmt_figure(figure: str, value: float | None) -> str:
    """A value with its unit, as the catalogue formats it: `20.07 ms`, `1,366,560 tok/min`, `99.22%`;
    a score `80.00`; `n/a` for none."""
    if value is None or _none(value):
        return "n/a"
    cat = _catalog(figure)
    return f"{value:.2f}" if cat is None else cat.format(value)


def fmt_cell(figure: str, value: float | None) -> str:
    """A table cell whose unit is in the row label (figure_label): `20.07`, `1,366,560`; a ratio as `99.22%`."""
    if value is None or _none(value):
        return "n/a"
    cat = _catalog(figure)
    if cat is None:
        return f"{value:.2f}"
    return cat.format(value) if cat.unit == "ratio" else cat.number(value)


def fmt_delta(figure: str, delta: float) -> str:
    """The signed difference B − A as a cell (`+1.50`, `-12,000`, `-0.5%`); `±0` for none."""
    if _none(delta):
        return "n/a"
    sign = "+" if delta > 0 else "-" if delta < 0 else "±"
    return sign + fmt_cell(figure, abs(delta))


def fmt_pct(pct: float) -> str:
    return "n/a" if _none(pct) else f"{pct:+.1f}%"
