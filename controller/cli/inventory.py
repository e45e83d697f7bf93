"""`ctl inventory`: the fleet view (one row per node, drift check, stored snapshots) and `diff`/`snapshots`.

Thin: the logic is in controller/fleetview.py.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleetbench.errors import StoreError
from fleetbench.inventory import Inventory

from .. import fleetview as fv
from ..fleet import Node, resolve_nodes
from ..runner import run_async, with_clients
from ..store import Store, default_db_path
from .common import DB_HELP, FLEET_HELP, JSON_HELP, NODES_HELP, cli_errors, fail, fleet_path, wide_console


def new_snapshot_id() -> str:
    return time.strftime("i%Y%m%d-%H%M%S", time.localtime()) + "-" + secrets.token_hex(2)


def _when(ts: float | None) -> str:
    return "n/a" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def collect_fleet(node_list: list[Node]) -> dict[str, tuple[Node, str, str]]:
    """node -> (Node, detail_json or "", error or ""), asking every agent at once."""

    async def one(c: Any) -> str:
        reply = await c.inventory(c.node.endpoint)
        return str(reply.detail_json)

    results = run_async(with_clients(node_list, one))
    out: dict[str, tuple[Node, str, str]] = {}
    for n, r in zip(node_list, results, strict=True):
        if isinstance(r, BaseException):
            out[n.name] = (n, "", str(r) or type(r).__name__)
        else:
            out[n.name] = (n, r, "")
    return out


def print_fleet(con: Console, assessment: fv.FleetAssessment) -> None:
    t = Table(*(header for _, header in fv.COLUMNS))
    cells = fv.drift_cells(assessment.findings)
    for row in assessment.rows:
        if "error" in row:
            # the full error goes to stderr; the table stays readable
            t.add_row(escape(row["node"]), "[red]no inventory (error below)", *([""] * (len(fv.COLUMNS) - 2)))
            continue
        flagged = cells.get(row["node"], set())
        t.add_row(*(f"[red]{escape(row[k])}" if k in flagged else escape(row[k]) for k, _ in fv.COLUMNS))
    con.print(t)


app = typer.Typer(
    invoke_without_command=True, no_args_is_help=False,
    help="Hardware and software inventory of each node, drift check, stored snapshots.\n\n"
         "`ctl inventory --nodes n1,n2,n3` prints one row per node, every drift finding, and stores a "
         "snapshot; `ctl inventory snapshots` lists them; `ctl inventory diff A B` compares two.\n\n"
         "Exit codes: 0 no drift (or drift without --check), 1 drift with --check, 2 a node did not answer "
         "or bad input.",
)


@app.callback(invoke_without_command=True)
@cli_errors
def inventory(
    ctx: typer.Context,
    nodes: str | None = typer.Option(None, "--nodes", "-n", help=NODES_HELP),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    db: Path | None = typer.Option(None, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the full inventories, drift findings and "
                                                       "snapshot id as JSON."),
    check: bool = typer.Option(False, "--check", help="Exit 1 when the nodes drift apart."),
) -> None:
    """Inventory of each node, one row per node; the drift check; a snapshot in the store."""
    if ctx.invoked_subcommand is not None:
        return
    if nodes is None:
        fail("ctl inventory needs --nodes (or a subcommand: snapshots, diff); see ctl inventory --help")
        return
    node_list = resolve_nodes(nodes, fleet_path(fleet))
    store = Store(db or default_db_path())  # open before the network: a bad --db fails fast
    collected = collect_fleet(node_list)
    results: dict[str, Inventory | str] = {}
    docs: dict[str, Any] = {}
    stored: list[dict[str, Any]] = []
    for name, (node, detail, error) in collected.items():
        if not error:
            try:
                results[name] = fv.parse_inventory(detail)
                docs[name] = json.loads(detail)
            except ValueError as exc:
                error = f"{name}: {exc}"
        if error:
            results[name] = error
        stored.append({"node": name, "address": node.address, "inventory_json": detail, "error": error})
    assessment = fv.assess(results, check)
    snapshot_id, taken_at = "", time.time()
    if docs:
        snapshot_id = new_snapshot_id()
        store.add_inventory_snapshot(snapshot_id, taken_at, stored)
    if as_json:
        typer.echo(json.dumps({
            "snapshot_id": snapshot_id or None, "taken_at": taken_at, "store": str(store.path),
            "nodes": {name: ({"address": node.address, "inventory": docs[name]} if name in docs
                             else {"address": node.address, "error": results[name]})
                      for name, (node, _d, _e) in collected.items()},
            "drift": [{"node": f.node, "field": f.field, "value": f.value, "majority": f.majority_value,
                       "message": f.message} for f in assessment.findings],
            "exit_code": assessment.exit_code,
        }, indent=2))
    else:
        con = wide_console()
        print_fleet(con, assessment)
        for line in fv.drift_summary(assessment):
            typer.echo(line)
        if snapshot_id:
            typer.echo(f"snapshot {snapshot_id} stored in {store.path} (ctl inventory snapshots)")
    for name, err in assessment.errors.items():
        typer.echo(f"error: {err if err.startswith(name) else f'{name}: {err}'}", err=True)
    raise typer.Exit(assessment.exit_code)


@app.command("snapshots")
@cli_errors
def snapshots(
    db: Path | None = typer.Option(None, help=DB_HELP),
    node: str | None = typer.Option(None, "--node", help="Only snapshots that hold this node."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List stored inventory snapshots: id, time, nodes (newest first)."""
    rows = Store(db or default_db_path()).inventory_snapshots(node)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    t = Table("snapshot", "taken", "nodes", "not answered")
    for r in rows:
        t.add_row(r["snapshot_id"], _when(r["taken_at"]), escape(", ".join(r["nodes"])),
                  escape(", ".join(r["failed"])))
    wide_console().print(t)


@app.command("diff")
@cli_errors
def diff(
    snapshot_a: str = typer.Argument(..., help="Earlier snapshot: ID, or ID:NODE for one of its nodes."),
    snapshot_b: str = typer.Argument(..., help="Later snapshot: ID, or ID:NODE."),
    node: str | None = typer.Option(None, "--node", help="Compare only this node."),
    db: Path | None = typer.Option(None, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    check: bool = typer.Option(False, "--check", help="Exit 1 when something changed."),
) -> None:
    """What changed on each node from snapshot A to B, field by field (flattened JSON paths).

    Volatile fields (temperatures, power draw, memory in use, collection time, …; see
    docs/inventory.md) are left out."""
    store = Store(db or default_db_path())
    ref_a, ref_b = fv.parse_snapshot_ref(snapshot_a), fv.parse_snapshot_ref(snapshot_b)
    rows_a = {r["node"]: r for r in store.inventory_snapshot(ref_a.snapshot_id)}
    rows_b = {r["node"]: r for r in store.inventory_snapshot(ref_b.snapshot_id)}
    pairs = fv.pair_nodes(ref_a, list(rows_a), ref_b, list(rows_b), node)
    diffs: list[fv.NodeDiff] = []
    for pair in pairs:
        ra, rb = rows_a[pair.node_a], rows_b[pair.node_b]
        for ref, r in ((ref_a, ra), (ref_b, rb)):
            if r["error"] or not r["inventory_json"]:
                raise StoreError(f"snapshot {ref.snapshot_id} has no usable inventory of {r['node']}: "
                                 f"{r['error'] or 'empty'}")
        diffs.append(fv.NodeDiff(pair, fv.diff_documents(json.loads(ra["inventory_json"]),
                                                         json.loads(rb["inventory_json"]))))
    changed = any(d.changes for d in diffs)
    if as_json:
        typer.echo(json.dumps({
            "a": {"snapshot_id": ref_a.snapshot_id, "taken_at": next(iter(rows_a.values()))["taken_at"]},
            "b": {"snapshot_id": ref_b.snapshot_id, "taken_at": next(iter(rows_b.values()))["taken_at"]},
            "ignored": list(fv.VOLATILE_PATHS), "nodes": [d.to_dict() for d in diffs],
        }, indent=2))
    else:
        ta, tb = next(iter(rows_a.values()))["taken_at"], next(iter(rows_b.values()))["taken_at"]
        typer.echo(f"from {ref_a.snapshot_id} ({_when(ta)}) to {ref_b.snapshot_id} ({_when(tb)}); "
                   "volatile fields (temperature, power draw, memory in use, collection time, …) ignored")
        for d in diffs:
            if not d.changes:
                typer.echo(f"{d.pair.label}: no change")
                continue
            typer.echo(f"{d.pair.label}: {len(d.changes)} change{'s' if len(d.changes) != 1 else ''}")
            for c in d.changes:
                typer.echo(f"  {c.text()}")
    raise typer.Exit(fv.EXIT_DRIFT if check and changed else fv.EXIT_OK)
