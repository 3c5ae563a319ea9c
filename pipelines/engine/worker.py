"""The queue worker: a Ray driver that runs every pipeline stage at once on warm actors.

Each stage (import, transcribe, detect, export; see `pipelines.stages`) gets its own queue
runner thread that claims only that stage's jobs and its own long-lived Ray actors, so while one
video is transcribed another is scored and a third exported, and models load once per worker
instead of once per batch. Each stage's actors form an elastic pool (`pipelines.stages.actors.ActorSet`)
sized to the stage's queued and running jobs by `scale_pools`: no actor starts for a stage with
nothing to do, a pool grows (up to the stage's `actors`; an actor finding no free CPU is a request
the Ray autoscaler answers with a node) and idle actors go again. This module only wires stages,
runners, pools and the video lifecycle (`pipelines.stages.lifecycle`) together and decides when an
`until_idle` run is over. The driver alone
talks to Postgres; actors only read and write object storage, with keys derived from ids, so a
re-run overwrites instead of duplicating.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from types import TracebackType

from clipforge.cache import Cache
from clipforge.db.pool import Pool
from clipforge.db.repo.pipeline_jobs import has_work, stage_demand
from clipforge.local_ray import init_ray
from clipforge.metrics import STAGE_ACTORS, STAGE_WORK_PER_ACTOR
from clipforge.queue import Job, JobNotifier, JobResult, QueuePolicy, QueueRunner, RunnerOptions
from clipforge.settings import Settings
from models.highlight_config import ScorerConfig
from pipelines.config import PipelineConfig
from pipelines.stages.actors import ActorSet, Telemetry
from pipelines.stages.base import Stage, build_stages, run_batch
from pipelines.stages.lifecycle import Lifecycle
from pipelines.stages.values import StageFailure

log = logging.getLogger(__name__)
BatchOutcomes = Mapping[int, JobResult | Exception]


def ensure_ray() -> None:
    """Connect to RAY_ADDRESS, or start a local Ray, unless this process already has one."""
    import ray

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS") or None
        init_ray(address, include_dashboard=False, log_to_driver=False)


class PipelineWorker:
    """Claims stage jobs and runs them on warm stage actors until stopped."""

    def __init__(
        self,
        settings: Settings,
        config: PipelineConfig,
        pool: Pool,
        *,
        database_url: str,
        cache: Cache | None = None,
        worker_id: str | None = None,
        extra_handlers: Mapping[str, Callable[[Job], JobResult | None]] | None = None,
        kind_prefix: str = "",
        run_id: str | None = None,
        scorer: ScorerConfig | None = None,
    ) -> None:
        """`kind_prefix` gives this worker its own job kinds, `run_id` its own run's jobs of
        them (a backfill claims only the jobs of its run, never another run's); `scorer`
        replaces the detect config's scorer file (read by the caller, shipped to actors)."""
        self.settings = settings
        self.run_id = run_id
        self.config = config
        self.pool = pool
        self.prefix = kind_prefix
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        # Attempts, leases and backoff of every job this worker claims or enqueues (QUEUE_*).
        self.policy = QueuePolicy.from_settings(settings)
        self.lifecycle = Lifecycle(
            settings, self.policy, pool, cache=cache or Cache(None), kind_prefix=kind_prefix
        )
        self.telemetry = Telemetry()
        self.stages = build_stages(settings, config, self.lifecycle, self.telemetry, scorer=scorer)
        self._database_url = database_url
        self._extra = dict(extra_handlers or {})
        self._stopped = threading.Event()
        self._runners: list[QueueRunner] = []
        self._notifiers: list[JobNotifier] = []
        self._started = False
        self.stage_timeout_s = settings.stage_timeout_s
        # Checked before each stage claim (`QueueRunner` gate); `clipforge worker` sets the
        # free-space floor here (clipforge.diskspace).
        self.gate: Callable[[], None] | None = None

    @property
    def kinds(self) -> list[str]:
        """Every job kind this worker runs."""
        return [self.prefix + s.name for s in self.stages] + sorted(self._extra)

    def _options(self, batch_size: int) -> RunnerOptions:
        return RunnerOptions(
            policy=self.policy, batch_size=batch_size, idle_poll_s=self.config.worker.idle_poll_s
        )

    def _notifier(self) -> JobNotifier:
        notifier = JobNotifier(self._database_url)
        self._notifiers.append(notifier)
        return notifier

    def _make_runners(self) -> list[QueueRunner]:
        runners = [
            QueueRunner(
                self.pool,
                {},
                worker_id=self.worker_id,
                options=self._options(stage.claim_batch_size),
                notifier=self._notifier(),
                batch_handlers={self.prefix + stage.name: partial(self._run_timed, stage)},
                on_failed=self.lifecycle.on_failed,
                run_id=self.run_id,
                gate=self.gate,
            )
            for stage in self.stages
            for _ in range(stage.runners)
        ]
        if self._extra:  # light jobs (webhook deliveries) ride along on their own runner
            runners.append(
                QueueRunner(
                    self.pool,
                    self._extra,
                    worker_id=self.worker_id,
                    options=self._options(self.config.worker.claim_batch_size),
                    notifier=self._notifier(),
                )
            )
        return runners

    def _run_timed(self, stage: Stage, jobs: list[Job]) -> BatchOutcomes:
        """`run_batch` with a deadline: a stage stuck on its actors (e.g. ones waiting for CPUs
        that never free up) would otherwise hold its jobs, heartbeating, forever. Past the
        deadline the jobs fail (retryable, so they back off and end `dead` if it persists) and
        the stage's actors are killed: the stuck call returns, the next batch starts fresh ones.
        """
        outcomes: list[BatchOutcomes] = []
        errors: list[BaseException] = []

        def target() -> None:
            try:
                outcomes.append(run_batch(stage, self.pool, jobs))
            except BaseException as exc:  # re-raised in the runner's thread below
                errors.append(exc)

        thread = threading.Thread(target=target, name=f"{stage.name}-batch", daemon=True)
        thread.start()
        thread.join(self.stage_timeout_s)
        if thread.is_alive():
            log.error(
                "stage batch timed out; failing its jobs and restarting the stage's actors",
                extra={"stage": stage.name, "jobs": [j.id for j in jobs]},
            )
            stage.actors.close()
            error = StageFailure(
                f"{stage.name} timed out after {self.stage_timeout_s:g} s (STAGE_TIMEOUT_S)",
                retryable=True,
            )
            return {j.id: error for j in jobs}
        if errors:
            raise errors[0]
        return outcomes[0]

    def start(self) -> None:
        """Connect to Ray and size the actors' CPU share; no actor starts before its stage has
        work (`scale_pools`, or a runner's first claim)."""
        ensure_ray()
        if not self._started:
            self._fit_cpus()
            self._started = True

    @property
    def pools(self) -> list[ActorSet]:
        """Every actor pool, in pipeline order (a pool shared by stages once, where its first
        stage is)."""
        pools: list[ActorSet] = []
        for stage in self.stages:
            if stage.actors.pool not in pools:
                pools.append(stage.actors.pool)
        return pools

    def _fit_cpus(self) -> None:
        """Shrink the actors' CPU reservations if one actor of every stage would not fit in
        the CPUs still free.

        A stage with work must be able to run at least one actor; a budget that does not fit
        (a small machine, Serve replicas or another worker on the same Ray) would leave it
        pending forever and its stage stuck. Actors beyond the first of a pool may wait for
        CPUs: those are the requests the Ray autoscaler answers with a new node.
        """
        import ray

        demand = sum(p.cpu_demand for p in self.pools)
        available = float(ray.available_resources().get("CPU", 0))  # type: ignore[no-untyped-call]
        if demand > available:
            log.warning(
                "stage actors ask for more CPUs than the cluster has; scaling their share down",
                extra={"demand": demand, "cpus": available},
            )
            for pool in self.pools:
                pool.scale_cpus(available / demand)

    def scale_pools(self) -> dict[str, int]:
        """Size every stage's pool to its work; returns the pool sizes by stage.

        A stage gets one actor per `work_per_actor` jobs runnable now or running here (the
        stage's own figure where its `ActorSpec` has one; a job cut into parts counts once per
        part; at most its configured actors); a stage with none gets its first actor as soon as
        the stage before it has work, so models load while that stage works (ASR while videos
        import).
        A pool with less work than actors shrinks, down to `pool_min_actors`, by the actors
        idle for `pool_idle_s`; one with a call in flight stays. A pool shared by stages
        (`worker.shared_pools`) needs its stages' actors added up, each within its `actors`.
        With `one_load_per_pool`, a pool grows by one actor once the one before has loaded.
        """
        wc = self.config.worker
        with self.pool.connection() as conn:
            demand = stage_demand(
                conn,
                kinds=self.kinds,
                worker_id=self.worker_id,
                part_s={self.prefix + s.name: s.spec.part_s for s in self.stages if s.spec.part_s},
            )
        for actors in self.pools:  # loads finished since the last round count as loaded
            actors.poll_ready()
        plan: list[tuple[Stage, int, int]] = []  # (stage, jobs, actors needed)
        upstream = 0
        for stage in self.stages:
            work = demand.get(self.prefix + stage.name, 0)
            need = -(-work // (stage.spec.work_per_actor or wc.work_per_actor))
            if upstream and wc.warm_next_stage and self._follows(stage):
                need = max(need, 1)
            plan.append((stage, work, need))
            upstream = work
        pool_need: dict[int, int] = {}  # id(pool) -> actors its stages need together
        for stage, _, need in plan:
            key = id(stage.actors.pool)
            pool_need[key] = pool_need.get(key, 0) + min(need, stage.actors.max_count)
        # Later stages first: their models take longest to load (ASR before import).
        for stage, _, _ in reversed(plan):
            pool = stage.actors.pool
            if pool_need[id(pool)] <= pool.size:
                continue
            if wc.one_load_per_pool and pool.loaded < pool.size:
                continue  # its last actor still loads: a second load beside it slows both
            pool.grow(pool_need[id(pool)] if not wc.one_load_per_pool else pool.size + 1)
        sizes: dict[str, int] = {}
        for stage, work, _ in plan:
            pool = stage.actors.pool
            floor = max(pool_need[id(pool)], wc.pool_min_actors)
            if pool.size > floor:
                pool.shrink(floor, wc.pool_idle_s)
            sizes[stage.name] = pool.size
            STAGE_ACTORS.labels(stage=stage.name).set(pool.size)
            STAGE_WORK_PER_ACTOR.labels(stage=stage.name).set(work / max(pool.size, 1))
        return sizes

    def _follows(self, stage: Stage) -> bool:
        """Whether the stage's jobs come from the stage before it by themselves (exports only
        with auto-export on)."""
        return stage.name != "export" or self.config.detect.auto_export.enabled

    def _manage_pools(self, stop: threading.Event) -> None:
        while True:
            try:
                self.scale_pools()
            except Exception:  # the database is away: the pools keep their size meanwhile
                log.warning("could not size the stage pools", exc_info=True)
            if stop.wait(self.config.worker.pool_poll_s):
                return

    def wait_ready(self) -> None:
        """Start every stage's actors now, up to each pool's maximum, and block until all have
        loaded their models (a warm worker; tests, benchmarks)."""
        self.start()
        for pool in self.pools:
            pool.start()
        for pool in self.pools:
            pool.wait_ready()

    def run(self, *, until_idle: bool = False, until: Callable[[], bool] | None = None) -> int:
        """Process jobs until `stop()`; with `until_idle`, until no job is runnable now; with
        `until`, until it returns True (a backfill: every job of its run has finished, so a
        job waiting out a retry delay is waited for)."""
        if self._stopped.is_set():
            return 0
        self.start()
        # Pools are sized (the first actors asked for) before the claim loops connect.
        managing = threading.Event()
        manager = threading.Thread(
            target=self._manage_pools, args=(managing,), name="pools", daemon=True
        )
        manager.start()
        try:
            return self._drive(until_idle=until_idle, until=until)
        finally:
            managing.set()
            manager.join()

    def _drive(self, *, until_idle: bool, until: Callable[[], bool] | None) -> int:
        """Run the claim loops until stopped, idle or `until`; the jobs they ran."""
        self._runners = runners = self._make_runners()
        done = [0] * len(runners)
        errors: list[BaseException] = []

        def drive(index: int) -> None:
            try:
                done[index] = runners[index].run()
            except BaseException as exc:  # re-raised by run() once the others stopped
                errors.append(exc)

        threads = [
            threading.Thread(target=drive, args=(i,), name=f"runner-{i}", daemon=True)
            for i in range(len(runners))
        ]
        for thread in threads:
            thread.start()
        try:
            self._supervise(threads, until_idle=until_idle, until=until)
        finally:
            for runner in runners:
                runner.stop.set()  # each finishes and records the batch it has in flight
            for thread in threads:
                thread.join()
            notifiers, self._notifiers = self._notifiers, []
            for notifier in notifiers:
                notifier.close()
        if errors:
            raise errors[0]
        return sum(done)

    def _supervise(
        self,
        threads: list[threading.Thread],
        *,
        until_idle: bool,
        until: Callable[[], bool] | None,
    ) -> None:
        """Return on stop(), when a runner died, or once nothing is left to do."""
        poll = min(self.config.worker.idle_poll_s, 1.0)
        while not self._stopped.wait(poll):
            if not all(t.is_alive() for t in threads):
                return
            if until_idle and not self._busy():
                return
            if until is not None and self._done(until):
                return

    @staticmethod
    def _done(until: Callable[[], bool]) -> bool:
        try:
            return until()
        except Exception:  # the database is away: the runners wait it out, so do we
            log.warning("could not check whether the run is done; assuming it is not")
            return False

    def _busy(self) -> bool:
        try:
            with self.pool.connection() as conn:
                return has_work(conn, kinds=self.kinds, worker_id=self.worker_id)
        except Exception:  # the database is away: the runners wait it out, so do we
            log.warning("could not check the queue for work; assuming there is some")
            return True

    def stop(self) -> None:
        """Stop claiming; the batches in flight finish and are recorded."""
        self._stopped.set()
        for runner in self._runners:
            runner.stop.set()

    def close(self) -> None:
        """Stop, and release the stage actors (their CPUs and memory)."""
        self.stop()
        for pool in self.pools:
            pool.close()

    def __enter__(self) -> PipelineWorker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
