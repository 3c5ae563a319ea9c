"""report.html markup without a browser: failed exports, escaping, the time axis, the source copy.

The page in a real browser is covered by test_report_browser.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from clipforge.storage.local import LocalStore
from pipelines.report import copy_source, render_report
from pipelines.report_svg import clock, tick_step

_TRANSCRIPT = {
    "language": "en",
    "duration": 754.0,
    "segments": [{"start": 61.0, "end": 64.0, "text": " Is 5 < 7 & <i>true</i>?", "words": []}],
}


def _clip(**update: Any) -> dict[str, Any]:
    clip = {
        "rank": 1,
        "start": 60.0,
        "end": 90.0,
        "score": 71.5,
        "sub_scores": {"hook": 0.9, "flow": 0.2},
        "reason": "strong hook",
        "title": "Tom & <Jerry>",
        "hook": 'Say "hi"',
        "model": "clipforge-highlight",
        "model_version": "3",
        "export_status": "ready",
        "files": {"mp4": "clips/01.mp4", "vtt": "clips/01.vtt", "thumbnail": "clips/01.jpg"},
    }
    return clip | update


def _render(*clips: dict[str, Any], **kwargs: Any) -> str:
    return render_report(
        source="/videos/talk.mp4",
        transcript=_TRANSCRIPT,
        clips=list(clips),
        timeline=[[0.0, 30.0, 10.0], [60.0, 90.0, 70.0]],
        **kwargs,
    )


def test_a_clip_without_files_is_listed_with_its_export_error() -> None:
    page = _render(
        _clip(),
        _clip(rank=2, export_status="failed", export_error="ffmpeg <died>", files={}),
        _clip(rank=3, export_status="ready", files={"srt": "clips/03.srt"}),  # mp4 missing
        _clip(rank=4, export_status=None, files={}),
    )
    assert page.count("<video") == 1
    assert "Export failed:</strong> ffmpeg &lt;died&gt;" in page
    assert "no clip file was produced" in page
    assert "Not exported." in page


def test_transcript_text_and_titles_are_escaped() -> None:
    page = _render(_clip())
    assert "<Jerry>" not in page and "Tom &amp; &lt;Jerry&gt;" in page
    assert "<i>true</i>" not in page and "Is 5 &lt; 7 &amp; &lt;i&gt;true&lt;/i&gt;?" in page
    assert "Say &quot;hi&quot;" in page


def test_captions_are_inlined_from_the_out_folder_or_else_linked(tmp_path: Path) -> None:
    assert 'src="clips/01.vtt"' in _render(_clip())
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "01.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n")
    page = _render(_clip(), root=tmp_path)
    assert '<track kind="captions" src="data:text/vtt;base64,' in page
    assert 'href="clips/01.vtt"' in page  # the download link stays a file


def test_transcript_lines_seek_only_when_there_is_a_source_preview() -> None:
    assert 'button type="button" class="seg"' not in _render(_clip())
    page = _render(_clip(), source_video="source.mp4")
    assert 'id="source-video"' in page and 'src="source.mp4"' in page
    assert 'class="seg" data-start="61.000" data-end="64.000"' in page


def test_time_axis_ticks_are_round_and_read_m_ss() -> None:
    assert [clock(s) for s in (0, 59.9, 61, 3599, 3600, 7322)] == [
        "0:00", "0:59", "1:01", "59:59", "1:00:00", "2:02:02",
    ]  # fmt: skip
    assert [tick_step(d) for d in (8, 25, 754, 3 * 3600)] == [1, 5, 120, 1800]
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]+)</text>', _render(_clip()))
    assert ticks == ["0:00", "2:00", "4:00", "6:00", "8:00", "10:00", "12:00"]


def test_the_scale_and_every_sub_score_are_explained() -> None:
    page = _render(_clip())
    assert "score (0-100) is the weighted mean" in page
    assert "<dt>Flow</dt>" in page and "<dt>Hook</dt>" in page
    assert 'aria-label="Sub-scores of clip 1, 0 to 100"' in page and "width:20%" in page


def test_copy_source_links_a_local_file_and_downloads_a_stored_one(tmp_path: Path) -> None:
    source = tmp_path / "talk.MP4"
    source.write_bytes(b"video")
    out = tmp_path / "out"
    out.mkdir()
    store = LocalStore(tmp_path / "store")
    assert copy_source(out, str(source), store, None) == "source.mp4"
    assert (out / "source.mp4").read_bytes() == b"video"
    assert (out / "source.mp4").stat().st_ino == source.stat().st_ino  # linked, not copied
    store.put_file("videos/x/original.webm", source)
    assert copy_source(out, "https://example.com/v", store, "videos/x/original.webm") == (
        "source.webm"
    )
    assert (out / "source.webm").read_bytes() == b"video"
    assert copy_source(out, "https://example.com/v", store, None) is None
