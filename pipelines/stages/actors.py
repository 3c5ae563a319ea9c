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
import math
import os
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
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
        name = self.span_name(method, item)
        with tracing.remote_span(name, carrier, {"clipforge.actor.pid": os.getpid()}) as spans:
            value, report = getattr(self, method)(item)
        report["spans"] = spans
        return value, report

    def span_name(self, method: str, item: Any) -> str:
        """The name of a traced call's span: `Class.method`."""
        return f"{type(self).__name__}.{method}"

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


class SharedActor(StageActor):
    """One process serving several stages: each member stage's own actor class, built in it.

    Import and export both wait on ffmpeg and storage and load no model, so one process can
    serve both (`worker.shared_pools`): one boot instead of two, and the export side is warm
    as soon as the first video is imported. Calls arrive as `call((stage, method, item))`,
    one at a time (an actor runs one call at a time); members share this actor's storage
    client (one breaker) and object cache.
    """

    def __init__(
        self, settings: Settings, members: tuple[tuple[str, type[StageActor], tuple[Any, ...]], ...]
    ) -> None:
        super().__init__(settings)
        self.members: dict[str, StageActor] = {}
        for stage, cls, args in members:
            actor = cls(*args)
            actor.store, actor.cache = self.store, self.cache
            self._loads += actor.report()["loads"]  # what the member loaded while built
            self.members[stage] = actor

    def span_name(self, method: str, item: Any) -> str:
        """A routed call's span is named for the member that runs it (`ImportActor.run`)."""
        if method == "call":
            stage, inner, value = item
            return self.members[stage].span_name(inner, value)
        return super().span_name(method, item)

    def call(self, request: tuple[str, str, Any]) -> tuple[Any, Report]:
        """Run `method(item)` on the member actor of `stage`; the report covers the process."""
        stage, method, item = request
        value, report = getattr(self.members[stage], method)(item)
        self._loads += report["loads"]
        return value, self.report()


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


@dataclass
class ActorStart:
    """When one actor of a pool was asked for, and when it had loaded its models (monotonic)."""

    stage: str
    requested: float
    ready: float | None = None


class ActorSet:
    """The elastic pool of one stage's warm actors; rows go to whichever ready actor is free.

    The pool starts empty and grows on demand (`grow`, and `map` when it has none) up to
    `count` actors; `shrink` removes actors that have been idle for a while, never one with a
    call in flight. An actor gets calls only once it has loaded its models, so an actor still
    waiting for a CPU (a resource request the Ray autoscaler sees, answered by a new node)
    holds no work back while its siblings run.
    """

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
        self._cls, self._args = cls, args
        self.max_count = count
        # A killed or crashed actor is restarted (loading its models again) and the call it was
        # running is retried once on the new one; stage outputs are idempotent, so that is safe.
        self._options: dict[str, float | int] = {
            "num_cpus": num_cpus,
            "num_gpus": num_gpus,
            "max_restarts": -1,
            "max_task_retries": 1,
        }
        self._telemetry = telemetry
        self._handles: dict[int, Any] = {}  # actor number -> handle, oldest first
        self._loading: dict[Any, int] = {}  # ready() ref -> actor number, until it answers
        self._idle: dict[int, float] = {}  # ready, free actors -> since when (monotonic)
        self._next = 0
        self._cond = threading.Condition()
        self.starts: list[ActorStart] = []
        self._start_of: dict[int, ActorStart] = {}
        self._remote: Any = None
        self._in_flight: Counter[str] = Counter()  # calls in flight by route (member stage)

    @property
    def pool(self) -> ActorSet:
        """The pool itself (a `PoolView` names the pool it is a view of)."""
        return self

    @property
    def cpu_demand(self) -> float:
        """CPUs one actor of the stage reserves (the least the pool needs to run at all)."""
        return float(self._options["num_cpus"])

    def scale_cpus(self, factor: float) -> None:
        """Reserve `factor` times the configured CPUs (for actors started from now on)."""
        self._options["num_cpus"] = float(self._options["num_cpus"]) * factor
        self._remote = None

    @property
    def actors(self) -> list[Any]:
        """The actor handles, oldest first (loading ones included)."""
        with self._cond:
            return list(self._handles.values())

    @property
    def size(self) -> int:
        """Actors in the pool, loading ones included."""
        with self._cond:
            return len(self._handles)

    @property
    def loaded(self) -> int:
        """Actors that have loaded their models (they take calls)."""
        with self._cond:
            return len(self._handles) - len(self._loading)

    @property
    def busy(self) -> int:
        """Loaded actors with a call in flight."""
        with self._cond:
            return len(self._handles) - len(self._loading) - len(self._idle)

    def grow(self, target: int) -> int:
        """Start actors until the pool has `target` (at most its maximum); returns how many
        were started. Models load in the background while other stages work."""
        import ray

        started = 0
        with self._cond:
            target = min(target, self.max_count)
            if len(self._handles) >= target:
                return 0
            if self._remote is None:  # one actor class for the pool: exported to Ray once
                self._remote = ray.remote(self._cls).options(**self._options)
            remote = self._remote
            while len(self._handles) < target:
                number, self._next = self._next, self._next + 1
                handle: Any = remote.remote(*self._args)
                self._handles[number] = handle
                self._loading[handle.ready.remote()] = number
                record = ActorStart(self.stage, time.monotonic())
                self.starts.append(record)
                self._start_of[number] = record
                started += 1
        log.info("stage pool grew", extra={"stage": self.stage, "actors": target})
        return started

    def start(self) -> None:
        """Start the pool's actors up to its maximum."""
        self.grow(self.max_count)

    def shrink(self, target: int, idle_s: float) -> int:
        """Remove actors beyond `target` that are still loading or have been idle `idle_s`,
        the last loaded first (those placed on nodes the autoscaler added, which can then go
        away); an actor with a call in flight is never removed, and while the last loaded is
        busy or not yet idle `idle_s`, none older is. Returns how many were removed."""
        import ray

        now = time.monotonic()
        removed: list[Any] = []
        with self._cond:
            loading = set(self._loading.values())
            for number in sorted(self._handles, key=self._ready_at, reverse=True):
                if len(self._handles) <= target:
                    break
                since = self._idle.get(number)
                if not (number in loading or (since is not None and now - since >= idle_s)):
                    # Strictly the last loaded first: removing an older idle actor instead
                    # would leave this one alone on an added node, which could never go.
                    break
                removed.append(self._handles.pop(number))
                self._idle.pop(number, None)
                self._start_of.pop(number, None)
            self._loading = {r: n for r, n in self._loading.items() if n in self._handles}
        for handle in removed:
            ray.kill(handle, no_restart=True)
        if removed:
            log.info("stage pool shrank", extra={"stage": self.stage, "actors": self.size})
        return len(removed)

    def _ready_at(self, number: int) -> float:
        """When the actor had loaded its models (infinity while it loads)."""
        record = self._start_of.get(number)
        return math.inf if record is None or record.ready is None else record.ready

    def map(
        self, method: str, items: list[Any], *, route: str | None = None, limit: int | None = None
    ) -> list[Any]:
        """Call `method` once per item, spread over the loaded actors; a value or an Exception
        each.

        Several runner threads of a stage may map at once: idle actors are shared between them
        (one call per actor at a time), so no actor idles while another thread has work. In a
        pool of `SharedActor`s, `route` names the member stage the calls go to, and `limit`
        bounds that stage's calls in flight (all threads together) to its own `actors`.
        """
        import ray

        self.grow(1)
        key = route or ""
        stage = route or self.stage  # metrics and spans name the stage, not the shared pool
        results: list[Any] = [None] * len(items)
        todo = deque(enumerate(items))
        running: dict[Any, tuple[int, int, tracing.Hop | None]] = {}
        STAGE_ROWS.labels(stage=stage).inc(len(items))
        while todo or running:
            while todo and (acquired := self._acquire(not running, key, limit)) is not None:
                actor, handle = acquired
                index, item = todo.popleft()
                hop = tracing.start_hop(
                    f"ray {stage}.{method}",
                    _job_ids(item),
                    {"clipforge.stage": stage, "clipforge.actor.index": actor},
                )
                name, arg = (method, item) if route is None else ("call", (route, method, item))
                if hop is None:
                    ref = getattr(handle, name).remote(arg)
                else:
                    ref = handle.traced.remote(name, arg, hop.carrier)
                running[ref] = (index, actor, hop)
            if not running:
                continue
            # Short waits while work is left: an actor another thread frees is picked up soon.
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.05 if todo else None)
            for ref in done:
                index, actor, hop = running.pop(ref)
                results[index] = self._answer(ref, actor)
                self._release(actor, key)
                if hop is not None:
                    answer = results[index]
                    hop.end(error=repr(answer) if isinstance(answer, Exception) else None)
        return results

    def _acquire(self, block: bool, route: str, limit: int | None) -> tuple[int, Any] | None:
        """A loaded idle actor, or None (waits only when the caller has nothing in flight);
        none while `route` has `limit` calls in flight."""
        while True:
            self._absorb_ready(timeout=0)
            with self._cond:
                capped = limit is not None and self._in_flight[route] >= limit
                if self._idle and not capped:
                    # The first loaded: those loaded last (on added nodes) idle and go first.
                    number = min(self._idle, key=self._ready_at)
                    del self._idle[number]
                    self._in_flight[route] += 1
                    return number, self._handles[number]
                if not block:
                    return None
                empty, loading = not self._handles, bool(self._loading)
                if capped or (not empty and not loading):  # wait for a call to end
                    self._cond.wait(0.05)
                    continue
            if empty:  # closed (a stage timeout) or shrunk meanwhile
                self.grow(1)
            else:
                self._absorb_ready(timeout=0.05)

    def _release(self, actor: int, route: str) -> None:
        with self._cond:
            self._in_flight[route] -= 1
            if actor in self._handles:
                self._idle[actor] = time.monotonic()
                self._cond.notify()

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

    def poll_ready(self) -> None:
        """Take in the actors that have loaded since the last look, without waiting.

        A pool learns of a load otherwise only when its stage calls it, so a pool warmed
        ahead of its stage (`warm_next_stage`) looked loading until its stage's first call:
        its start-up times were late (a detect actor "loaded" when the first transcript came,
        minutes after it had), and `one_load_per_pool` held its next actor back meanwhile."""
        self._absorb_ready(timeout=0)

    def _absorb_ready(self, *, timeout: float | None) -> None:
        """Move actors whose models have loaded into the idle set (waiting up to `timeout`)."""
        import ray

        with self._cond:
            pending = dict(self._loading)
        if not pending:
            return
        done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=timeout)
        for ref in done:
            with self._cond:  # several threads may see it done: only one absorbs its report
                number = self._loading.pop(ref, None)
                if number is None or number not in self._handles:
                    continue
                self._idle[number] = time.monotonic()
                record = self._start_of.get(number)
                if record is not None:
                    record.ready = time.monotonic()
                self._cond.notify()
            try:
                self._telemetry.absorb(self.stage, number, ray.get(ref))
            except Exception:  # an actor that failed to start shows up on its first call
                log.warning("stage actor failed to start", extra={"stage": self.stage})

    def wait_ready(self) -> None:
        """Start the pool's actors up to its maximum and block until all have loaded their
        models (tests, benchmarks)."""
        self.start()
        self._absorb_ready(timeout=None)

    def close(self) -> None:
        """Kill the actors (their CPUs and memory go back to the cluster)."""
        import ray

        with self._cond:
            actors = list(self._handles.values())
            self._handles, self._loading, self._idle = {}, {}, {}
            self._start_of = {}
        for actor in actors:
            ray.kill(actor, no_restart=True)


class PoolView:
    """One stage's share of a pool of `SharedActor`s: its calls go to its member actor in
    whichever process is free, at most `count` at a time. Sizing, start and readiness are the
    pool's (`PipelineWorker` works on `.pool`, and `scale_pools` adds up its stages' needs)."""

    def __init__(self, pool: ActorSet, stage: str, count: int) -> None:
        self.pool = pool
        self.stage = stage
        self.max_count = count

    def map(self, method: str, items: list[Any]) -> list[Any]:
        """`ActorSet.map` routed to this stage's member actors."""
        return self.pool.map(method, items, route=self.stage, limit=self.max_count)

    def close(self) -> None:
        """Kill the shared pool's actors (a stuck call of one stage restarts the pool: the
        other stage's call in flight fails retryable and runs again)."""
        self.pool.close()


def share_pool(
    name: str,
    settings: Settings,
    members: list[tuple[str, type[StageActor], tuple[Any, ...], int, float]],
    telemetry: Telemetry,
) -> tuple[ActorSet, dict[str, PoolView]]:
    """One pool of `SharedActor`s for the member stages `(stage, cls, args, actors, num_cpus)`:
    at most the members' actors added up (each stage's calls stay within its own `actors`),
    each reserving the largest member's CPUs; and each stage's view of it."""
    pool = ActorSet(
        name,
        SharedActor,
        (settings, tuple((stage, cls, args) for stage, cls, args, _, _ in members)),
        count=sum(count for _, _, _, count, _ in members),
        num_cpus=max(cpus for *_, cpus in members),
        telemetry=telemetry,
    )
    return pool, {stage: PoolView(pool, stage, count) for stage, _, _, count, _ in members}
