"""Retry delays for failed jobs: exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter".

    The n-th retry waits a uniformly random time in ``[d/2, d]`` where
    ``d = min(cap_s, base_s * 2**(n-1))``. Half the delay is fixed so retries never come
    back immediately; the random half spreads a burst of failures (a dependency outage
    failing hundreds of jobs at once) so they do not all return at the same instant.

    Attributes:
        base_s: delay before the first retry, before jitter.
        cap_s: upper bound of any delay.
    """

    base_s: float = 2.0
    cap_s: float = 600.0

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay after failed attempt number `attempt` (1-based)."""
        exponent = max(0, attempt - 1)
        # Bound the exponent so huge attempt counts cannot overflow a float.
        return min(self.cap_s, self.base_s * 2.0 ** min(exponent, 60))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The jittered delay in seconds after failed attempt `attempt`."""
        high = self.ceiling(attempt)
        return (rng or random).uniform(high / 2.0, high)
