"""The one shape every pipeline stage has, and the batch handler that runs any of them.

A stage loads the inputs of a batch of jobs from Postgres (one query per table, never one per
job), hands them to its warm Ray actors, and turns each job's output into the writes that commit
with the job. Stage actors never touch Postgres; the driver alone does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from clipforge.db.pool import Conn, Pool
from clipforge.queue import Job, JobResult
from pipelines.actors import ActorSet
from pipelines.rows import Row, failure_of

log = logging.getLogger(__name__)
Outcomes = dict[int, JobResult | Exception]


class Stage(Protocol):
    """One pipeline stage (import, transcribe, detect, export)."""

    name: str
    claim_batch_size: int
    # Claim loops of the stage: as many as it has actors, so none idles between batches.
    runners: int
    # Why a claimed job has no inputs (its rows are gone).
    missing: str
    # The stage's warm actors (started with the worker, kept across batches).
    actors: ActorSet

    def load(self, conn: Conn, jobs: Sequence[Job]) -> dict[int, Row]:
        """The input row of every job that can run, by job id, read for the whole batch."""
        ...

    def execute(self, inputs: Mapping[int, Row]) -> dict[int, Row | Exception]:
        """Run the batch on the stage's actors: an output row or an error per job id."""
        ...

    def commit(self, job: Job, output: Row) -> JobResult:
        """The writes that commit with the job, and what follows the commit."""
        ...


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
        elif (failure := failure_of(output)) is not None:
            outcomes[job.id] = failure
        else:
            outcomes[job.id] = stage.commit(job, output)
    return outcomes
