"""A local fleet as the integration tests drive it: `ctl` in a child process, the fleet file, what each
node's endpoint counted and each agent stored. tests/conftest.py's `local_fleet` starts them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetbench.controller.fleet import Node
from fleetbench.controller.localfleet import LocalFleet
from fleetbench.records import RequestRecord

from .processes import CTL, SHARED_ROOTS

AGENT_BUSY = (1, 2, 7)  # agent job states queued, running, ready


@dataclass
class Fleet:
    """A started LocalFleet, its fleet file and its folder (`work`, which its agents may read)."""

    local: LocalFleet
    fleet_file: Path
    work: Path
    logs: dict[str, Path] = field(default_factory=dict)  # node -> its endpoint's request log, when asked for

    @classmethod
    def start(cls, work: Path, size: int = 3, *, ttft_ms: float = 20, tpot_ms: float = 2, log_requests: bool = False,
              **options: Any) -> Fleet:
        """A fleet of `size` nodes n1.. in `work` (a new folder) with its fleet file `work`/fleet.yaml; its agents
        may read `work` and the shared roots unless `allow_paths` says otherwise. The caller stops it."""
        names = [f"n{i}" for i in range(1, size + 1)]
        logs = {n: work / f"requests-{n}.jsonl" for n in names} if log_requests else {}
        own: dict[str, list[str]] = options.pop("node_endpoint_args", {})
        endpoint_args = {n: [*own.get(n, []), *(["--log", str(logs[n])] if logs else [])] for n in names}
        options.setdefault("allow_paths", [work, *SHARED_ROOTS])
        local = LocalFleet(work / "fleet", size=size, ttft_ms=ttft_ms, tpot_ms=tpot_ms,
                           node_endpoint_args=endpoint_args, **options).start()
        return cls(local, local.write_fleet_file(work / "fleet.yaml"), work, logs)

    def stop(self) -> None:
        """Its agents and endpoints stopped (again: a no-op)."""
        self.local.stop()

    def agent_db(self, name: str) -> Path:
        """The node's agent store."""
        return self.local.workdir / "agents" / name / "agent.sqlite"

    @property
    def nodes(self) -> list[Node]:
        return self.local.nodes

    def node(self, name: str) -> Node:
        return next(n for n in self.local.nodes if n.name == name)

    def stats(self, name: str) -> dict[str, Any]:
        """What the node's simulated endpoint counted: requests received, rejected, answered, faulted."""
        base = self.node(name).endpoint.split("/v1", 1)[0]
        with urllib.request.urlopen(base + "/fleetbench/stats", timeout=10) as resp:
            return dict(json.loads(resp.read()))

    def requests_seen(self, name: str) -> list[dict[str, Any]]:
        """The requests the node's endpoint logged (local_fleet(..., log_requests=True))."""
        log = self.logs[name]
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def agent_jobs(self, name: str) -> list[sqlite3.Row]:
        return rows(self.agent_db(name), "SELECT * FROM jobs ORDER BY created_at")

    def wait_idle(self, timeout: float = 120) -> None:
        """No job queued, running or ready on any agent (a previous test's job would make this one's busy)."""
        names = [n.name for n in self.local.nodes]
        wait_for(lambda: not any(j["state"] in AGENT_BUSY for n in names for j in self.agent_jobs(n)), timeout,
                 "every agent to be idle")

    def run(self, plan: Path, db: Path, out: Path, *, nodes: str = "", timeout: float = 500,
            start_lead_s: float | None = None) -> subprocess.CompletedProcess[str]:
        """`ctl run` of `plan` on `nodes` (default: all of them), quiet; `start_lead_s` sets
        FLEETBENCH_START_LEAD_S (how far ahead the common start is placed)."""
        env = dict(os.environ)
        if start_lead_s is not None:
            env["FLEETBENCH_START_LEAD_S"] = f"{start_lead_s:g}"
        return subprocess.run(self.run_argv(plan, db, out, "-q", nodes=nodes), capture_output=True, text=True,
                              timeout=timeout, env=env)

    def run_argv(self, plan: Path, db: Path, out: Path, *args: str, nodes: str = "") -> list[str]:
        """The `ctl run` command line of `plan` on `nodes` (default: all of them) and `args`, for a test that
        drives the controller's process itself (signals it, kills it, reads its output as it comes)."""
        return [*CTL, "run", "--plan", str(plan), "--nodes", nodes or ",".join(n.name for n in self.nodes), "--fleet",
                str(self.fleet_file), "--db", str(db), "--out", str(out), *args]


def ctl(*args: str, timeout: float = 120, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`ctl ARGS` in a child process, its output captured as text."""
    return subprocess.run([*CTL, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def rows(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """A query on a store another process writes ([] while the file does not exist yet)."""
    if not db.exists():
        return []
    con = sqlite3.connect(db, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def open_store(db: Path) -> sqlite3.Connection:
    """A connection to a finished run's store whose rows read by column name."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    return con


def stored_records(con: sqlite3.Connection, step: str, node: str | None = None) -> list[RequestRecord]:
    """The requests a store holds for `step` (on `node`, or every node), read back column by column as the
    tests' own reading (not the Store's) to recompute figures from."""
    where, args = "case_id = ?", [step]
    if node:
        where, args = where + " AND node = ?", [step, node]
    return [RequestRecord(index=r["idx"], start_time=r["start_time"], end_time=r["end_time"],
                          success=bool(r["success"]), ttft_s=r["ttft_s"] or 0.0, latency_s=r["latency_s"] or 0.0,
                          input_tokens=r["input_tokens"] or 0, output_tokens=r["output_tokens"] or 0,
                          tpot_s=r["tpot_s"] or 0.0)
            for r in con.execute(f"SELECT * FROM requests WHERE {where}", args)]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except sqlite3.Error:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
