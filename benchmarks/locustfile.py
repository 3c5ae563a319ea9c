"""Locust users of the public API: what a client integration does, with 1-5 s of think time.

Each user takes one of the seeded API keys (`CF_KEYS`: a JSON file of {"token", "videos"}
written by `benchmarks.locust_gate`, which also runs this file) and mixes: list its videos,
the next page, a video's details, its transcript and clips, creating URL imports (the source is
a loopback-free public IP literal; no worker runs, so nothing is fetched) and polling their jobs,
and announcing presigned uploads. Request names are the route templates, so the statistics come
out per request class. Traffic goes to `--host` only (the gate passes 127.0.0.1).
"""

from __future__ import annotations

import itertools
import json
import os
import random
from typing import Any

from locust import FastHttpUser, between, task

_KEYS: list[dict[str, Any]] = json.loads(open(os.environ["CF_KEYS"]).read())  # noqa: SIM115
_NEXT_KEY = itertools.count()  # users take keys in turn: the same number of users per key
_SOURCE_URL = "https://93.184.216.34/locust.mp4"  # documentation address; never fetched


class ApiClient(FastHttpUser):
    """One integration: one key, its videos, the jobs it started."""

    wait_time = between(1, 5)

    def on_start(self) -> None:
        """Take a key (users share keys, as several clients of one customer would; with the
        gate's 250 keys, 4 users per key stay under the default 120 requests/min limit)."""
        seeded = _KEYS[next(_NEXT_KEY) % len(_KEYS)]
        self.headers = {"Authorization": f"Bearer {seeded['token']}"}
        self.videos: list[str] = list(seeded["videos"])
        self.transcribed: list[str] = list(seeded["transcripts"])
        self.jobs: list[int] = []
        self.cursor: str | None = None

    def _get(self, path: str, name: str) -> Any:
        with self.client.get(path, headers=self.headers, name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {(r.text or '')[:200]}")
                return None
            return r.json()

    @task(4)
    def list_videos(self) -> None:
        """First page of the key's videos."""
        page = self._get("/v1/videos?limit=20", "GET /v1/videos")
        self.cursor = page.get("next_cursor") if page else None

    @task(2)
    def next_page(self) -> None:
        """The page after the last one listed."""
        if self.cursor is None:
            return self.list_videos()
        page = self._get(f"/v1/videos?limit=20&cursor={self.cursor}", "GET /v1/videos?cursor")
        self.cursor = page.get("next_cursor") if page else None
        return None

    @task(6)
    def detail(self) -> None:
        """One of the key's videos."""
        self._get(f"/v1/videos/{random.choice(self.videos)}", "GET /v1/videos/{id}")

    @task(2)
    def transcript(self) -> None:
        """The transcript of one of the key's transcribed videos."""
        video = random.choice(self.transcribed)
        self._get(f"/v1/videos/{video}/transcript", "GET /v1/videos/{id}/transcript")

    @task(2)
    def clips(self) -> None:
        """A video's highlight clips."""
        self._get(f"/v1/videos/{random.choice(self.videos)}/clips", "GET /v1/videos/{id}/clips")

    @task(2)
    def poll_job(self) -> None:
        """The state of a job this user started."""
        if self.jobs:
            self._get(f"/v1/jobs/{random.choice(self.jobs)}", "GET /v1/jobs/{id}")

    @task(1)
    def create_from_url(self) -> None:
        """Import a video from a URL (202 with the job to poll)."""
        body = {"source_url": _SOURCE_URL, "title": "locust"}
        with self.client.post(
            "/v1/videos",
            json=body,
            headers=self.headers,
            name="POST /v1/videos (url)",
            catch_response=True,
        ) as r:
            if r.status_code != 202:
                r.failure(f"{r.status_code}: {(r.text or '')[:200]}")
                return
            self.jobs = [*self.jobs[-9:], int(r.json()["job_id"])]

    @task(1)
    def presigned_upload(self) -> None:
        """Announce an upload and get its presigned URL (201; the PUT goes to S3, not here)."""
        body = {"upload": {"size_bytes": 1_000_000, "content_type": "video/mp4"}}
        with self.client.post(
            "/v1/videos",
            json=body,
            headers=self.headers,
            name="POST /v1/videos (upload)",
            catch_response=True,
        ) as r:
            if r.status_code != 201:
                r.failure(f"{r.status_code}: {(r.text or '')[:200]}")
