"""`ctl run`, `preflight` and `resume` (they drive the fleet) and `report`, `runs`, `show`, `compare` (they read
the store). Each parses its options, calls controller/runner.py or the store, and prints."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import typer
from rich import box
from rich.table import Table

from ..compare import DEFAULT_THRESHOLD_PCT, Row, compare_reports
from ..display import fmt_cell
from ..fleet import resolve_nodes
from ..history import hardware_deltas, headline_tpm, list_runs, resolve_run, summarize
from ..plan import load_plan
from ..report.markdown import render_markdown
from ..report.model import load_report
from ..report.output import check_choice, write_junit, write_report_files
from ..runner import API_KEY_ENV, REPORT_FORMATS, nodes_of_run, preflight_plan, run_plan, stored_plan
from ..store import Store, default_db_path
from ..summary import show_lines
from .common import (
    DB_HELP,
    FLEET_HELP,
    JSON_EVENTS_HELP,
    JSON_HELP,
    NODES_HELP,
    OUT_HELP,
    PLAN_HELP,
    QUIET_HELP,
    cli_errors,
    default_out_dir,
    fail,
    fleet_path,
    make_progress,
    out,
)
from .compareview import print_comparison

PREFLIGHT_JSON_HELP = "Machine output: progress as JSON lines on stdout; errors stay on stderr."
JUNIT_HELP = ("Also write the result as JUnit XML (one test case per case and node or cluster), for CI; written "
              "for an ERROR too.")
RUN_HELP = "Run id, a unique prefix of one, latest or latest~N (see `ctl runs`)."


@cli_errors
def run(
    plan: Path = typer.Option(..., "--plan", "-p", help=PLAN_HELP),
    nodes: str = typer.Option(..., "--nodes", "-n", help=NODES_HELP),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    db: Path | None = typer.Option(None, help=DB_HELP),
    out_dir: Path | None = typer.Option(None, "--out", help=OUT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    json_events: bool = typer.Option(False, "--json", help=JSON_EVENTS_HELP),
    lang: str = typer.Option("en", "--lang", help="Language of the reports: en or zh."),
    junit: Path | None = typer.Option(None, "--junit", metavar="FILE", help=JUNIT_HELP),
) -> None:
    """Run an acceptance plan on every node at once, store everything, write the report.

    Preflight first (as `ctl preflight`); then each case starts on every node at one instant. Exit 0 PASS,
    1 FAIL, 2 ERROR (could not run; no report), 3 INVALID or INCOMPLETE (rerun, or `ctl resume`)."""
    check_choice(None, lang)
    plan_obj = load_plan(plan)  # validate before touching the network
    node_list = resolve_nodes(nodes, fleet_path(fleet))
    store = Store(db or default_db_path())
    result = run_plan(plan_obj, node_list, store, out_dir or default_out_dir(), make_progress(quiet, json_events),
                      lang=lang)
    if junit is not None:
        write_junit(store, result.run_id, plan_obj.name, result.state.value, junit)
    raise typer.Exit(result.exit_code)


@cli_errors
def preflight(
    plan: Path = typer.Option(..., "--plan", "-p", help=PLAN_HELP),
    nodes: str = typer.Option(..., "--nodes", "-n", help=NODES_HELP),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    json_events: bool = typer.Option(False, "--json", help=PREFLIGHT_JSON_HELP),
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
    run_id: str = typer.Argument(..., help="Run to complete: id, unique prefix, latest or latest~N."),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    db: Path | None = typer.Option(None, help=DB_HELP),
    out_dir: Path | None = typer.Option(None, "--out", help=OUT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    json_events: bool = typer.Option(False, "--json", help=JSON_EVENTS_HELP),
    junit: Path | None = typer.Option(None, "--junit", metavar="FILE", help=JUNIT_HELP),
    force: bool = typer.Option(False, "--force", help="Resume even though another controller seems to drive the "
                                                      "run (its heartbeat is fresh): only when it is known gone."),
) -> None:
    """Complete a run whose controller stopped: re-attach to running jobs, fetch finished ones, go on.
    A run whose controller is alive (pid on this host, or a heartbeat under 30 s old) is refused unless --force.
    The store keeps no API key: a plan that had one needs it again in FLEETBENCH_API_KEY."""
    store = Store(db or default_db_path())
    run_id = resolve_run(store, run_id)
    plan = stored_plan(store, run_id, os.environ.get(API_KEY_ENV))
    node_list = nodes_of_run(store, run_id, fleet_path(fleet))
    result = run_plan(plan, node_list, store, out_dir or default_out_dir(), make_progress(quiet, json_events),
                      resume_id=run_id, force=force)
    if junit is not None:
        write_junit(store, result.run_id, plan.name, result.state.value, junit)
    raise typer.Exit(result.exit_code)


@cli_errors
def report(
    run_id: str = typer.Argument(..., help=RUN_HELP),
    db: Path | None = typer.Option(None, help=DB_HELP),
    out_dir: Path | None = typer.Option(None, "--out",
                                        help="Folder for the report files, or with --format a file path "
                                             "(RUN_ID.html …). Env FLEETBENCH_OUT; default ./fleetbench-out."),
    fmt: str | None = typer.Option(None, "--format", "-f",
                                   help="html, md, xlsx, json, junit (JUnit XML for CI) or csv (summary, "
                                        "percentiles, sweep and requests files); default: the first four."),
    lang: str = typer.Option("en", "--lang", help="Language of labels and sentences: en or zh."),
) -> None:
    """Write the report of a stored run again (docs/report.md)."""
    check_choice(fmt, lang)  # before opening the store: a typo is a one-line error
    store = Store(db or default_db_path())
    run_id = resolve_run(store, run_id)
    for p in write_report_files(store, run_id, out_dir or default_out_dir(), (fmt,) if fmt else REPORT_FORMATS, lang):
        typer.echo(str(p))


@cli_errors
def runs(
    db: Path | None = typer.Option(None, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List stored runs, newest first: id (it holds the start time), plan, node count, verdict, headline TPM
    (the first perf case's cluster TPM, else a sweep's best point's; `--json` has every case's).

    A run id can be typed as a unique prefix, `latest` or `latest~N` in every command that takes one."""
    store = Store(db or default_db_path())
    rows = list_runs(store)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    if not rows:
        typer.echo(f"no runs in {store.path}", err=True)
        return
    # the id never wraps nor is cut: the other columns give way (it also says when the run started: rYYYYMMDD-HHMMSS)
    id_width = max(len(r.run_id) for r in rows)
    fixed = id_width + len("nodes") + len("INCOMPLETE") + len("TPM (tok/min)") + 4 * 2  # 2 spaces between columns
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1), collapse_padding=True)
    t.add_column("run", no_wrap=True, min_width=id_width)
    t.add_column("plan", overflow="ellipsis", no_wrap=True, max_width=max(8, out.width - fixed - 2))
    t.add_column("nodes", justify="right", no_wrap=True, min_width=5)
    t.add_column("verdict", no_wrap=True, min_width=10)
    t.add_column("TPM (tok/min)", justify="right", no_wrap=True, min_width=13)
    for r in rows:
        _, tpm = headline_tpm(r)
        verdict = "RUNNING" if r.state == "running" else (r.verdict or r.state).upper()
        t.add_row(r.run_id, r.plan_name, str(len(r.nodes)), verdict,
                  "-" if math.isnan(tpm) else fmt_cell("tpm_total", tpm))
    out.print(t)


@cli_errors
def show(
    run_id: str = typer.Argument(..., help=RUN_HELP),
    db: Path | None = typer.Option(None, help=DB_HELP),
    full: bool = typer.Option(False, "--full", help="Print the whole Markdown report."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """One screen about a stored run: verdict and why, per case cluster TPM, TTFT, TPOT, requests, validity."""
    store = Store(db or default_db_path())
    run_id = resolve_run(store, run_id)
    if as_json:
        summary = summarize(store, store.run(run_id)).to_dict()
        summary["verdicts"] = store.verdicts(run_id)
        summary["figures"] = {f"{r['case_id']}/{r['scope']}": json.loads(r["figures_json"])
                              for r in store.figures(run_id)}
        summary["hardware"] = store.hardware(run_id)  # the judged hardware checks (docs/store.md)
        typer.echo(json.dumps(summary, indent=2))
        return
    report = load_report(store, run_id)
    if full:
        typer.echo(render_markdown(report))
        return
    typer.echo("\n".join(show_lines(report, f"ctl show {run_id} --full")))


@cli_errors
def compare(
    run_a: str = typer.Argument(..., help="Baseline run (id, unique prefix, latest~N)."),
    run_b: str = typer.Argument(..., help="Run compared with the baseline (id, unique prefix, latest)."),
    db: Path | None = typer.Option(None, help=DB_HELP),
    per_node: bool = typer.Option(False, "--per-node", help="Also each node's rows."),
    threshold: float = typer.Option(DEFAULT_THRESHOLD_PCT, "--threshold", metavar="PCT",
                                    help="A change worse than this many percent is a regression (a success rate "
                                         "or score: any drop)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Two runs side by side: verdict changes, then per case the cluster's TPM, TTFT and TPOT (avg, p99),
    throughputs, success rate and scores, with Δ and Δ% (B relative to A). Regressions are marked ✗,
    improvements ✓. Exit 0 (also with regressions)."""
    if threshold < 0 or math.isnan(threshold):
        fail(f"--threshold {threshold}: give a percentage >= 0")
    store = Store(db or default_db_path())
    a, b = resolve_run(store, run_a), resolve_run(store, run_b)
    cmp = compare_reports(load_report(store, a), load_report(store, b), per_node=per_node, threshold_pct=threshold)
    # hardware measurements (matmul TFLOPS, copy bandwidth …) per accelerator: shown, not judged here
    cmp.rows += [Row(d.case_id, d.scope, d.figure, d.a, d.b) for d in hardware_deltas(store, a, b)]
    if as_json:
        typer.echo(json.dumps(cmp.to_dict(), indent=2, ensure_ascii=False))
        return
    if not cmp.rows and len(cmp.verdicts) == 1:
        fail(f"runs {a} and {b} share no case", 2)
    print_comparison(cmp)
