"""One exception hierarchy for fleetbench.

Every message is written for the operator: it says what is wrong and, where
it can, what to do. CLIs print `str(exc)` on one line and exit with
`exc.exit_code`; nothing below a FleetbenchError reaches the user as a
traceback.
"""

from __future__ import annotations


class FleetbenchError(Exception):
    """Base of every error fleetbench reports to a user."""

    exit_code = 2


class ConfigError(FleetbenchError):
    """A plan, fleet file, job spec or flag is invalid."""


class NodeError(FleetbenchError):
    """A node's agent cannot be reached or answered with an error."""


class JobError(FleetbenchError):
    """A job could not be started, run or read back."""


class StoreError(FleetbenchError):
    """The results store cannot be opened or does not hold what was asked."""


class SecurityError(FleetbenchError):
    """A certificate, key or TLS setting is missing or invalid."""


class DeployError(FleetbenchError):
    """Installing or removing an agent on a node failed."""


class RunError(FleetbenchError):
    """A run could not be done (preflight failed, an agent was busy or not ready): nothing was judged.
    `lines` holds one line per problem (node, what, the endpoint's own answer, a hint)."""

    def __init__(self, message: str, lines: list[str] | None = None, run_id: str = "") -> None:
        super().__init__(message)
        self.lines = list(lines or [])
        self.run_id = run_id


class RunBusyError(FleetbenchError):
    """`ctl resume` of a run another live controller drives (two drivers would start every job twice)."""


class ConfinementError(FleetbenchError):
    """A job asks to read a file or send load outside the agent's allow-lists (--allow-path,
    --allow-endpoint); the agent answers PERMISSION_DENIED, the controller says it in one line."""
