"""`ctl plan check` and `ctl plan schema`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from fleetbench.plan_schema import plan_json_schema

from ..plan import load_plan
from ..plan_outline import ASSUMPTIONS, fmt_duration, outline
from .common import cli_errors

app = typer.Typer(no_args_is_help=True, help="Work with plan files.")


@app.command("check")
@cli_errors
def plan_check(path: Path = typer.Argument(..., help="Plan file to validate.")) -> None:
    """Validate a plan without running it, and say what it will run: per case the requests each node
    sends, a sweep's points, and a duration range."""
    p = load_plan(path)
    typer.echo(f"{path}: ok — plan {p.name!r}, model {p.model}, {len(p.cases)} case(s): "
               + ", ".join(c.id for c in p.cases))
    cases, total = outline(p)
    for c in cases:
        typer.echo(f"  {c.line()}")
    if total is not None:
        typer.echo(f"load on every node at once: ~{fmt_duration(total[0])} – {fmt_duration(total[1])} "
                   f"({ASSUMPTIONS})")


@app.command("schema")
@cli_errors
def plan_schema() -> None:
    """Print the plan's JSON Schema, for editors (docs/plan.md: `# yaml-language-server: $schema=…`)."""
    typer.echo(json.dumps(plan_json_schema(), indent=2, ensure_ascii=False))
