"""The agent's wall clock.

`FLEETBENCH_AGENT_CLOCK_SKEW_S` shifts it by a fixed number of seconds. It
exists for tests that prove the controller corrects node clocks (a real
fleet's clocks drift on their own); the agent logs a warning when it is set.
"""

from __future__ import annotations

import os
import time

SKEW_ENV = "FLEETBENCH_AGENT_CLOCK_SKEW_S"
# Test hooks for the two-phase start (the agent logs a warning when one is set): a node that prepares
# slowly (its job sleeps this long before it can be READY), and a node that misses the start instant
# (its first request goes this much after it).
PREPARE_DELAY_ENV = "FLEETBENCH_TEST_PREPARE_DELAY_S"
START_DELAY_ENV = "FLEETBENCH_TEST_START_DELAY_S"


def env_s(name: str) -> float:
    try:
        return float(os.environ.get(name, "0") or 0)
    except ValueError:
        return 0.0


def skew_s() -> float:
    return env_s(SKEW_ENV)


def prepare_delay_s() -> float:
    return env_s(PREPARE_DELAY_ENV)


def start_delay_s() -> float:
    return env_s(START_DELAY_ENV)


def now() -> float:
    """Unix seconds on this agent's (possibly skewed) clock."""
    return time.time() + skew_s()
