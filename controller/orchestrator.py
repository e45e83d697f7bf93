"""`ctl run`: one plan on many nodes at once, stored as it goes, judged at the end.

Per case: measure each agent's clock offset, start the job on every node at
one common instant (each in its own clock), follow progress, pull every
record, store it, aggregate, judge. A node that fails gets verdict "error"
for the case and the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fleetbench import __version__
from fleetbench.errors import FleetbenchError, NodeError
from fleetbench.records import RequestRecord

from .aggregate import (
    CLUSTER,
    DatasetScore,
    Verdict,
    aggregate_case,
    judge,
    judge_scores,
    parse_scores,
    pool_scores,
    shift_records,
)
from .client import AgentClient, ClockSample
from .fleet import Node
from .plan import EvalCase, PerfCase, Plan, SweepCase
from .progress import ProgressSink
from .store import Store

KIND_PERF, KIND_SWEEP, KIND_EVAL, KIND_LONG_CONTEXT = 1, 2, 3, 4
JOB_DONE = {3, 4, 5, 6}  # succeeded, failed, cancelled, interrupted
JOB_STATE_NAMES = {1: "queued", 2: "running", 3: "succeeded", 4: "failed", 5: "cancelled", 6: "interrupted"}
# How far ahead of "now" the common start instant is set: every job process must have
# loaded evalscope by then, or the start skew (reported) grows.
START_LEAD_S = float(os.environ.get("FLEETBENCH_START_LEAD_S", "8"))  # env: tests and slow nodes
WATCH_RETRIES = 5


@dataclass
class RunOutcome:
    run_id: str
    verdict: str  # pass | fail
    verdicts: list[Verdict] = field(default_factory=list)
    node_errors: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == "pass" else 1


def new_run_id() -> str:
    return time.strftime("r%Y%m%d-%H%M%S", time.localtime()) + "-" + secrets.token_hex(2)


@dataclass(frozen=True)
class Step:
    """One synchronized job on every node: a perf or long-context case, one point of a sweep, or an eval.

    A sweep runs point by point, each point started on all nodes at one common instant (its own
    agent job), so each point's cluster figure is a real simultaneous load; `step_id` is then
    "<case>@<point>" in the store."""

    step_id: str
    kind: int
    perf: PerfCase | None = None
    eval: EvalCase | None = None
    point: str = ""

    @property
    def job_suffix(self) -> str:
        return self.step_id.replace("@", ".")

    @property
    def total(self) -> int:
        return self.perf.number if self.perf else 0

    @property
    def expect(self) -> tuple[Any, ...]:
        return (self.perf or self.eval).expect  # type: ignore[union-attr]


def plan_steps(plan: Plan) -> list[Step]:
    steps: list[Step] = []
    for case in plan.cases:
        if isinstance(case, SweepCase):
            steps += [Step(pc.id, KIND_PERF, perf=pc, point=label) for label, pc in case.points()]
        elif isinstance(case, EvalCase):
            steps.append(Step(case.id, KIND_EVAL, eval=case))
        else:
            steps.append(Step(case.id, KIND_LONG_CONTEXT if case.type == "long_context" else KIND_PERF, perf=case))
    return steps


def eval_spec(plan: Plan, case: EvalCase, node: Node) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "url": node.endpoint or plan.endpoint.url,
        "api_key": plan.endpoint.api_key,
        "model": plan.model,
        "datasets": list(case.datasets),
        "dataset_args": case.dataset_args,
        "generation_config": case.generation_config,
        "eval_batch_size": case.eval_batch_size,
        "stream": case.stream,
    }
    if case.limit is not None:
        spec["limit"] = case.limit
    if case.timeout_s is not None:
        spec["timeout_s"] = case.timeout_s
    return spec


def perf_spec(plan: Plan, case: PerfCase, node: Node) -> dict[str, Any]:
    return {
        "url": node.endpoint or plan.endpoint.url,
        "api": plan.endpoint.api,
        "api_key": plan.endpoint.api_key,
        "model": plan.model,
        "tokenizer_path": plan.tokenizer,
        "dataset": case.dataset,
        "number": case.number,
        "parallel": case.parallel,
        "rate": case.rate,
        "input_tokens": case.input_tokens,
        "output_tokens": case.output_tokens,
        "extra_args": case.extra_args,
        "stream": case.stream,
        "workers": case.workers,
        "range_ratio": case.range_ratio,
    }


class Orchestrator:
    def __init__(self, plan: Plan, nodes: Sequence[Node], store: Store, progress: ProgressSink,
                 clients: dict[str, AgentClient] | None = None) -> None:
        self.plan = plan
        self.nodes = list(nodes)
        self.store = store
        self.progress = progress
        self.clients = clients or {n.name: AgentClient(n) for n in nodes}
        self.clocks: dict[str, ClockSample] = {}

    async def close(self) -> None:
        for c in self.clients.values():
            await c.close()

    async def preflight(self) -> dict[str, Any]:
        """Every agent must answer before anything starts (else: exit 2)."""
        replies = await asyncio.gather(*(self.clients[n.name].ping() for n in self.nodes), return_exceptions=True)
        errors = [str(r) for r in replies if isinstance(r, BaseException)]
        if errors:
            raise NodeError("; ".join(errors))
        return {n.name: r for n, r in zip(self.nodes, replies, strict=True)}

    async def measure_clocks(self) -> None:
        samples = await asyncio.gather(*(self.clients[n.name].clock() for n in self.nodes), return_exceptions=True)
        for n, s in zip(self.nodes, samples, strict=True):
            if isinstance(s, ClockSample):
                self.clocks[n.name] = s

    async def run(self, run_id: str | None = None) -> RunOutcome:
        pings = await self.preflight()
        run_id = run_id or new_run_id()
        self.store.create_run(run_id, self.plan.name, self.plan.model, self.plan.source,
                              [n.name for n in self.nodes], __version__)
        await self.measure_clocks()
        for n in self.nodes:
            clock = self.clocks.get(n.name, ClockSample(0.0, math.nan))
            self.store.add_node(
                run_id, n.name, address=n.address, endpoint=n.endpoint or self.plan.endpoint.url,
                hostname=pings[n.name].hostname, agent_version=pings[n.name].agent_version,
                evalscope_version=pings[n.name].evalscope_version, clock_offset_s=clock.offset_s,
                rtt_s=clock.rtt_s, inventory_json=await self._inventory_json(n),
            )
        return await self._run_cases(run_id, done=set())

    async def resume(self, run_id: str) -> RunOutcome:
        """Complete a run whose controller died: re-attach to jobs still running (StartJob is
        idempotent on the job id), fetch results that finished meanwhile, run the cases not
        started yet. Records are upserted by (run, case, node, point, index): none counted twice."""
        await self.preflight()
        self.store.reopen_run(run_id)
        done = self.store.completed_cases(run_id)
        steps = plan_steps(self.plan)
        self.progress.message(f"resuming run {run_id}: {len(done & {s.step_id for s in steps})} of {len(steps)} "
                              "step(s) already done")
        return await self._run_cases(run_id, done=done)

    async def _run_cases(self, run_id: str, done: set[str]) -> RunOutcome:
        outcome = RunOutcome(run_id, "pass")
        try:
            for step in plan_steps(self.plan):
                if step.step_id in done:
                    outcome.verdicts += self.store.verdict_objects(run_id, step.step_id)
                    outcome.node_errors.update(self.store.case_errors(run_id, step.step_id))
                    continue
                await self._run_case(run_id, step, outcome)
        except (asyncio.CancelledError, KeyboardInterrupt):
            self.progress.message("interrupted: cancelling jobs on every agent")
            await asyncio.shield(self._cancel_all(run_id))
            self.store.finish_run(run_id, "fail", error="interrupted by the operator")
            raise
        # a case without expectations passes when every node ran it
        passed = all(v.passed for v in outcome.verdicts) and not outcome.node_errors
        outcome.verdict = "pass" if passed else "fail"
        self.store.finish_run(run_id, outcome.verdict)
        return outcome

    async def _inventory_json(self, node: Node) -> str:
        try:
            reply = await self.clients[node.name].inventory(node.endpoint or self.plan.endpoint.url)
        except FleetbenchError as exc:
            self.progress.message(f"[{node.name}] inventory not collected: {exc}")
            return ""
        return str(reply.detail_json)

    async def _cancel_all(self, run_id: str) -> None:
        async def cancel(node: Node, step: Step) -> None:
            with contextlib.suppress(FleetbenchError):
                await self.clients[node.name].cancel_job(f"{run_id}.{step.job_suffix}")

        running = {r["case_id"] for r in self.store.case_nodes(run_id) if r["state"] in ("starting", "queued",
                                                                                         "running")}
        await asyncio.gather(*(cancel(n, s) for n in self.nodes for s in plan_steps(self.plan)
                               if s.step_id in running))

    async def _run_case(self, run_id: str, step: Step, outcome: RunOutcome) -> None:
        await self.measure_clocks()
        job_id = f"{run_id}.{step.job_suffix}"
        start_ctl = time.time() + START_LEAD_S + max((c.rtt_s for c in self.clocks.values()), default=0.0)
        self.progress.case_started(step.step_id, [n.name for n in self.nodes], step.total)
        results = await asyncio.gather(
            *(self._run_on_node(run_id, step, job_id, n, start_ctl) for n in self.nodes), return_exceptions=True
        )
        self.progress.case_finished(step.step_id)
        records_by_node: dict[str, list[RequestRecord]] = {}
        scores_by_node: dict[str, list[DatasetScore]] = {}
        for node, res in zip(self.nodes, results, strict=True):
            if isinstance(res, BaseException):
                msg = str(res) if isinstance(res, FleetbenchError) else f"{type(res).__name__}: {res}"
                outcome.node_errors[node.name] = msg
                self.store.set_case_node(run_id, step.step_id, node.name, state="error", error=msg)
                self.progress.message(f"[{node.name}] {step.step_id}: error: {msg}")
            elif step.eval is not None:
                scores_by_node[node.name] = res[1]
            else:
                records_by_node[node.name] = res[0]
        verdicts: list[Verdict] = []
        if step.eval is not None:
            verdicts += self._judge_eval(run_id, step, scores_by_node)
        elif records_by_node:
            agg = aggregate_case(records_by_node)
            for name, figs in agg.nodes.items():
                self.store.set_figures(run_id, step.step_id, name, figs)
                verdicts += judge(name, figs, step.expect)
            self.store.set_figures(run_id, step.step_id, CLUSTER, agg.cluster, extra={
                "sum_node_tpm_total": agg.sum_node_tpm_total, "sum_node_tpm_output": agg.sum_node_tpm_output,
                "start_skew_s": agg.start_skew_s, "stragglers": list(agg.stragglers),
                "nodes": sorted(records_by_node), "error_nodes": sorted(set(outcome.node_errors)),
            })
            verdicts += judge(CLUSTER, agg.cluster, step.expect)
            if step.kind == KIND_PERF and not step.point:
                # the plan's cluster contract is about the load cases, not a sweep's low-concurrency
                # points or a single long-context request
                verdicts += judge(CLUSTER, agg.cluster, self.plan.cluster_expect)
        ran = set(records_by_node) | set(scores_by_node)
        for name in sorted(set(n.name for n in self.nodes) - ran):
            verdicts += [Verdict(name, e, math.nan, False, note=outcome.node_errors.get(name, "no result"))
                         for e in step.expect]
        self.store.add_verdicts(run_id, step.step_id, verdicts)
        outcome.verdicts += verdicts

    def _judge_eval(self, run_id: str, step: Step, scores_by_node: dict[str, list[DatasetScore]]) -> list[Verdict]:
        verdicts: list[Verdict] = []
        for name, scores in scores_by_node.items():
            self.store.set_scores(run_id, step.step_id, name, scores)
            verdicts += judge_scores(name, scores, step.expect)
        cluster = pool_scores(scores_by_node)
        self.store.set_scores(run_id, step.step_id, CLUSTER, cluster)  # also marks the step done for resume
        if scores_by_node:
            verdicts += judge_scores(CLUSTER, cluster, step.expect)
        return verdicts

    async def _run_on_node(self, run_id: str, step: Step, job_id: str, node: Node,
                           start_ctl: float) -> tuple[list[RequestRecord], list[DatasetScore]]:
        client = self.clients[node.name]
        clock = self.clocks.get(node.name)
        if clock is None:
            raise NodeError(f"{node.name} ({node.address}) is unreachable: no clock sample")
        previous = self.store.case_node(run_id, step.step_id, node.name)
        if previous and previous.get("job_id") and previous.get("clock_offset_s") is not None:
            # re-attaching after a controller restart: keep the offset the records were started with
            clock = ClockSample(previous["clock_offset_s"], clock.rtt_s)
        else:
            self.store.set_case_node(run_id, step.step_id, node.name, job_id=job_id, state="starting", error="",
                                     start_at=start_ctl, last_seq=0, clock_offset_s=clock.offset_s)
        start_agent = start_ctl + clock.offset_s
        if step.eval is not None:
            spec = eval_spec(self.plan, step.eval, node)
        else:
            assert step.perf is not None
            spec = perf_spec(self.plan, step.perf, node)
        status = await client.start_job(job_id, step.kind, spec, start_agent)
        self.store.set_case_node(run_id, step.step_id, node.name,
                                 state=JOB_STATE_NAMES.get(status.state, "running"))
        state = await self._follow(run_id, step, job_id, node, int((previous or {}).get("last_seq") or 0))
        summary, node_records = await client.result(job_id)
        # onto the controller's clock, once; a sweep point's records carry their point's label
        records = [r if not step.point else replace(r, point=step.point)
                   for r in shift_records(node_records, clock.offset_s)]
        self.store.add_requests(run_id, step.step_id, node.name, clock.offset_s, records)
        self.store.set_case_node(
            run_id, step.step_id, node.name, state=JOB_STATE_NAMES.get(state, str(state)), error=summary.error,
            evalscope_summary_json=_json(summary.evalscope_summary),
            evalscope_percentiles_json=_json(summary.evalscope_percentiles),
            result_json=_json(summary.result),
        )
        if summary.result.get("saturation", {}).get("saturated"):
            self.progress.message(f"[{node.name}] warning: the load generator was saturated; figures may be "
                                  "client-bound (see the report)")
        if state != 3:
            raise NodeError(f"job {JOB_STATE_NAMES.get(state, state)}: {summary.error or 'no detail'}")
        return records, parse_scores(summary.result.get("scores", []))

    async def _follow(self, run_id: str, step: Step, job_id: str, node: Node, last_seq: int = 0) -> int:
        """Watch a job to its end, resuming from the last event after a dropped stream."""
        client = self.clients[node.name]
        attempts, seen_state = 0, -1
        while True:
            try:
                async for ev in client.watch(job_id, last_seq):
                    last_seq, attempts = ev.seq, 0
                    if ev.state != seen_state or ev.seq % 20 == 0:
                        seen_state = ev.state
                        self.store.set_case_node(run_id, step.step_id, node.name, last_seq=last_seq,
                                                 state=JOB_STATE_NAMES.get(ev.state, str(ev.state)))
                    self.progress.node_progress(step.step_id, node.name, ev.done, ev.total or step.total, ev.failed,
                                                ev.output_tps, ev.eta_s, ev.message)
                self.store.set_case_node(run_id, step.step_id, node.name, last_seq=last_seq)
                status = await client.get_job(job_id)
                if status.state in JOB_DONE:
                    return int(status.state)
            except NodeError:
                attempts += 1
                if attempts > WATCH_RETRIES:
                    raise
                await asyncio.sleep(min(2.0 ** attempts * 0.25, 5.0))


def _json(value: Any) -> str:
    return json.dumps(value)
