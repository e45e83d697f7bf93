"""Preflight: before the first request of a run (and as `ctl preflight`), every node is checked in parallel.

Per node: the agent answers and speaks this controller's API and version; then one preflight job
(kind 5, agent/preflight_job.py) checks evalscope's parts the plan needs, the tokenizer, every
dataset, free space in the agent's data dir, and sends ONE request of the exact shape of each case
(evalscope's own API plugin and HTTP client, a short prompt) and one tiny request per eval case. Any
failure is a `PreflightProblem`: one line per node and problem, with the endpoint's own answer and a
hint. A node that does not finish within the deadline is named as the slow one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fleetbench import __version__
from fleetbench.errors import ConfigError, ConfinementError, FleetbenchError, NodeError
from fleetbench.jobs_schema import (
    API_VERSION,
    MIN_FREE_BYTES,
    CheckRow,
    EvalEntry,
    JobKind,
    JobOutcome,
    JobState,
    PerfEntry,
    PerfSpec,
    PreflightSpec,
    check_job_id,
)

from .client import AgentClient
from .fleet import Node
from .follow import follow_job
from .plan import CapacityCase, EvalCase, HardwareCase, Plan, SweepCase
from .progress import ProgressCounts, ProgressSink
from .specs import eval_spec, perf_spec

DEADLINE_S = float(os.environ.get("FLEETBENCH_PREFLIGHT_DEADLINE_S", "120"))  # per node, the whole preflight
PROGRESS_ID = "preflight"
JOB_DONE = {s.value for s in JobState if s.terminal}
STATE_NAMES: dict[int, str] = {JobState.FAILED: "failed", JobState.CANCELLED: "was cancelled",
                               JobState.INTERRUPTED: "was interrupted"}
WATCH_RETRIES = 3
BUSY_RE = re.compile(r"busy with job (\S+?)[;,]?(\s|$)")


# --- what the agent gets ----------------------------------------------------------------------------


def _one_request(spec: PerfSpec) -> PerfSpec:
    """A case's perf spec as ONE request: the same body fields, none of the load (a plain perf spec: one
    request of a long-context case's shape)."""
    return PerfSpec.model_validate({**spec.model_dump(), "number": 1, "parallel": 1, "workers": 1, "rate": -1})


def preflight_spec(plan: Plan, node: Node, min_free_bytes: int = MIN_FREE_BYTES,
                   request_timeout_s: int = 60) -> PreflightSpec:
    """The preflight job's spec for `node`: each perf and long-context case's spec and each
    distinct (input, output) shape of a sweep as one request, each eval case's spec, exactly as the run's
    jobs get them on that node (its endpoint override included)."""
    perf: list[PerfEntry] = []
    evals: list[EvalEntry] = []
    for case in plan.cases:
        if isinstance(case, HardwareCase):
            continue  # no request: the hardware job checks its own tools and says SKIPPED for a missing one
        if isinstance(case, EvalCase):
            evals.append(EvalEntry(case_id=case.id, spec=eval_spec(plan, case, node)))
        elif isinstance(case, SweepCase):
            seen: list[PerfSpec] = []
            for _label, point in case.points():  # points differ in parallel/number too: one per body shape
                shape = _one_request(perf_spec(plan, point, node))
                if shape not in seen:
                    seen.append(shape)
                    perf.append(PerfEntry(case_id=f"{case.id}@in{point.input_tokens}-out{point.output_tokens}",
                                          spec=shape))
        elif isinstance(case, CapacityCase):  # every probe has the same request shape
            perf.append(PerfEntry(case_id=case.id,
                                  spec=_one_request(perf_spec(plan, case.probe(case.lo, 1), node))))
        else:
            perf.append(PerfEntry(case_id=case.id, spec=_one_request(perf_spec(plan, case, node))))
    return PreflightSpec(perf=tuple(perf), evals=tuple(evals), min_free_bytes=min_free_bytes,
                         request_timeout_s=request_timeout_s, node=node.name)


# --- what comes back ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreflightProblem:
    node: str
    case_id: str  # "" for a node-wide check (agent, tokenizer, free space, endpoint)
    check: str  # agent, job, deadline, free_space, evalscope, tokenizer, dataset_path, dataset, endpoint, request
    detail: str
    status: int | None = None  # HTTP status of the endpoint's reply, when it answered
    body: str = ""  # the reply's body (or the error), one line
    hint: str = ""

    def line(self) -> str:
        """`n1: case perf1: endpoint answered HTTP 422: {…}; hint: …`"""
        what = f"case {self.case_id}" if self.case_id else self.check
        body = f": {self.body}" if self.body else ""
        hint = f"; hint: {self.hint}" if self.hint else ""
        return f"{self.node}: {what}: {self.detail}{body}{hint}"


@dataclass(frozen=True)
class PreflightReport:
    nodes: tuple[str, ...]
    problems: list[PreflightProblem] = field(default_factory=list)
    checks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # every check each node ran, ok or not
    elapsed_s: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """One line per problem, in node order."""
        return [p.line() for p in self.problems]

    def failed_nodes(self) -> list[str]:
        bad = {p.node for p in self.problems}
        return [n for n in self.nodes if n in bad]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "nodes": list(self.nodes), "problems": [asdict(p) for p in self.problems],
                "checks": self.checks, "elapsed_s": self.elapsed_s}


def compatible_version(controller: str, agent: str) -> bool:
    """Same major version (and, before 1.0, the same minor), as semantic versioning promises compatibility."""
    c, a = (re.match(r"(\d+)\.(\d+)", v) for v in (controller, agent))
    if c is None or a is None:
        return False
    (cmaj, cmin), (amaj, amin) = (tuple(int(x) for x in m.groups()) for m in (c, a))
    return cmaj == amaj and (cmaj > 0 or cmin == amin)


def problems_from_checks(node: str, checks: Sequence[CheckRow]) -> list[PreflightProblem]:
    return [PreflightProblem(node, c.case_id, c.name or "check", c.detail or "failed", c.status, c.body, c.hint)
            for c in checks if not c.ok]


# --- running it ------------------------------------------------------------------------------------


@dataclass
class _NodeRun:
    node: Node
    job_id: str
    phase: str = "connecting to the agent"
    problems: list[PreflightProblem] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def problem(self, check: str, detail: str, body: str = "", hint: str = "", case_id: str = "") -> None:
        self.problems.append(PreflightProblem(self.node.name, case_id, check, detail, None, body, hint))


async def run_preflight(plan: Plan, nodes: Sequence[Node], clients: dict[str, AgentClient], job_prefix: str,
                        progress: ProgressSink, deadline_s: float = DEADLINE_S,
                        min_free_bytes: int = MIN_FREE_BYTES) -> PreflightReport:
    """Preflight on every node at once (job `<job_prefix>.preflight` on each agent; StartJob is idempotent,
    so the same prefix re-attaches to a preflight already run)."""
    job_id = check_job_id(f"{job_prefix}.preflight")
    request_timeout_s = max(5, min(60, int(deadline_s / 2)))
    runs = [_NodeRun(n, job_id) for n in nodes]
    progress.case_started(PROGRESS_ID, [n.name for n in nodes], 0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    elapsed: dict[str, float] = {}

    async def one(run: _NodeRun) -> None:
        client = clients[run.node.name]
        try:
            spec = preflight_spec(plan, run.node, min_free_bytes, request_timeout_s)
        except ConfigError as exc:  # a case the agent would refuse: said before anything is sent
            run.problem("job", "the plan gives a job spec the agent would refuse", body=str(exc),
                        hint="fix the case in the plan")
            return
        try:
            await asyncio.wait_for(_on_node(run, client, spec, progress), deadline_s)
        except TimeoutError:
            run.problem("deadline", f"preflight did not finish within {deadline_s:g} s on {run.node.name} "
                                    f"(last: {run.phase})",
                        hint=f"{run.node.name} is slow (loading evalscope or the tokenizer, or the engine answering); "
                             "check it, or allow more time (FLEETBENCH_PREFLIGHT_DEADLINE_S)")
            with contextlib.suppress(FleetbenchError, TimeoutError):
                await asyncio.wait_for(client.cancel_job(job_id), 10)
        except FleetbenchError as exc:  # the agent stopped answering mid-way
            run.problem("agent", f"the agent stopped answering during preflight (last: {run.phase})", body=str(exc),
                        hint=f"check the agent on {run.node.name} (ctl ping --nodes {run.node.name})")
        finally:
            elapsed[run.node.name] = round(loop.time() - started, 3)

    try:
        await asyncio.gather(*(one(r) for r in runs))
    finally:
        progress.case_finished(PROGRESS_ID)
    return PreflightReport(
        nodes=tuple(n.name for n in nodes),
        problems=[p for r in runs for p in r.problems],
        checks={r.node.name: r.checks for r in runs},
        elapsed_s=elapsed,
    )


async def _on_node(run: _NodeRun, client: AgentClient, spec: PreflightSpec, progress: ProgressSink) -> None:
    name, job_id = run.node.name, run.job_id
    try:
        ping = await client.ping()
    except FleetbenchError as exc:
        said = str(exc).removeprefix(f"{name} ({run.node.address}) is unreachable: ")
        run.problem("agent", f"the agent at {run.node.address} does not answer", body=said,
                    hint=f"is fleetbench-agent running on {name}? (ctl ping --nodes {name}; ctl deploy installs it)")
        return
    if ping.api_version != API_VERSION or not compatible_version(__version__, ping.agent_version):
        run.problem("agent", f"the agent (fleetbench {ping.agent_version or '?'}, API {ping.api_version or '?'}) is "
                             f"not compatible with this controller (fleetbench {__version__}, API {API_VERSION})",
                    hint=f"deploy this fleetbench version on {name} (ctl deploy --nodes {name})")
        return
    run.phase = "starting the preflight job"
    try:
        await client.start_job(job_id, JobKind.PREFLIGHT, spec.model_dump(mode="json"), 0.0)
    except ConfinementError as exc:
        said = str(exc).removeprefix(f"{name}: start job refused: ")
        run.problem("confinement", "the agent may not read that file or send load to that endpoint", body=said,
                    hint=f"allow it on {name}: deploy.allow_paths / deploy.allow_endpoints in the fleet file "
                         "(ctl deploy), or fleetbench-agent --allow-path DIR / --allow-endpoint HOST[:PORT]")
        return
    except ConfigError as exc:
        if "not supported" in str(exc):
            run.problem("agent", f"the agent (fleetbench {ping.agent_version}) does not know preflight jobs",
                        hint=f"update it (ctl deploy --nodes {name})")
        else:
            run.problem("agent", "the agent refused the preflight spec", body=str(exc),
                        hint="the controller and the agent disagree on the spec: deploy the same fleetbench version")
        return
    except NodeError as exc:
        busy = BUSY_RE.search(str(exc))
        if busy:
            holder = busy.group(1)
            run.problem("agent", f"the agent is busy with job {holder}",
                        hint=f"one job runs at a time per agent: wait for {holder} to end, or cancel it on {name}")
        else:
            run.problem("agent", "the preflight job could not be started", body=str(exc),
                        hint=f"check the agent on {name} (ctl ping --nodes {name})")
        return
    run.phase = "preflight job started"
    state = await _follow(run, client, progress)
    summary, _ = await client.result(job_id)
    try:
        found = list(JobOutcome.from_wire(summary.result).preflight or ())
    except ConfigError as exc:
        found = []
        run.problem("job", "the agent's preflight result does not match this controller's", body=str(exc),
                    hint=f"deploy this fleetbench version on {name} (ctl deploy --nodes {name})")
    run.checks = [c.model_dump() for c in found]
    run.problems += problems_from_checks(name, found)
    if state != JobState.SUCCEEDED:
        run.problem("job", f"the preflight job {STATE_NAMES.get(state, f'ended in state {state}')}",
                    body=summary.error, hint=f"see jobs/{job_id}/job.log in the agent's data dir on {name}")
    elif not run.checks:
        run.problem("job", "the preflight job reported no checks",
                    hint=f"see jobs/{job_id}/job.log in the agent's data dir on {name}")


async def _follow(run: _NodeRun, client: AgentClient, progress: ProgressSink) -> int:
    """Watch the job to its end (resuming after a dropped stream); returns its final state."""

    counts = ProgressCounts()  # the final state event carries no counts: the bar keeps its last one

    def on_event(ev: Any) -> None:
        if ev.message:
            run.phase = ev.message
        done, failed, _ = counts.update(ev.done, ev.failed, 0.0)
        progress.node_progress(PROGRESS_ID, run.node.name, done, ev.total, failed, 0.0, -1.0, ev.message)

    state, _ = await follow_job(client, run.job_id, on_event, retries=WATCH_RETRIES)
    return state
