"""The agent's gRPC server: the Agent service, grpc.health.v1, optional mutual TLS."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from fleetbench.errors import ConfigError, SecurityError
from fleetbench.v1 import agent_pb2_grpc as pb_grpc

from . import clock
from .confine import Confinement
from .hardware_probe import STANDIN_ENV
from .jobs import JobManager
from .service import AgentService

log = logging.getLogger("fleetbench.agent")
SERVICE_NAME = "fleetbench.v1.Agent"
MAX_MESSAGE = 64 * 1024 * 1024  # what the agent sends: a batch of records
MAX_REQUEST = 4 * 1024 * 1024  # what it takes: a spec is at most bounds.MAX_SPEC_BYTES (1 MiB)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path


def is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """Mutual TLS: the agent proves itself and accepts only clients signed by the fleet CA."""
    try:
        cert, key, ca = tls.cert.read_bytes(), tls.key.read_bytes(), tls.client_ca.read_bytes()
    except OSError as exc:
        raise SecurityError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


async def serve(listen: str, data_dir: Path, tls: TlsFiles | None = None, insecure: bool = False,
                ready: asyncio.Event | None = None, confinement: Confinement | None = None,
                min_free_bytes: int | None = None, max_job_rss_bytes: int | None = None) -> None:
    if tls is None and not insecure and not is_loopback(listen):
        raise ConfigError(
            f"refusing to listen on {listen} without TLS: give --tls-cert/--tls-key/--tls-ca, "
            "listen on 127.0.0.1, or pass --insecure"
        )
    os.umask(0o077)  # everything the agent and its jobs write (records, logs, evalscope's outputs) is private
    if clock.skew_s():
        log.warning("agent clock shifted by %+.3f s (%s): for tests only", clock.skew_s(), clock.SKEW_ENV)
    if os.environ.get(STANDIN_ENV):
        log.warning("%s is set: hardware jobs use CPU stand-ins, not the accelerators: for tests only", STANDIN_ENV)
    for name in (clock.PREPARE_DELAY_ENV, clock.START_DELAY_ENV):
        if clock.env_s(name):
            log.warning("%s=%s: for tests only", name, clock.env_s(name))
    confinement = confinement or Confinement.of(data_dir)
    jobs = JobManager(data_dir, confinement=confinement, max_job_rss_bytes=max_job_rss_bytes) \
        if min_free_bytes is None else JobManager(data_dir, confinement=confinement, min_free_bytes=min_free_bytes,
                                                  max_job_rss_bytes=max_job_rss_bytes)
    jobs.recover()
    jobs.start_watchdog()
    server = grpc.aio.server(
        options=[("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_REQUEST)]
    )
    pb_grpc.add_AgentServicer_to_server(AgentService(jobs), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if tls is not None:
        port = server.add_secure_port(listen, server_credentials(tls))
    else:
        port = server.add_insecure_port(listen)
    if port == 0:
        raise ConfigError(f"cannot listen on {listen} (address in use or invalid)")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("fleetbench agent listening on %s (%s), data dir %s", listen, "mTLS" if tls else "plaintext", data_dir)
    log.info("jobs may read under %s and send load to %s", confinement.describe_roots(),
             confinement.describe_endpoints())
    print(f"fleetbench-agent listening on {listen.rsplit(':', 1)[0]}:{port}", flush=True)
    if ready is not None:
        ready.set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: cancelling running jobs")
    await health_servicer.enter_graceful_shutdown()
    await jobs.shutdown()
    await server.stop(grace=2)
