"""The fault bench (issue 15): every fault ends, with a verdict that is never a wrong PASS.

On loopback (controller/localfleet.py: real agents, simulated endpoints, `ctl run` as a child process), a
two-node plan of one load case; mid-case, one fault per round:

  agent-kill       kill -9 node n2's agent, restart it at once
  controller-kill  kill -9 `ctl run`, then `ctl resume` the run
  endpoint-stop    stop (SIGTERM) n2's endpoint
  disk-full        fill n2's data dir (a 1100 MiB tmpfs mounted there, room for the preflight's 1 GiB; root)
  agent-stop       SIGSTOP n2's agent for 30 s, then SIGCONT (the case made long enough to outlast it)
  controller-term  SIGTERM `ctl run`

Per fault it prints: runs completed (the run reached a stored end by itself: finished, or interrupted on
SIGTERM), records lost (requests the endpoints answered in full during the case, from their own logs,
minus the successful records in the store), the verdicts (run and step; a faulted step is never PASS, except
after a controller kill where `ctl resume` recovers every record), and the time to detect (fault to the
faulted node's final state, or the run's, in the store); for agent-stop, how long after SIGCONT n2's
endpoint still received requests (its job given up on must stop) and n2's job as its agent stored it.
docs/reliability.md has the figures.
tests/integration/test_faults.py runs each fault once through `run_round`.

Run: sudo .venv/bin/python bench/faults.py [--rounds 3] [--faults agent-kill,disk-full] [--no-progress-s 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fleetbench.controller.localfleet import LocalFleet
from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer

FAULTS = ("agent-kill", "controller-kill", "endpoint-stop", "disk-full", "agent-stop", "controller-term")
CTL = [sys.executable, "-m", "fleetbench.controller"]
STOP_S = 30.0  # agent-stop: how long the agent stays stopped
STOP_NUMBER = 200  # agent-stop: requests per node at least, so the case outlasts the stop (~52 s at 4 streams)
LOAD_SETTLE_S = 3.0  # agent-stop: how long the endpoints are kept up after the run, for load that did not stop
FINAL_NODE_STATES = ("error", "failed", "cancelled", "interrupted", "succeeded")
PLAN = """\
name: fault bench
model: demo
endpoint: {{url: http://127.0.0.1:9/v1/completions}}
tokenizer: {tokenizer}
cases:
  - id: load
    parallel: 4
    number: {number}
    input_tokens: 32
    output_tokens: 100
    extra_args: {{ignore_eos: true}}
"""


@dataclass
class RoundResult:
    fault: str
    run_id: str
    completed: bool  # the run reached a stored end by itself (finished; interrupted for controller-term)
    run_state: str  # runs.state: finished, interrupted, error, running
    verdict: str  # the run's verdict
    step_state: str  # the faulted step's stored state ("" if it was never judged)
    answered: int  # requests the endpoints answered during the case
    stored: int  # successful records in the store
    detect_s: float  # fault -> the fault's consequence in the store (nan: not applicable)
    reason: str  # n2's stored error, else the step's first reason about n2, else the run's error
    ctl_rc: int
    console: str = ""  # what `ctl run` (and `ctl resume`) printed
    # agent-stop: the last request n2's endpoint received, in seconds after SIGCONT (0: none after it); nan when
    # n2's job had ended before SIGCONT (the case was shorter than the stop) or for the other faults
    load_after_s: float = math.nan
    n2_job: str = ""  # n2's job as its own agent stored it: "<state>: <error>"

    @property
    def lost(self) -> int:
        return self.answered - self.stored


def rows(db: Path, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    try:
        con = sqlite3.connect(db, timeout=5)
    except sqlite3.Error:
        return []
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.Error:
        return []
    finally:
        con.close()


def wait_for(predicate, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    """Poll until `predicate()`; returns the time it became true."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return time.time()
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def answered(url: str) -> int:
    base = url.split("/v1/")[0]
    with urllib.request.urlopen(f"{base}/fleetbench/stats", timeout=5) as reply:
        return int(json.loads(reply.read())["answered"])


def served(log: Path, since: float) -> int:
    """Requests the endpoint answered in full since `since`, from its own log (one JSON line per request)."""
    if not log.exists():
        return 0
    lines = (json.loads(line) for line in log.read_text().splitlines() if line.strip())
    return sum(1 for r in lines if r["status"] == "ok" and r["arrival"] >= since)


def arrivals(log: Path) -> list[float]:
    """When each generation request reached the endpoint (wall clock), from its own log."""
    if not log.exists():
        return []
    return [float(json.loads(line)["arrival"]) for line in log.read_text().splitlines() if line.strip()]


AGENT_STATES = {1: "queued", 2: "running", 3: "succeeded", 4: "failed", 5: "cancelled", 6: "interrupted", 7: "ready"}


def agent_job(data_dir: Path) -> tuple[str, float]:
    """The case's job as the agent stored it (its last job): ("<state>: <error>", when it ended; nan: not yet)."""
    found = rows(data_dir / "agent.sqlite", "SELECT state, error, finished_at FROM jobs ORDER BY created_at DESC "
                 "LIMIT 1")
    if not found:
        return "", math.nan
    return (f"{AGENT_STATES.get(found[0]['state'], found[0]['state'])}: {found[0]['error']}",
            float(found[0]["finished_at"] or math.nan))


def node_state(db: Path, node: str) -> str:
    found = rows(db, "SELECT state FROM case_nodes WHERE node = ?", (node,))
    return str(found[0]["state"]) if found else ""


def run_round(fault: str, workdir: Path, number: int = 60, no_progress_s: float = 20.0,
              stop_s: float = STOP_S) -> RoundResult:
    """One `ctl run` on a fresh two-node loopback fleet with `fault` injected mid-case on node n2."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault}; one of {', '.join(FAULTS)}")
    workdir.mkdir(parents=True, exist_ok=True)
    mount = workdir / "fleet" / "agents" / "n2"
    if fault == "disk-full":
        mount.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1100m,mode=0700", "tmpfs", str(mount)], check=True,
                       capture_output=True)
    plan = workdir / "plan.yaml"
    plan.write_text(PLAN.format(tokenizer=ensure_demo_tokenizer(workdir / "tok"), number=number))
    db, out = workdir / "store.sqlite", workdir / "out"
    env = dict(os.environ, FLEETBENCH_NO_PROGRESS_S=str(no_progress_s))
    logs = {name: workdir / f"endpoint-{name}.jsonl" for name in ("n1", "n2")}
    fleet = LocalFleet(workdir / "fleet", size=2, ttft_ms=50, tpot_ms=10,
                       node_endpoint_args={name: ["--log", str(path)] for name, path in logs.items()}).start()
    try:
        fleet_file = fleet.write_fleet_file(workdir / "fleet.yaml")
        urls = {n.name: n.endpoint for n in fleet.nodes}
        log = (workdir / "ctl.log").open("w")
        ctl = subprocess.Popen([*CTL, "run", "--plan", str(plan), "--nodes", "n1,n2", "--fleet", str(fleet_file),
                                "--db", str(db), "--out", str(out), "-q"], stdout=log, stderr=log, env=env)
        # the case is being armed (preflight over): what the endpoints answered so far is not the case's
        armed = wait_for(lambda: len(rows(db, "SELECT 1 FROM case_nodes")) == 2, 180, "the case to be armed")
        base = {name: answered(url) for name, url in urls.items()}
        wait_for(lambda: sum(answered(u) for u in urls.values()) - sum(base.values()) >= 8, 120,
                 "the case's first requests")
        run_id = str(rows(db, "SELECT run_id FROM runs")[0]["run_id"])
        t0 = time.time()
        detect = math.nan
        resumed = math.nan
        if fault == "agent-kill":
            agent = fleet.agent_procs["n2"]
            agent.kill()
            agent.wait()
            fleet.start_agent("n2", int(fleet.nodes[1].address.rsplit(":", 1)[1]))
            detect = wait_for(lambda: node_state(db, "n2") in FINAL_NODE_STATES, 120, "n2's end") - t0
        elif fault == "controller-kill":
            ctl.kill()
            ctl.wait()
            again = subprocess.run([*CTL, "resume", run_id, "--db", str(db), "--fleet", str(fleet_file), "--out",
                                      str(out), "-q"], capture_output=True, text=True, env=env, timeout=600)
            log.write(again.stderr)
        elif fault == "endpoint-stop":
            port = urls["n2"].rsplit(":", 1)[1].split("/")[0]
            endpoint = next(p for p in fleet.procs if isinstance(p.args, list) and "fleetbench.endpoint" in p.args
                            and port in p.args)
            endpoint.terminate()
            endpoint.wait()
            detect = wait_for(lambda: node_state(db, "n2") in FINAL_NODE_STATES, 300, "n2's end") - t0
        elif fault == "disk-full":
            subprocess.run(["dd", "if=/dev/zero", f"of={mount / 'fill'}", "bs=64k"], capture_output=True)
            detect = wait_for(lambda: node_state(db, "n2") in FINAL_NODE_STATES, 300, "n2's end") - t0
        elif fault == "agent-stop":
            pid = fleet.agent_procs["n2"].pid
            os.kill(pid, signal.SIGSTOP)
            with contextlib.suppress(TimeoutError):  # not detected while stopped: nan
                detect = wait_for(lambda: node_state(db, "n2") in FINAL_NODE_STATES, stop_s, "n2's end") - t0
            time.sleep(max(0.0, stop_s - (time.time() - t0)))
            os.kill(pid, signal.SIGCONT)
            resumed = time.time()
        elif fault == "controller-term":
            ctl.send_signal(signal.SIGTERM)
            detect = wait_for(lambda: bool(rows(db, "SELECT 1 FROM runs WHERE state = 'interrupted'")), 120,
                              "the run to be stored interrupted") - t0
        try:
            rc = ctl.wait(timeout=600) if fault != "controller-kill" else again.returncode
        except subprocess.TimeoutExpired:
            ctl.kill()
            rc = -9
        if fault == "agent-stop":  # the job given up on: does its load stop once the agent continues?
            time.sleep(LOAD_SETTLE_S)
        fleet.stop()  # the endpoints' logs are complete
        log.close()
        load_after = math.nan
        n2_job, n2_ended = agent_job(mount)
        if fault == "agent-stop" and not n2_ended < resumed:  # n2's job outlasted the stop: when did its load end?
            load_after = max([t - resumed for t in arrivals(logs["n2"]) if t >= resumed], default=0.0)
        total = sum(served(path, armed) for path in logs.values())
        stored = int(rows(db, "SELECT count(*) AS n FROM requests WHERE run_id = ? AND success = 1",
                          (run_id,))[0]["n"])
        run = rows(db, "SELECT state, verdict, error FROM runs WHERE run_id = ?", (run_id,))[0]
        step = rows(db, "SELECT state FROM case_verdicts WHERE run_id = ? AND scope = 'case'", (run_id,))
        n2 = rows(db, "SELECT error FROM case_nodes WHERE run_id = ? AND node = 'n2'", (run_id,))
        why = [r["what"] for v in rows(db, "SELECT reasons_json FROM case_verdicts WHERE run_id = ? AND scope = 'n2'",
                                       (run_id,)) for r in json.loads(v["reasons_json"] or "[]")]
        reason = (str(n2[0]["error"] or "") if n2 else "") or (why[0] if why else "") or str(run["error"] or "")
        ended = run["state"] == ("interrupted" if fault == "controller-term" else "finished")
        return RoundResult(fault, run_id, ended, str(run["state"]), str(run["verdict"]),
                           str(step[0]["state"]) if step else "", total, stored, detect, reason[:300], rc,
                           (workdir / "ctl.log").read_text(), load_after, n2_job)
    finally:
        fleet.stop()
        if fault == "disk-full":
            subprocess.run(["umount", "-l", str(mount)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=1, help="rounds of each fault")
    ap.add_argument("--faults", default=",".join(FAULTS), help="comma-separated subset of " + ", ".join(FAULTS))
    ap.add_argument("--number", type=int, default=60, help="requests per node in the case")
    ap.add_argument("--no-progress-s", type=float, default=20.0,
                    help="FLEETBENCH_NO_PROGRESS_S for the controller (the plan-derived default is minutes)")
    args = ap.parse_args()
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    bad = [f for f in faults if f not in FAULTS]
    if bad:
        sys.exit(f"error: unknown fault(s) {', '.join(bad)}; choose from {', '.join(FAULTS)}")
    if "disk-full" in faults and os.geteuid() != 0:
        print("disk-full skipped: mounting the small tmpfs needs root", file=sys.stderr)
        faults.remove("disk-full")
    print(f"{'fault':16} {'runs completed':>14} {'answered':>9} {'stored':>7} {'lost':>5} {'detect s':>9}  "
          "verdicts (run/step)  wrong PASS  load after SIGCONT s  reason")
    wrong_total = 0
    for fault in faults:
        results = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix=f"faults-{fault}-") as tmp:
                number = max(args.number, STOP_NUMBER) if fault == "agent-stop" else args.number
                results.append(run_round(fault, Path(tmp), number, args.no_progress_s))
        done = sum(r.completed for r in results)
        detects = [r.detect_s for r in results if not math.isnan(r.detect_s)]
        detect = f"{max(detects):.1f}" if detects else "n/a"
        # a faulted step is never PASS; after a controller kill, resume recovering every record may PASS
        wrong = sum(1 for r in results if r.step_state == "pass" and (fault != "controller-kill" or r.lost))
        wrong_total += wrong
        verdicts = ", ".join(sorted({f"{r.verdict}/{r.step_state or '-'}" for r in results}))
        stops = [r.load_after_s for r in results if not math.isnan(r.load_after_s)]
        stop = f"{max(stops):.1f}" if stops else "n/a"
        print(f"{fault:16} {done:>8} of {len(results):<3} {sum(r.answered for r in results):>9} "
              f"{sum(r.stored for r in results):>7} {sum(r.lost for r in results):>5} {detect:>9}  "
              f"{verdicts:20} {wrong:>10}  {stop:>19}  {results[-1].reason[:90]}", flush=True)
        if fault == "agent-stop":
            print(f"{'':16} n2's job on its agent: {results[-1].n2_job[:120]}", flush=True)
    sys.exit(1 if wrong_total else 0)


if __name__ == "__main__":
    main()
