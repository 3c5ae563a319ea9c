"""`clipforge process` on the embedded default: embedded Postgres, local storage, no Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clipforge.media import probe

_REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    import ray

    drop = ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT_URL", "S3_BUCKET", "CDN_BASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    # The session's Ray stands in for the local Ray `process` would start, to spare 2 cores.
    return env | {
        "DATA_DIR": str(tmp_path / "data"),
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
    }


def _process(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clipforge.cli", "process", *args],
        env=_env(tmp_path),
        cwd=_REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_process_writes_clips_transcript_and_report(
    ray_local: None, test_media: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = _process(
        tmp_path,
        str(test_media["speech_short"]),
        "--out",
        str(out),
        "--aspect",
        "1:1",
        "--top-k",
        "2",
        "--layout",
        "center",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    transcript = json.loads((out / "transcript.json").read_text())
    words = [w for s in transcript["segments"] for w in s["words"]]
    assert len(words) > 20 and all(w["start"] <= w["end"] for w in words)
    assert {w["speaker"] for w in words} == {0}  # one voice: one speaker turn id on every word
    clips = json.loads((out / "clips.json").read_text())
    assert 1 <= len(clips) <= 2
    for clip in clips:
        assert set(clip) >= {"start", "end", "score", "sub_scores", "reason", "title", "files"}
        assert clip["export_status"] == "ready" and clip["layout"] == "center"
        info = probe(out / clip["files"]["mp4"])
        assert abs(info.duration_s - (clip["end"] - clip["start"])) <= 0.1
        assert info.width == info.height  # 1:1 as asked
        for ext in ("srt", "vtt", "ass", "thumbnail"):
            assert (out / clip["files"][ext]).stat().st_size > 0
    report = (out / "report.html").read_text()
    assert report.count("<video") == len(clips) + 1  # the clips and the source preview
    assert "<svg" in report and "<polyline" in report and (out / "source.mp4").is_file()
    assert words[0]["text"].strip() in report


def test_a_failed_export_is_reported_and_the_rest_succeeds(
    ray_local: None, test_media: dict[str, Path], tmp_path: Path
) -> None:
    """An export that ffmpeg refuses (an unknown x264 preset) fails alone, with its reason."""
    config = tmp_path / "pipeline.yaml"  # (no voice embeddings: the test above has them)
    config.write_text(
        "transcribe:\n  speaker_turns: false\nexport:\n  preset: no-such-preset\n  short_side: 240\n"
    )
    out = tmp_path / "out"
    result = _process(
        tmp_path, str(test_media["speech_short"]), "--out", str(out), "--config", str(config)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "not rendered: MediaError: ffmpeg" in result.stdout
    clips = json.loads((out / "clips.json").read_text())
    assert clips and all(c["export_status"] == "failed" for c in clips)
    assert all("no-such-preset" in c["export_error"] for c in clips)
    assert all(c["files"] == {} for c in clips)
    report = (out / "report.html").read_text()
    assert "no-such-preset" in report  # the report lists the clip with the reason


def test_local_storage_is_refused_on_a_cluster_of_several_nodes() -> None:
    from clipforge.errors import ValidationFailed
    from pipelines.local.one_video import check_cluster_storage

    check_cluster_storage(nodes=1, backend="local")  # one node: a local folder is fine
    check_cluster_storage(nodes=3, backend="s3")
    with pytest.raises(ValidationFailed, match=r"has 3 nodes.*set S3_BUCKET"):
        check_cluster_storage(nodes=3, backend="local")
