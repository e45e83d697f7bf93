"""`ctl deploy` / `ctl undeploy`: thin commands over controller/deploy.py (docs/deploy.md)."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from fleetbench.errors import ConfigError

from ..fleet import Node, SshSettings, resolve_nodes
from ..runner import run_async
from .common import FLEET_HELP, JSON_HELP, NODES_HELP, cli_errors, fleet_path, wide_console

if TYPE_CHECKING:
    from .. import deploy as dp

SSH_HELP = "Overrides the fleet file's ssh.{} for every node."
SERVICES = ("auto", "systemd", "process")
VERIFY_TIMEOUT_S = 90.0


def apply_ssh_flags(nodes: list[Node], user: str | None, port: int | None, key: Path | None,
                    known_hosts: Path | None) -> list[Node]:
    """The --ssh-* flags win over the fleet file, node by node (pure)."""
    out = []
    for n in nodes:
        s = n.ssh
        out.append(dataclasses.replace(n, ssh=SshSettings(
            host=s.host, user=user or s.user, port=port or s.port, key=key or s.key,
            known_hosts=known_hosts or s.known_hosts)))
    return out


def print_results(results: list[dp.NodeResult], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
        return
    colour = {"failed": "red", "outdated": "yellow"}
    t = Table("node", "ssh", "mode", "agent", "result", "detail", "s")
    for r in results:
        c = colour.get(r.action, "green")
        t.add_row(escape(r.node), escape(r.target), r.mode, escape(r.version), f"[{c}]{r.action}", escape(r.detail),
                  f"{r.seconds:.1f}")
    wide_console().print(t)


def check_service(service: str | None) -> None:
    if service is not None and service not in SERVICES:
        raise ConfigError(f"--service must be one of {', '.join(SERVICES)}, not {service!r}")


@cli_errors
def deploy(
    nodes: str = typer.Option(..., "--nodes", "-n", help=NODES_HELP),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    upgrade: bool = typer.Option(False, help="Replace an agent whose wheel or settings differ (restarts it)."),
    wheels: Path | None = typer.Option(None, help="Dependency wheels to carry to the nodes (pip --no-index "
                                       "--find-links): for nodes without a package index. A fleetbench-*.whl "
                                       "in it is used instead of building one (without --source)."),
    source: Path | None = typer.Option(None, help="fleetbench checkout to build the wheel from; default: the "
                                       "one ctl runs from."),
    python: str | None = typer.Option(None, help="Python on the nodes that already has fleetbench's "
                                      "dependencies: the venv sees its packages and fleetbench is installed "
                                      "--no-deps. Overrides deploy.python."),
    certs: Path | None = typer.Option(None, help="Folder of `ctl certs init` (default: the folder of the "
                                      "fleet file's tls.ca)."),
    service: str | None = typer.Option(None, help="auto (systemd when it runs there), systemd or process "
                                       "(a supervised background process). Overrides deploy.service."),
    ssh_user: str | None = typer.Option(None, help=SSH_HELP.format("user")),
    ssh_port: int | None = typer.Option(None, help=SSH_HELP.format("port")),
    ssh_key: Path | None = typer.Option(None, help=SSH_HELP.format("key") + " Default: the SSH agent."),
    known_hosts: Path | None = typer.Option(None, help=SSH_HELP.format("known_hosts")),
    verify_timeout: float = typer.Option(VERIFY_TIMEOUT_S, help="Seconds to wait for the agent's Ping."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Install and start the agent on nodes over SSH, verify it with Ping; a no-op where it already runs.

    Exit codes: 0 every node runs the agent, 1 a node keeps a different version (pass --upgrade),
    2 a node failed or bad input."""
    from .. import deploy as dp  # asyncssh: only when deploying

    check_service(service)
    node_list = apply_ssh_flags(resolve_nodes(nodes, fleet_path(fleet)), ssh_user, ssh_port, ssh_key,
                                known_hosts)
    with tempfile.TemporaryDirectory(prefix="fleetbench-deploy-") as tmp:
        wheel = dp.prepare_wheel(wheels, source, Path(tmp))
        opts = dp.Options(wheel=wheel, upgrade=upgrade, wheels_dir=wheels, python=python, certs_dir=certs,
                          service=service, verify_timeout_s=verify_timeout)
        results = run_async(dp.deploy_all(node_list, opts))
    print_results(results, as_json)
    for r in results:
        if r.action == "failed":
            typer.echo(f"error: {r.detail if r.detail.startswith(r.node) else f'{r.node}: {r.detail}'}",
                       err=True)
    raise typer.Exit(dp.exit_code(results))


@cli_errors
def undeploy(
    nodes: str = typer.Option(..., "--nodes", "-n", help=NODES_HELP),
    fleet: Path | None = typer.Option(None, help=FLEET_HELP),
    purge_data: bool = typer.Option(False, help="Also delete the agent's data dir (job results)."),
    service: str | None = typer.Option(None, help="Where no manifest says: auto, systemd or process."),
    ssh_user: str | None = typer.Option(None, help=SSH_HELP.format("user")),
    ssh_port: int | None = typer.Option(None, help=SSH_HELP.format("port")),
    ssh_key: Path | None = typer.Option(None, help=SSH_HELP.format("key")),
    known_hosts: Path | None = typer.Option(None, help=SSH_HELP.format("known_hosts")),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Stop the agent and remove what `ctl deploy` installed; the data dir stays unless --purge-data."""
    from .. import deploy as dp

    check_service(service)
    node_list = apply_ssh_flags(resolve_nodes(nodes, fleet_path(fleet)), ssh_user, ssh_port, ssh_key,
                                known_hosts)
    results = run_async(dp.undeploy_all(node_list, purge_data, service))
    print_results(results, as_json)
    for r in results:
        if r.action == "failed":
            typer.echo(f"error: {r.detail}", err=True)
    raise typer.Exit(dp.exit_code(results))
