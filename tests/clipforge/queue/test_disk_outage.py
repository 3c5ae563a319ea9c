"""A full disk is an outage of the host: jobs wait for space with their attempts kept.

Every case writes to a real, small tmpfs mounted for the test (skipped where this process may
not mount), filled with a real file: real ENOSPC from the OS and from ffmpeg, real Postgres.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from clipforge.db.pool import Pool
from clipforge.diskspace import DISK, DiskFloor
from clipforge.errors import DependencyUnavailable, MediaError
from clipforge.media.track import extract_track
from clipforge.metrics import DEPENDENCY_UP
from clipforge.queue import (
    Backoff,
    Job,
    JobResult,
    QueuePolicy,
    QueueRunner,
    RunnerOptions,
    enqueue,
)
from clipforge.queue.wake import DependencyWaker
from clipforge.resilience import RecordedFailure, classify_failure
from clipforge.settings import Settings
from clipforge.storage import LocalStore
from tests.utils.disks import SmallDisk, small_disk
from tests.utils.wait import wait_until

_MB = 1024**2
_FS_MB = 8


@pytest.fixture()
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "small", _FS_MB) as mounted:
        yield mounted


def test_enospc_from_the_os_and_from_ffmpeg_is_a_disk_outage(
    disk: SmallDisk, test_media: dict[str, Path]
) -> None:
    disk.fill(leave=0)
    # Python's own write (the local store): OSError ENOSPC, the partial file cleaned up.
    store = LocalStore(disk.root / "store")
    with pytest.raises(OSError) as raised:
        store.put_bytes("videos/x/original.mp4", b"\1" * _MB)
    failure = classify_failure(raised.value)
    assert failure.dependency == DISK and failure.retryable
    assert failure.error.startswith("DependencyUnavailable[disk]: OSError")
    assert list((disk.root / "store").rglob("*.tmp-*")) == []
    # ffmpeg writing its output: "No space left on device" on its stderr.
    with pytest.raises(DependencyUnavailable) as ffmpeg_full:
        extract_track(test_media["speech_short"], disk.root / "audio.flac")
    assert ffmpeg_full.value.dependency == DISK
    assert "No space left on device" in str(ffmpeg_full.value)
    # Still an outage after crossing a process boundary as a stage actor's error value.
    rebuilt = RecordedFailure(classify_failure(ffmpeg_full.value))
    assert classify_failure(rebuilt).dependency == DISK
    # Rows recorded as a MediaError before this classification existed are recognised too.
    legacy = MediaError("ffmpeg cut failed: av_interleaved_write_frame(): No space left on device")
    assert classify_failure(legacy).dependency == DISK
    # With space, the same input is fine: it was never the input's fault.
    disk.free_up()
    assert extract_track(test_media["speech_short"], disk.root / "audio.flac").stat()


def test_jobs_wait_out_a_full_disk_with_their_attempts_and_resume_when_freed(
    db: Pool, settings: Settings, disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    floor = DiskFloor(settings.model_copy(update={"disk_free_floor_mb": 1}), [disk.root])
    store = LocalStore(disk.root / "store")

    def handler(job: Job) -> JobResult:
        store.put_bytes(f"renders/{job.id}.mp4", b"\2" * (3 * _MB // 2))
        return JobResult()

    options = RunnerOptions(
        policy=QueuePolicy.defaults().replace(
            lease_s=20.0,
            heartbeat_s=5.0,
            dependency_probe_s=0.3,
            dependency_backoff=Backoff(base_s=60.0, cap_s=60.0),  # only a wake-up brings them back
        ),
        batch_size=1,
        idle_poll_s=0.2,
    )
    runner = QueueRunner(
        db, {"test": handler}, worker_id="disk-runner", options=options, gate=floor.require
    )
    waker = DependencyWaker(db, {DISK: floor.probe}, interval_s=0.5, per_s=50.0)
    # Above the 1 MB floor but too little for a 1.5 MB render: the job starts, meets ENOSPC.
    disk.fill(leave=int(1.25 * _MB))
    with db.connection() as conn:
        first = enqueue(conn, QueuePolicy.defaults(), kind="test", max_attempts=2).id
    threads = [threading.Thread(target=t.run, daemon=True) for t in (runner, waker)]
    for thread in threads:
        thread.start()
    try:
        _wait_for(db, f"id = {first} AND state = 'queued' AND waiting_on = 'disk'")
        # Under the floor: nothing more is claimed, so later jobs do not even start.
        disk.fill(leave=_MB // 2)
        with db.connection() as conn:
            later = [
                enqueue(conn, QueuePolicy.defaults(), kind="test", max_attempts=2).id
                for _ in range(3)
            ]
        time.sleep(2.0)
        assert float(DEPENDENCY_UP.labels(dependency=DISK)._value.get()) == 0.0
        with db.connection() as conn:
            untouched = conn.execute(
                "SELECT count(*) AS n FROM jobs WHERE id = ANY(%s) AND attempts = 0"
                " AND state = 'queued'",
                (later,),
            ).fetchone()
        assert untouched is not None and untouched["n"] == 3
        disk.free_up()
        freed = time.monotonic()
        _wait_for(db, "state = 'succeeded'", count=4, timeout_s=15.0)
        print(f"all 4 jobs done {time.monotonic() - freed:.1f} s after the disk was freed")
    finally:
        runner.stop.set()
        waker.stop.set()
        for thread in threads:
            thread.join(timeout=30)
    with db.connection() as conn:
        rows = conn.execute("SELECT id, attempts, last_error FROM jobs ORDER BY id").fetchall()
    assert [r["attempts"] for r in rows] == [1, 1, 1, 1]  # no attempt spent on the outage
    assert rows[0]["last_error"].startswith("DependencyUnavailable[disk]: ")
    assert float(DEPENDENCY_UP.labels(dependency=DISK)._value.get()) == 1.0
    # One line when claims paused for the disk and one when they resumed, not one per check.
    paused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("claims ")]
    assert paused == ["claims paused: disk unavailable", "claims resumed: disk is back"]


def _wait_for(db: Pool, where: str, *, count: int = 1, timeout_s: float = 60.0) -> None:
    def reached() -> bool:
        with db.connection() as conn:
            query = f"SELECT count(*) AS n FROM jobs WHERE {where}"  # noqa: S608 - the test's own
            row = conn.execute(query).fetchone()  # type: ignore[arg-type]
        return row is not None and row["n"] >= count

    wait_until(reached, timeout_s=timeout_s, interval_s=0.1, what=f"{count} job(s) with {where}")


def test_ready_reports_a_disk_under_its_floor_as_degraded(
    settings: Settings, database_url: str, disk: SmallDisk
) -> None:
    from serve_apps.api.app import create_app
    from serve_apps.api.deps import ApiDeps

    api_settings = settings.model_copy(
        update={
            "disk_free_floor_mb": 1,
            "local_storage_dir": disk.root / "storage",
            "object_cache_dir": disk.root / "cache",
            "redis_url": None,
        }
    )
    deps = ApiDeps.open(api_settings, database_url=database_url)
    try:
        with TestClient(create_app(deps), raise_server_exceptions=False) as client:
            assert client.get("/ready").json()["checks"]["disk"] == "ok"
            disk.fill(leave=_MB // 2)
            ready = client.get("/ready")
            body = ready.json()
            assert ready.status_code == 200 and body["status"] == "degraded", body
            assert body["degraded"] == ["disk"] and body["checks"]["disk"].startswith("low: ")
            assert str(disk.root / "storage") in body["checks"]["disk"]
            assert float(DEPENDENCY_UP.labels(dependency=DISK)._value.get()) == 0.0
            disk.free_up()
            assert client.get("/ready").json()["status"] == "ready"
    finally:
        deps.close()
