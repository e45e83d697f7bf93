"""The agent's endpoint allow-list entries (`--allow-endpoint HOST[:PORT]`, the fleet file's
deploy.allow_endpoints): parsed here, shared by the agent that enforces them (agent/confine.py) and the
controller that writes them into a deployed agent's command line (controller/deploy.py), so a bad entry is
refused when the fleet file is read rather than when the agent starts on the node."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .errors import ConfigError

LOOPBACK = ("127.0.0.0/8", "[::1]", "localhost")
_RULE = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+(?:/\d{1,3})?\]|[A-Za-z0-9.\-]+(?:/\d{1,2})?)(?::(?P<port>\d{1,5}))?$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class EndpointRule:
    """One `--allow-endpoint`: a host name, an IP address or network, and optionally a port."""

    text: str
    name: str = ""
    network: Network | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str, where: str = "--allow-endpoint") -> EndpointRule:
        m = _RULE.match(text.strip())
        if not m:
            raise ConfigError(f"{where} {text!r} must be HOST[:PORT] (a name, an IP address or a network "
                              "such as 10.0.0.0/24; IPv6 in brackets: [fd00::5]:8000)")
        host = m.group("host").strip("[]").lower()
        port = int(m.group("port")) if m.group("port") else None
        if port is not None and not 0 < port < 65536:
            raise ConfigError(f"{where} {text!r}: port {port} is not in 1-65535")
        try:
            network: Network | None = ipaddress.ip_network(host, strict=False)
        except ValueError:
            if "/" in host or not host:
                raise ConfigError(f"{where} {text!r}: {host!r} is not a network") from None
            return cls(text, name=host, port=port)
        return cls(text, network=network, port=port)

    def allows(self, host: str, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.network is None:
            return host == self.name
        try:
            return ipaddress.ip_address(host) in self.network
        except ValueError:
            return False
