"""The one shape every pipeline stage has, the batch handler that runs any of them, and the
stages of a worker, built from the registry (`clipforge.stages.STAGES`).

A stage loads the inputs of a batch of jobs from Postgres (one query per table, never one per
job), hands them to its warm Ray actors as frozen input values, and turns each job's output
value into the writes that commit with the job. Stage actors never touch Postgres; the driver
alone does. An actor reports a job's failure as a `StageError` value, never by raising.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from clipforge.db.pool import Conn, Pool
from clipforge.queue import Job, JobResult
from clipforge.settings import Settings
from clipforge.stages import STAGES, StageInfo
from models.highlight_config import ScorerConfig
from pipelines.config import PipelineConfig
from pipelines.stages.actors import ActorSet, PoolView, StageActor, Telemetry, share_pool
from pipelines.stages.lifecycle import Lifecycle
from pipelines.stages.values import StageError

log = logging.getLogger(__name__)
Outcomes = dict[int, JobResult | Exception]


class JobValue(Protocol):
    """A stage input: the job it belongs to."""

    @property
    def job_id(self) -> int: ...


In = TypeVar("In", bound=JobValue)
Out = TypeVar("Out")


@dataclass(frozen=True, slots=True)
class ActorSpec:
    """A stage's actors, from its section of the pipeline config."""

    cls: type[StageActor]
    args: tuple[Any, ...]
    count: int
    num_cpus: float
    claim_batch_size: int
    num_gpus: float = 0.0
    # Jobs per actor when the worker sizes the pool (None: `worker.work_per_actor`).
    work_per_actor: int | None = None
    # A job counts once per this many seconds of its video (the stage cuts videos into parts
    # that run on actors of their own); None: once.
    part_s: float | None = None


class BaseStage(Generic[In, Out]):
    """Base of the stage drivers (import, transcribe, detect, export).

    A subclass names itself (`name`, a registry entry), says why a claimed job may have no
    inputs (`missing`), sizes its actors (`actor_spec`) and implements `load` and `commit`;
    `configure` reads what else it needs before its actors are sized, and `execute` makes one
    `actor_method` call per input unless the stage overrides it.
    """

    name: ClassVar[str]
    # Why a claimed job has no inputs (its rows are gone).
    missing: ClassVar[str]
    # The actor method `execute` calls with each input.
    actor_method: ClassVar[str] = "run"

    def __init__(
        self,
        settings: Settings,
        config: PipelineConfig,
        lifecycle: Lifecycle,
        telemetry: Telemetry,
        *,
        scorer: ScorerConfig | None = None,
    ) -> None:
        """`scorer` overrides the detect config's scorer file (a backfill's tuned scorer)."""
        self.settings = settings
        self.lifecycle = lifecycle
        self.configure(config, scorer)
        self.spec = spec = self.actor_spec(settings, config)
        self.claim_batch_size = spec.claim_batch_size
        # Claim loops of the stage: as many as it has actors, so none idles between batches.
        self.runners = spec.count
        # The stage's warm actors (started with the worker, kept across batches); a view of a
        # pool shared with other stages with `worker.shared_pools` (`build_stages`).
        self.actors: ActorSet | PoolView = ActorSet(
            self.name,
            spec.cls,
            spec.args,
            count=spec.count,
            num_cpus=spec.num_cpus,
            num_gpus=spec.num_gpus,
            telemetry=telemetry,
        )

    def configure(self, config: PipelineConfig, scorer: ScorerConfig | None) -> None:
        """Read the stage's own settings (before `actor_spec`); nothing by default."""

    def actor_spec(self, settings: Settings, config: PipelineConfig) -> ActorSpec:
        """The stage's actor class, its arguments and its share of the cluster."""
        raise NotImplementedError

    def load(self, conn: Conn, jobs: Sequence[Job]) -> dict[int, In]:
        """The input of every job that can run, by job id, read for the whole batch."""
        raise NotImplementedError

    def execute(self, inputs: Mapping[int, In]) -> dict[int, Out | StageError | Exception]:
        """Run the batch on the stage's actors: one call per input, spread over the actors; an
        output, the job's error or the call's exception per job id."""
        items = list(inputs.values())
        answers = self.actors.map(self.actor_method, items)
        return {item.job_id: answer for item, answer in zip(items, answers, strict=True)}

    def commit(self, job: Job, output: Out) -> JobResult:
        """The writes that commit with the job, and what follows the commit."""
        raise NotImplementedError


Stage = BaseStage[Any, Any]


def stage_class(info: StageInfo) -> type[Stage]:
    """The driver class a registry entry names (`module:Class`)."""
    module, _, attr = info.driver.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, BaseStage) and cls.name == info.name):
        raise TypeError(f"{info.driver} is not the driver of the {info.name} stage")
    return cls


def build_stages(
    settings: Settings,
    config: PipelineConfig,
    lifecycle: Lifecycle,
    telemetry: Telemetry,
    *,
    scorer: ScorerConfig | None = None,
) -> list[Stage]:
    """Every registered stage in pipeline order (their actors start on first use); the stages
    of each `worker.shared_pools` group share one pool of processes (`pipelines.stages.actors.share_pool`)."""
    stages = [
        stage_class(info)(settings, config, lifecycle, telemetry, scorer=scorer) for info in STAGES
    ]
    for group in config.worker.shared_pools:
        members = [s for s in stages if s.name in group]
        if len(members) < 2 or any(s.spec.num_gpus for s in members):
            continue  # nothing to share (a GPU stage keeps its own processes)
        _, views = share_pool(
            "+".join(s.name for s in members),
            settings,
            [(s.name, s.spec.cls, s.spec.args, s.spec.count, s.spec.num_cpus) for s in members],
            telemetry,
        )
        for stage in members:
            stage.actors = views[stage.name]
    return stages


def run_batch(stage: Stage, pool: Pool, jobs: list[Job]) -> Outcomes:
    """Load, execute and prepare the commit of a batch; each job fails or succeeds alone."""
    started = time.monotonic()
    with pool.connection() as conn:
        inputs = stage.load(conn, jobs)
    loaded = time.monotonic()
    outputs = stage.execute(inputs) if inputs else {}
    log.info(
        "stage batch ran",
        extra={
            "stage": stage.name,
            "jobs": len(jobs),
            "load_s": round(loaded - started, 3),
            "execute_s": round(time.monotonic() - loaded, 3),
        },
    )
    outcomes: Outcomes = {}
    for job in jobs:
        output = outputs.get(job.id)
        if job.id not in inputs:
            outcomes[job.id] = LookupError(stage.missing)
        elif output is None:
            outcomes[job.id] = RuntimeError(f"the {stage.name} stage returned nothing for the job")
        elif isinstance(output, Exception):
            outcomes[job.id] = output
        elif isinstance(output, StageError):
            outcomes[job.id] = output.exception()
        else:
            outcomes[job.id] = stage.commit(job, output)
    return outcomes
