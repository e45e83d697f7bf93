"""`ctl demo`: three agents and three simulated endpoints on loopback, a built-in plan (controller/demo.py).

The run goes to the default store and its reports to the default report folder, as `ctl run`'s do, so
`ctl runs`, `ctl show latest` and `ctl report latest` find it; the agents' scratch space is a cache folder,
never the current directory."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import typer

from fleetbench.errors import ConfigError

from ..store import Store, default_db_path
from .common import DB_HELP, OUT_HELP, QUIET_HELP, cli_errors, default_out_dir, make_progress

# What the demo's local agents and simulated endpoints import: `fleetbench[agent]`, not the plain controller.
AGENT_PACKAGES = ("evalscope", "grpc_health", "aiohttp", "tokenizers")


@cli_errors
def demo(
    db: Path | None = typer.Option(None, help=DB_HELP),
    out_dir: Path | None = typer.Option(None, "--out", help=OUT_HELP),
    workdir: Path | None = typer.Option(None, help="Scratch space of the demo's agents and endpoints (tokenizer, "
                                                   "dataset, logs). Default: the user's cache dir."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Start 3 agents and 3 simulated endpoints on loopback and run a built-in plan on them."""
    missing = [name for name in AGENT_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"ctl demo runs agents here, which need {', '.join(missing)}: "
                          "pip install 'fleetbench[agent]' (or, from a checkout, pip install -e '.[agent]')")
    from ..demo import default_workdir, run_demo  # the tokenizer and the local fleet: only for the demo

    store = Store(db or default_db_path())
    raise typer.Exit(run_demo(workdir or default_workdir(), make_progress(quiet, False), store,
                              out_dir or default_out_dir()))
