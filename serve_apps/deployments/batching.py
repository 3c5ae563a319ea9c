"""Request batching for the model deployments, and a record of the batch sizes seen.

Why not `@serve.batch`: its queue closes a batch a fixed wait after the batch's first request
and hands it to a semaphore, then at once starts filling the next one. While the model runs a
batch, the requests that arrive form many small batches that queue behind it, so batches do
not grow with the backlog (measured: 1.7 requests a batch at 16 clients, max 8).

`Batcher` forms a batch only when the model is free, and then takes every request waiting, up
to `max_batch_size`. `batch_wait_timeout_s` is a latency budget counted from the oldest
waiting request's arrival: under a backlog it has long passed, so the batch runs at once. A
request that finds the model free and nothing else queued runs at once, however recently the
one before it came. (It used to wait out the budget when the previous request had arrived
within it, as happens at a few clients: a companion that was not coming cost it up to the
whole budget.) Only when several requests are already queued (a burst arriving) does the
batch wait, at most the budget, for more.

The settings are tuned at run time through the deployment's `user_config` (`reconfigure`), so
an operator can trade latency for throughput with `serve deploy` and no restart. Batch sizes
go to a Ray histogram (`clipforge_model_batch_size`, exported by Ray from the replicas) and to
a small in-replica summary that `stats()` returns, which the tests use to observe batching.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from clipforge.metrics import ray_histogram

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

In = TypeVar("In")
Out = TypeVar("Out")


class BatchConfig(BaseModel):
    """The `user_config` of a model deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(default=8, ge=1, le=256, description="Requests per batch.")
    batch_wait_timeout_s: float = Field(
        default=0.02,
        ge=0,
        le=5,
        description="Latency budget: longest a request waits for companions.",
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
    busy_s: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._histogram = ray_histogram(
            "clipforge_model_batch_size",
            "Requests per model batch.",
            _BATCH_BUCKETS,
            tag_keys=("deployment",),
        )

    def record(self, size: int, seconds: float = 0.0) -> None:
        """Count one executed batch of `size` requests that ran for `seconds`."""
        with self._lock:
            self.batches += 1
            self.requests += size
            self.largest = max(self.largest, size)
            self.busy_s += seconds
        self._histogram.observe(size, tags={"deployment": self.deployment})

    def snapshot(self) -> dict[str, int]:
        """Batches, requests, the largest batch and milliseconds spent in batches so far, the
        replica's pid (a caller polling several replicas through a handle tells them apart by
        it) and whether its OpenMP threads sleep when idle (`app.REPLICA_ENV`)."""
        with self._lock:
            return {
                "batches": self.batches,
                "requests": self.requests,
                "largest": self.largest,
                "busy_ms": round(self.busy_s * 1000),
                "pid": os.getpid(),
                "omp_passive": int(os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"),
            }


@dataclass
class _Pending(Generic[In, Out]):
    item: In
    future: asyncio.Future[Out]
    arrived: float


@dataclass
class Batcher(Generic[In, Out]):
    """Runs `run` over batches of submitted items, one batch at a time (see the module doc).

    `run` gets the items in arrival order and must return one result per item, in order; an
    exception it raises fails every request of that batch.
    """

    run: Callable[[list[In]], Awaitable[list[Out]]]
    stats: BatchStats
    config: BatchConfig = field(default_factory=BatchConfig)

    def __post_init__(self) -> None:
        self._queue: deque[_Pending[In, Out]] = deque()
        # Created on first use: they belong to the replica's event loop, not __init__'s thread.
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None

    def configure(self, user_config: dict[str, Any]) -> BatchConfig:
        """Validate and apply a `user_config`; the next batch uses it."""
        self.config = BatchConfig.model_validate(user_config)
        return self.config

    async def submit(self, item: In) -> Out:
        """Queue `item` and wait for its result."""
        loop = asyncio.get_running_loop()
        if self._arrived is None:
            self._arrived = asyncio.Event()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._serve_batches(self._arrived))
        now = time.monotonic()
        future: asyncio.Future[Out] = loop.create_future()
        self._queue.append(_Pending(item, future, now))
        self._arrived.set()
        return await future

    async def _serve_batches(self, arrived: asyncio.Event) -> None:
        while True:
            batch = await self._next_batch(arrived)
            if batch:
                await self._execute(batch)

    async def _next_batch(self, arrived: asyncio.Event) -> list[_Pending[In, Out]]:
        """Called when the model is free: wait for a first request, then for companions
        while the oldest one is within its budget, then take everything up to the cap."""
        while not self._queue:
            arrived.clear()
            await arrived.wait()
        limit = self.config.max_batch_size
        budget = self.config.batch_wait_timeout_s
        oldest = self._queue[0]
        alone = len(self._queue) == 1
        deadline = oldest.arrived + budget
        while not alone and len(self._queue) < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), remaining)
            except TimeoutError:
                break
        batch: list[_Pending[In, Out]] = []
        while self._queue and len(batch) < limit:
            pending = self._queue.popleft()
            if not pending.future.done():  # a caller that gave up (client gone) is skipped
                batch.append(pending)
        return batch

    async def _execute(self, batch: list[_Pending[In, Out]]) -> None:
        started = time.perf_counter()
        try:
            results = await self.run([p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
        except Exception as exc:
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        finally:
            self.stats.record(len(batch), time.perf_counter() - started)
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)


def thread_count(num_cpus: float) -> int:
    """Math threads for a replica with `num_cpus` (at least one; never more than it was given,
    so co-located replicas do not oversubscribe the cores)."""
    return max(1, int(num_cpus))
