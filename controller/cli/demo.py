"""`ctl demo`: three agents and three simulated endpoints on loopback, a built-in plan (controller/demo.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import typer

from fleetbench.errors import ConfigError

from .common import QUIET_HELP, cli_errors, make_progress

# What the demo's local agents and simulated endpoints import: `fleetbench[agent]`, not the plain controller.
AGENT_PACKAGES = ("evalscope", "grpc_health", "aiohttp", "tokenizers")


@cli_errors
def demo(
    workdir: Path = typer.Option(Path("fleetbench-demo"), help="Where the demo's agents, store and report go."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Start 3 agents and 3 simulated endpoints on loopback and run a built-in plan on them."""
    missing = [name for name in AGENT_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"ctl demo runs agents here, which need {', '.join(missing)}: "
                          "pip install 'fleetbench[agent]' (or, from a checkout, pip install -e '.[agent]')")
    from ..demo import run_demo  # the tokenizer and the local fleet: only for the demo

    raise typer.Exit(run_demo(workdir, make_progress(quiet, False)))
