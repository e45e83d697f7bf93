"""What a job may read and where it may send load: the agent's allow-lists, checked at StartJob.

Whoever reaches the agent's API (the controller; on a loopback or tunnel-mode node, any local user)
chooses a job's files and endpoint. Without limits, a perf job with `dataset_path: /etc/shadow` and an
endpoint on another host mails the node's secrets out one line per request. So the agent reads
datasets, tokenizers and eval data only under the roots it was started with (`--allow-path DIR`,
default its data dir, never its own state: the job folders and agent.sqlite), and sends load only to
the hosts it was started with (`--allow-endpoint HOST[:PORT]`, default loopback). A refused job names
the field, the value and what is allowed, before anything is written or sent.

Paths must be absolute and are compared after resolving symlinks and `..` (os.path.realpath). Hosts are
compared as written in the URL (an IP address within an allowed network, or a name, case-insensitive);
names are not resolved (docs/security.md says what that leaves open).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleetbench.allow import LOOPBACK, EndpointRule
from fleetbench.errors import ConfigError, ConfinementError
from fleetbench.jobs_schema import EvalSpec, PerfSpec, PreflightSpec

AGENT_STATE = ("jobs", "agent.sqlite")  # under the data dir: other jobs' files and the agent's store


@dataclass(frozen=True)
class Confinement:
    """The agent's allow-lists. `check` raises ConfinementError (gRPC PERMISSION_DENIED) naming what is
    refused and what is allowed."""

    roots: tuple[Path, ...]
    endpoints: tuple[EndpointRule, ...]
    state: tuple[Path, ...] = ()  # never readable by a job, even under a root

    @classmethod
    def of(cls, data_dir: Path, allow_paths: Sequence[str | Path] = (),
           allow_endpoints: Sequence[str] = ()) -> Confinement:
        """The allow-lists from the agent's flags; without any, its data dir and loopback."""
        data = Path(os.path.realpath(data_dir))
        roots = []
        for p in allow_paths or (data,):
            if not Path(p).is_absolute():
                raise ConfigError(f"--allow-path {p} must be an absolute path")
            roots.append(Path(os.path.realpath(p)))
        rules = tuple(EndpointRule.parse(e) for e in (allow_endpoints or LOOPBACK))
        return cls(tuple(dict.fromkeys(roots)), rules, tuple(data / s for s in AGENT_STATE))

    def describe_roots(self) -> str:
        return ", ".join(str(r) for r in self.roots)

    def describe_endpoints(self) -> str:
        return ", ".join(r.text for r in self.endpoints)

    # --- checks ---

    def check_path(self, field: str, value: str) -> None:
        if not value:
            return
        if not Path(value).is_absolute():  # relative to what? the job process's folder is agent state
            raise ConfinementError(f"{field} {value} must be an absolute path on the node")
        real = Path(os.path.realpath(value))
        if any(real.is_relative_to(s) or (real.parent == s.parent and real.name.startswith(s.name))  # -wal, -shm
               for s in self.state):
            raise ConfinementError(f"{field} {value} is the agent's own state (job folders, agent.sqlite); "
                                   "a job may not read it")
        if not any(real.is_relative_to(r) for r in self.roots):
            shown = value if str(real) == value else f"{value} (resolves to {real})"
            raise ConfinementError(f"{field} {shown} is outside the paths this agent may read "
                                   f"({self.describe_roots()}); start the agent with --allow-path DIR "
                                   "(fleet file: deploy.allow_paths)")

    def check_url(self, field: str, url: str) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ConfinementError(f"{field} {url} has no valid port") from None
        if not any(rule.allows(host, port) for rule in self.endpoints):
            raise ConfinementError(f"{field} {url} is not an endpoint this agent may send load to (allowed: "
                                   f"{self.describe_endpoints()}); start the agent with --allow-endpoint "
                                   "HOST[:PORT] (fleet file: deploy.allow_endpoints)")

    def check_spec(self, spec: Any) -> None:
        """Every file the job would read and every endpoint it would send to, or ConfinementError."""
        for field, value in paths_of(spec):
            self.check_path(field, value)
        for field, url in urls_of(spec):
            self.check_url(field, url)


def paths_of(spec: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(field, path) of every file or folder a job spec reads on the node."""
    if isinstance(spec, PerfSpec):
        yield f"{prefix}tokenizer_path", spec.tokenizer_path
        yield f"{prefix}dataset_path", spec.dataset_path
    elif isinstance(spec, EvalSpec):
        for name, path in spec.local_paths().items():
            yield f"{prefix}dataset_args.{name}.local_path", path
    elif isinstance(spec, PreflightSpec):
        yield from _entries(spec, paths_of)


def urls_of(spec: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(field, url) of every endpoint a job spec sends requests to."""
    if isinstance(spec, PerfSpec | EvalSpec):
        yield f"{prefix}url", spec.url
    elif isinstance(spec, PreflightSpec):
        yield from _entries(spec, urls_of)


def _entries(spec: PreflightSpec, each: Any) -> Iterable[tuple[str, str]]:
    for i, perf in enumerate(spec.perf):
        yield from each(perf.spec, f"perf[{i}].spec.")
    for i, ev in enumerate(spec.evals):
        yield from each(ev.spec, f"evals[{i}].spec.")
