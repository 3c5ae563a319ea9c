"""A real `clipforge worker` rides out a full disk during import and during export.

The local store lives on a small tmpfs mounted for the test (skipped where this process may not
mount). It is filled with a real file while imports run, and again while exports run, and freed
after OUTAGE_S (the issue's 60 s, scaled down like the worker's probe and backoff settings):
every video and every export must end ready, with no attempt spent on the outage and no re-drive.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipforge.db.pool import Pool
from clipforge.db.repo.exports import create_export
from clipforge.queue import QueuePolicy, enqueue
from clipforge.settings import Settings
from clipforge.storage import LocalStore
from tests.pipelines.conftest import upload_video
from tests.utils.disks import SmallDisk, small_disk
from tests.utils.wait import wait_until

_REPO = Path(__file__).resolve().parents[2]
_MB = 1024**2
OUTAGE_S = 6.0
_READY_S = 600.0
_WAITING_ON_DISK = {
    kind: f"SELECT count(*) AS n FROM jobs WHERE kind = '{kind}' AND waiting_on = 'disk'"  # noqa: S608
    for kind in ("import", "export")
}  # two short videos through every stage on a loaded 2-core machine


@pytest.fixture()
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "small", 40) as mounted:
        yield mounted


def _start_worker(database_url: str, storage: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    """`clipforge worker` on the session's Ray, with the outage timings scaled down."""
    import ray

    config = tmp_path / "pipeline.yaml"
    config.write_text(
        "worker: {idle_poll_s: 0.2}\n"
        "transcribe: {asr_actors: 1, asr_num_cpus: 0.25}\n"
        "detect: {num_cpus: 0.25, top_k: 1}\n"
        "export: {num_cpus: 0.25, short_side: 240}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("S3_")} | {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "LOCAL_STORAGE_DIR": str(storage),
        "DISK_FREE_FLOOR_MB": "1",
        "QUEUE_BACKOFF_BASE_S": "0.5",
        "QUEUE_DEPENDENCY_BACKOFF_MAX_S": "30",  # a wake-up, not the backoff, ends each wait
        "QUEUE_DEPENDENCY_PROBE_S": "1",
        "QUEUE_MAX_ATTEMPTS": "3",
        "QUEUE_LEASE_S": "20",
        "QUEUE_HEARTBEAT_S": "2",
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "PYTHONPATH": str(_REPO),
    }
    log = (tmp_path / "worker.log").open("wb")
    cmd = [sys.executable, "-m", "clipforge.cli", "worker", "--config", str(config)]
    return subprocess.Popen(
        [*cmd, "--metrics-port", "0"], env=env, cwd=_REPO, stdout=log, stderr=log
    )


def _count(db: Pool, query: str) -> int:
    with db.connection() as conn:
        row = conn.execute(query).fetchone()  # type: ignore[arg-type]
    return int(row["n"]) if row else 0


def _wait(db: Pool, proc: subprocess.Popen[bytes], query: str, want: int, timeout_s: float) -> None:
    def reached() -> bool:
        if _count(db, query) >= want:
            return True
        assert proc.poll() is None, "the worker exited"
        assert _count(db, "SELECT count(*) AS n FROM jobs WHERE state IN ('failed', 'dead')") == 0
        return False

    wait_until(reached, timeout_s=timeout_s, interval_s=0.2, what=f"{want}: {query}")


def _outage(
    db: Pool, proc: subprocess.Popen[bytes], disk: SmallDisk, kind: str, leave: int
) -> float:
    """Fill the disk, wait for a job of `kind` to meet it, hold OUTAGE_S, free it; returns when."""
    disk.fill(leave=leave)
    _wait(
        db,
        proc,
        _WAITING_ON_DISK[kind],
        1,
        _READY_S,
    )
    time.sleep(OUTAGE_S)  # the outage itself: its length is the test
    disk.free_up()
    return time.monotonic()


def test_worker_waits_out_a_full_disk_in_import_and_export(
    db: Pool,
    settings: Settings,
    database_url: str,
    ray_local: None,
    test_media: dict[str, Path],
    disk: SmallDisk,
    tmp_path: Path,
) -> None:
    storage = disk.root / "storage"
    local = settings.model_copy(update={"local_storage_dir": storage, "s3_bucket": None})
    videos = [upload_video(db, local, test_media["speech_short"])]
    proc = _start_worker(database_url, storage, tmp_path)
    try:
        # Above the 1 MB floor, too little for the 2.5 MB original: the imports meet ENOSPC.
        freed = _outage(db, proc, disk, "import", leave=2 * _MB)
        ready = "SELECT count(*) AS n FROM videos WHERE status = 'ready'"
        _wait(db, proc, ready, len(videos), _READY_S)
        print(f"videos ready {time.monotonic() - freed:.1f} s after the disk was freed")

        with db.connection() as conn, conn.transaction():
            clips = conn.execute("SELECT id, video_id FROM clips WHERE rank = 1").fetchall()
            for clip in clips:
                export = create_export(
                    conn, clip_id=clip["id"], aspect_ratio="9:16", caption_style="bold"
                )
                payload = {"export_id": str(export.id)}
                enqueue(
                    conn,
                    QueuePolicy.defaults(),
                    kind="export",
                    payload=payload,
                    video_id=clip["video_id"],
                )
        assert len(clips) == len(videos)
        # Room above the floor for the caption files, not for a rendered clip.
        freed = _outage(db, proc, disk, "export", leave=_MB + 48 * 1024)
        exported = "SELECT count(*) AS n FROM exports WHERE status = 'ready'"
        _wait(db, proc, exported, len(clips), _READY_S)
        print(f"exports ready {time.monotonic() - freed:.1f} s after the disk was freed")
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    with db.connection() as conn:
        jobs = conn.execute(
            "SELECT kind, state, attempts, last_error FROM jobs WHERE kind <> 'webhook'"
        ).fetchall()
    assert {j["state"] for j in jobs} == {"succeeded"}
    assert all(j["attempts"] == 1 for j in jobs), jobs  # the outages spent no attempt
    for kind in ("import", "export"):
        # Every failure recorded was the disk (a job claimed after the disk was freed has none).
        errors = [j["last_error"] for j in jobs if j["kind"] == kind and j["last_error"]]
        assert errors and all(e.startswith("DependencyUnavailable[disk]: ") for e in errors), errors
    # Imported uploads were removed, not kept beside their originals.
    assert LocalStore(storage).list_page("uploads/").items == []
