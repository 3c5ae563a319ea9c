"""Where the studio page of a video lives on an API server, and whether one answers there.

The page itself is served by the API app (`serve_apps/api/studio.py`); `clipforge process`
links its report to it (`pipelines/local/one_video.py`). The path is kept here, in the core, so both
sides name the same URL without importing each other.
"""

from __future__ import annotations

import uuid

import httpx

STUDIO_PATH = "/studio/videos/{video_id}"


def studio_page_url(base_url: str, video_id: uuid.UUID | str) -> str:
    """The studio page of `video_id` on the API at `base_url`."""
    return base_url.rstrip("/") + STUDIO_PATH.format(video_id=video_id)


def running_studio(base_url: str, video_id: uuid.UUID | str, timeout_s: float = 2.0) -> str | None:
    """The page's URL when an API answers `/health` at `base_url`, else None."""
    try:
        answer = httpx.get(base_url.rstrip("/") + "/health", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    return studio_page_url(base_url, video_id) if answer.status_code == 200 else None
