"""Clip edits through the standalone API: bounds snapped like detection's, caption corrections
as an overlay, clips made by hand; validation, tenancy and idempotent replays.

The transcript is written to Postgres directly, with silences placed so every snapped value
below follows from detection's rules (`models.select`: silence >= 0.3 s, edges move at most two
words, 0.2 s of padding into the silence, half of it at most).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, cast

import httpx
import pytest
from fastapi.testclient import TestClient
from pytest import approx

from clipforge.client import Client
from clipforge.client.errors import ApiNotFound, InvalidRequest
from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import ApiKey
from clipforge.db.repo.backfill import select_backfill_page
from clipforge.db.repo.clips import (
    NewClip,
    list_all_clips,
    lock_clip,
    mark_edited,
    replace_clips,
)
from clipforge.db.repo.transcripts import replace_transcript
from clipforge.db.repo.videos import Video, update_video
from clipforge.types import ModelInfo, Segment, Transcript, Word
from tests.utils.factories import make_video

Auth = tuple[ApiKey, dict[str, str]]
DURATION_S = 30.0
_SENTENCES = (  # (start of the first word, words): 0.1 s between words inside a sentence
    (1.0, ["Welcome", "to", "the", "show."]),
    (4.0, ["Today", "we", "talk", "about", "tools."]),
    (8.0, ["A", "good", "tool", "is", "simple."]),
    (20.0, ["So", "anyway."]),
)


def _transcript() -> Transcript:
    segments = []
    for first, texts in _SENTENCES:
        words, t = [], first
        for text in texts:
            words.append(Word(round(t, 3), round(t + 0.3, 3), text, 0.9))
            t += 0.4
        segments.append(Segment(words[0].start, words[-1].end, " ".join(texts), tuple(words)))
    model = ModelInfo(name="whisper-tiny.en", version="t+sha.abc", sha256="abc")
    return Transcript("en", DURATION_S, tuple(segments), model)


WORDS = _transcript().words


def _clip(rank: int, start: float, end: float, score: float = 80.0) -> NewClip:
    return NewClip(rank, start, end, score, {"hook": 0.5}, "r", f"T{rank}", "h", "s", "v1+enc+abc")


def _ready_video(db: Pool, key: ApiKey) -> tuple[Video, uuid.UUID]:
    made = make_video(db, key, status="ready")
    with db.connection() as conn:
        video = update_video(conn, video_id=made.id, duration_s=DURATION_S)
        assert video is not None
        replace_transcript(conn, video_id=video.id, transcript=_transcript())
        clip = replace_clips(conn, video_id=video.id, clips=[_clip(1, 0.8, 6.6)])[0]
    return video, clip.id


def _index(text: str) -> int:
    return next(i for i, w in enumerate(WORDS) if w.text == text)


def _error(response: Any) -> dict[str, Any]:
    body = dict(response.json()["error"])
    body.pop("request_id")
    return body


def test_bounds_snap_to_word_edges_and_silences(client: TestClient, owner: Auth, db: Pool) -> None:
    key, auth = owner
    video, clip_id = _ready_video(db, key)
    listed = client.get(f"/v1/videos/{video.id}/clips", headers=auth).json()["items"]
    assert listed[0]["edited"] is False and listed[0]["original_start_s"] is None  # now cached

    # From 4.6 s the first word is "talk" (no silence before it): the start moves back two
    # words to "Today", after the 1.5 s pause, padded 0.2 s into it. Up to 9.2 s the last word
    # is "tool": the end moves on to "simple.", before the 10 s pause, + 0.2 s.
    edited = client.patch(f"/v1/clips/{clip_id}", json={"start_s": 4.6, "end_s": 9.2}, headers=auth)
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert (body["start_s"], body["end_s"]) == approx((3.8, 10.1))
    assert body["edited"] is True and body["origin"] == "detect"
    assert (body["original_start_s"], body["original_end_s"]) == (0.8, 6.6)

    # Only the end: the start stays; an end inside a silence ends 0.2 s after the word before.
    end_only = client.patch(f"/v1/clips/{clip_id}", json={"end_s": 6.9}, headers=auth).json()
    assert (end_only["start_s"], end_only["end_s"]) == approx((3.8, 6.1))
    assert (end_only["original_start_s"], end_only["original_end_s"]) == (0.8, 6.6)  # first ones

    # The cached list was dropped by the write; a single GET shows the same row.
    listed = client.get(f"/v1/videos/{video.id}/clips", headers=auth).json()["items"]
    assert [(c["start_s"], c["end_s"], c["edited"]) for c in listed] == [
        (end_only["start_s"], end_only["end_s"], True)
    ]
    assert client.get(f"/v1/clips/{clip_id}", headers=auth).json() == end_only


def test_bounds_outside_the_video_or_without_words_are_422(
    client: TestClient, owner: Auth, db: Pool
) -> None:
    key, auth = owner
    video, clip_id = _ready_video(db, key)
    path = f"/v1/clips/{clip_id}"
    for body in (
        {"start_s": 10.0, "end_s": DURATION_S + 0.5},  # past the end of the video
        {"start_s": -1.0},
        {"start_s": 9.0, "end_s": 5.0},
        {"start_s": 6.0, "end_s": 6.0},
        {"start_s": 12.0, "end_s": 18.0},  # only silence: no word to cut around
        {"start_s": 0.0, "end_s": 700.0},  # longer than any clip
        {},
        {"start_s": "4"},  # JSON types only
        {"start_s": 4.0, "rank": 1},  # unknown fields
    ):
        answer = client.patch(path, json=body, headers=auth)
        assert answer.status_code == 422, (body, answer.text)
    # Only the start given: checked against the stored end.
    assert client.patch(path, json={"start_s": 7.0}, headers=auth).status_code == 422
    made = {"video_id": str(video.id), "start_s": 25.0, "end_s": DURATION_S + 1}
    assert client.post("/v1/clips", json=made, headers=auth).status_code == 422
    with db.connection() as conn:
        (clip,) = list_all_clips(conn, video_id=video.id)
    assert (clip.start_s, clip.end_s, clip.edited) == (0.8, 6.6, False)  # nothing changed


def test_another_keys_clip_is_404_like_an_unknown_one(
    client: TestClient, owner: Auth, other: Auth, db: Pool
) -> None:
    key, _ = owner
    video, clip_id = _ready_video(db, key)
    unknown = uuid.uuid4()
    requests = [
        ("GET", "/v1/clips/{}", None),
        ("PATCH", "/v1/clips/{}", {"start_s": 4.0}),
        ("GET", "/v1/clips/{}/words", None),
        ("PUT", "/v1/clips/{}/words", {"words": [{"index": 0, "text": "Hi"}]}),
    ]
    for method, path, body in requests:
        theirs = client.request(method, path.format(clip_id), json=body, headers=other[1])
        missing = client.request(method, path.format(unknown), json=body, headers=other[1])
        assert theirs.status_code == missing.status_code == 404, (method, path)
        assert _error(theirs) == {
            **_error(missing),
            "message": _error(missing)["message"].replace(str(unknown), str(clip_id)),
        }
    made = {"video_id": str(video.id), "start_s": 19.0, "end_s": 22.0}
    assert client.post("/v1/clips", json=made, headers=other[1]).status_code == 404
    with db.connection() as conn:
        (clip,) = list_all_clips(conn, video_id=video.id)
    assert (clip.start_s, clip.edited) == (0.8, False)


def test_writes_replay_with_the_same_idempotency_key(
    client: TestClient, owner: Auth, db: Pool
) -> None:
    key, auth = owner
    video, clip_id = _ready_video(db, key)
    path = f"/v1/clips/{clip_id}"
    with_key = auth | {"Idempotency-Key": "edit-1"}
    first = client.patch(path, json={"start_s": 4.6}, headers=with_key)
    assert first.status_code == 200 and first.json()["start_s"] == approx(3.8)
    client.patch(path, json={"start_s": 0.5}, headers=auth)  # a later edit, without a key
    replay = client.patch(path, json={"start_s": 4.6}, headers=with_key)
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"
    assert client.get(path, headers=auth).json()["start_s"] == approx(0.8)  # not applied again
    assert client.patch(path, json={"start_s": 8.0}, headers=with_key).status_code == 409

    made = {"video_id": str(video.id), "start_s": 19.0, "end_s": 22.0, "title": "So"}
    create_key = auth | {"Idempotency-Key": "make-1"}
    one, two = (client.post("/v1/clips", json=made, headers=create_key) for _ in range(2))
    assert one.status_code == two.status_code == 201 and one.json() == two.json()

    words_path = f"/v1/clips/{clip_id}/words"
    fix = {"words": [{"index": _index("Welcome"), "text": "Welcome!"}]}
    words_key = auth | {"Idempotency-Key": "words-1"}
    put_one, put_two = (client.put(words_path, json=fix, headers=words_key) for _ in range(2))
    assert put_one.json() == put_two.json() and put_two.headers["Idempotent-Replayed"] == "true"
    with db.connection() as conn:
        assert len(list_all_clips(conn, video_id=video.id)) == 2  # one clip made, not two


def test_a_clip_made_from_a_chosen_span(client: TestClient, owner: Auth, db: Pool) -> None:
    key, auth = owner
    video, _ = _ready_video(db, key)
    # 12-21 s: silence, then "So" (20.0-20.3) and "anyway." (20.4-20.7).
    made = client.post(
        "/v1/clips",
        json={"video_id": str(video.id), "start_s": 12.0, "end_s": 21.0},
        headers=auth,
    )
    assert made.status_code == 201, made.text
    clip = made.json()
    assert (clip["start_s"], clip["end_s"]) == approx((19.8, 20.9))
    assert clip["rank"] == 2 and clip["score"] == 0 and clip["title"]
    assert clip["edited"] is True and clip["origin"] == "user" and clip["original_start_s"] is None
    words = client.get(f"/v1/clips/{clip['id']}/words", headers=auth).json()["words"]
    assert [w["text"] for w in words] == ["So", "anyway."]
    listed = client.get(f"/v1/videos/{video.id}/clips", headers=auth).json()["items"]
    assert len(listed) == 2

    pending = make_video(db, key, status="transcribing")
    body = {"video_id": str(pending.id), "start_s": 1.0, "end_s": 5.0}
    assert client.post("/v1/clips", json=body, headers=auth).status_code == 409


def test_caption_corrections_are_an_overlay(client: TestClient, owner: Auth, db: Pool) -> None:
    key, auth = owner
    video, clip_id = _ready_video(db, key)
    path = f"/v1/clips/{clip_id}/words"
    before = client.get(path, headers=auth).json()
    assert [w["text"] for w in before["words"]] == [w.text for w in WORDS[:9]]
    assert [w["index"] for w in before["words"]] == list(range(9))

    tools = _index("tools.")
    fix = {"words": [{"index": tools, "text": "Tools!"}, {"index": 0, "text": "Welcome"}]}
    put = client.put(path, json=fix, headers=auth)
    assert put.status_code == 200, put.text
    shown = {w["index"]: w for w in put.json()["words"]}
    assert shown[tools]["text"] == "Tools!" and shown[tools]["heard"] == "tools."
    assert shown[tools]["corrected"] and not shown[0]["corrected"]  # same as heard: no change
    assert (shown[tools]["start"], shown[tools]["end"]) == (WORDS[tools].start, WORDS[tools].end)
    assert client.get(path, headers=auth).json() == put.json()
    assert client.get(f"/v1/clips/{clip_id}", headers=auth).json()["edited"] is True

    # The transcript stays what the model heard.
    transcript = client.get(f"/v1/videos/{video.id}/transcript", headers=auth).json()
    assert "tools." in transcript["text"] and "Tools!" not in transcript["text"]

    outside = {"words": [{"index": _index("simple."), "text": "easy."}]}
    twice = {"words": [{"index": 1, "text": "a"}, {"index": 1, "text": "b"}]}
    for bad in (outside, twice, {"words": [{"index": 1, "text": "  "}]}, {"words": [{"index": 1}]}):
        assert client.put(path, json=bad, headers=auth).status_code == 422, bad
    cleared = client.put(path, json={"words": []}, headers=auth).json()
    assert not any(w["corrected"] for w in cleared["words"])


def test_a_detect_rerun_keeps_edited_clips(client: TestClient, owner: Auth, db: Pool) -> None:
    key, auth = owner
    video, clip_id = _ready_video(db, key)
    assert client.patch(f"/v1/clips/{clip_id}", json={"end_s": 10.1}, headers=auth).is_success
    fix = {"words": [{"index": 0, "text": "Hello"}]}
    assert client.put(f"/v1/clips/{clip_id}/words", json=fix, headers=auth).is_success
    new = [_clip(1, 4.0, 10.0, 95.0), _clip(2, 19.0, 21.0, 90.0), _clip(3, 0.0, 0.5, 10.0)]
    with db.connection() as conn:
        kept = replace_clips(conn, video_id=video.id, clips=new)
    # The edited clip (score 80) stays as the person left it; the new clip overlapping it is
    # left out; ranks are given again by score.
    assert [(c.rank, c.edited) for c in kept] == [(1, False), (2, True), (3, False)]
    bounds = [t for c in kept for t in (c.start_s, c.end_s)]
    assert bounds == approx([19.0, 21.0, 0.8, 10.1, 0.0, 0.5])
    assert kept[1].id == clip_id
    words = client.get(f"/v1/clips/{clip_id}/words", headers=auth).json()["words"]
    assert words[0]["text"] == "Hello"
    with db.connection() as conn:
        replaced = replace_clips(conn, video_id=video.id, clips=new, keep_edited=False)
    assert [(c.start_s, c.edited) for c in replaced] == [(4.0, False), (19.0, False), (0.0, False)]


def test_an_edited_clip_does_not_make_its_video_stale_for_backfills(
    client: TestClient, owner: Auth, db: Pool
) -> None:
    key, auth = owner
    video, clip_id = _ready_video(db, key)  # its one clip was scored by "v1"
    with db.connection() as conn:
        stale = select_backfill_page(
            conn, since=None, video_ids=[video.id], after=None, stale_version="v2", limit=10
        )
    assert [i for _, i in stale] == [video.id]
    assert client.patch(f"/v1/clips/{clip_id}", json={"end_s": 10.1}, headers=auth).is_success
    with db.connection() as conn:  # a person's clip keeps "v1": re-selecting it would never end
        stale = select_backfill_page(
            conn, since=None, video_ids=[video.id], after=None, stale_version="v2", limit=10
        )
    assert stale == []


def test_typed_client_and_openapi_schema(client: TestClient, owner: Auth, db: Pool) -> None:
    key, auth = owner
    video, clip_id = _ready_video(db, key)
    raw = auth["Authorization"].removeprefix("Bearer ")
    with Client("http://testserver", raw, http=cast(httpx.Client, client)) as api:
        edited = api.edit_clip(clip_id, start_s=4.6, idempotency_key="client-edit")
        assert edited.start_s == approx(3.8) and edited.edited and edited.original_start_s == 0.8
        assert api.get_clip(clip_id) == edited
        fixed = api.correct_words(clip_id, {_index("tools."): "Tools!"})
        assert [w.text for w in fixed.words if w.corrected] == ["Tools!"]
        assert api.get_clip_words(clip_id) == fixed
        made = api.create_clip(video.id, 19.0, 22.0, title="So anyway")
        assert made.origin == "user" and made.title == "So anyway" and made.rank == 2
        with pytest.raises(InvalidRequest):
            api.edit_clip(clip_id, end_s=DURATION_S + 1)
        with pytest.raises(ApiNotFound):
            api.get_clip(uuid.uuid4())
    paths = client.get("/openapi.json").json()["paths"]
    assert {"post"} <= set(paths["/v1/clips"])
    assert {"get", "patch"} <= set(paths["/v1/clips/{clip_id}"])
    assert {"get", "put"} <= set(paths["/v1/clips/{clip_id}/words"])


def test_an_edit_racing_a_detect_commit_is_kept_or_a_clean_404(
    client: TestClient, owner: Auth, db: Pool
) -> None:
    key, auth = owner
    video, clip_id = _ready_video(db, key)
    fix = {"words": [{"index": 0, "text": "Hello"}]}
    answers: list[int] = []

    def put_words() -> None:
        answers.append(client.put(f"/v1/clips/{clip_id}/words", json=fix, headers=auth).status_code)

    # Detection replaces the (unedited) clip and commits while the edit waits for it.
    with db.connection() as conn, conn.transaction():
        replace_clips(conn, video_id=video.id, clips=[_clip(1, 19.0, 21.0)])
        racing = threading.Thread(target=put_words)
        racing.start()
        racing.join(timeout=1.0)
        assert racing.is_alive()  # blocked on the clip row, not answered yet
    racing.join(timeout=30)
    assert answers == [404]  # the clip is gone: not found, never a 500

    # An edit that holds the clip first: detection waits, then keeps the edited clip.
    (current,) = client.get(f"/v1/videos/{video.id}/clips", headers=auth).json()["items"]
    with db.connection() as edit, edit.transaction():
        assert lock_clip(edit, clip_id=uuid.UUID(current["id"])) is not None
        mark_edited(edit, clip_id=uuid.UUID(current["id"]))

        def detect() -> None:
            with db.connection() as conn, conn.transaction():
                replace_clips(conn, video_id=video.id, clips=[_clip(1, 1.0, 2.0, 99.0)])

        rerun = threading.Thread(target=detect)
        rerun.start()
        rerun.join(timeout=1.0)
        assert rerun.is_alive()
    rerun.join(timeout=30)
    with db.connection() as conn:
        after = list_all_clips(conn, video_id=video.id)
    assert [(str(c.id), c.edited) for c in after if c.edited] == [(current["id"], True)]
    assert len(after) == 2
