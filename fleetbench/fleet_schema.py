"""The fleet file: node name -> agent address, with optional endpoint, labels, SSH and deploy settings.

Declared once here; controller/fleet.py validates a fleet file with `FleetDoc` and builds its
Nodes, and `ctl fleet schema` prints `fleet_json_schema()` for editors (docs/plan.md, docs/deploy.md).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, Strict, model_validator

from .allow import EndpointRule
from .errors import ConfigError
from .schema_base import Doc, json_schema, problem, says, scalar_to_str, shape

ADDRESS_RE = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
LABEL_RE = re.compile(r"^[A-Za-z0-9._-]{1,63}$")
CONNECT_MODES = ("direct", "ssh")
SERVICE_MODES = ("auto", "systemd", "process")
NODES_NEEDED = "the fleet file needs a `nodes:` mapping of name -> address"


def is_address(value: str) -> bool:
    """host:port, the port in 1-65535 (a host name, an IPv4 address or a bracketed IPv6 address)."""
    m = ADDRESS_RE.match(value)
    return m is not None and 0 < int(m.group(2)) < 65536


def _port_in_range(value: str) -> str:
    if not is_address(value):
        raise ValueError("port out of range")
    return value


Address = Annotated[str, Strict(), Field(pattern=ADDRESS_RE.pattern), AfterValidator(_port_in_range),
                    says(lambda v: f"{v!r} is not a host:port address")]
Port = Annotated[int, Strict(), Field(ge=1, le=65535), says("must be a port number (1-65535)")]
Text = Annotated[str, BeforeValidator(scalar_to_str), Strict(), Field(pattern=r"\S"),
                 says("must be a non-empty string", json_schema_input_type=Annotated[str, Field(pattern=r"\S")] | int)]
_LABEL_SAYS = says("label and value must be letters, digits, '.', '_' or '-'",
                   json_schema_input_type=Annotated[str, Field(pattern=LABEL_RE.pattern)] | int | float | bool)
LabelPart = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int | float | bool | None) else v),
                      Strict(), Field(pattern=LABEL_RE.pattern), _LABEL_SAYS]
Labels = Annotated[dict[LabelPart, LabelPart], shape(
    lambda v: isinstance(v, dict), "must be a mapping of label to value (e.g. {gpu: h200, rack: a3})")]
EndpointUrl = Annotated[str, Strict(), Field(pattern=r"^(https?://|$)"), says("must start with http:// or https://")]


class SshDoc(Doc):
    """How to reach the node over SSH (ctl deploy, connect: ssh); unset keys come from ~/.ssh/config."""

    model_config = ConfigDict(title="ssh")

    host: Text | None = None
    """default: the host of the node's address"""
    user: Text | None = None
    port: Port | None = None
    key: Text | None = None
    """private key file (relative to the fleet file, ~ allowed); default: the SSH agent and ~/.ssh keys"""
    known_hosts: Text | None = None
    """default: ~/.ssh/known_hosts (host keys are always checked)"""


def _allow_path(value: str) -> str:
    if not value.startswith(("/", "~")):
        raise problem("must be an absolute path on the node (or ~/…)")
    return value


def _allow_endpoint(value: str) -> str:
    try:
        EndpointRule.parse(value, "")
    except ConfigError as exc:
        raise problem(str(exc).strip()) from None  # "'http://x' must be HOST[:PORT] (…)"
    return value


AllowPaths = Annotated[tuple[Annotated[Text, AfterValidator(_allow_path)], ...],
                       shape(lambda v: isinstance(v, list), "must be a list of folders on the node")]
AllowEndpoints = Annotated[tuple[Annotated[Text, AfterValidator(_allow_endpoint)], ...],
                           shape(lambda v: isinstance(v, list), "must be a list of HOST[:PORT]")]


class DeployDoc(Doc):
    """Where `ctl deploy` puts the agent on the node (docs/deploy.md); unset keys get defaults by SSH user."""

    model_config = ConfigDict(title="deploy")

    dir: Text | None = None
    data_dir: Text | None = None
    python: Text | None = None
    """a Python that already has the dependencies"""
    service: Annotated[Literal["auto", "systemd", "process"],
                       says(lambda v: f"must be one of {', '.join(SERVICE_MODES)}, not {v!r}")] = "auto"
    listen: Address | None = None
    """the agent's listen address; default 127.0.0.1:PORT (0.0.0.0:PORT with TLS)"""
    user: Annotated[str, Strict(), Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$"),
                    says("must be a user name (lowercase letters, digits, _ or -)")] | None = None
    """the account the agent runs as when the SSH user is root (created if missing); default fleetbench.
    `root` keeps it root: not recommended, it never needs root"""
    allow_paths: AllowPaths | None = None
    """folders jobs may read datasets, tokenizers and eval data from (--allow-path); default: the data dir"""
    allow_endpoints: AllowEndpoints | None = None
    """HOST[:PORT] or networks jobs may send load to (--allow-endpoint); default: loopback, and the node's
    `endpoint` host when it is not loopback"""


class NodeDoc(Doc):
    """One node: its agent's address, and optionally its endpoint, labels, SSH and deploy settings."""

    model_config = ConfigDict(title="node")

    doc_required: ClassVar[dict[str, str]] = {"address": "is required"}

    address: Address
    """the agent's host:port (with connect: ssh, the SSH host and the agent's port on its loopback)"""
    endpoint: EndpointUrl | None = None
    """overrides the plan's endpoint URL for this node"""
    labels: Labels | None = None
    """free-form key: value pairs; `--nodes gpu=h200` selects every node with that label"""
    connect: Annotated[Literal["direct", "ssh"],
                       says(lambda v: f"must be one of {', '.join(CONNECT_MODES)}, not {v!r}")] = "direct"
    """direct, or ssh: reach the agent through an SSH port forward"""
    ssh: SshDoc | None = None
    ssh_user: Text | None = None
    """older spelling of ssh.user"""
    ssh_port: Port | None = None
    """older spelling of ssh.port"""
    deploy: DeployDoc | None = None

    @model_validator(mode="after")
    def _one_spelling(self) -> NodeDoc:
        for old in ("user", "port"):
            if getattr(self, f"ssh_{old}") is not None and self.ssh is not None and old in self.ssh.given():
                raise problem(f"conflicts with {{here}}.ssh.{old}: keep one", f"ssh_{old}")
        return self


def _node(value: Any) -> Any:
    if isinstance(value, str):
        return {"address": value}  # the shorthand `n2: 10.0.0.12:50051`
    if not isinstance(value, dict | NodeDoc):
        raise problem("must be an address or a mapping with `address`")
    return value


TLS_NEEDS = "needs exactly ca, cert and key (paths, relative to the fleet file)"


class TlsDoc(Doc):
    """Mutual TLS between ctl and the agents: paths relative to the fleet file (`ctl certs init`)."""

    model_config = ConfigDict(title="tls")

    doc_needs: ClassVar[dict[str, str]] = {"ca": TLS_NEEDS, "cert": TLS_NEEDS, "key": TLS_NEEDS}

    @classmethod
    def not_mapping(cls) -> str:
        return TLS_NEEDS

    ca: Text
    cert: Text
    key: Text


class FleetDoc(Doc):
    """A fleetbench fleet file: node name -> agent address (docs/plan.md, docs/deploy.md)."""

    model_config = ConfigDict(title="fleetbench fleet file")
    doc_required: ClassVar[dict[str, str]] = {"nodes": NODES_NEEDED}

    version: Annotated[Literal[1], says("must be 1 (this fleetbench reads fleet file schema v1)")] = 1
    nodes: Annotated[dict[Annotated[str, BeforeValidator(scalar_to_str)],
                          Annotated[NodeDoc, BeforeValidator(_node, json_schema_input_type=Address | NodeDoc)]],
                     shape(lambda v: isinstance(v, dict), NODES_NEEDED)]
    """name -> address, or name -> {address, endpoint, labels, connect, ssh, deploy}"""
    tls: TlsDoc | None = None


def fleet_json_schema() -> dict[str, Any]:
    """The JSON Schema of a fleet file, for editors (`# yaml-language-server: $schema=…`)."""
    return json_schema(FleetDoc)
