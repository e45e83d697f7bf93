"""`ctl certs init`: the fleet's CA and certificates (controller/certs.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from fleetbench.errors import ConfigError

from .common import cli_errors

app = typer.Typer(no_args_is_help=True, help="Certificates for mutual TLS between ctl and the agents.")


@app.command("init")
@cli_errors
def certs_init(
    node: list[str] = typer.Option(..., "--node", help="NAME=HOST[,HOST…]: a node and the names/addresses its "
                                   "certificate must carry (repeat per node)."),
    out_dir: Path = typer.Option(Path("certs"), "--out", help="Where to write ca.pem, controller.pem and "
                                 "node-NAME.pem (+ .key, mode 0600)."),
    force: bool = typer.Option(False, help="Replace an existing CA (every certificate it signed stops working)."),
) -> None:
    """Create a fleet CA, the controller's client certificate and one server certificate per node."""
    from ..certs import init_fleet_certs  # cryptography: only when asked for

    nodes: dict[str, list[str]] = {}
    for item in node:
        name, _, hosts = item.partition("=")
        if not name or not hosts:
            raise ConfigError(f"--node {item!r} must be NAME=HOST[,HOST…]")
        nodes[name] = [h for h in hosts.split(",") if h]
    for p in init_fleet_certs(out_dir, nodes, force=force):
        typer.echo(str(p))
