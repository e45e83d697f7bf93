"""The gRPC servicer: translates between protobuf messages and the job manager."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import cast

import grpc

from fleetbench import __version__
from fleetbench.errors import ConfigError, ConfinementError, FleetbenchError, JobError
from fleetbench.jobs_schema import API_VERSION
from fleetbench.records import RequestRecord
from fleetbench.v1 import agent_pb2 as pb
from fleetbench.v1 import agent_pb2_grpc as pb_grpc

from . import clock
from .evalscope_adapter import evalscope_version
from .jobs import JobManager
from .store import EventRow, JobRow

DEFAULT_CHUNK = 500
MAX_CHUNK = 5000
MAX_CHUNK_GAPS = 1 << 20  # 8 MiB of inter-token gaps a chunk, whatever the outputs' length (limit: 64 MiB)
INVENTORY_DEADLINE_S = 10.0


def _state(value: int) -> pb.JobState:
    return cast(pb.JobState, value)


def _kind(value: int) -> pb.JobKind:
    return cast(pb.JobKind, value)


def status_pb(row: JobRow) -> pb.JobStatus:
    return pb.JobStatus(
        job_id=row.job_id, kind=_kind(row.kind), state=_state(row.state), error=row.error, created_at=row.created_at,
        started_at=row.started_at, finished_at=row.finished_at, last_seq=row.last_seq,
        record_count=row.record_count, ready_at=row.ready_at or 0.0, prepare_s=row.prepare_s or 0.0,
    )


def event_pb(ev: EventRow) -> pb.JobEvent:
    p = ev.payload
    return pb.JobEvent(
        seq=ev.seq, job_id=ev.job_id, time=ev.time, state=_state(ev.state),
        done=int(p.get("done", 0)), total=int(p.get("total", 0)), failed=int(p.get("failed", 0)),
        output_tps=float(p.get("output_tps", 0.0)), elapsed_s=float(p.get("elapsed_s", 0.0)),
        eta_s=float(p.get("eta_s", -1.0)), message=str(p.get("message", "")),
    )


def record_pb(r: RequestRecord) -> pb.RequestRecord:
    return pb.RequestRecord(
        index=r.index, start_time=r.start_time, end_time=r.end_time, success=r.success, ttft_s=r.ttft_s,
        latency_s=r.latency_s, input_tokens=r.input_tokens, output_tokens=r.output_tokens, tpot_s=r.tpot_s,
        itl_s=list(r.itl_s), error=r.error, point=r.point,
    )


async def _abort(context: grpc.aio.ServicerContext, exc: FleetbenchError) -> None:
    code = grpc.StatusCode.INVALID_ARGUMENT if isinstance(exc, ConfigError) else grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, ConfinementError):
        code = grpc.StatusCode.PERMISSION_DENIED
    if isinstance(exc, JobError) and str(exc).startswith("no job"):
        code = grpc.StatusCode.NOT_FOUND
    await context.abort(code, str(exc))


def record_chunks(records: Iterable[RequestRecord], size: int,
                  max_gaps: int = MAX_CHUNK_GAPS) -> Iterator[list[RequestRecord]]:
    """Records in chunks of at most `size` records and `max_gaps` gaps (one record of more goes alone): 5000
    records of 4000-token outputs would be a 160 MB message, which the controller's 64 MiB limit refuses."""
    chunk: list[RequestRecord] = []
    gaps = 0
    for rec in records:
        if chunk and (len(chunk) >= size or gaps + len(rec.itl_s) > max_gaps):
            yield chunk
            chunk, gaps = [], 0
        chunk.append(rec)
        gaps += len(rec.itl_s)
    if chunk:
        yield chunk


class AgentService(pb_grpc.AgentServicer):
    def __init__(self, jobs: JobManager) -> None:
        self.jobs = jobs

    async def Ping(self, request: pb.PingRequest, context: grpc.aio.ServicerContext) -> pb.PingReply:
        return pb.PingReply(
            agent_version=__version__, hostname=socket.gethostname(), api_version=API_VERSION,
            evalscope_version=evalscope_version(), wall_time=clock.now(),
        )

    async def GetInventory(self, request: pb.InventoryRequest, context: grpc.aio.ServicerContext) -> pb.InventoryReply:
        from .inventory import collect

        if request.endpoint_url:  # the engine probe is a request too: only to an allowed endpoint
            try:
                self.jobs.confinement.check_url("endpoint_url", request.endpoint_url)
            except FleetbenchError as exc:
                await _abort(context, exc)
                raise
        inv = await asyncio.to_thread(collect, request.endpoint_url or None, INVENTORY_DEADLINE_S)
        return pb.InventoryReply(
            hostname=inv.hostname, cpu_model=inv.cpu_model, cpu_count=inv.cpu_count,
            memory_total_bytes=inv.memory_total_bytes, os=inv.os, kernel=inv.kernel,
            gpus=[
                pb.Gpu(index=g.index, name=g.name, uuid=g.uuid, memory_total_mib=g.memory_total_mib,
                       driver_version=g.driver_version, cuda_version=g.cuda_version)
                for g in inv.gpus
            ],
            detail_json=inv.model_dump_json(), collected_at=time.time(),
        )

    async def StartJob(self, request: pb.StartJobRequest, context: grpc.aio.ServicerContext) -> pb.JobStatus:
        try:
            row = await self.jobs.start(request.job_id, request.kind, request.spec_json, request.start_at,
                                        armed=request.armed, deadline_s=request.deadline_s)
        except FleetbenchError as exc:
            await _abort(context, exc)
            raise
        return status_pb(row)

    async def StartAt(self, request: pb.StartAtRequest, context: grpc.aio.ServicerContext) -> pb.JobStatus:
        try:
            return status_pb(await self.jobs.start_at(request.job_id, request.start_at))
        except FleetbenchError as exc:
            await _abort(context, exc)
            raise

    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.JobStatus:
        try:
            return status_pb(self.jobs.get(request.job_id))
        except FleetbenchError as exc:
            await _abort(context, exc)
            raise

    async def CancelJob(self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext) -> pb.JobStatus:
        try:
            return status_pb(await self.jobs.cancel(request.job_id))
        except FleetbenchError as exc:
            await _abort(context, exc)
            raise

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.JobEvent]:
        try:
            async for ev in self.jobs.watch(request.job_id, request.from_seq):
                yield event_pb(ev)
        except FleetbenchError as exc:
            await _abort(context, exc)

    async def GetJobResult(
        self, request: pb.GetJobResultRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ResultChunk]:
        try:
            res = self.jobs.result(request.job_id)
        except FleetbenchError as exc:
            await _abort(context, exc)
            return
        yield pb.ResultChunk(
            summary=pb.JobSummary(
                job_id=res.row.job_id, state=_state(res.row.state), error=res.row.error,
                evalscope_summary_json=json.dumps(res.evalscope_summary),
                evalscope_percentiles_json=json.dumps(res.evalscope_percentiles),
                evalscope_version=evalscope_version(), record_count=res.record_count,
                result_json=res.result.to_wire(),
            )
        )
        size = min(request.chunk_size or DEFAULT_CHUNK, MAX_CHUNK)
        chunks = record_chunks(self.jobs.records(request.job_id), size)
        if request.columns:
            # numpy loads here, on the first columns answer, not when the agent starts
            from fleetbench.wire_columns import batch_from_records

            for rows in chunks:
                yield pb.ResultChunk(columns=batch_from_records(rows))
            return
        for rows in chunks:
            yield pb.ResultChunk(records=pb.RecordBatch(records=[record_pb(r) for r in rows]))
