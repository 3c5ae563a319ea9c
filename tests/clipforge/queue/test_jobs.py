"""The Postgres job queue: claim, lease, complete, backoff, dead-letter, re-drive, notify."""

from __future__ import annotations

import threading
import time

import pytest

from clipforge.db.pool import Pool
from clipforge.errors import Conflict, LeaseLost, MediaError, NotFound
from clipforge.queue import (
    Backoff,
    Job,
    JobNotifier,
    JobResult,
    QueuePolicy,
    QueueRunner,
    claim,
    complete,
    enqueue,
    fail,
    get_job,
    heartbeat,
    queue_stats,
    redrive,
    release,
)
from tests.utils.factories import enqueue_many, make_video
from tests.utils.wait import wait_until


def _delay_s(pool: Pool, job_id: int) -> float:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT EXTRACT(EPOCH FROM run_after - updated_at) AS d FROM jobs WHERE id = %s",
            (job_id,),
        ).fetchone()
    assert row is not None
    return float(row["d"])


def test_claim_leases_oldest_jobs_and_complete_records_result(db: Pool) -> None:
    jobs = enqueue_many(db, 3)
    with db.connection() as conn:
        claimed = claim(conn, worker_id="w1", limit=2, lease_s=30)
        assert [j.id for j in claimed] == [jobs[0].id, jobs[1].id]
        assert all(
            j.state == "running" and j.attempts == 1 and j.lease_owner == "w1" for j in claimed
        )
        complete(conn, job_id=claimed[0].id, worker_id="w1", result={"ok": True})
        done = get_job(conn, job_id=claimed[0].id)
    assert done is not None and done.state == "succeeded" and done.result == {"ok": True}
    assert done.lease_owner is None and done.finished_at is not None


def test_only_the_lease_holder_can_complete_fail_or_heartbeat(db: Pool) -> None:
    (job,) = enqueue_many(db, 1)
    with db.connection() as conn:
        claim(conn, worker_id="w1", limit=1, lease_s=30)
        with pytest.raises(LeaseLost):
            complete(conn, job_id=job.id, worker_id="intruder")
        with pytest.raises(LeaseLost):
            fail(
                conn,
                job_id=job.id,
                worker_id="intruder",
                error="x",
                retryable=True,
                backoff=Backoff(),
            )
        assert heartbeat(conn, worker_id="intruder", job_ids=[job.id], lease_s=30) == set()
        assert heartbeat(conn, worker_id="w1", job_ids=[job.id], lease_s=30) == {job.id}


def test_idempotency_key_returns_the_existing_job(db: Pool) -> None:
    video = make_video(db)
    with db.connection() as conn:
        first = enqueue(
            conn,
            QueuePolicy.defaults(),
            kind="import",
            video_id=video.id,
            idempotency_key=f"import:{video.id}",
        )
        again = enqueue(
            conn,
            QueuePolicy.defaults(),
            kind="import",
            video_id=video.id,
            idempotency_key=f"import:{video.id}",
        )
        count = conn.execute("SELECT count(*) AS n FROM jobs").fetchone()
    assert again.id == first.id and count == {"n": 1}


def test_enqueue_rolls_back_with_the_callers_transaction(db: Pool) -> None:
    with db.connection() as conn:
        with pytest.raises(RuntimeError), conn.transaction():
            enqueue(conn, QueuePolicy.defaults(), kind="test")
            raise RuntimeError("domain write failed")
        assert conn.execute("SELECT count(*) AS n FROM jobs").fetchone() == {"n": 0}


def test_delayed_job_is_not_claimed_before_run_after(db: Pool) -> None:
    with db.connection() as conn:
        enqueue(conn, QueuePolicy.defaults(), kind="test", delay_s=60)
        assert claim(conn, worker_id="w", limit=10, lease_s=30) == []


def test_claim_filters_by_kind(db: Pool) -> None:
    with db.connection() as conn:
        enqueue(conn, QueuePolicy.defaults(), kind="import")
        enqueue(conn, QueuePolicy.defaults(), kind="export")
        got = claim(conn, worker_id="w", limit=10, lease_s=30, kinds=["export"])
    assert [j.kind for j in got] == ["export"]


def test_failures_follow_backoff_then_dead_then_redrive(db: Pool) -> None:
    backoff = Backoff(base_s=0.2, cap_s=0.4)
    (job,) = enqueue_many(db, 1, max_attempts=3)
    expected_ceilings = [0.2, 0.4]
    for attempt, ceiling in enumerate(expected_ceilings, start=1):
        with db.connection() as conn:
            (leased,) = claim(conn, worker_id="w", limit=1, lease_s=30)
            assert leased.attempts == attempt
            state = fail(
                conn,
                job_id=job.id,
                worker_id="w",
                error=f"boom {attempt}",
                retryable=True,
                backoff=backoff,
            )
            assert state == "queued"
            # Not claimable until its backoff delay has passed.
            assert claim(conn, worker_id="w", limit=1, lease_s=30) == []
        assert ceiling / 2 <= _delay_s(db, job.id) <= ceiling
        time.sleep(ceiling + 0.05)
    with db.connection() as conn:
        claim(conn, worker_id="w", limit=1, lease_s=30)
        assert (
            fail(
                conn, job_id=job.id, worker_id="w", error="boom 3", retryable=True, backoff=backoff
            )
            == "dead"
        )
        dead = get_job(conn, job_id=job.id)
        assert (
            dead is not None
            and dead.state == "dead"
            and dead.last_error == "boom 3"
            and dead.attempts == 3
        )
        assert claim(conn, worker_id="w", limit=1, lease_s=30) == []
        revived = redrive(conn, job_id=job.id)
        assert revived.state == "queued" and revived.attempts == 0
        (again,) = claim(conn, worker_id="w", limit=1, lease_s=30)
        complete(conn, job_id=again.id, worker_id="w")
        final = get_job(conn, job_id=job.id)
    assert final is not None and final.state == "succeeded" and final.attempts == 1


def test_backoff_delays_grow_exponentially_and_are_capped() -> None:
    backoff = Backoff(base_s=2, cap_s=60)
    assert [backoff.ceiling(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert backoff.ceiling(10_000) == 60
    delays = [backoff.delay(3) for _ in range(200)]
    assert min(delays) >= 4 and max(delays) <= 8 and len(set(delays)) > 100


def test_runner_marks_bad_input_failed_without_retry(db: Pool) -> None:
    (job,) = enqueue_many(db, 1, max_attempts=5)

    def handler(_job: object) -> JobResult:
        raise MediaError("file has no audio track")

    QueueRunner(db, {"test": handler}, worker_id="w").run(until_empty=True)
    with db.connection() as conn:
        failed = get_job(conn, job_id=job.id)
    assert failed is not None and failed.state == "failed" and failed.attempts == 1
    assert failed.last_error == "MediaError: file has no audio track"


def test_runner_commits_outputs_with_completion(db: Pool) -> None:
    (job,) = enqueue_many(db, 1)

    def handler(j: object) -> JobResult:
        return JobResult(
            result={"stage": "done"},
            on_commit=lambda conn: (
                enqueue(conn, QueuePolicy.defaults(), kind="next", idempotency_key=f"next:{job.id}")
                and None
            ),
        )

    QueueRunner(db, {"test": handler}, worker_id="w").run(until_empty=True)
    with db.connection() as conn:
        rows = conn.execute("SELECT kind, state FROM jobs ORDER BY id").fetchall()
    assert rows == [{"kind": "test", "state": "succeeded"}, {"kind": "next", "state": "queued"}]


def test_redrive_refuses_unknown_and_live_jobs(db: Pool) -> None:
    (job,) = enqueue_many(db, 1)
    with db.connection() as conn:
        with pytest.raises(NotFound):
            redrive(conn, job_id=987654)
        with pytest.raises(Conflict):
            redrive(conn, job_id=job.id)


def test_release_returns_jobs_without_spending_an_attempt(db: Pool) -> None:
    (job,) = enqueue_many(db, 1)
    with db.connection() as conn:
        claim(conn, worker_id="w", limit=1, lease_s=30)
        assert release(conn, worker_id="w", job_ids=[job.id]) == 1
        back = get_job(conn, job_id=job.id)
    assert back is not None and back.state == "queued" and back.attempts == 0


def test_expired_lease_is_requeued_and_old_owner_cannot_complete(db: Pool) -> None:
    (job,) = enqueue_many(db, 1)
    with db.connection() as conn:
        claim(conn, worker_id="dead-worker", limit=1, lease_s=0.2)

    def claim_again() -> list[Job]:
        with db.connection() as conn:
            return claim(conn, worker_id="w2", limit=1, lease_s=30)

    (again,) = wait_until(claim_again, timeout_s=10, what="the expired lease to be claimable")
    with db.connection() as conn:
        assert again.id == job.id and again.attempts == 2
        assert again.last_error is not None and "lease expired" in again.last_error
        with pytest.raises(LeaseLost):
            complete(conn, job_id=job.id, worker_id="dead-worker")
        complete(conn, job_id=job.id, worker_id="w2")


def test_notifier_wakes_on_commit(db: Pool, database_url: str) -> None:
    notifier = JobNotifier(database_url)
    try:
        assert notifier.wait(0.1) is False
        timer = threading.Timer(0.2, lambda: enqueue_many(db, 1))
        started = time.monotonic()
        timer.start()
        assert notifier.wait(5.0) is True
        assert time.monotonic() - started < 2.0
    finally:
        timer.join()
        notifier.close()


def test_queue_stats_reports_depth_and_oldest_age(db: Pool) -> None:
    enqueue_many(db, 3, kind="import")
    with db.connection() as conn:
        claim(conn, worker_id="w", limit=1, lease_s=30)
    time.sleep(0.2)
    with db.connection() as conn:
        stats = queue_stats(conn)
    assert stats.depth[("import", "queued")] == 2
    assert stats.depth[("import", "running")] == 1
    assert stats.oldest_age_s["import"] >= 0.2
    assert stats.total("queued") == 2
