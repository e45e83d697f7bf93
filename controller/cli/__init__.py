"""`ctl`: the fleetbench controller. Thin: every command parses its options, calls the library and prints.

One module per command group; this module only assembles the app (the order below is the order of
`ctl --help`). The modules import .common and the library, never this module, so there is no cycle.
"""

from __future__ import annotations

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


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # raised outside a command (defensive)
        fail(str(exc))


if __name__ == "__main__":
    main()
