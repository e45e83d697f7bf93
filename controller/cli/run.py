"""`ctl run`, `preflight` and `resume` (they drive the fleet) and `report`, `runs`, `show`, `compare` (they read
the store). Each parses its options, calls controller/runner.py or the store, and prints."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import typer
from rich.table import Table

from ..fleet import resolve_nodes
from ..history import compare as compare_runs
from ..history import list_runs, summarize
from ..plan import load_plan
from ..report.markdown import render_markdown, when
from ..report.model import load_report
from ..report.output import check_choice, write_report_files
from ..runner import API_KEY_ENV, REPORT_FORMATS, nodes_of_run, preflight_plan, run_plan, stored_plan
from ..store import Store, default_db_path
from .common import (
    DB_HELP,
    FLEET_HELP,
    JSON_EVENTS_HELP,
    JSON_HELP,
    NODES_HELP,
    PLAN_HELP,
    QUIET_HELP,
    cli_errors,
    fail,
    fleet_path,
    make_progress,
    out,
)

OUT_HELP = "Folder for the reports."


@cli_errors
def run(
    plan: Path = typer.Option(..., "--plan", "-p", help=PLAN_HELP),
    nodes: str = typer.Option(..., "--nodes", "-n", help=NODES_HELP),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    db: Path | None = typer.Option(None, help=DB_HELP),
    out_dir: Path = typer.Option(Path("fleetbench-out"), "--out", help=OUT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    json_events: bool = typer.Option(False, "--json", help=JSON_EVENTS_HELP),
    lang: str = typer.Option("en", "--lang", help="Language of the reports: en or zh."),
) -> None:
    """Run an acceptance plan on every node at once, store everything, write the report.

    Preflight first (as `ctl preflight`); then each case starts on every node at one instant. Exit 0 PASS,
    1 FAIL, 2 ERROR (could not run; no report), 3 INVALID or INCOMPLETE (rerun, or `ctl resume`)."""
    check_choice(None, lang)
    plan_obj = load_plan(plan)  # validate before touching the network
    node_list = resolve_nodes(nodes, fleet_path(fleet))
    result = run_plan(plan_obj, node_list, Store(db or default_db_path()), out_dir,
                      make_progress(quiet, json_events), lang=lang)
    raise typer.Exit(result.exit_code)


@cli_errors
def preflight(
    plan: Path = typer.Option(..., "--plan", "-p", help=PLAN_HELP),
    nodes: str = typer.Option(..., "--nodes", "-n", help=NODES_HELP),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    json_events: bool = typer.Option(False, "--json", help=JSON_EVENTS_HELP),
) -> None:
    """Check, on every node at once and without load, that the plan can run: agent version, evalscope,
    tokenizer, datasets, free space, and one request of each case's exact shape to the endpoint.
    `ctl run` does the same first. Exit 0 ready, 2 not (one line per problem, with a hint)."""
    plan_obj = load_plan(plan)
    node_list = resolve_nodes(nodes, fleet_path(fleet))
    progress = make_progress(quiet, json_events)
    report = preflight_plan(plan_obj, node_list, progress)
    for line in report.lines():
        progress.message(line)
    if not report.ok:
        fail(f"preflight: {len(report.problems)} problem(s) on "
             f"{len({p.node for p in report.problems})} of {len(node_list)} node(s); no load was sent", 2)
    progress.message(f"preflight: {len(node_list)} node(s) ready for plan {plan_obj.name}")


@cli_errors
def resume(
    run_id: str = typer.Argument(..., help="Run to complete (see `ctl runs`)."),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    db: Path | None = typer.Option(None, help=DB_HELP),
    out_dir: Path = typer.Option(Path("fleetbench-out"), "--out", help=OUT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    json_events: bool = typer.Option(False, "--json", help=JSON_EVENTS_HELP),
    force: bool = typer.Option(False, "--force", help="Resume even though another controller seems to drive the "
                                                      "run (its heartbeat is fresh): only when it is known gone."),
) -> None:
    """Complete a run whose controller stopped: re-attach to running jobs, fetch finished ones, go on.
    A run whose controller is alive (pid on this host, or a heartbeat under 30 s old) is refused unless --force.
    The store keeps no API key: a plan that had one needs it again in FLEETBENCH_API_KEY."""
    store = Store(db or default_db_path())
    plan = stored_plan(store, run_id, os.environ.get(API_KEY_ENV))
    node_list = nodes_of_run(store, run_id, fleet_path(fleet))
    result = run_plan(plan, node_list, store, out_dir, make_progress(quiet, json_events), resume_id=run_id,
                      force=force)
    raise typer.Exit(result.exit_code)


@cli_errors
def report(
    run_id: str = typer.Argument(..., help="Run id (see `ctl runs`)."),
    db: Path | None = typer.Option(None, help=DB_HELP),
    out_dir: Path = typer.Option(Path("fleetbench-out"), "--out",
                                 help="Folder for the report files, or with --format a file path (RUN_ID.html …)."),
    fmt: str | None = typer.Option(None, "--format", "-f", help="html, md, xlsx or json; default: all four."),
    lang: str = typer.Option("en", "--lang", help="Language of labels and sentences: en or zh."),
) -> None:
    """Write the report of a stored run again (docs/report.md)."""
    check_choice(fmt, lang)  # before opening the store: a typo is a one-line error
    store = Store(db or default_db_path())
    for p in write_report_files(store, run_id, out_dir, (fmt,) if fmt else REPORT_FORMATS, lang):
        typer.echo(str(p))


@cli_errors
def runs(
    db: Path | None = typer.Option(None, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List stored runs: id, time, plan, nodes, verdict, cluster TPM per case."""
    rows = list_runs(Store(db or default_db_path()))
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    t = Table("run", "started", "plan", "nodes", "state", "verdict", "cluster TPM")
    for r in rows:
        tpm = ", ".join(f"{c}: {v:,.0f}" for c, v in r.cluster_tpm.items() if not math.isnan(v)) or "-"
        t.add_row(r.run_id, when(r.started_at), r.plan_name, ", ".join(r.nodes), r.state, r.verdict, tpm)
    out.print(t)


@cli_errors
def show(
    run_id: str = typer.Argument(..., help="Run id (see `ctl runs`)."),
    db: Path | None = typer.Option(None, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Print one stored run: its cases, cluster figures and verdicts."""
    store = Store(db or default_db_path())
    if as_json:
        summary = summarize(store, store.run(run_id)).to_dict()
        summary["verdicts"] = store.verdicts(run_id)
        summary["figures"] = {f"{r['case_id']}/{r['scope']}": json.loads(r["figures_json"])
                              for r in store.figures(run_id)}
        summary["hardware"] = store.hardware(run_id)  # the judged hardware checks (docs/store.md)
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(render_markdown(load_report(store, run_id)))


@cli_errors
def compare(
    run_a: str = typer.Argument(..., help="Baseline run id."),
    run_b: str = typer.Argument(..., help="Run id compared with the baseline."),
    db: Path | None = typer.Option(None, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Every figure the two runs share, side by side with Δ and Δ% (B relative to A)."""
    deltas = compare_runs(Store(db or default_db_path()), run_a, run_b)
    if not deltas:
        fail(f"runs {run_a} and {run_b} share no case", 2)
    if as_json:
        typer.echo(json.dumps([d.to_dict() for d in deltas], indent=2))
        return
    t = Table("case", "scope", "figure", run_a, run_b, "Δ", "Δ%")
    for d in deltas:
        pct = "n/a" if math.isnan(d.delta_pct) else f"{d.delta_pct:+.2f}%"
        t.add_row(d.case_id, d.scope, d.figure, f"{d.a:.6g}", f"{d.b:.6g}", f"{d.delta:+.6g}", pct)
    out.print(t)
