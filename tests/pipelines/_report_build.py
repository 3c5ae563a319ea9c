"""A real report folder without the whole pipeline: clips cut from the two_speakers test video
with ffmpeg (H.264 + AAC, as the export stage renders them), caption files from our writers,
titles and reasons from our title and reason code, and the page from `render_report`.

The transcript comes from the video's truth file (who says what, when): each utterance is a
segment whose words share its time evenly and carry its speaker id, and two utterances are
merged into one segment, as ASR does across a quick turn.

The full `clipforge process` run is covered by test_process.py; this keeps the browser tests to
seconds on a 2-core machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clipforge.media import probe
from clipforge.media.ffmpeg import run_ffmpeg
from clipforge.storage.local import LocalStore
from models.caption import Cue
from models.caption_formats import to_ass, to_srt, to_vtt
from models.caption_titles import tidy
from models.highlight_reason import explain
from pipelines.local.report import copy_source, render_report

#: The failed clip's title and error carry markup, to prove the page escapes them.
HOSTILE_TITLE = "<script>window.__pwned = 1</script> Tools & <b>tricks</b>"
EXPORT_ERROR = "ffmpeg exited with 1: <img src=x onerror=window.__pwned=2>"


def _ffmpeg(*args: str) -> None:
    run_ffmpeg(args, timeout_s=120, step="test_media")


#: What clips.json records about the scorer; the page must not show it.
MODEL, MODEL_VERSION = "clipforge-highlight", "highlight-7f3c2a19"


def _words(utterance: dict[str, Any]) -> list[dict[str, Any]]:
    texts = utterance["text"].split()
    start, end = float(utterance["start"]), float(utterance["end"])
    step = (end - start) / len(texts)
    return [
        {"start": start + i * step, "end": start + (i + 1) * step, "text": " " + text,
         "probability": 1.0, "speaker": utterance["speaker"]}
        for i, text in enumerate(texts)
    ]  # fmt: skip


def _segments(utterances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    segments = [
        {"start": u["start"], "end": u["end"], "text": " " + u["text"], "words": _words(u)}
        for u in utterances
    ]
    first, second = segments[-3], segments.pop(-2)  # a segment that spans a turn
    first.update(
        end=second["end"],
        text=first["text"] + second["text"],
        words=first["words"] + second["words"],
    )
    return segments


def _clip(media: Path, out: Path, rank: int, cue: dict[str, Any]) -> dict[str, Any]:
    start, end = float(cue["start"]) - 0.3, float(cue["end"]) + 0.3
    rel = {ext: f"clips/{rank:02d}.{ext}" for ext in ("mp4", "srt", "vtt", "ass")}
    rel["thumbnail"] = f"clips/{rank:02d}.jpg"
    video = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    audio = ["-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart"]
    _ffmpeg("-ss", f"{start:.3f}", "-t", f"{end - start:.3f}", "-i", str(media), *video, *audio,
            str(out / rel["mp4"]))  # fmt: skip
    _ffmpeg("-i", str(out / rel["mp4"]), "-frames:v", "1", str(out / rel["thumbnail"]))
    cues = [Cue(0.3, end - start - 0.3, (cue["text"],))]
    (out / rel["srt"]).write_text(to_srt(cues))
    (out / rel["vtt"]).write_text(to_vtt(cues))
    (out / rel["ass"]).write_text(to_ass(cues, resolution=(960, 540)))
    values = {"hook": 0.8 - 0.2 * rank, "payoff": 0.55, "standalone": 1.0, "flow": 0.3}
    row = {"words_per_s": 2.5, "opens_question": 0.0, "opens_number": 0.0}
    return {
        "rank": rank,
        "start": start,
        "end": end,
        "score": round(100 * sum(values.values()) / len(values), 2),
        "sub_scores": values,
        "reason": explain(values, row),
        "title": tidy(cue["text"], 40),
        "hook": tidy(cue["text"], 100, keep_question=True),
        "model": MODEL,
        "model_version": MODEL_VERSION,
        "export_status": "ready",
        "export_error": None,
        "layout": "auto",
        "files": rel,
    }


def build_report(media: Path, out: Path) -> dict[str, Any]:
    """Write clips, captions, the source copy and report.html for `media` into `out`.

    Two clips render; a third is listed as failed. Returns the clip docs, the transcript and the
    report path.
    """
    truth = json.loads(media.with_suffix(".truth.json").read_text())
    sentences: list[dict[str, Any]] = truth["utterances"]
    (out / "clips").mkdir(parents=True, exist_ok=True)
    clips = [_clip(media, out, rank, sentences[rank]) for rank in (1, 2)]
    clips.append(
        {
            **clips[-1],
            "rank": 3,
            # the video's last seconds: its marker sits at the timeline's right edge
            "start": float(sentences[-1]["start"]),
            "end": float(sentences[-1]["end"]),
            "title": HOSTILE_TITLE,
            "export_status": "failed",
            "export_error": EXPORT_ERROR,
            "files": {},
        }
    )
    transcript = {
        "language": "en",
        "duration": probe(media).duration_s,
        "segments": _segments(sentences),
    }
    timeline = [[s["start"], s["end"], 20.0 + 10 * (i % 5)] for i, s in enumerate(sentences)]
    source_video = copy_source(out, str(media), LocalStore(out.parent / "store"), None)
    page = render_report(
        source=str(media),
        transcript=transcript,
        clips=clips,
        timeline=timeline,
        root=out,
        source_video=source_video,
    )
    report = out / "report.html"
    report.write_text(page, encoding="utf-8")
    return {"clips": clips, "transcript": transcript, "report": report}


def seek_by_transcript(report: Path, chromium: str, line: int) -> tuple[float, float]:
    """Open `report` in `chromium`, click transcript line `line` and wait for the source
    preview to get there. Returns the line's start and the preview's time (seconds)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(report.as_uri())
            seg = page.locator("button.seg").nth(line)
            target = float(seg.get_attribute("data-start") or "nan")
            page.locator("#source-video").evaluate("v => { v.muted = true; }")
            seg.click()
            page.wait_for_function(
                "t => Math.abs(document.getElementById('source-video').currentTime - t) < 1.5",
                arg=target,
                timeout=15_000,
            )
            now = float(page.locator("#source-video").evaluate("v => v.currentTime"))
        finally:
            browser.close()
    return target, now
