"""`ctl demo`: three agents and three simulated endpoints on loopback, a built-in plan (controller/demo.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import QUIET_HELP, cli_errors, make_progress


@cli_errors
def demo(
    workdir: Path = typer.Option(Path("fleetbench-demo"), help="Where the demo's agents, store and report go."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Start 3 agents and 3 simulated endpoints on loopback and run a built-in plan on them."""
    from ..demo import run_demo  # the tokenizer and the local fleet: only for the demo

    raise typer.Exit(run_demo(workdir, make_progress(quiet, False)))
