"""`ctl`: the fleetbench controller. Thin: every command calls the library."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import os
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from fleetbench import __version__
from fleetbench.errors import ConfigError, FleetbenchError, RunError

from .client import AgentClient
from .fleet import Node, load_fleet, resolve_nodes
from .history import compare as compare_runs
from .history import list_runs, summarize
from .orchestrator import Orchestrator, new_run_id
from .plan import Plan, load_plan, parse_plan
from .progress import JsonProgress, ProgressSink, QuietProgress, RichProgress
from .report.markdown import render_markdown, when
from .report.model import load_report
from .report.output import check_choice, write_report_files
from .store import Store, default_db_path
from .tunnels import forwarded
from .verdict import EXIT_CODES, EXIT_HELP, State, fmt_value
from .yamlfile import parse_yaml

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="fleetbench controller: run acceptance plans on a fleet of inference servers and report.\n\n"
         + EXIT_HELP,
)
plan_app = typer.Typer(no_args_is_help=True, help="Work with plan files.")
app.add_typer(plan_app, name="plan")
fleet_app = typer.Typer(no_args_is_help=True, help="Work with fleet files.")
app.add_typer(fleet_app, name="fleet")
out = Console()
T = TypeVar("T")

NODES_HELP = ("Comma-separated node names from the fleet file, label=value selectors (every node with that "
              "label), or host:port addresses.")
FLEET_HELP = "Fleet file (name -> agent address). Env FLEETBENCH_FLEET; default ./fleet.yaml."
DB_HELP = "Results store (SQLite). Env FLEETBENCH_DB; default under the user's data dir."


def fleet_path(value: Path | None) -> Path:
    return value or Path(os.environ.get("FLEETBENCH_FLEET", "fleet.yaml"))


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def cli_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """One line and an exit code for every error; a traceback only with FLEETBENCH_DEBUG=1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except FleetbenchError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:  # `ctl runs | head`: the reader left; not an error of ours
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("FLEETBENCH_DEBUG"):
                traceback.print_exc()
            fail(f"internal error: {type(exc).__name__}: {exc} (set FLEETBENCH_DEBUG=1 for a traceback)", 3)
        raise AssertionError("unreachable")

    return wrapper


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; SIGTERM (CI timeouts, systemd, `kill`) and SIGHUP (a closed terminal) stop it
    as Ctrl-C does, so a run cancels its jobs on every agent and is stored as interrupted instead of leaving
    the load running."""

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        return await coro

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


async def _with_clients(nodes: list[Node], fn: Callable[[AgentClient], Coroutine[Any, Any, Any]]) -> list[Any]:
    async with forwarded(nodes) as reachable:  # connect: ssh nodes through an SSH port forward
        clients = [AgentClient(n) for n in reachable]
        try:
            return await asyncio.gather(*(fn(c) for c in clients), return_exceptions=True)
        finally:
            for c in clients:
                await c.close()


@app.command()
@cli_errors
def version() -> None:
    """Print the fleetbench version."""
    typer.echo(__version__)


@app.command()
@cli_errors
def ping(
    nodes: str = typer.Option(..., "--nodes", "-n", help=NODES_HELP),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check that each node's agent answers; show version, clock offset and round trip."""
    node_list = resolve_nodes(nodes, fleet_path(fleet))

    async def one(c: AgentClient) -> dict[str, Any]:
        reply = await c.ping()
        clock = await c.clock(samples=3)
        return {"node": c.node.name, "address": c.node.address, "hostname": reply.hostname,
                "agent_version": reply.agent_version, "evalscope_version": reply.evalscope_version,
                "clock_offset_s": clock.offset_s, "rtt_ms": clock.rtt_s * 1000}

    results = run_async(_with_clients(node_list, one))
    rows = [r if isinstance(r, dict) else {"node": n.name, "address": n.address, "error": str(r)}
            for n, r in zip(node_list, results, strict=True)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        t = Table("node", "address", "host", "agent", "evalscope", "clock offset (s)", "rtt (ms)", "status")
        for r in rows:
            if "error" in r:
                t.add_row(r["node"], r["address"], "", "", "", "", "", f"[red]{r['error']}")
            else:
                t.add_row(r["node"], r["address"], r["hostname"], r["agent_version"], r["evalscope_version"],
                          f"{r['clock_offset_s']:+.4f}", f"{r['rtt_ms']:.2f}", "[green]ok")
        out.print(t)
    if any("error" in r for r in rows):
        raise typer.Exit(2)


def make_progress(quiet: bool, json_events: bool) -> ProgressSink:
    if json_events:
        return JsonProgress()
    if quiet or not sys.stderr.isatty():
        return QuietProgress()
    return RichProgress()


def write_reports(store: Store, run_id: str, out_dir: Path, formats: tuple[str, ...] = ("md", "html", "xlsx", "json"),
                  lang: str = "en") -> list[Path]:
    """The run's report in every format (docs/report.md); the Markdown first."""
    return write_report_files(store, run_id, out_dir, formats, lang)


def execute_plan(plan_path: Path, node_list: list[Node], db: Path, out_dir: Path, progress: ProgressSink,
                 lang: str = "en") -> int:
    return finish_plan(load_plan(plan_path), node_list, Store(db), out_dir, progress, lang=lang)


def finish_plan(plan: Plan, node_list: list[Node], store: Store, out_dir: Path, progress: ProgressSink,
                resume_id: str | None = None, lang: str = "en") -> int:
    """Run (or resume) a plan, write the reports, print the conclusion; returns the exit code.
    A run that could not be done (ERROR) or was interrupted (INCOMPLETE) writes no report."""
    run_id = resume_id or new_run_id()

    async def go() -> Any:
        async with forwarded(node_list) as reachable:  # connect: ssh nodes through an SSH port forward
            orch = Orchestrator(plan, reachable, store, progress)
            try:
                return await (orch.resume(run_id) if resume_id else orch.run(run_id))
            finally:
                await orch.close()

    try:
        outcome = run_async(go())
    except RunError as exc:
        for line in exc.lines:
            progress.message(f"  {line}")
        progress.message(f"run {run_id}: ERROR (could not run): {exc}; no report written; store {store.path}")
        return EXIT_CODES[State.ERROR]
    except KeyboardInterrupt:
        progress.message(f"run {run_id}: INCOMPLETE (interrupted); every agent's job was cancelled; "
                         f"`ctl resume {run_id}` completes it")
        return EXIT_CODES[State.INCOMPLETE]
    paths = write_reports(store, outcome.run_id, out_dir, lang=lang)
    report = load_report(store, outcome.run_id)
    for case in report.cases:
        state = case.verdict.upper()
        if case.case_type == "long_context":
            ok = sum(1 for f in case.node_figures.values() if f.requests and f.succeeded == f.requests)
            ttfts = [f.ttft_avg_s for f in case.node_figures.values() if f.succeeded]
            slowest = fmt_value(max(ttfts), "s") if ttfts else "n/a"
            progress.message(f"case {case.case_id}: long context: {ok} of {len(node_list)} node(s) answered, "
                             f"slowest TTFT {slowest}; {state}")
        elif case.cluster is not None and case.cluster.succeeded:
            progress.message(f"case {case.case_id}: cluster TPM {fmt_value(case.cluster.tpm_total)} "
                             f"(Σ per-node {fmt_value(case.sum_node_tpm_total)}); {state}")
        elif case.sweep:
            cluster_rows = [r for r in case.sweep if r.scope == "cluster" and r.figures.succeeded]
            if cluster_rows:
                best = max(cluster_rows, key=lambda r: r.figures.tpm_total)
                progress.message(f"case {case.case_id}: {len({r.point for r in case.sweep})} sweep points; best "
                                 f"cluster TPM {fmt_value(best.figures.tpm_total)} at {best.point}; {state}")
            else:
                progress.message(f"case {case.case_id}: no successful request at any sweep point; {state}")
        elif case.scores:
            scores = ", ".join(f"{s.dataset} {'n/a' if math.isnan(s.score) else f'{s.score:.2f}'}"
                               for s in case.scores if s.scope == "cluster")
            progress.message(f"case {case.case_id}: cluster score {scores}; {state}")
        else:
            progress.message(f"case {case.case_id}: no successful request; {state}")
    if outcome.state is not State.PASS:
        progress.message(f"{outcome.state.upper()} because:")
        for reason in outcome.reasons[:20]:
            progress.message(f"  - {reason.line()}")
        if len(outcome.reasons) > 20:
            progress.message(f"  … and {len(outcome.reasons) - 20} more in the report")
    progress.message(f"run {outcome.run_id}: {outcome.state.upper()}; store {store.path}; report {paths[0]}")
    return outcome.exit_code


def nodes_of_run(store: Store, run_id: str, fleet: Path) -> list[Node]:
    """A stored run's nodes; the fleet file's entry wins when it names the node (TLS, SSH settings)."""
    known = load_fleet(fleet) if fleet.exists() else {}
    return [known.get(r["node"]) or Node(r["node"], r["address"], r["endpoint"] or "")
            for r in store.run_nodes(run_id)]


@app.command()
@cli_errors
def run(
    plan: Path = typer.Option(..., "--plan", "-p", help="Acceptance plan (YAML, schema v1; see docs/plan.md)."),
    nodes: str = typer.Option(..., "--nodes", "-n", help=NODES_HELP),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    db: Path | None = typer.Option(None, help=DB_HELP),
    out_dir: Path = typer.Option(Path("fleetbench-out"), "--out", help="Folder for the reports."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Milestones only, no live bars."),
    json_events: bool = typer.Option(False, "--json", help="Progress as JSON lines on stderr."),
    lang: str = typer.Option("en", "--lang", help="Language of the reports: en or zh."),
) -> None:
    """Run an acceptance plan on every node at once, store everything, write the report.

    Preflight first (as `ctl preflight`); then each case starts on every node at one instant. Exit 0 PASS,
    1 FAIL, 2 ERROR (could not run; no report), 3 INVALID or INCOMPLETE (rerun, or `ctl resume`)."""
    check_choice(None, lang)
    plan_obj = load_plan(plan)  # validate before touching the network
    del plan_obj
    node_list = resolve_nodes(nodes, fleet_path(fleet))
    code = execute_plan(plan, node_list, db or default_db_path(), out_dir, make_progress(quiet, json_events), lang)
    raise typer.Exit(code)


@app.command()
@cli_errors
def preflight(
    plan: Path = typer.Option(..., "--plan", "-p", help="Acceptance plan (YAML, schema v1; see docs/plan.md)."),
    nodes: str = typer.Option(..., "--nodes", "-n", help=NODES_HELP),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Milestones only, no live bars."),
    json_events: bool = typer.Option(False, "--json", help="Progress as JSON lines on stderr."),
) -> None:
    """Check, on every node at once and without load, that the plan can run: agent version, evalscope,
    tokenizer, datasets, free space, and one request of each case's exact shape to the endpoint.
    `ctl run` does the same first. Exit 0 ready, 2 not (one line per problem, with a hint)."""
    from .preflight import run_preflight

    plan_obj = load_plan(plan)
    node_list = resolve_nodes(nodes, fleet_path(fleet))
    progress = make_progress(quiet, json_events)

    async def go() -> Any:
        async with forwarded(node_list) as reachable:
            clients = {n.name: AgentClient(n) for n in reachable}
            try:
                return await run_preflight(plan_obj, reachable, clients, f"preflight-{new_run_id()}", progress)
            finally:
                for c in clients.values():
                    await c.close()

    report = run_async(go())
    for line in report.lines():
        progress.message(line)
    if not report.ok:
        fail(f"preflight: {len(report.problems)} problem(s) on "
             f"{len({p.node for p in report.problems})} of {len(node_list)} node(s); no load was sent", 2)
    progress.message(f"preflight: {len(node_list)} node(s) ready for plan {plan_obj.name}")


@plan_app.command("check")
@cli_errors
def plan_check(path: Path = typer.Argument(..., help="Plan file to validate.")) -> None:
    """Validate a plan without running it."""
    p = load_plan(path)
    typer.echo(f"{path}: ok — plan {p.name!r}, model {p.model}, {len(p.cases)} case(s): "
               + ", ".join(c.id for c in p.cases))


@plan_app.command("schema")
@cli_errors
def plan_schema() -> None:
    """Print the plan's JSON Schema, for editors (docs/plan.md: `# yaml-language-server: $schema=…`)."""
    from .plan import plan_json_schema

    typer.echo(json.dumps(plan_json_schema(), indent=2, ensure_ascii=False))


@fleet_app.command("schema")
@cli_errors
def fleet_schema() -> None:
    """Print the fleet file's JSON Schema, for editors (docs/plan.md: `# yaml-language-server: $schema=…`)."""
    from .fleet import fleet_json_schema

    typer.echo(json.dumps(fleet_json_schema(), indent=2, ensure_ascii=False))


@app.command()
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
    for p in write_reports(store, run_id, out_dir, (fmt,) if fmt else ("md", "html", "xlsx", "json"), lang):
        typer.echo(str(p))


@app.command()
@cli_errors
def runs(
    db: Path | None = typer.Option(None, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
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


@app.command()
@cli_errors
def show(
    run_id: str = typer.Argument(..., help="Run id (see `ctl runs`)."),
    db: Path | None = typer.Option(None, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print one stored run: its cases, cluster figures and verdicts."""
    store = Store(db or default_db_path())
    if as_json:
        summary = summarize(store, store.run(run_id)).to_dict()
        summary["verdicts"] = store.verdicts(run_id)
        summary["figures"] = {f"{r['case_id']}/{r['scope']}": json.loads(r["figures_json"])
                              for r in store.figures(run_id)}
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(render_markdown(load_report(store, run_id)))


@app.command()
@cli_errors
def compare(
    run_a: str = typer.Argument(..., help="Baseline run id."),
    run_b: str = typer.Argument(..., help="Run id compared with the baseline."),
    db: Path | None = typer.Option(None, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
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


@app.command()
@cli_errors
def resume(
    run_id: str = typer.Argument(..., help="Run to complete (see `ctl runs`)."),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    db: Path | None = typer.Option(None, help=DB_HELP),
    out_dir: Path = typer.Option(Path("fleetbench-out"), "--out", help="Folder for the reports."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Milestones only, no live bars."),
    json_events: bool = typer.Option(False, "--json", help="Progress as JSON lines on stderr."),
) -> None:
    """Complete a run whose controller stopped: re-attach to running jobs, fetch finished ones, go on."""
    store = Store(db or default_db_path())
    run = store.run(run_id)
    plan = parse_plan(parse_yaml(run["plan_yaml"], Path(f"<plan of {run_id}>"), "plan"))
    node_list = nodes_of_run(store, run_id, fleet_path(fleet))
    code = finish_plan(plan, node_list, store, out_dir, make_progress(quiet, json_events), resume_id=run_id)
    raise typer.Exit(code)


certs_app = typer.Typer(no_args_is_help=True, help="Certificates for mutual TLS between ctl and the agents.")
app.add_typer(certs_app, name="certs")


@certs_app.command("init")
@cli_errors
def certs_init(
    node: list[str] = typer.Option(..., "--node", help="NAME=HOST[,HOST…]: a node and the names/addresses its "
                                   "certificate must carry (repeat per node)."),
    out_dir: Path = typer.Option(Path("certs"), "--out", help="Where to write ca.pem, controller.pem and "
                                 "node-NAME.pem (+ .key, mode 0600)."),
    force: bool = typer.Option(False, help="Replace an existing CA (every certificate it signed stops working)."),
) -> None:
    """Create a fleet CA, the controller's client certificate and one server certificate per node."""
    from .certs import init_fleet_certs

    nodes: dict[str, list[str]] = {}
    for item in node:
        name, _, hosts = item.partition("=")
        if not name or not hosts:
            raise ConfigError(f"--node {item!r} must be NAME=HOST[,HOST…]")
        nodes[name] = [h for h in hosts.split(",") if h]
    for p in init_fleet_certs(out_dir, nodes, force=force):
        typer.echo(str(p))


@app.command()
@cli_errors
def demo(
    workdir: Path = typer.Option(Path("fleetbench-demo"), help="Where the demo's agents, store and report go."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Milestones only, no live bars."),
) -> None:
    """Start 3 agents and 3 simulated endpoints on loopback and run a built-in plan on them."""
    from .demo import run_demo

    raise typer.Exit(run_demo(workdir, make_progress(quiet, False)))


# --- command groups kept in their own modules (each defines register(app)) ---
# (one import + call per module; add yours on its own line below)
from . import cli_inventory; cli_inventory.register(app)  # noqa: E402, E702, I001
from . import cli_deploy; cli_deploy.register(app)  # noqa: E402, E702, I001
# --- end of command groups ---


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # raised outside a command (defensive)
        fail(str(exc))


if __name__ == "__main__":
    main()
