"""Sweep upload objects nothing will ever import.

`POST /v1/videos/upload` stores the body under `uploads/<video id>/` before it commits the
video's row; an API process that dies in between leaves an object no row points to. Such an
object, once older than UPLOAD_ORPHAN_GRACE_S (so an upload still being committed is never
touched), is removed by `clipforge uploads sweep` and by every worker every
UPLOAD_SWEEP_INTERVAL_S. So is an upload whose video was imported but whose removal after the
import did not happen (the worker died right after committing): the import keeps the original,
and a re-import reads that. Nothing else under `uploads/`, and nothing outside it, is touched.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from clipforge.db.pool import Pool
from clipforge.db.repo.videos import get_videos
from clipforge.metrics import UPLOADS_SWEPT
from clipforge.storage.base import ObjectInfo, ObjectStore
from clipforge.storage.keys import UPLOADS_PREFIX

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SweepReport:
    """What one sweep saw and did.

    Attributes:
        removed: keys deleted (no row, or their video already imported).
        young: objects still inside the grace period.
        kept: objects whose video has a row and still needs them.
    """

    removed: list[str] = field(default_factory=list)
    young: int = 0
    kept: int = 0


def _video_id(key: str) -> uuid.UUID | None:
    """The video id of an `uploads/<id>/...` key, or None for any other key."""
    parts = key.removeprefix(UPLOADS_PREFIX).split("/")
    if len(parts) < 2:
        return None
    try:
        return uuid.UUID(parts[0])
    except ValueError:
        return None


def _listing(store: ObjectStore) -> list[ObjectInfo]:
    items: list[ObjectInfo] = []
    token: str | None = None
    while True:
        page = store.list_page(UPLOADS_PREFIX, token=token)
        items += page.items
        if page.next_token is None:
            return items
        token = page.next_token


def sweep_orphan_uploads(
    pool: Pool, store: ObjectStore, *, grace_s: float, now: datetime | None = None
) -> SweepReport:
    """Remove upload objects older than `grace_s` that no video row still needs."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=grace_s)
    report = SweepReport()
    old: dict[uuid.UUID, list[str]] = {}
    for item in _listing(store):
        video_id = _video_id(item.key)
        if video_id is None:
            continue  # not an upload of ours: never touched
        if item.modified is None or item.modified > cutoff:
            report.young += 1
            continue
        old.setdefault(video_id, []).append(item.key)
    if not old:
        return report
    with pool.connection() as conn:
        videos = get_videos(conn, video_ids=list(old))
    needed = {v.id for v in videos.values() if v.original_key is None}
    for video_id, keys in old.items():
        if video_id in needed:
            report.kept += len(keys)
            continue
        for key in keys:
            store.delete(key)
            report.removed.append(key)
    if report.removed:
        UPLOADS_SWEPT.inc(len(report.removed))
        log.info(
            "orphaned uploads removed",
            extra={"objects": len(report.removed), "grace_s": grace_s},
        )
    return report


def sweep_periodically(
    pool: Pool, store: ObjectStore, *, grace_s: float, every_s: float, stop: threading.Event
) -> None:
    """`sweep_orphan_uploads` every `every_s` until `stop` (a worker's background thread)."""
    failing = False
    while not stop.wait(every_s):
        try:
            sweep_orphan_uploads(pool, store, grace_s=grace_s)
        except Exception:  # storage or database away: the next round tries again
            if not failing:  # one line per outage, not one per round
                log.warning("upload sweep failed; retrying next round", exc_info=True)
            failing = True
            continue
        failing = False
