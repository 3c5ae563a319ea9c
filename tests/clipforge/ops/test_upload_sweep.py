"""Orphaned uploads are swept after their grace period, and nothing else is.

The state an API process killed between storing `POST /v1/videos/upload`'s object and committing
its row leaves behind is an object under `uploads/<id>/` with no video row; it is built here as
such (real Postgres, real local store) and swept by the real `clipforge uploads sweep` command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from clipforge.db.pool import Pool
from clipforge.db.repo.videos import create_video, update_video
from clipforge.metrics import UPLOADS_SWEPT
from clipforge.ops.uploads import sweep_orphan_uploads, sweep_periodically
from clipforge.settings import Settings
from clipforge.storage import LocalStore
from clipforge.storage.keys import original_key, upload_key
from tests.utils.wait import wait_until

_REPO = Path(__file__).resolve().parents[3]
_GRACE_S = 60.0


def _age(store: LocalStore, key: str, seconds: float) -> None:
    path = store.root / key
    then = time.time() - seconds
    os.utime(path, (then, then))


def _layout(db: Pool, store: LocalStore) -> dict[str, list[str]]:
    """Objects of every kind the sweep must tell apart, by what must happen to them."""
    orphan_old, orphan_young, awaiting, imported = (uuid.uuid4() for _ in range(4))
    with db.connection() as conn, conn.transaction():
        # A presigned upload whose row exists and whose import has not run: still needed.
        create_video(conn, owner_key_id=None, source_kind="upload", video_id=awaiting)
        # Imported, but the worker died before removing the upload: a leftover copy.
        create_video(conn, owner_key_id=None, source_kind="upload", video_id=imported)
        update_video(conn, video_id=imported, original_key=original_key(imported, "mp4"))
    for video_id in (orphan_old, orphan_young, awaiting, imported):
        store.put_bytes(upload_key(video_id), b"video bytes " + video_id.bytes)
    others = [
        original_key(imported, "mp4"),  # media of a video: never an upload
        "uploads/not-a-video-id/source.bin",  # not ours to judge
        "uploads/README",
    ]
    for key in others:
        store.put_bytes(key, b"other")
    for key in [upload_key(v) for v in (orphan_old, awaiting, imported)] + others:
        _age(store, key, 2 * _GRACE_S)
    return {
        "removed": sorted([upload_key(orphan_old), upload_key(imported)]),
        "kept": sorted([upload_key(orphan_young), upload_key(awaiting), *others]),
    }


def _keys(store: LocalStore) -> list[str]:
    return sorted(i.key for i in store.list_page("").items)


def test_sweep_removes_only_old_uploads_nothing_needs(db: Pool, settings: Settings) -> None:
    store = LocalStore(settings.data_dir / f"sweep-{uuid.uuid4().hex[:8]}")
    expected = _layout(db, store)
    swept_before = UPLOADS_SWEPT._value.get()
    report = sweep_orphan_uploads(db, store, grace_s=_GRACE_S)
    assert sorted(report.removed) == expected["removed"]
    assert report.kept == 1 and report.young == 1
    assert _keys(store) == expected["kept"]
    assert UPLOADS_SWEPT._value.get() == swept_before + 2
    # Once the young orphan's grace has passed, it goes too; the rest stays.
    report = sweep_orphan_uploads(db, store, grace_s=0.0)
    assert len(report.removed) == 1 and report.removed[0] in expected["kept"]
    assert _keys(store) == sorted(set(expected["kept"]) - set(report.removed))


def test_the_ops_command_sweeps_the_configured_store(
    db: Pool, settings: Settings, database_url: str
) -> None:
    root = settings.data_dir / f"cli-sweep-{uuid.uuid4().hex[:8]}"
    store = LocalStore(root)
    expected = _layout(db, store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("S3_")} | {
        "DATABASE_URL": database_url,
        "LOCAL_STORAGE_DIR": str(root),
        "UPLOAD_ORPHAN_GRACE_S": str(_GRACE_S),
        "PYTHONPATH": str(_REPO),
    }
    done = subprocess.run(
        [sys.executable, "-m", "clipforge.cli", "uploads", "sweep"],
        env=env,
        cwd=_REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == expected["removed"]
    assert "removed 2 upload object(s); kept 1 awaiting import and 1 inside the grace period" in (
        done.stderr
    )
    assert _keys(store) == expected["kept"]


def test_the_worker_s_scheduled_sweep_runs_until_stopped(db: Pool, settings: Settings) -> None:
    store = LocalStore(settings.data_dir / f"timer-sweep-{uuid.uuid4().hex[:8]}")
    expected = _layout(db, store)
    stop = threading.Event()
    thread = threading.Thread(
        target=sweep_periodically,
        args=(db, store),
        kwargs={"grace_s": _GRACE_S, "every_s": 0.1, "stop": stop},
        daemon=True,
    )
    thread.start()
    try:
        wait_until(
            lambda: _keys(store) == expected["kept"], timeout_s=20, what=lambda: _keys(store)
        )
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
