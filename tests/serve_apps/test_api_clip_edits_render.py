"""Edit and re-export end to end: a real video through the real worker, its clip edited through
the API, rendered again; the earlier export stays as it was, and a detect re-run keeps the edit.

Speech comes from `speech_short` (TTS sentences with pauses between them), transcribed by the
real ASR; the test finds its words through the API rather than assuming what was heard.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import ApiKey
from clipforge.queue import QueuePolicy, enqueue
from clipforge.storage.keys import export_key
from pipelines.engine.worker import PipelineWorker
from serve_apps.api.deps import ApiDeps

# The pipeline tests' worker on the session's Ray, and the settings it needs.
from tests.pipelines.conftest import pipeline_config, pipeline_settings, worker  # noqa: F401

Auth = tuple[ApiKey, dict[str, str]]
CORRECTION = "Zorblax"  # a word no recogniser hears in this speech


def _captions(api_deps: ApiDeps, video_id: str, export_id: str) -> dict[str, str]:
    return {
        ext: api_deps.store.get_bytes(export_key(uuid.UUID(video_id), uuid.UUID(export_id), ext))
        .decode()
        .lower()
        for ext in ("srt", "vtt", "ass")
    }


def _export(client: TestClient, auth: dict[str, str], clip_id: str) -> str:
    made = client.post(f"/v1/clips/{clip_id}/exports", json={"aspect_ratio": "1:1"}, headers=auth)
    assert made.status_code == 202, made.text
    return str(made.json()["export"]["id"])


def _ready(client: TestClient, auth: dict[str, str], export_id: str) -> dict[str, Any]:
    export: dict[str, Any] = client.get(f"/v1/exports/{export_id}", headers=auth).json()
    assert export["status"] == "ready", export
    return export


def _bare(text: str) -> str:
    return re.sub(r"[^a-z']", "", text.lower())


def test_edited_clip_renders_its_edit_and_survives_a_detect_rerun(
    client: TestClient,
    owner: Auth,
    db: Pool,
    api_deps: ApiDeps,
    worker: PipelineWorker,  # noqa: F811
    test_media: dict[str, Path],
) -> None:
    _, auth = owner
    upload = client.post(
        "/v1/videos/upload",
        content=test_media["speech_short"].read_bytes(),
        headers=auth | {"Content-Type": "video/mp4"},
    )
    assert upload.status_code == 202, upload.text
    video_id = upload.json()["video"]["id"]
    worker.run(until_idle=True)
    clips = client.get(f"/v1/videos/{video_id}/clips", headers=auth).json()["items"]
    clip = min(clips, key=lambda c: c["rank"])
    before = _export(client, auth, clip["id"])
    worker.run(until_idle=True)

    # Start the clip at its second sentence and correct a word of what is left.
    words = client.get(f"/v1/clips/{clip['id']}/words", headers=auth).json()["words"]
    cut = next(i for i, w in enumerate(words) if w["text"].endswith(".")) + 1
    first_sentence, rest = words[:cut], words[cut:]
    edited = client.patch(
        f"/v1/clips/{clip['id']}", json={"start_s": rest[0]["start"]}, headers=auth
    ).json()
    assert first_sentence[-1]["end"] < edited["start_s"] <= rest[0]["start"]
    assert edited["end_s"] == clip["end_s"] and edited["edited"] is True
    assert edited["original_start_s"] == clip["start_s"]
    target = next(w for w in rest if len(_bare(w["text"])) >= 4)
    fix = {"words": [{"index": target["index"], "text": CORRECTION}]}
    assert client.put(f"/v1/clips/{clip['id']}/words", json=fix, headers=auth).is_success
    after = _export(client, auth, clip["id"])
    with db.connection() as conn:  # a detect re-run of the video, as a backfill queues it
        enqueue(
            conn,
            QueuePolicy.defaults(),
            kind="detect",
            video_id=uuid.UUID(video_id),
            payload={"video_id": video_id, "chain": False},
        )
    worker.run(until_idle=True)

    old, new = _ready(client, auth, before), _ready(client, auth, after)
    assert old["id"] != new["id"]
    assert abs(old["duration_s"] - (clip["end_s"] - clip["start_s"])) < 0.2
    assert abs(new["duration_s"] - (edited["end_s"] - edited["start_s"])) < 0.2
    old_text = _captions(api_deps, video_id, old["id"])
    new_text = _captions(api_deps, video_id, new["id"])
    later = {_bare(w["text"]) for w in rest}
    dropped = [_bare(w["text"]) for w in first_sentence if _bare(w["text"]) not in later]
    heard = _bare(target["text"])
    for ext in ("srt", "vtt", "ass"):
        assert CORRECTION.lower() in new_text[ext] and CORRECTION.lower() not in old_text[ext]
        assert heard in old_text[ext], ext
        assert all(w in old_text[ext] for w in dropped) and dropped, ext
        assert not any(re.search(rf"\b{w}\b", new_text[ext]) for w in dropped), ext

    # The detect re-run kept the edited clip: same id, bounds, corrections and exports.
    kept = client.get(f"/v1/clips/{clip['id']}", headers=auth).json()
    assert kept == edited | {"rank": kept["rank"]}
    shown = client.get(f"/v1/clips/{clip['id']}/words", headers=auth).json()["words"]
    assert [w["text"] for w in shown if w["corrected"]] == [CORRECTION]
    exports = client.get(f"/v1/clips/{clip['id']}/exports", headers=auth).json()["items"]
    assert [e["id"] for e in exports] == [before, after]
    with db.connection() as conn:
        detect_runs = conn.execute(
            "SELECT count(*) AS n FROM jobs WHERE kind = 'detect' AND state = 'succeeded'"
        ).fetchone()
    assert detect_runs is not None and detect_runs["n"] == 2
