"""Queue gauges follow the queue: a kind whose jobs all finished drops to 0, not its last value."""

from __future__ import annotations

from prometheus_client import REGISTRY

from clipforge.db.pool import Pool
from clipforge.queue import QueuePolicy, claim, enqueue
from clipforge.queue.stats import export_queue_metrics


def _depth(kind: str, state: str) -> float | None:
    return REGISTRY.get_sample_value("clipforge_queue_depth", {"kind": kind, "state": state})


def _running_s(kind: str) -> float | None:
    return REGISTRY.get_sample_value("clipforge_queue_oldest_running_job_seconds", {"kind": kind})


def test_gauges_of_a_finished_kind_are_reset(db: Pool) -> None:
    with db.connection() as conn:
        enqueue(conn, QueuePolicy.defaults(), kind="backfill-gauge", payload={})
        export_queue_metrics(conn)
        assert _depth("backfill-gauge", "queued") == 1
        claim(conn, worker_id="w", limit=1, lease_s=60, kinds=["backfill-gauge"])
        conn.execute("UPDATE jobs SET started_at = now() - interval '40 minutes'")
        export_queue_metrics(conn)
        assert _depth("backfill-gauge", "running") == 1
        assert (_running_s("backfill-gauge") or 0) >= 2400  # QueueJobRunningLong's input
        conn.execute("UPDATE jobs SET state = 'succeeded', finished_at = now()")
        export_queue_metrics(conn)
    assert _depth("backfill-gauge", "queued") == _depth("backfill-gauge", "running") == 0
    assert _running_s("backfill-gauge") == 0
    assert (
        REGISTRY.get_sample_value(
            "clipforge_queue_oldest_job_age_seconds", {"kind": "backfill-gauge"}
        )
        == 0
    )
