"""Warm stage actors: long-lived Ray actors that load their models once and take call after call.

The driver keeps one `ActorSet` per stage for the worker's lifetime and feeds it rows batch after
batch, so model weights, the storage client (and its circuit breaker) and the node-local object
cache survive from one batch to the next. Actors live in other processes; what the driver's
metrics must show about them (models loaded, breaker states, cache hits) comes back as a small
`report` dict with every answer and is folded into the driver's Prometheus metrics by `Telemetry`.

Tracing rides the same way. With tracing on, the driver opens a hop span per job of a call
(under the job's span) and calls the actor's `traced` entry with the hop's `traceparent`; the
actor records its own spans (the call, storage gets and puts, ffmpeg) in memory and returns them
in its report, and the driver exports them with its own (`clipforge.observability.tracing`).
Spans made on the driver around the call alone would show how long the call took but not where
the time went; an exporter in every actor would need the collector reachable from every Ray
node and OTEL_* variables in every runtime environment. With tracing off, calls go straight to
the stage method, as before.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import deque
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from clipforge.errors import DependencyUnavailable
from clipforge.metrics import BREAKER_STATE, MODEL_LOADS, OBJECT_CACHE, STAGE_ROWS
from clipforge.observability import tracing
from clipforge.observability.traced_store import TracedStore
from clipforge.settings import Settings
from clipforge.storage import create_store
from clipforge.storage.breaker import breaker_states
from clipforge.storage.objcache import ObjectCache
from pipelines.stages.values import StageFailure

log = logging.getLogger(__name__)


def threads_per_actor(configured: int, actors: int) -> int:
    """Threads of one actor: `configured`, or (if 0) the node's cores split over the stage's actors.

    Ray sets OMP_NUM_THREADS to an actor's whole CPUs (1 for a fraction), which would leave
    CTranslate2 and torch one thread each; the stage's own setting decides instead.
    """
    return configured or max(1, (os.cpu_count() or 1) // actors)


class Report(TypedDict):
    """What an actor tells the driver with each answer."""

    pid: int
    loads: list[str]
    breakers: dict[str, bool]
    cache_hits: int
    cache_misses: int
    # Spans the actor finished during a traced call (tracing on only).
    spans: NotRequired[list[tracing.SpanRecord]]


class StageActor:
    """Base of the stage actor classes: one storage client and object cache per actor."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # One client per actor (not per row), so its shared breaker sees consecutive failures.
        self.store = TracedStore(create_store(settings))
        self.cache = ObjectCache.from_settings(settings)
        self._loads: list[str] = []
        self._cache_seen = (0, 0)

    def loaded(self, model: str) -> None:
        """Record that this actor loaded `model` (reported to the driver with the next answer)."""
        self._loads.append(model)

    def fetch(self, key: str, scratch: Path) -> Path:
        """A local copy of a stored object, from the node's cache when it has it."""
        with tracing.span("storage.fetch", {"storage.key": key}) as current:
            hits = self.cache.hits
            path = self.cache.fetch(self.store, key, scratch)
            if current is not None:
                current.set_attribute("clipforge.cache.hit", self.cache.hits > hits)
            return path

    def traced(self, method: str, item: Any, carrier: dict[str, str]) -> tuple[Any, Report]:
        """Run `method(item)` in a span under the driver's hop (`carrier`); the spans the call
        finished go back in the report."""
        name = f"{type(self).__name__}.{method}"
        with tracing.remote_span(name, carrier, {"clipforge.actor.pid": os.getpid()}) as spans:
            value, report = getattr(self, method)(item)
        report["spans"] = spans
        return value, report

    def report(self) -> Report:
        """Events since the last report, and the current breaker states."""
        loads, self._loads = self._loads, []
        hits, misses = self.cache.hits, self.cache.misses
        seen_hits, seen_misses = self._cache_seen
        self._cache_seen = (hits, misses)
        return {
            "pid": os.getpid(),
            "loads": loads,
            "breakers": breaker_states(),
            "cache_hits": hits - seen_hits,
            "cache_misses": misses - seen_misses,
        }

    def ready(self) -> Report:
        """Answered once the constructor (model loading) has finished."""
        return self.report()


class Telemetry:
    """Folds actor reports into the driver's metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[tuple[str, int], dict[str, bool]] = {}
        self.pids: dict[tuple[str, int], int] = {}

    def absorb(self, stage: str, actor: int, report: Report) -> None:
        """Count the models an actor loaded; the breaker gauge is 1 while any process's is open."""
        for model in report["loads"]:
            MODEL_LOADS.labels(model=model).inc()
        if report["cache_hits"]:
            OBJECT_CACHE.labels(result="hit").inc(report["cache_hits"])
        if report["cache_misses"]:
            OBJECT_CACHE.labels(result="miss").inc(report["cache_misses"])
        with self._lock:
            self.pids[(stage, actor)] = report["pid"]  # a restarted actor has a new one
            self._breakers[(stage, actor)] = report["breakers"]
            states = [breaker_states(), *self._breakers.values()]
        for name in {n for s in states for n in s}:
            BREAKER_STATE.labels(breaker=name).set(int(any(s.get(name, False) for s in states)))


def _job_ids(item: Any) -> list[int]:
    """The jobs an actor call serves: an input's `job_id`, or those of a list of inputs (parts)."""
    values = item if isinstance(item, list) else [item]
    ids: list[int] = []
    for value in values:
        job_id = getattr(value, "job_id", None)
        if isinstance(job_id, int) and job_id not in ids:
            ids.append(job_id)
    return ids


class ActorSet:
    """The warm actors of one stage; rows go to whichever actor is free, one call per actor."""

    def __init__(
        self,
        stage: str,
        cls: type[StageActor],
        args: tuple[Any, ...],
        *,
        count: int,
        num_cpus: float,
        num_gpus: float = 0,
        telemetry: Telemetry,
    ) -> None:
        self.stage = stage
        self._cls, self._args, self._count = cls, args, count
        # A killed or crashed actor is restarted (loading its models again) and the call it was
        # running is retried once on the new one; stage outputs are idempotent, so that is safe.
        self._options: dict[str, float | int] = {
            "num_cpus": num_cpus,
            "num_gpus": num_gpus,
            "max_restarts": -1,
            "max_task_retries": 1,
        }
        self._telemetry = telemetry
        self._actors: list[Any] = []
        self._ready: dict[Any, int] = {}
        self._free: queue.Queue[int] = queue.Queue()
        self._lock = threading.Lock()

    @property
    def cpu_demand(self) -> float:
        """CPUs the stage's actors reserve together."""
        return float(self._options["num_cpus"]) * self._count

    def scale_cpus(self, factor: float) -> None:
        """Reserve `factor` times the configured CPUs (before the actors start)."""
        self._options["num_cpus"] = float(self._options["num_cpus"]) * factor

    @property
    def actors(self) -> list[Any]:
        """The actor handles (started on first use)."""
        return list(self._actors)

    def start(self) -> None:
        """Create the actors (models load in the background while other stages work)."""
        import ray

        with self._lock:
            if self._actors:
                return
            remote = ray.remote(self._cls).options(**self._options)
            self._actors = [remote.remote(*self._args) for _ in range(self._count)]
            self._ready = {a.ready.remote(): i for i, a in enumerate(self._actors)}
            self._free = queue.Queue()
            for index in range(len(self._actors)):
                self._free.put(index)

    def map(self, method: str, items: list[Any]) -> list[Any]:
        """Call `method` once per item, spread over the actors; a value or an Exception each.

        Several runner threads of a stage may map at once: idle actors are shared between them
        (one call per actor at a time), so no actor idles while another thread has work.
        """
        import ray

        self.start()
        results: list[Any] = [None] * len(items)
        todo = deque(enumerate(items))
        running: dict[Any, tuple[int, int, tracing.Hop | None]] = {}
        STAGE_ROWS.labels(stage=self.stage).inc(len(items))
        while todo or running:
            while todo and (actor := self._acquire(block=not running)) is not None:
                index, item = todo.popleft()
                handle = self._actors[actor]
                hop = tracing.start_hop(
                    f"ray {self.stage}.{method}",
                    _job_ids(item),
                    {"clipforge.stage": self.stage, "clipforge.actor.index": actor},
                )
                if hop is None:
                    ref = getattr(handle, method).remote(item)
                else:
                    ref = handle.traced.remote(method, item, hop.carrier)
                running[ref] = (index, actor, hop)
            # Short waits while work is left: an actor another thread frees is picked up soon.
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.05 if todo else None)
            for ref in done:
                index, actor, hop = running.pop(ref)
                self._free.put(actor)
                results[index] = self._answer(ref, actor)
                if hop is not None:
                    answer = results[index]
                    hop.end(error=repr(answer) if isinstance(answer, Exception) else None)
        self._absorb_ready(wait=False)
        return results

    def _acquire(self, *, block: bool) -> int | None:
        """An idle actor, or None (waits only when the caller has nothing in flight)."""
        try:
            return self._free.get(block=block)
        except queue.Empty:
            return None

    def _answer(self, ref: Any, actor: int) -> Any:
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

        try:
            value, report = ray.get(ref)
        except ActorUnavailableError as exc:
            # Its node is unreachable and not yet declared dead (a lost machine): the cluster's
            # outage, not the job's, so the queue waits for Ray to restart the actor elsewhere
            # without spending the job's attempts.
            return DependencyUnavailable(f"{self.stage} actor unavailable: {exc}", dependency="ray")
        except RayActorError as exc:  # died twice in a row, or could not restart
            return StageFailure(f"{self.stage} actor died: {exc}", retryable=True)
        except RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            return cause
        tracing.ingest(report.pop("spans", []))
        self._telemetry.absorb(self.stage, actor, report)
        return value

    def _absorb_ready(self, *, wait: bool) -> None:
        import ray

        with self._lock:
            pending = dict(self._ready)
        if not pending:
            return
        done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=None if wait else 0)
        for ref in done:
            with self._lock:  # several threads may see it done: only one absorbs its report
                actor = self._ready.pop(ref, None)
            if actor is None:
                continue
            try:
                self._telemetry.absorb(self.stage, actor, ray.get(ref))
            except Exception:  # an actor that failed to start shows up on its first call
                log.warning("stage actor failed to start", extra={"stage": self.stage})

    def wait_ready(self) -> None:
        """Block until every actor has loaded its models (tests, benchmarks)."""
        self.start()
        self._absorb_ready(wait=True)

    def close(self) -> None:
        """Kill the actors (their CPUs and memory go back to the cluster)."""
        import ray

        with self._lock:
            actors, self._actors, self._ready = self._actors, [], {}
        for actor in actors:
            ray.kill(actor, no_restart=True)
