"""`ctl version` and `ctl ping`: is each node's agent there, which version, how far is its clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from fleetbench import __version__

from ..client import AgentClient
from ..fleet import resolve_nodes
from ..reach import explain
from ..runner import run_async, with_clients
from .common import FLEET_HELP, JSON_HELP, NODES_HELP, cli_errors, fleet_path, out


@cli_errors
def version() -> None:
    """Print the fleetbench version."""
    typer.echo(__version__)


@cli_errors
def ping(
    nodes: str = typer.Option(..., "--nodes", "-n", help=NODES_HELP),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Check that each node's agent answers; show version, clock offset and round trip."""
    node_list = resolve_nodes(nodes, fleet_path(fleet))

    async def one(c: AgentClient) -> dict[str, Any]:
        reply = await c.ping()
        clock = await c.clock(samples=3)
        return {"node": c.node.name, "address": c.node.address, "hostname": reply.hostname,
                "agent_version": reply.agent_version, "evalscope_version": reply.evalscope_version,
                "clock_offset_s": clock.offset_s, "rtt_ms": clock.rtt_s * 1000}

    results = run_async(with_clients(node_list, one))
    rows = [r if isinstance(r, dict) else {"node": n.name, "address": n.address, "error": str(r)}
            for n, r in zip(node_list, results, strict=True)]
    for row, node in zip(rows, node_list, strict=True):
        if "error" in row:
            why = explain(node, row["error"])
            row["status"], row["hint"] = why.status, why.line
        else:
            row["status"] = "ok"
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1), collapse_padding=True)
        t.add_column("node", no_wrap=True, min_width=4)
        t.add_column("address", no_wrap=True, overflow="ellipsis", min_width=7, max_width=21)
        for name in ("host", "agent", "evalscope"):
            t.add_column(name, overflow="ellipsis", no_wrap=True, min_width=len(name))
        t.add_column("clock", justify="right", no_wrap=True, min_width=5)
        t.add_column("rtt", justify="right", no_wrap=True, min_width=3)
        t.add_column("status", no_wrap=True, min_width=len("unresolvable"))
        for r in rows:
            if "error" in r:
                t.add_row(r["node"], r["address"], "", "", "", "", "", f"[red]{r['status']}")
            else:
                t.add_row(r["node"], r["address"], r["hostname"], r["agent_version"], r["evalscope_version"],
                          f"{r['clock_offset_s'] * 1000:+.1f} ms", f"{r['rtt_ms']:.2f} ms", "[green]ok")
        out.print(t)
        for r in rows:  # the cause and what to check, one line per node, below the table
            if "error" in r:
                typer.echo(f"error: {r['hint']}", err=True)
    if any("error" in r for r in rows):
        raise typer.Exit(2)
