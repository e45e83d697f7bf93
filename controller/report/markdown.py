"""The acceptance report as Markdown, in English or Chinese (the seed-000 shape: basic information, test
environment, one section per case, conclusion, definitions, appendix). Plain tables, good in a git repo or
a wiki; the tables and sentences come from content.py, shared with the HTML report."""

from __future__ import annotations

from fleetbench.figures import DEFINITIONS, Figures

from . import content as c
from .content import Table, fmt, when
from .i18n import check_lang, definition, t
from .model import CaseReport, RunReport

__all__ = ["fmt", "render_markdown", "table", "when"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def table(header: list[str], rows: list[list[str]], strong_rows: set[int] | frozenset[int] = frozenset()) -> list[str]:
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for i, r in enumerate(rows):
        cells = [_cell(x) for x in r]
        if i in strong_rows:
            cells = [f"**{x}**" if x else x for x in cells]
        out.append("| " + " | ".join(cells) + " |")
    return out


def md(tab: Table) -> list[str]:
    return table(tab.header, tab.rows, tab.strong_rows) + [""]


def _percentiles(f: Figures, lang: str) -> list[str]:
    return md(c.percentile_table(f, lang)) if f.succeeded else [t("case.no_success", lang), ""]


def case_section(n: int, case: CaseReport, report: RunReport, lang: str) -> list[str]:
    verdict = c.verdict_text(case.verdict, lang)
    out = [f"### {t('sec.case', lang, n=n, case=case.case_id, verdict=verdict)}", ""]
    out += md(Table([t("col.item", lang), t("col.value", lang)], [
        [t("case.type", lang), c.case_type_text(case, lang)],
        [t("case.purpose", lang), case.purpose or t("na", lang)],
        [t("case.expectations", lang), "; ".join(c.expectation_lines(report, case, lang))
         or t("case.no_expectations", lang)],
    ]))
    if case.command:
        out += [f"{t('case.command', lang)}:", "", "```", case.command, "```", ""]
    out += [f"#### {t('case.results', lang)}", ""]
    for line in c.saturation_lines(case, lang):
        out += [f"> {line}", ""]
    states = c.node_state_lines(case, lang)
    if states:
        out += [f"- {s}" for s in states] + [""]
    if case.scope_states:
        out += [f"**{t('case.states', lang)}**", ""] + md(c.states_table(case, lang))
    for line in c.invalid_lines(case, lang):
        out += [f"> {line}", ""]
    if case.hardware:
        out += [f"**{t('case.hardware', lang, level=c.hw_level(report, case))}**", ""]
        out += [f"- {line}" for line in c.hw_summary_lines(case, lang)] + [""]
        out += md(c.hw_checks_table(case, lang))
    if case.repeats:
        out += [f"**{c.repeat_title(case, lang)}**", ""] + md(c.repeat_table(case, lang))
    if case.case_type == "capacity":
        if case.capacity:
            title = t("cap.title", lang, slo=c.capacity_slo_text(case, lang), what=c.capacity_what(case, lang))
            out += [f"**{title}**", ""]
            out += md(c.capacity_table(case, lang))
            out += [f"{t('cap.probes', lang)}:", ""] + md(c.capacity_probe_table(case, lang))
    elif case.case_type == "long_context":
        out += [f"**{t('case.long_context', lang)}**", ""] + md(c.long_context_table(case, lang))
        out += [c.long_context_line(case, lang), ""]
    elif case.cluster is not None:
        scopes = dict(case.node_figures)
        scopes["cluster"] = case.cluster
        out += [t("case.summary", lang), ""] + md(c.summary_table(scopes, lang, case))
        out += [c.tpm_label_line(case, lang), ""]
        if case.goodput:
            out += [c.goodput_title(case, lang), ""] + md(c.goodput_table(case, lang))
        out += [c.skew_line(case, lang), ""]
        out += [c.cluster_percentiles_title(case, lang), ""] + _percentiles(case.cluster, lang)
        short = c.short_percentile_table(case, lang)
        if short.rows:
            out += [t("case.short_percentiles", lang), ""] + md(short)
    if case.sweep:
        out += [t("case.sweep_note", lang), ""]
        for scope in c.sweep_scopes(case):
            out += [f"**{t('case.sweep', lang, scope=c.sweep_scope_name(case, scope, lang))}**", ""]
            out += md(c.sweep_table(case, scope, lang))
    if case.scores:
        out += [f"**{t('case.scores', lang)}** — {t('case.scores_note', lang)}", ""] + md(c.scores_table(case, lang))
    if (case.cluster is None and not case.sweep and not case.scores and not case.long_context and not case.capacity
            and not case.repeats and not case.hardware):
        out += [t("case.no_result", lang), ""]
    if case.failures:
        out += [f"**{t('case.failures', lang)}**", ""] + md(c.failures_table(case, lang))
    if case.validity:
        out += [f"**{t('case.validity', lang)}**", ""] + md(c.validity_table(case, lang))
    if case.verdicts:
        out += [f"{t('case.verdicts', lang)}:", ""] + md(c.verdict_table(case, lang))
    return out


def environment_section(report: RunReport, lang: str) -> list[str]:
    """Seed 000's hardware and software tables, and the drift check in plain words."""
    out = [f"### {t('sec.environment', lang)}", ""]
    hardware = c.hardware_tables(report, lang)
    if hardware:
        out += [f"**{t('sec.hardware', lang)}**", ""]
        for title, tab in hardware:
            out += ([title, ""] if title else []) + md(tab)
    out += [f"**{t('sec.software', lang)}**", ""] + md(c.software_table(report, lang))
    errors = c.environment_errors(report, lang)
    out += [f"- {e}" for e in errors] + ([""] if errors else [])
    out += [f"**{t('sec.drift', lang)}**", ""] + c.drift_lines(report, lang) + [""]
    return out


def render_markdown(report: RunReport, lang: str = "en") -> str:
    check_lang(lang)
    out = [f"# {t('title', lang, plan=report.plan_name)}", ""]
    out += [f"## {t('sec.basic', lang)}", ""] + md(c.basic_table(report, lang))
    out += [f"### {t('sec.nodes', lang)}", ""] + md(c.nodes_table(report, lang))
    out += environment_section(report, lang)
    out += [f"## {t('sec.cases', lang)}", ""]
    for i, case in enumerate(report.cases, 1):
        out += case_section(i, case, report, lang)
    out += [f"## {t('sec.conclusion', lang)}", ""]
    out += [f"- {line}" for line in c.conclusion_lines(report, lang)]
    out += ["", c.overall_line(report, lang), ""]
    reasons = c.failure_reasons(report, lang)
    if reasons:
        out += [t("concl.reasons", lang), ""] + [f"- {r}" for r in reasons] + [""]
    elif report.verdict == "pass":
        out += [t("concl.all_passed", lang), ""]
    out += [f"## {t('sec.definitions', lang)}", ""]
    out += [f"- **{k}**: {definition(k, lang)}" for k in DEFINITIONS] + [""]
    appendix = c.appendix_tables(report, lang)
    if appendix:
        out += [f"## {t('sec.appendix', lang)}", ""]
        for node, tab in appendix:
            out += [f"### {node}", ""] + md(tab)
    per_node = c.node_percentile_cases(report)
    if per_node:
        out += [f"## {t('sec.appendix_percentiles', lang)}", ""]
        for case in per_node:
            for node, figs in case.node_figures.items():
                out += [f"### {t('case.node_percentiles_of', lang, case=case.case_id, node=node)}", ""]
                out += _percentiles(figs, lang)
    return "\n".join(out)
