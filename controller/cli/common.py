"""What every `ctl` command shares: option help texts, the error wrapper, the progress sink, the console."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from typer.core import TyperOption

from fleetbench.errors import FleetbenchError

from ..progress import JsonProgress, ProgressSink, QuietProgress, RichProgress

T = TypeVar("T")

NODES_HELP = ("Comma-separated node names from the fleet file, label=value selectors (every node with that "
              "label), or host:port addresses.")
FLEET_HELP = "Fleet file (name -> agent address). Env FLEETBENCH_FLEET; default ./fleet.yaml."
DB_HELP = "Results store (SQLite). Env FLEETBENCH_DB; default under the user's data dir."
PLAN_HELP = "Acceptance plan (YAML, schema v1; see docs/plan.md)."
QUIET_HELP = "Milestones only, no live bars."
JSON_EVENTS_HELP = ("Machine output: progress as JSON lines on stdout, the last one a run_finished event (run id, "
                    "verdict, reasons, report paths); errors stay on stderr.")
JSON_HELP = "Print JSON."
OUT_HELP = "Folder for the reports. Env FLEETBENCH_OUT; default ./fleetbench-out."


def default_out_dir() -> Path:
    """The one default place of every run's reports (`ctl run`, `ctl resume`, `ctl report`, `ctl demo`)."""
    return Path(os.environ.get("FLEETBENCH_OUT", "fleetbench-out"))

out = Console()


def _flag_type(self: TyperOption, ctx: Any) -> str | None:
    """Typer ≥ 0.19 prints `<bool>` after every on/off flag in --help, as if it took a value; a flag shows none."""
    return None if self.is_flag or _display_type_rich is None else _display_type_rich(self, ctx)


# Only where that Typer has the method: typer 0.27 (a GPU server image's, within our floor 0.12) has none, and an
# unguarded patch made `ctl` fail to import there with an AttributeError.
_display_type_rich = getattr(TyperOption, "display_type_rich", None)
if _display_type_rich is not None:
    TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign,assignment]


def wide_console() -> Console:
    """A fleet table is wide: do not squeeze it into 80 columns when stdout is a pipe or a file."""
    return Console() if sys.stdout.isatty() else Console(width=250)


def fleet_path(value: Path | None) -> Path:
    return value or Path(os.environ.get("FLEETBENCH_FLEET", "fleet.yaml"))


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def cli_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """One line and an exit code for every error; a traceback only with FLEETBENCH_DEBUG=1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except FleetbenchError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:  # `ctl runs | head`: the reader left; not an error of ours
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("FLEETBENCH_DEBUG"):
                traceback.print_exc()
            fail(f"internal error: {type(exc).__name__}: {exc} (set FLEETBENCH_DEBUG=1 for a traceback)", 3)
        raise AssertionError("unreachable")

    return wrapper


def make_progress(quiet: bool, json_events: bool) -> ProgressSink:
    if json_events:
        return JsonProgress()
    if quiet or not sys.stderr.isatty():
        return QuietProgress()
    return RichProgress()
