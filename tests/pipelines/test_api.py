"""The notebook API (`clipforge.transcribe/score/find_clips/captions/process`) on real weights
and the generated test media."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import clipforge
from clipforge.media import probe
from clipforge.types import Transcript
from models.caption_formats import parse_srt, parse_vtt
from models.highlight import HighlightScorer
from models.select import SelectOptions, select_clips
from models.text_encoder import load_text_encoder
from pipelines.config import load_pipeline_config
from pipelines.local.notebook import HighlightClip
from tests.models._fixtures import hook_transcript
from tests.pipelines._report_build import seek_by_transcript

_REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def short_transcript(test_media: dict[str, Path]) -> Transcript:
    """The ~26 s speech video, transcribed once for the module."""
    return clipforge.transcribe(test_media["speech_short"])


def test_import_clipforge_loads_no_models_or_pipelines() -> None:
    heavy = "('models', 'pipelines', 'ray', 'torch')"
    code = f"import sys, clipforge; print([m for m in sys.modules if m.split('.')[0] in {heavy}])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=_REPO
    )
    assert out.stdout.strip() == "[]"
    assert {"transcribe", "find_clips", "process"} <= set(dir(clipforge))
    with pytest.raises(AttributeError):
        _ = clipforge.no_such_function


def test_transcribe_gives_the_spoken_words(short_transcript: Transcript) -> None:
    words = [w.text.strip(".,").lower() for w in short_transcript.words]
    assert words[:4] == ["welcome", "to", "the", "show"]
    assert {"tools", "simple", "examples"} <= set(words)
    timed = short_transcript.words
    assert all(a.start <= b.start and a.start <= a.end for a, b in itertools.pairwise(timed))
    assert 20 < short_transcript.duration < 40 and short_transcript.model.name == "whisper-tiny.en"
    assert {w.speaker for w in timed} == {0}  # speaker turns: one voice, one id on every word


def test_find_clips_is_the_detect_stage_scorer_and_selector() -> None:
    transcript = hook_transcript()
    clips = clipforge.find_clips(transcript, top_k=3)
    # The same code path the detect stage runs: default scorer, then top-K selection.
    expected = select_clips(
        HighlightScorer(load_text_encoder()).score(transcript), transcript, SelectOptions(top_k=3)
    )
    assert [(c.start, c.end, c.score) for c in clips] == [
        (c.start, c.end, c.score) for c in expected
    ]
    assert len(clips) >= 2 and [c.rank for c in clips] == list(range(1, len(clips) + 1))
    spans = sorted((c.start, c.end) for c in clips)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    assert all(15.0 <= c.duration <= 60.0 and c.title and c.text for c in clips)
    assert all(c.model_version.startswith("highlight-") for c in clips)
    windows = clipforge.score(transcript).windows
    assert [w.score for w in windows] == sorted((w.score for w in windows), reverse=True)


def test_find_clips_from_a_file_and_its_captions(
    test_media: dict[str, Path], short_transcript: Transcript
) -> None:
    clips = clipforge.find_clips(test_media["speech_short"], top_k=2)
    assert len(clips) == 1 and isinstance(clips[0], HighlightClip)  # 26 s: room for one
    clip = clips[0]
    made = clipforge.captions(short_transcript, clip, style="bold", aspect="1:1")
    srt, vtt = parse_srt(made.srt), parse_vtt(made.vtt)
    assert len(srt) == len(vtt) == len(made.cues) >= 2
    assert [c.lines for c in srt] == [c.lines for c in vtt] == [c.lines for c in made.cues]
    assert all(0 <= c.start < c.end <= clip.duration + 0.01 for c in srt)
    shown = " ".join(" ".join(c.lines) for c in srt).lower()
    assert "small tools" in shown
    assert "Style: bold" in made.ass and "PlayResX: 1080\nPlayResY: 1080" in made.ass


def test_process_local_renders_clips_without_postgres_or_ray(
    test_media: dict[str, Path], tmp_path: Path
) -> None:
    config_path = load_pipeline_config(export__short_side=240).save(tmp_path / "pipeline.yaml")
    out, data = tmp_path / "out", tmp_path / "data"
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        import clipforge
        result = clipforge.process(
            sys.argv[1], sys.argv[2], local=True, aspect="1:1", top_k=2, layout="speaker",
            config_path=Path(sys.argv[3]),
        )
        ray = sys.modules.get("ray")
        print(json.dumps({
            "clips": [[c.start, c.end, str(c.files["mp4"])] for c in result.clips],
            "ray_initialized": bool(ray and ray.is_initialized()),
        }))
        """
    )
    drop = ("DATABASE_URL", "REDIS_URL", "RAY_ADDRESS", "S3_ENDPOINT_URL", "S3_BUCKET")
    env = {k: v for k, v in os.environ.items() if k not in drop} | {"DATA_DIR": str(data)}
    run = subprocess.run(
        [sys.executable, "-c", script, str(test_media["speech_short"]), str(out), str(config_path)],
        env=env,
        cwd=_REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert not report["ray_initialized"]
    assert not data.exists()  # no embedded Postgres, no local store: nothing under DATA_DIR
    assert len(report["clips"]) == 1
    docs = json.loads((out / "clips.json").read_text())
    assert [d["rank"] for d in docs] == [1] and docs[0]["export_status"] == "ready"
    assert docs[0]["layout"] == "speaker"
    assert docs[0]["export_error"] is None  # one writer: the keys `clipforge process` writes
    for (start, end, mp4), doc in zip(report["clips"], docs, strict=True):
        info = probe(mp4)
        assert abs(info.duration_s - (end - start)) < 1.0, (info.duration_s, start, end)
        assert info.width == info.height == 240
        for name in ("mp4", "thumbnail", "srt", "vtt", "ass"):
            assert (out / doc["files"][name]).stat().st_size > 0, name
        assert parse_srt((out / doc["files"]["srt"]).read_text())
    transcript = json.loads((out / "transcript.json").read_text())
    assert transcript["segments"][0]["text"].lower().startswith("welcome to the show")
    assert (out / "report.html").stat().st_size > 0
    # The source sits beside the report, as `clipforge process` puts it, and the transcript seeks it.
    assert (out / "source.mp4").read_bytes() == test_media["speech_short"].read_bytes()
    assert 'id="source-video"' in (out / "report.html").read_text()
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium binary for the seek check (apt-get install chromium)")
    target, now = seek_by_transcript(out / "report.html", chromium, line=2)
    assert target > 5 and abs(now - target) < 1.5
