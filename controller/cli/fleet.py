"""`ctl fleet schema`."""

from __future__ import annotations

import json

import typer

from fleetbench.fleet_schema import fleet_json_schema

from .common import cli_errors

app = typer.Typer(no_args_is_help=True, help="Work with fleet files.")


@app.command("schema")
@cli_errors
def fleet_schema() -> None:
    """Print the fleet file's JSON Schema, for editors (docs/plan.md: `# yaml-language-server: $schema=…`)."""
    typer.echo(json.dumps(fleet_json_schema(), indent=2, ensure_ascii=False))
