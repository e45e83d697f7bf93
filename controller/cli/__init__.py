"""`ctl`: the fleetbench controller. Thin: every command parses its options, calls the library and prints.

One module per command group; this module only assembles the app (the order below is the order of
`ctl --help`). The modules import .common and the library, never this module, so there is no cycle.
"""

from __future__ import annotations

import sys

import typer

from fleetbench.errors import ConfigError

from ..verdict import EXIT_HELP
from . import certs, demo, deploy, fleet, inventory, ping, plan, run
from .common import fail

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="fleetbench controller: run acceptance plans on a fleet of inference servers and report.\n\n"
         + EXIT_HELP,
)

for command in (ping.version, ping.ping,
                run.run, run.preflight, run.report, run.runs, run.show, run.compare, run.resume,
                demo.demo, deploy.deploy, deploy.undeploy):
    app.command()(command)

app.add_typer(plan.app, name="plan")
app.add_typer(fleet.app, name="fleet")
app.add_typer(certs.app, name="certs")
app.add_typer(inventory.app, name="inventory")


NODES_COMMANDS = ("run", "preflight", "ping", "deploy", "undeploy")  # take --nodes and no argument


def spaced_nodes(argv: list[str]) -> str | None:
    """`ctl run --nodes n1 n2 …`: the shell split the list; click would only say "unexpected extra argument
    (n2)". The one-line error that names the mistake, or None."""
    if not argv or argv[0] not in NODES_COMMANDS:
        return None
    for i, arg in enumerate(argv):
        if arg in ("--nodes", "-n") and i + 2 < len(argv) + 1:
            extra = []
            for nxt in argv[i + 2:]:
                if nxt.startswith("-"):
                    break
                extra.append(nxt)
            if extra and i + 1 < len(argv):
                names = [argv[i + 1], *extra]
                return (f"--nodes takes one comma-separated list: --nodes {','.join(names)} (the shell passed "
                        f"{' '.join(extra)} as separate argument(s))")
    return None


def main() -> None:
    mistake = spaced_nodes(sys.argv[1:])
    if mistake:
        typer.echo(f"error: {mistake}", err=True)
        sys.exit(2)
    try:
        app()
    except ConfigError as exc:  # raised outside a command (defensive)
        fail(str(exc))


if __name__ == "__main__":
    main()
