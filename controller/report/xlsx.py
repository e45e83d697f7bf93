"""The report as an Excel workbook (openpyxl): sheets for the summary, the state of each case per node and
cluster, per-node results, percentiles, the seed-002 sweep table, verdicts, validity checks, failures by error
class, long-context answers, eval scores, the environment and the raw requests.

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

from fleetbench.figure_catalog import FIGURES, METRICS
from fleetbench.figures import Figures

from ..store import Store
from . import content as c
from .i18n import check_lang, t
from .model import CaseReport, RunReport

REQUEST_ROW_CAP = 100_000

# the per-node sheet's figures (the catalogue's labels, with the stored unit: the cells hold the store's numbers)
NODE_COLUMNS: tuple[str, ...] = (
    *(f for f in c.SUMMARY_FIGURES if f not in c.LOAD_FIGURES),
    "success_rate", "input_tokens", "output_tokens", "window_start", "window_end",
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
    s.header([t("col.case", lang), t("case.type", lang), t("col.verdict", lang)]
             + [_label(f, lang) for f in ("tpm_total", "tpm_output", "sum_node_tpm_total", "sum_node_tpm_output",
                                          "start_skew_s")]
             + [t("fig.stragglers", lang), t("col.cluster_nodes", lang), t("case.purpose", lang),
                t("xl.tpm_basis", lang)])
    for case in report.cases:
        cl = case.cluster if case.case_type != "long_context" else None  # no TPM for one request per node
        part = case.partial()
        s.row([case.case_id, c.case_type_text(case, lang), c.verdict_text(case.verdict, lang),
               cl.tpm_total if cl else None, cl.tpm_output if cl else None, case.sum_node_tpm_total if cl else None,
               case.sum_node_tpm_output if cl else None, case.start_skew_s, ", ".join(case.stragglers),
               c.scope_name("cluster", lang, case) if part else "", case.purpose,
               _plain(c.tpm_label_line(case, lang)) if cl else ""])
    s.row([])
    s.row([_plain(c.overall_line(report, lang))], bold=True)
    for line in [*c.conclusion_lines(report, lang), *c.failure_reasons(report, lang)]:
        s.row([_plain(line)])


def _label(name: str, lang: str) -> str:
    """A figure's column header with the unit its cells hold (the store's: seconds, not the report's ms)."""
    return FIGURES[name].label(lang, stored=True)


def _plain(text: str) -> str:
    return text.replace("**", "").replace("`", "")


def _states(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.states", lang))
    s.header([t("col.case", lang), t("col.scope", lang), t("col.state", lang), t("col.reasons", lang)])
    for case in report.cases:
        s.row([case.case_id, "case", c.verdict_text(case.verdict, lang),
               "; ".join(_plain(c.reason_text(r, lang, case)) for r in case.reasons)])
        for scope, state in case.scope_states.items():
            s.row([case.case_id, scope, c.verdict_text(state, lang),
                   "; ".join(_plain(c.reason_text(r, lang, case, with_scope=False)) for r in case.reasons
                             if r.scope == scope)])


def _nodes(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.nodes", lang))
    s.header([t("col.case", lang), t("col.scope", lang)] + [_label(f, lang) for f in NODE_COLUMNS])
    for case in _load_cases(report):
        scopes: dict[str, Figures] = dict(case.node_figures)
        if case.cluster is not None:
            scopes["cluster"] = case.cluster
        for scope, f in scopes.items():
            s.row([case.case_id, scope] + [getattr(f, fig) for fig in NODE_COLUMNS])


def _load_cases(report: RunReport) -> list[CaseReport]:
    """Cases whose throughput and percentiles mean something: not long context (one request per node)."""
    return [case for case in report.cases if case.case_type != "long_context"]


def _percentiles(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.percentiles", lang))
    s.header([t("col.case", lang), t("col.scope", lang), t("col.percentile", lang) + " (%)"]
             + [METRICS[m].label(lang, stored=True) for m in c.PERCENTILE_COLUMNS])
    for case in _load_cases(report):
        scopes: dict[str, Figures] = dict(case.node_figures)
        if case.cluster is not None:
            scopes["cluster"] = case.cluster
        for scope, f in scopes.items():
            for p in c.percentile_points(f):
                s.row([case.case_id, scope, p] + [f.percentiles.get(m, {}).get(p) for m in c.PERCENTILE_COLUMNS])


def _sweep(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.sweep", lang))
    s.header([t("col.case", lang), t("col.scope", lang), t("xl.row_kind", lang), t("sw.point", lang),
              t("sw.input", lang), t("sw.output", lang), t("sw.parallel", lang), t("sw.number", lang),
              t("sw.loop", lang), t("xl.streams", lang)] + [_label(f, lang) for f in c.SWEEP_FIGURES])
    for case in report.cases:
        for r in case.sweep:
            f = r.figures
            s.row([case.case_id, r.scope, t("xl.row_loop", lang), r.point, r.input_tokens, r.output_tokens,
                   r.parallel, r.number, r.loop, r.concurrency, f.latency_avg_s, f.output_throughput_tps,
                   f.ttft_avg_s, f.tpot_avg_s, r.avg_tps, r.per_request_tps, f.tpm_total])
        for a in case.sweep_averages:
            s.row([case.case_id, a.scope, t("xl.row_avg", lang), "", a.input_tokens, a.output_tokens, a.parallel,
                   None, a.loops, a.concurrency, a.latency_avg_s, a.output_throughput_tps, a.ttft_avg_s,
                   a.tpot_avg_s, a.avg_tps, a.per_request_tps, a.tpm_total], bold=True)


def _verdicts(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.verdicts", lang))
    s.header([t("col.case", lang), t("col.scope", lang), t("col.figure", lang), t("col.op", lang),
              t("col.threshold", lang), t("col.tolerance", lang), t("col.measured", lang), t("col.verdict", lang),
              t("col.note", lang)])
    for case in report.cases:
        for v in case.verdicts:
            s.row([case.case_id, v.where, v.figure, v.op, v.threshold, v.tolerance, v.measured,
                   c.verdict_text(v.label, lang), v.note])


def _validity(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.validity", lang))
    s.header([t("col.case", lang), t("sw.point", lang), t("col.scope", lang), t("col.check", lang),
              t("col.measured", lang), t("col.bound", lang), t("xl.passed", lang), t("col.detail", lang)])
    for case in report.cases:
        for v in case.validity:
            s.row([case.case_id, v.point, v.scope, v.name, v.measured, v.bound, int(v.passed), v.detail])


def _failures(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.failures", lang))
    s.header([t("col.case", lang), t("col.node", lang), t("col.error_class", lang), t("col.count", lang),
              t("col.example", lang)])
    for case in report.cases:
        for f in case.failures:
            s.row([case.case_id, f.node, f.error_class, f.count, f.example])


def _long_context(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.long_context", lang))
    s.header([t("col.case", lang), t("col.node", lang), t("xl.answered", lang), _label("requests", lang),
              _label("succeeded", lang), t("req.ttft", lang), t("req.latency", lang), t("req.input", lang),
              t("req.output", lang), t("req.error", lang)])
    for case in report.cases:
        for r in case.long_context:
            s.row([case.case_id, r.node, int(r.answered), r.requests, r.succeeded, r.ttft_s, r.latency_s,
                   r.input_tokens, r.output_tokens, r.error])


def _goodput(wb: Workbook, report: RunReport, lang: str) -> None:
    """One row per (case, scope) with goodput: the SLO, the requests meeting it, and what they carried."""
    s = _Sheet(wb, t("xl.goodput", lang))
    s.header([t("col.case", lang), t("col.scope", lang), t("xl.slo", lang), _label("requests", lang),
              t("gp.met", lang), t("gp.ratio", lang), t("gp.rps", lang), t("gp.tps", lang), t("gp.tpm", lang),
              _label("tpm_total", lang)])
    for case in report.cases:
        figs = {**case.node_figures, **({"cluster": case.cluster} if case.cluster else {})}
        for scope, g in case.goodput.items():
            s.row([case.case_id, c.scope_name(scope, lang, case), g.slo.describe(), g.requests, g.good, g.ratio,
                   g.rps, g.tps, g.tpm, figs[scope].tpm_total if scope in figs else None])


def _capacity(wb: Workbook, report: RunReport, lang: str) -> None:
    """Per capacity case and scope: the answer, TPM and goodput TPM there; then every probe run on every scope. The
    last column says what the case searched (concurrency or rate, per node or in total): cases may differ."""
    cases = [case for case in report.cases if case.capacity]
    s = _Sheet(wb, t("xl.capacity", lang))
    s.header([t("col.case", lang), t("col.scope", lang), t("xl.cap_max", lang), t("xl.at_top", lang),
              _label("tpm_total", lang), t("gp.tpm", lang), t("xl.slo", lang), t("xl.cap_what", lang)])
    for case in cases:
        for scope, r in case.capacity.items():
            s.row([case.case_id, c.scope_name(scope, lang, case), c.capacity_found(r, case), int(bool(r["at_top"])),
                   r["tpm_total"], r["goodput_tpm"], c.capacity_slo_text(case, lang), c.capacity_what(case, lang)])
    s.row([])
    s.header([t("col.case", lang), t("col.scope", lang), t("xl.cap_probed", lang), t("cap.try", lang),
              t("col.verdict", lang), t("xl.within", lang), _label("requests", lang), _label("tpm_total", lang),
              t("gp.tpm", lang), t("gp.ratio", lang), t("cap.ttft_p99", lang), t("cap.tpot_p99", lang),
              t("xl.cap_what", lang)])
    for case in cases:
        for scope, r in case.capacity.items():
            for p in r["probes"]:
                s.row([case.case_id, c.scope_name(scope, lang, case), p.get("value", p["parallel"]), p["attempt"],
                       c.verdict_text(p["state"], lang), int(bool(p["within_slo"])), p["requests"], p["tpm_total"],
                       p["goodput_tpm"], p["goodput_ratio"], p["ttft_p99_s"], p["tpot_p99_s"],
                       c.capacity_what(case, lang)])


def _repeats(wb: Workbook, report: RunReport, lang: str) -> None:
    """Per repeated case, scope and figure: the runs' mean, 95 % CI half-width, sd, min, max, spread, flag."""
    s = _Sheet(wb, t("xl.repeats", lang))
    s.header([t("col.case", lang), t("col.scope", lang), t("xl.figure", lang), t("xl.runs", lang), t("xl.mean", lang),
              t("xl.ci95", lang), t("xl.sd", lang), t("xl.min", lang), t("xl.max", lang), t("xl.spread", lang),
              t("xl.flagged", lang)])
    for case in report.cases:
        for scope, stats in case.repeats.items():
            for name, st in stats.items():
                s.row([case.case_id, c.scope_name(scope, lang, case), name, st.n, st.mean, st.ci95, st.sd, st.low,
                       st.high, st.spread, int(st.flagged)])


def _hardware(wb: Workbook, report: RunReport, lang: str) -> None:
    """Every hardware check of every node and accelerator, with the numbers as numbers."""
    cases = [case for case in report.cases if case.hardware]
    if not cases:
        return
    s = _Sheet(wb, t("xl.hardware", lang))
    s.header([t("xl.case", lang), t("col.node", lang), "index", t("hw.accel", lang), "SKU", t("hw.check", lang),
              t("hw.measured", lang), "unit", t("hw.reference", lang), t("hw.fraction", lang), t("hw.median", lang),
              "fleet_fraction", t("hw.status", lang), t("hw.detail", lang)])
    for case in cases:
        for r in case.hardware:
            s.row([case.case_id, r.node, r.index, r.device, r.sku, r.check, r.measured, r.unit, r.reference,
                   r.fraction_of_spec, r.fleet_median, r.fleet_fraction, r.status, r.detail])


def _scores(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.scores", lang))
    s.header([t("col.case", lang), t("col.scope", lang), t("ev.dataset", lang), t("ev.metric", lang),
              t("ev.samples", lang), t("ev.score", lang), t("ev.official", lang), t("ev.tolerance", lang),
              t("ev.delta", lang), t("col.verdict", lang), t("ev.nodes", lang), t("ev.questions", lang)])
    for case in report.cases:
        for r in case.scores:
            verdict = t("verdict.none", lang) if r.passed is None else c.verdict_text(
                "pass" if r.passed else "fail", lang)
            s.row([case.case_id, r.scope, r.dataset, r.metric, r.samples, r.score, r.official, r.tolerance, r.delta,
                   verdict, ", ".join(r.nodes), r.questions or None])


def _environment(wb: Workbook, report: RunReport, lang: str) -> None:
    s = _Sheet(wb, t("xl.environment", lang))
    keys = (*c.ENV_HARDWARE, *c.ENV_DETAILS, *c.ENV_SOFTWARE)
    s.header([t("col.node", lang), t("env.hostname", lang)] + [t(k, lang) for k, _ in keys]
             + [t("env.error", lang)])
    for r in report.environment:
        s.row([r["node"], r.get("hostname", "")] + [r.get(key, "") for _, key in keys] + [r.get("error", "")])
    s.row([])
    for line in c.drift_lines(report, lang):
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
        _states(wb, report, lang)
        _nodes(wb, report, lang)
        _percentiles(wb, report, lang)
        _sweep(wb, report, lang)
        _verdicts(wb, report, lang)
        _validity(wb, report, lang)
        _failures(wb, report, lang)
        _long_context(wb, report, lang)
        # issue 18's sheets, only for a run that has them
        if any(case.goodput for case in report.cases):
            _goodput(wb, report, lang)
        if any(case.capacity for case in report.cases):
            _capacity(wb, report, lang)
        if any(case.repeats for case in report.cases):
            _repeats(wb, report, lang)
        _hardware(wb, report, lang)
        _scores(wb, report, lang)
        _environment(wb, report, lang)
        _requests(wb, raw, lang)
        wb.save(path)
    return path
