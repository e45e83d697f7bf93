"""`fleetbench-agent`: the long-running agent on each server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

from fleetbench import __version__
from fleetbench.errors import FleetbenchError
from fleetbench.jobs_schema import MIN_FREE_BYTES

from .confine import Confinement
from .server import TlsFiles, serve

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="fleetbench agent: inventory and benchmark jobs for one server, over gRPC.")


@app.callback()
def _root() -> None:
    """fleetbench agent."""


@app.command("serve")
def serve_cmd(
    listen: str = typer.Option("127.0.0.1:50051", help="host:port to listen on (port 0 picks a free one)."),
    data_dir: Path = typer.Option(Path("./fleetbench-agent-data"), help="Where job state and results live."),
    tls_cert: Path | None = typer.Option(None, help="Server certificate (PEM) for mutual TLS."),
    tls_key: Path | None = typer.Option(None, help="Server private key (PEM)."),
    tls_ca: Path | None = typer.Option(None, help="Fleet CA (PEM): only clients it signed may connect."),
    insecure: bool = typer.Option(False, help="Allow plaintext on a non-loopback address (not recommended)."),
    allow_path: list[Path] = typer.Option(
        [], help="A folder jobs may read datasets, tokenizers and eval data from (repeatable; default: the data "
                 "dir). Symlinks and .. are resolved first."),
    allow_endpoint: list[str] = typer.Option(
        [], help="HOST[:PORT] (a name, an IP address or a network like 10.0.0.0/24) jobs may send load to "
                 "(repeatable; default: loopback)."),
    min_free_bytes: int = typer.Option(MIN_FREE_BYTES, help="Refuse to start a job with less free space than "
                                                            "this in the data dir, and stop (FAILED) a running "
                                                            "job when free space falls below it."),
    max_job_rss_bytes: int | None = typer.Option(
        None, min=0, help="Stop (FAILED) a job whose process tree holds more memory (PSS) than this "
                          "(default: the smaller of 8 GiB and half the host's RAM; 0: no budget)."),
    log_level: str = typer.Option("INFO", help="Log level."),
) -> None:
    """Serve the agent API until SIGTERM/SIGINT."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tls = None
    given = [x for x in (tls_cert, tls_key, tls_ca) if x is not None]
    if given and len(given) != 3:
        _fail("--tls-cert, --tls-key and --tls-ca go together")
    if tls_cert and tls_key and tls_ca:
        tls = TlsFiles(tls_cert, tls_key, tls_ca)
    try:
        confinement = Confinement.of(data_dir, [p.absolute() for p in allow_path], allow_endpoint)
        asyncio.run(serve(listen, data_dir, tls=tls, insecure=insecure, confinement=confinement,
                          min_free_bytes=min_free_bytes, max_job_rss_bytes=max_job_rss_bytes))
    except FleetbenchError as exc:
        _fail(str(exc), exc.exit_code)


@app.command("version")
def version_cmd() -> None:
    """Print the agent version."""
    typer.echo(__version__)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
