"""The report as an Excel workbook (openpyxl): sheets for the summary, per-node results, percentiles,
the seed-002 sweep table, verdicts, eval scores, the environment and the raw requests.

Numbers are stored as numbers (the exact floats of the store, so a cell read back equals the SQLite value
to the last digit), units are in the headers, NaN is an empty cell. Raw requests come from the store's
`requests` table, at most `REQUEST_ROW_CAP` rows; when a run holds more, the sheet ends with a note row
saying how many were left out (the store keeps them all)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl.cell._writer as cell_writer
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from fleetbench.figures import PERCENTILES, Figures

from ..store import Store
from . import content as c
from .i18n import check_lang, t
from .model import RunReport

REQUEST_ROW_CAP = 100_000

# (i18n key, figure) for the per-node sheet; units are in the labels
NODE_COLUMNS: tuple[tuple[str, str], ...] = (
    *((key, fig) for key, fig, _ in c.SUMMARY_ROWS),
    ("fig.success_rate", "success_rate"),
    ("fig.input_tokens", "input_tokens"),
    ("fig.output_tokens", "output_tokens"),
    ("fig.window_start", "window_start"),
    ("fig.window_end", "window_end"),
)
# (i18n key, requests-table column)
REQUEST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("req.case", "case_id"), ("col.node", "node"), ("req.point", "point"), ("req.idx", "idx"),
    ("req.start", "start_time"), ("req.end", "end_time"), ("req.success", "success"), ("req.ttft", "ttft_s"),
    ("req.latency", "latency_s"), ("req.tpot", "tpot_s"), ("req.input", "input_tokens"),
    ("req.output", "output_tokens"), ("req.offset", "clock_offset_s"), ("req.error", "error"),
)


@dataclass(frozen=True)
class RawRequests:
    """Rows of the store's requests table (dicts with REQUEST_COLUMNS' keys), at most `cap`, and the total."""

    rows: Iterable[dict[str, Any]]
    total: int
    cap: int


def raw_requests(store: Store, run_id: str, cap: int = REQUEST_ROW_CAP) -> RawRequests:
    """The run's requests in a stable order (case, node, point, index), streamed from SQLite, `cap` at most."""
    cols = ", ".join(col for _, col in REQUEST_COLUMNS)
    (total,) = store.db.execute("SELECT count(*) FROM requests WHERE run_id = ?", [run_id]).fetchone()
    cursor = store.db.execute(f"SELECT {cols} FROM requests WHERE run_id = ? ORDER BY case_id, node, point, idx "
                              "LIMIT ?", [run_id, cap])
    names = [col for _, col in REQUEST_COLUMNS]
    return RawRequests((dict(zip(names, row, strict=True)) for row in cursor), int(total), cap)


def _value(v: Any) -> Any:
    """A cell value: numbers stay numbers (NaN and None become empty), the rest is text."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, bool):
        return int(v)
    return v


class _Sheet:
    def __init__(self, wb: Workbook, title: str) -> None:
        self.ws: WriteOnlyWorksheet = wb.create_sheet(title[:31])
        self.bold = Font(bold=True)

    def header(self, cells: list[str]) -> None:
        row = []
        for text in cells:
            cell = WriteOnlyCell(self.ws, value=text)
            cell.font = self.bold
            row.append(cell)
        self.ws.append(row)

    def row(self, cells: Iterable[Any], bold: bool = False) -> None:
        if not bold:
            self.ws.append([_value(v) for v in cells])
            return
        out = []
        for v in cells:
            cell = WriteOnlyCell(self.ws, value=_value(v))
            cell.font = self.bold
            out.append(cell)
        self.ws.append(out)


def _summary(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.summary", lang))
    s.header([t("col.item", lang), t("col.value", lang)])
    for label, value in c.basic_table(report, lang).rows:
        s.row([label, value])
    s.row([t("basic.started", lang), report.started_at])
    s.row([t("basic.finished", lang), report.finished_at])
    s.row([])
    s.header([t("col.case", lang), t("case.type", lang), t("col.verdict", lang), t("sum.tpm_total", lang),
              t("sum.tpm_output", lang), t("fig.sum_tpm_total", lang), t("fig.sum_tpm_output", lang),
              t("fig.start_skew", lang), t("fig.stragglers", lang), t("case.purpose", lang)])
    for case in report.cases:
        cl = case.cluster
        s.row([case.case_id, c.case_type_text(case, lang), c.verdict_text(case.verdict, lang),
               cl.tpm_total if cl else None, cl.tpm_output if cl else None, case.sum_node_tpm_total,
               case.sum_node_tpm_output, case.start_skew_s, ", ".join(case.stragglers), case.purpose])
    s.row([])
    s.row([t("concl.overall", lang, verdict=c.verdict_text(report.verdict, lang)).replace("**", "")], bold=True)
    for line in [*c.conclusion_lines(report, lang), *c.failure_reasons(report, lang)]:
        s.row([line.replace("**", "").replace("`", "")])


def _nodes(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.nodes", lang))
    s.header([t("col.case", lang), t("col.scope", lang)] + [t(k, lang) for k, _ in NODE_COLUMNS])
    for case in report.cases:
        scopes: dict[str, Figures] = dict(case.node_figures)
        if case.cluster is not None:
            scopes["cluster"] = case.cluster
        for scope, f in scopes.items():
            s.row([case.case_id, scope] + [getattr(f, fig) for _, fig in NODE_COLUMNS])


def _percentiles(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.percentiles", lang))
    s.header([t("col.case", lang), t("col.scope", lang), t("col.percentile", lang) + " (%)"]
             + [t(k, lang) for k, _, _ in c.PERCENTILE_COLUMNS])
    for case in report.cases:
        scopes: dict[str, Figures] = dict(case.node_figures)
        if case.cluster is not None:
            scopes["cluster"] = case.cluster
        for scope, f in scopes.items():
            for p in PERCENTILES:
                s.row([case.case_id, scope, p] + [f.percentiles.get(m, {}).get(p) for _, m, _ in c.PERCENTILE_COLUMNS])


def _sweep(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.sweep", lang))
    s.header([t("col.case", lang), t("col.scope", lang), t("xl.row_kind", lang), t("sw.point", lang),
              t("sw.input", lang), t("sw.output", lang), t("sw.parallel", lang), t("sw.number", lang),
              t("sw.loop", lang)] + [t(k, lang) for k, _ in c.SWEEP_COLUMNS] + [t("sw.tpm_total", lang)])
    for case in report.cases:
        for r in case.sweep:
            f = r.figures
            s.row([case.case_id, r.scope, t("xl.row_loop", lang), r.point, r.input_tokens, r.output_tokens,
                   r.parallel, r.number, r.loop, f.latency_avg_s, f.output_throughput_tps, f.ttft_avg_s,
                   f.tpot_avg_s, r.avg_tps, r.per_request_tps, f.tpm_total])
        for a in case.sweep_averages:
            s.row([case.case_id, a.scope, t("xl.row_avg", lang), "", a.input_tokens, a.output_tokens, a.parallel,
                   None, a.loops, a.latency_avg_s, a.output_throughput_tps, a.ttft_avg_s, a.tpot_avg_s, a.avg_tps,
                   a.per_request_tps, None], bold=True)


def _verdicts(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.verdicts", lang))
    s.header([t("col.case", lang), t("col.scope", lang), t("col.figure", lang), t("col.op", lang),
              t("col.threshold", lang), t("col.tolerance", lang), t("col.measured", lang), t("col.verdict", lang),
              t("col.note", lang)])
    for case in report.cases:
        for v in case.verdicts:
            s.row([case.case_id, v.scope, v.figure, v.op, v.threshold, v.tolerance, v.measured,
                   c.verdict_text(v.label, lang), v.note])


def _scores(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.scores", lang))
    s.header([t("col.case", lang), t("col.scope", lang), t("ev.dataset", lang), t("ev.metric", lang),
              t("ev.samples", lang), t("ev.score", lang), t("ev.official", lang), t("ev.tolerance", lang),
              t("ev.delta", lang), t("col.verdict", lang)])
    for case in report.cases:
        for r in case.scores:
            verdict = t("verdict.none", lang) if r.passed is None else c.verdict_text(
                "pass" if r.passed else "fail", lang)
            s.row([case.case_id, r.scope, r.dataset, r.metric, r.samples, r.score, r.official, r.tolerance, r.delta,
                   verdict])


def _environment(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.environment", lang))
    keys = (*c.ENV_HARDWARE, *c.ENV_SOFTWARE)
    s.header([t("col.node", lang), t("env.hostname", lang)] + [t(k, lang) for k, _ in keys]
             + [t("env.error", lang)])
    for r in report.environment:
        s.row([r["node"], r.get("hostname", "")] + [r.get(key, "") for _, key in keys] + [r.get("error", "")])
    s.row([])
    for line in report.drift:
        s.row([line])


def _requests(wb: Workbook, raw: RawRequests | None, lang: str) -> None:
    s = _Sheet(wb, t("xl.requests", lang))
    s.header([t(k, lang) for k, _ in REQUEST_COLUMNS])
    if raw is None:
        s.row([t("xl.no_requests", lang)])
        return
    shown = 0
    for r in _capped(raw.rows, raw.cap):
        s.row([r[col] for _, col in REQUEST_COLUMNS])
        shown += 1
    if raw.total > shown:
        s.row([t("xl.truncated", lang, shown=shown, total=raw.total, cap=raw.cap)], bold=True)


def _capped(rows: Iterable[dict[str, Any]], cap: int) -> Iterator[dict[str, Any]]:
    for i, r in enumerate(rows):
        if i >= cap:
            return
        yield r


@contextmanager
def _exact_floats() -> Iterator[None]:
    """openpyxl writes numbers with "%.16g", which drops the 17th significant digit some doubles need;
    while saving, write floats with repr() (the shortest string that reads back as the same double)."""
    original = cell_writer.safe_string

    def exact(value: Any) -> str:
        if isinstance(value, float) and math.isfinite(value):
            return repr(value)
        return str(original(value))

    cell_writer.safe_string = exact  # type: ignore[assignment]
    try:
        yield
    finally:
        cell_writer.safe_string = original


def write_xlsx(report: RunReport, path: Path, lang: str = "en", raw: RawRequests | None = None) -> Path:
    """Write the workbook (write-only mode: 100 000 request rows in seconds, little memory)."""
    check_lang(lang)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exact_floats():  # write-only sheets serialise rows as they are appended
        wb = Workbook(write_only=True)
        _summary(wb, report, lang)
        _nodes(wb, report, lang)
        _percentiles(wb, report, lang)
        _sweep(wb, report, lang)
        _verdicts(wb, report, lang)
        _scores(wb, report, lang)
        _environment(wb, report, lang)
        _requests(wb, raw, lang)
        wb.save(path)
    return path
