"""Repeats: a figure measured in N runs of the same case, as its mean and 95 % confidence interval.

The interval is Student's t on the runs' values (mean ± t(0.975, N−1) × s / √N, s the sample standard
deviation): the runs are few, so the normal 1.96 would be too narrow. A figure whose spread — (max − min) /
|mean| — exceeds SPREAD_LIMIT is flagged: the runs disagree more than an acceptance figure should. Pure.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

SPREAD_LIMIT = 0.05
DEFINITION = ("Repeats: each figure's mean over the runs and its 95 % confidence interval, mean ± t(0.975, N-1) x "
              "s / sqrt(N) (Student's t, s the sample standard deviation); a figure whose spread (max - min) / |mean| "
              "exceeds 5 % is flagged.")

# Student's t, two-sided 95 % (the 0.975 quantile), by degrees of freedom; between rows the smaller df's value
# (the wider interval) is used, beyond the last the normal 1.960.
T975: dict[int, float] = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
    11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086,
    21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042,
    40: 2.021, 60: 2.000, 120: 1.980,
}


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (conservative between table rows)."""
    if df < 1:
        return math.nan
    if df > 120:
        return 1.960
    return T975[max(k for k in T975 if k <= df)]


@dataclass(frozen=True)
class RepeatStat:
    """One figure over N runs."""

    n: int
    mean: float
    sd: float  # sample standard deviation (N − 1); NaN for one run
    ci95: float  # half-width of the 95 % confidence interval; NaN for one run
    low: float  # the smallest run's value
    high: float

    @property
    def spread(self) -> float:
        """(max − min) / |mean|: how far apart the runs are, relative to the figure."""
        return (self.high - self.low) / abs(self.mean) if self.mean else math.nan

    @property
    def flagged(self) -> bool:
        return not math.isnan(self.spread) and self.spread > SPREAD_LIMIT


def repeat_stat(values: Sequence[float]) -> RepeatStat:
    """The stat of one figure's values over the runs; runs where it could not be measured (NaN) are left out."""
    vals = [v for v in values if not math.isnan(v)]
    n = len(vals)
    if n == 0:
        return RepeatStat(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    mean = math.fsum(vals) / n
    if n == 1:
        return RepeatStat(1, mean, math.nan, math.nan, vals[0], vals[0])
    sd = statistics.stdev(vals)
    return RepeatStat(n, mean, sd, t975(n - 1) * sd / math.sqrt(n), min(vals), max(vals))
