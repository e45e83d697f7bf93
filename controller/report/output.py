"""Writing report files: which formats and languages exist, file names, and the one place that turns a
stored run into files (used by `ctl run` and `ctl report`)."""

from __future__ import annotations

from pathlib import Path

from fleetbench.errors import ConfigError, StoreError
from fleetbench.schema_base import did_you_mean

from ..store import Store
from .csv_report import CSV_FILES, write_csv
from .html import render_html
from .i18n import LANGS
from .json_report import render_json
from .junit import render_junit, render_junit_stopped
from .markdown import render_markdown
from .model import RunReport, load_report
from .xlsx import raw_requests, write_xlsx

FORMATS: tuple[str, ...] = ("html", "md", "xlsx", "json", "junit", "csv")
EXTENSIONS = {"html": ".html", "md": ".md", "xlsx": ".xlsx", "json": ".json", "junit": ".xml", "csv": ".csv"}
NO_LANGUAGE = ("json", "junit", "csv")  # machine formats: one file whatever --lang says


def check_choice(fmt: str | None, lang: str) -> None:
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}{did_you_mean(fmt, FORMATS)} (formats: "
                          f"{', '.join(FORMATS)})")
    if lang not in LANGS:
        raise ConfigError(f"unknown report language {lang!r}; use one of {', '.join(LANGS)}")


def file_name(run_id: str, fmt: str, lang: str) -> str:
    """RUN_ID.md for English, RUN_ID.zh.md for Chinese; JSON and JUnit have no language: RUN_ID.json,
    RUN_ID.junit.xml."""
    tag = "" if lang == "en" or fmt in NO_LANGUAGE else f".{lang}"
    return f"{run_id}{tag}{'.junit' if fmt == 'junit' else ''}{EXTENSIONS[fmt]}"


def write_one(store: Store, report: RunReport, fmt: str, lang: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "xlsx":
        return write_xlsx(report, path, lang, raw_requests(store, report.run_id))
    text = {"html": lambda: render_html(report, lang), "md": lambda: render_markdown(report, lang),
            "json": lambda: render_json(report), "junit": lambda: render_junit(report)}[fmt]()
    path.write_text(text, encoding="utf-8")
    return path


def write_report_files(store: Store, run_id: str, out: Path, formats: tuple[str, ...] = FORMATS,
                       lang: str = "en") -> list[Path]:
    """Write `formats` of a stored run. `out` is a folder (files named by `file_name`), or, for a single
    format, a file path ending in that format's extension."""
    for f in formats:
        check_choice(f, lang)
    report = load_report(store, run_id)
    if formats == ("csv",):  # several files: always a folder
        if out.suffix.lower() == ".csv":
            raise ConfigError(f"--format csv writes {len(CSV_FILES)} files ({', '.join(CSV_FILES)}): give --out a "
                              f"folder, not {out}")
        return write_csv(store, report, out)
    if len(formats) == 1 and out.suffix.lower() == EXTENSIONS[formats[0]]:
        return [write_one(store, report, formats[0], lang, out)]
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for f in formats:
        paths += write_csv(store, report, out) if f == "csv" else [
            write_one(store, report, f, lang, out / file_name(run_id, f, lang))]
    return paths


def write_junit(store: Store, run_id: str, plan_name: str, state: str, path: Path) -> Path:
    """`ctl run --junit FILE`: the run's JUnit XML; a run stopped before it was stored (ERROR) still gets a
    file with one errored test case, so CI shows why."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        report = load_report(store, run_id)
    except StoreError:
        path.write_text(render_junit_stopped(run_id, plan_name, state), encoding="utf-8")
        return path
    return write_one(store, report, "junit", "en", path)
