"""The queue policy: attempts, leases and retry delays, built once per process from settings.

Every place that enqueues a job or runs a queue runner (API, pipeline worker, webhook
deliveries, backfills, `clipforge process`) takes a `QueuePolicy` instead of reading the QUEUE_*
settings itself, so one process cannot apply two sets of retry rules and a setting cannot be
forgotten by one caller (`clipforge webhooks deliver` once ignored QUEUE_BACKOFF_*).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from clipforge.queue.backoff import Backoff
from clipforge.settings import Settings


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """How jobs are retried and leased.

    Attributes:
        max_attempts: attempts before a job ends `dead` (QUEUE_MAX_ATTEMPTS).
        lease_s: lease length; a dead worker's jobs return after at most this long.
        heartbeat_s: lease renewal interval: QUEUE_HEARTBEAT_S, at most a third of `lease_s`.
        backoff: retry delays of jobs that failed on their own (these spend attempts).
        dependency_backoff: delays of jobs waiting for a dependency (these keep attempts).
        dependency_horizon_s: how long one job may wait for a dependency without spending
            attempts (QUEUE_DEPENDENCY_RETRY_HORIZON_S).
        dependency_probe_s: how often the dependencies of waiting jobs (and a closed claim
            gate, e.g. a full disk) are checked again (QUEUE_DEPENDENCY_PROBE_S).
        wake_per_s: jobs per second made runnable once their dependency answers again.
    """

    max_attempts: int
    lease_s: float
    heartbeat_s: float
    backoff: Backoff
    dependency_backoff: Backoff
    dependency_horizon_s: float
    dependency_probe_s: float
    wake_per_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> QueuePolicy:
        """The policy the QUEUE_* settings describe."""
        return cls(
            max_attempts=settings.queue_max_attempts,
            lease_s=settings.queue_lease_s,
            # At most a third of the lease, so a lease outlives two missed beats (what the
            # pipeline worker always did; QUEUE_HEARTBEAT_S only has to be under the lease).
            heartbeat_s=min(settings.queue_heartbeat_s, settings.queue_lease_s / 3),
            backoff=Backoff(settings.queue_backoff_base_s, settings.queue_backoff_max_s),
            dependency_backoff=Backoff(
                settings.queue_backoff_base_s, settings.queue_dependency_backoff_max_s
            ),
            dependency_horizon_s=settings.queue_dependency_retry_horizon_s,
            dependency_probe_s=settings.queue_dependency_probe_s,
            wake_per_s=settings.queue_wake_per_s,
        )

    @classmethod
    def defaults(cls) -> QueuePolicy:
        """The policy of the settings' defaults, whatever the environment says (for tests and
        benchmarks; a process builds its policy from its own settings)."""
        return cls.from_settings(Settings.model_construct())

    def replace(self, **changes: Any) -> QueuePolicy:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
