"""Batch settings shared by the model deployments, and a record of the batch sizes seen.

`@serve.batch` parameters are tuned at run time through the deployment's `user_config`
(`reconfigure`), so an operator can trade latency for throughput with `serve deploy` and no
restart. Batch sizes go to a Ray histogram (exported by Ray from replicas) and to a small
in-replica summary that `stats()` returns, which the tests use to observe real batching.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from clipforge.metrics import ray_histogram

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class BatchConfig(BaseModel):
    """The `user_config` of a model deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(default=8, ge=1, le=256, description="Requests per batch.")
    batch_wait_timeout_s: float = Field(
        default=0.02, ge=0, le=5, description="Longest wait for a batch to fill."
    )


def apply_batch_config(method: Any, user_config: dict[str, Any]) -> BatchConfig:
    """Validate `user_config` and set it on a `@serve.batch` method."""
    config = BatchConfig.model_validate(user_config)
    method.set_max_batch_size(config.max_batch_size)
    method.set_batch_wait_timeout_s(config.batch_wait_timeout_s)
    return config


@dataclass
class BatchStats:
    """Batches executed by one replica and their sizes."""

    deployment: str
    batches: int = 0
    requests: int = 0
    largest: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._histogram = ray_histogram(
            "clipforge_model_batch_size",
            "Requests per model batch.",
            _BATCH_BUCKETS,
            tag_keys=("deployment",),
        )

    def record(self, size: int) -> None:
        """Count one executed batch of `size` requests."""
        with self._lock:
            self.batches += 1
            self.requests += size
            self.largest = max(self.largest, size)
        self._histogram.observe(size, tags={"deployment": self.deployment})

    def snapshot(self) -> dict[str, int]:
        """Batches, requests and the largest batch so far."""
        with self._lock:
            return {"batches": self.batches, "requests": self.requests, "largest": self.largest}


def thread_count(num_cpus: float) -> int:
    """Math threads for a replica with `num_cpus` (at least one; never more than it was given,
    so co-located replicas do not oversubscribe the cores)."""
    return max(1, int(num_cpus))
