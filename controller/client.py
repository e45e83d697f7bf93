"""A thin async client for one agent; every gRPC failure becomes a NodeError."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import grpc

from fleetbench.columns import RecordColumns
from fleetbench.errors import ConfigError, ConfinementError, NodeError, SecurityError
from fleetbench.v1 import agent_pb2 as pb
from fleetbench.v1 import agent_pb2_grpc as pb_grpc
from fleetbench.wire_columns import columns_from_batch, columns_from_pb

from .fleet import Node, TlsClient

MAX_MESSAGE = 64 * 1024 * 1024
RPC_TIMEOUT_S = 15.0
RESULT_TIMEOUT_S = 600.0  # every record of one job; an agent that stops answering mid-stream is an error, not a hang
T = TypeVar("T")


@dataclass(frozen=True)
class ClockSample:
    offset_s: float  # agent clock - controller clock
    rtt_s: float


@dataclass(frozen=True)
class ResultSummary:
    state: int
    error: str
    evalscope_summary: dict[str, Any]
    evalscope_percentiles: list[Any]
    evalscope_version: str
    record_count: int
    result: dict[str, Any] = field(default_factory=dict)


def channel_credentials(tls: TlsClient) -> grpc.ChannelCredentials:
    try:
        ca, cert, key = tls.ca.read_bytes(), tls.cert.read_bytes(), tls.key.read_bytes()
    except OSError as exc:
        raise SecurityError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


class AgentClient:
    def __init__(self, node: Node, credentials: grpc.ChannelCredentials | None = None) -> None:
        self.node = node
        options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
        if credentials is None and node.tls is not None:
            credentials = channel_credentials(node.tls)
        if credentials is not None:
            self.channel = grpc.aio.secure_channel(node.address, credentials, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(node.address, options=options)
        self.stub = pb_grpc.AgentStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    def _error(self, exc: grpc.aio.AioRpcError, doing: str) -> Exception:
        detail = (exc.details() or "").splitlines()[0] if exc.details() else exc.code().name
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            return ConfigError(f"{self.node.name}: {doing} rejected: {detail}")
        if exc.code() == grpc.StatusCode.PERMISSION_DENIED:  # the agent's allow-lists (--allow-path, -endpoint)
            return ConfinementError(f"{self.node.name}: {doing} refused: {detail}")
        low = detail.lower()
        if self.node.tls is None and "socket closed" in low:
            return NodeError(f"{self.node.name} ({self.node.address}) closed the connection: the agent probably "
                             "requires mutual TLS; add `tls: {ca, cert, key}` to the fleet file")
        if any(w in low for w in ("ssl", "tls", "handshake", "certificate", "socket closed")) and (
                self.node.tls is not None or "ssl" in low or "handshake" in low):
            return NodeError(f"{self.node.name} ({self.node.address}): TLS connection refused ({detail}); check that "
                             "the agent and the fleet file use certificates of the same fleet CA, still valid")
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return NodeError(f"{self.node.name} ({self.node.address}) is unreachable: {detail}")
        return NodeError(f"{self.node.name}: {doing} failed: {detail}")

    async def _unary(self, doing: str, call: Awaitable[T]) -> T:
        """One unary RPC; a gRPC failure becomes a NodeError or ConfigError naming this node."""
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, doing) from None

    async def ping(self, timeout: float = 5.0) -> pb.PingReply:
        return await self._unary("ping", self.stub.Ping(pb.PingRequest(), timeout=timeout, wait_for_ready=False))

    async def clock(self, samples: int = 5) -> ClockSample:
        """Clock offset from several pings, keeping the lowest-RTT sample (NTP-style midpoint)."""
        best: ClockSample | None = None
        for _ in range(samples):
            t0 = time.time()
            reply = await self.ping()
            t1 = time.time()
            sample = ClockSample(offset_s=reply.wall_time - (t0 + t1) / 2, rtt_s=t1 - t0)
            if best is None or sample.rtt_s < best.rtt_s:
                best = sample
        assert best is not None
        return best

    async def inventory(self, endpoint_url: str = "", timeout: float = 30.0) -> pb.InventoryReply:
        return await self._unary("inventory", self.stub.GetInventory(
            pb.InventoryRequest(endpoint_url=endpoint_url), timeout=timeout))

    async def start_job(self, job_id: str, kind: int, spec: dict[str, Any], start_at: float,
                        armed: bool = False, deadline_s: float = 0.0) -> pb.JobStatus:
        """`armed`: the job prepares, reports READY and waits for `start_at_instant` (two-phase start).
        `deadline_s` (> 0): the agent cancels the job that long after it accepted it."""
        req = pb.StartJobRequest(job_id=job_id, kind=cast(pb.JobKind, kind), spec_json=json.dumps(spec),
                                 start_at=start_at, armed=armed, deadline_s=deadline_s)
        return await self._unary("start job", self.stub.StartJob(req, timeout=RPC_TIMEOUT_S))

    async def start_at_instant(self, job_id: str, start_at: float) -> pb.JobStatus:
        """The second phase: the instant, on this agent's clock, at which a READY job sends load."""
        return await self._unary("start job at an instant", self.stub.StartAt(
            pb.StartAtRequest(job_id=job_id, start_at=start_at), timeout=RPC_TIMEOUT_S))

    async def get_job(self, job_id: str, timeout: float = RPC_TIMEOUT_S) -> pb.JobStatus:
        return await self._unary("get job", self.stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=timeout))

    async def cancel_job(self, job_id: str, timeout: float = RPC_TIMEOUT_S) -> pb.JobStatus:
        return await self._unary("cancel job", self.stub.CancelJob(pb.CancelJobRequest(job_id=job_id),
                                                                   timeout=timeout))

    async def watch(self, job_id: str, from_seq: int = 0) -> AsyncIterator[pb.JobEvent]:
        try:
            async for ev in self.stub.WatchJob(pb.WatchJobRequest(job_id=job_id, from_seq=from_seq)):
                yield ev
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, "watch job") from None

    async def result(self, job_id: str) -> tuple[ResultSummary, RecordColumns]:
        """The job's summary and every record, as columns (also a sequence of RequestRecord)."""
        summary: ResultSummary | None = None
        batches: list[RecordColumns] = []
        try:
            # columns: an older agent ignores the ask and sends RequestRecord batches, decoded as well
            async for chunk in self.stub.GetJobResult(pb.GetJobResultRequest(job_id=job_id, columns=True),
                                                      timeout=RESULT_TIMEOUT_S):
                part = chunk.WhichOneof("part")
                if part == "summary":
                    s = chunk.summary
                    summary = ResultSummary(
                        state=s.state, error=s.error,
                        evalscope_summary=json.loads(s.evalscope_summary_json or "{}"),
                        evalscope_percentiles=json.loads(s.evalscope_percentiles_json or "[]"),
                        evalscope_version=s.evalscope_version, record_count=s.record_count,
                        result=json.loads(s.result_json or "{}"),
                    )
                elif part == "columns":
                    batches.append(columns_from_batch(chunk.columns, self.node.name))
                elif part == "records":
                    batches.append(columns_from_pb(chunk.records.records))
                else:  # a newer agent's kind of chunk: skipping it would drop records without a word
                    raise NodeError(f"{self.node.name}: the agent sent a result chunk this controller cannot read "
                                    f"(job {job_id}); upgrade the controller to the agent's version")
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, "fetch results") from None
        if summary is None:
            raise NodeError(f"{self.node.name}: the agent sent no result summary for job {job_id}")
        records = RecordColumns.concat(batches)
        # a stream cut short would be figures of part of the load (a job that did not succeed is judged by its state)
        if summary.state == pb.JOB_STATE_SUCCEEDED and len(records) != summary.record_count:
            raise NodeError(f"{self.node.name}: the agent announced {summary.record_count:,} records for job {job_id} "
                            f"and sent {len(records):,}; its figures are not used")
        return summary, records
