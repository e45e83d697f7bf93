"""Why a node's agent did not answer, in words an operator acts on (`ctl ping`): a short status for the
table and one line with the cause and a hint. Pure over the error text the client raised."""

from __future__ import annotations

from dataclasses import dataclass

from .fleet import Node

AGENT = "fleetbench-agent"


@dataclass(frozen=True)
class Unreachable:
    status: str  # unreachable | unresolvable | TLS refused | timeout | error
    line: str  # "n1 (10.0.0.11:50051): connection refused: is fleetbench-agent running there …"


def explain(node: Node, error: str) -> Unreachable:
    """The status and the one line for a node whose ping failed with `error` (a NodeError's text)."""
    low = error.lower()
    host, _, port = node.address.rpartition(":")
    where = f"{node.name} ({node.address})"
    if "tls" in low or "certificate" in low or "ssl" in low:
        return Unreachable("TLS refused", error.splitlines()[0] if error else where)
    if any(w in low for w in ("resolv", "name or service not known", "nodename nor servname", "dns")):
        return Unreachable("unresolvable", f"{where}: cannot resolve the host name {host.strip('[]')!r} (DNS or "
                                           "/etc/hosts); check the address in the fleet file")
    if "refused" in low:
        return Unreachable("unreachable", f"{where}: connection refused: is {AGENT} running there and listening "
                                          f"on port {port}? (on the node: `systemctl status {AGENT}`; "
                                          "`ctl deploy` installs and starts it)")
    if any(w in low for w in ("deadline", "timed out", "timeout")):
        return Unreachable("timeout", f"{where}: no answer in time: the host is down, or a firewall drops port "
                                      f"{port}; is {AGENT} running there?")
    if "unreachable" in low or "failed to connect" in low or "unavailable" in low:
        return Unreachable("unreachable", f"{where}: {_cause(error)}; is {AGENT} running there, on port {port}, "
                                          "and does no firewall block it?")
    return Unreachable("error", f"{where}: {_cause(error)}")


def _cause(error: str) -> str:
    """The error's first line without the "n1 (addr) is unreachable: " prefix the client adds."""
    first = (error.strip().splitlines() or [""])[0]
    return first.split(" is unreachable: ", 1)[-1] or "no detail"
