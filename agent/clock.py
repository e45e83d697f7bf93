"""The agent's wall clock.

`FLEETBENCH_AGENT_CLOCK_SKEW_S` shifts it by a fixed number of seconds. It
exists for tests that prove the controller corrects node clocks (a real
fleet's clocks drift on their own); the agent logs a warning when it is set.
"""

from __future__ import annotations

import os
import time

SKEW_ENV = "FLEETBENCH_AGENT_CLOCK_SKEW_S"


def skew_s() -> float:
    try:
        return float(os.environ.get(SKEW_ENV, "0") or 0)
    except ValueError:
        return 0.0


def now() -> float:
    """Unix seconds on this agent's (possibly skewed) clock."""
    return time.time() + skew_s()
