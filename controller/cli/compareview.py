"""How `ctl compare` prints a Comparison (controller/compare.py): one table that fits 80 columns, a case's
heading row carrying its verdict in A and B, regressions in red with ✗ and improvements in green with ✓ (the
symbols survive a pipe, the colours do not need to)."""

from __future__ import annotations

import itertools

from rich import box
from rich.table import Table

from ..aggregate import CLUSTER
from ..compare import Comparison, Row
from ..display import figure_label as _label
from ..display import fmt_cell, fmt_delta, fmt_pct
from .common import out

MARKS = {"regression": "[red]✗ worse[/]", "improvement": "[green]✓ better[/]", "changed": "[yellow]≠[/]"}


def _mark(change: str) -> str:
    return MARKS.get(change, "")


def comparison_table(cmp: Comparison) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    t.add_column("figure", no_wrap=True, overflow="ellipsis")
    for name in ("A", "B", "Δ", "Δ%"):
        t.add_column(name, justify="right", no_wrap=True)
    t.add_column("", no_wrap=True)
    run = cmp.verdicts[0]
    t.add_row("[bold]run verdict[/]", run.a.upper(), run.b.upper(), "", "", _mark(run.change))
    case_verdicts = {v.case_id: v for v in cmp.verdicts[1:]}
    groups = itertools.groupby(cmp.rows, key=lambda r: (r.scope, r.case_id))
    shown: set[str] = set()
    for (scope, case_id), rows in groups:
        rows_list: list[Row] = list(rows)
        v = case_verdicts.get(case_id)
        t.add_section()
        if scope == CLUSTER:
            shown.add(case_id)
            t.add_row(f"[bold]{case_id}[/]", v.a.upper() if v else "", v.b.upper() if v else "", "", "",
                      _mark(v.change) if v else "")
        else:
            t.add_row(f"[bold]{case_id}[/] on {scope}", "", "", "", "", "")
        for r in rows_list:
            t.add_row(f"  {_label(r.figure)}", fmt_cell(r.figure, r.a), fmt_cell(r.figure, r.b),
                      fmt_delta(r.figure, r.delta), fmt_pct(r.delta_pct), _mark(r.change))
    for case_id, v in case_verdicts.items():  # a shared case without compared figures: its verdict still counts
        if case_id not in shown:
            t.add_section()
            t.add_row(f"[bold]{case_id}[/]", v.a.upper(), v.b.upper(), "", "", _mark(v.change))
    return t


def print_comparison(cmp: Comparison) -> None:
    out.print(f"A {cmp.run_a}    B {cmp.run_b}    (Δ = B − A)", highlight=False)
    out.print(comparison_table(cmp), highlight=False)
    worse = len(cmp.regressions) + sum(1 for v in cmp.verdicts if v.change == "regression")
    better = sum(1 for r in cmp.rows if r.change == "improvement") + \
        sum(1 for v in cmp.verdicts if v.change == "improvement")
    notes = [f"✗ {worse} regression(s), ✓ {better} improvement(s) beyond {cmp.threshold_pct:g}% "
             "(success rate, scores: any)"]
    if cmp.only_a or cmp.only_b:
        notes.append("only in A: " + (", ".join(cmp.only_a) or "-") + "; only in B: " + (", ".join(cmp.only_b) or "-"))
    if not any(r.scope != CLUSTER for r in cmp.rows):
        notes.append("--per-node adds each node's rows; --json has every value")
    for n in notes:
        out.print(n, highlight=False)
