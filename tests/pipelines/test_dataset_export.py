"""`clipforge dataset export`: Parquet written by Ray Data, read back with its schema and rows."""

from __future__ import annotations

from pathlib import Path

from benchmarks.processed_videos import OLD_VERSION, add_processed_videos
from clipforge.db.pool import Pool
from clipforge.db.repo.clips import mark_edited
from clipforge.db.repo.videos import merge_video_metadata
from clipforge.settings import Settings
from pipelines.batch.dataset_export import SCHEMA, export_dataset, read_back


def test_export_writes_one_row_per_clip_and_window(
    db: Pool,
    pipeline_settings: Settings,
    database_url: str,
    test_media: dict[str, Path],
    ray_local: None,
    tmp_path: Path,
) -> None:
    media, script = test_media["speech_short"], test_media["speech_short"].with_suffix(".json")
    videos = add_processed_videos(db, pipeline_settings, media, script, 3)
    # Scored windows as detect stores them: [start, end, score]; the clip spans 0-20 s.
    timeline = [[1.0, 9.3, 0.4], [11.5, 17.6, 0.7], [19.2, 25.0, 0.2]]
    with db.connection() as conn:
        for video in videos[:2]:
            merge_video_metadata(conn, video_id=video, patch={"highlight_timeline": timeline})
        conn.execute("UPDATE videos SET status = 'failed' WHERE id = %s", (videos[2],))
        # A person edited the first video's clip: it and the windows inside it say so.
        row = conn.execute("SELECT id FROM clips WHERE video_id = %s", (videos[0],)).fetchone()
        assert row is not None
        mark_edited(conn, clip_id=row["id"])

    exported = export_dataset(db, tmp_path / "ds", database_url=database_url, videos_per_batch=1)
    table = read_back(tmp_path / "ds")

    assert exported == 2  # the failed video is left out
    assert table.schema.equals(SCHEMA)
    assert table.num_rows == 2 * (1 + len(timeline))
    rows = sorted(table.to_pylist(), key=lambda r: (r["video_id"], r["kind"], r["start_s"]))
    assert {r["video_id"] for r in rows} == {str(v) for v in videos[:2]}
    clip, *windows = [r for r in rows if r["video_id"] == str(videos[0])]
    assert (clip["kind"], clip["rank"], clip["chosen"], clip["edited"], clip["sub_scores"]) == (
        "clip",
        1,
        True,
        True,
        [("hook", 0.5)],
    )
    assert clip["text"].startswith("Welcome to the show.") and clip["speaker"] in (0, 1)
    assert (clip["scorer_version"], clip["model_version"]) == ("highlight-v1", OLD_VERSION)
    # Windows: their sentence's words and speaker; chosen when mostly inside the clip.
    assert [(w["kind"], w["chosen"], w["edited"], w["speaker"]) for w in windows] == [
        ("window", True, True, 1),
        ("window", True, True, 0),
        ("window", False, False, 1),
    ]
    assert not any(r["edited"] for r in rows if r["video_id"] == str(videos[1]))
    assert (
        windows[1]["text"] == "A good tool is simple to learn, quick to start, and hard to misuse."
    )
    assert windows[0]["text"].endswith("do one thing well.") and windows[0]["rank"] is None
