"""report.html markup without a browser: failed exports, escaping, the time axis, the clip
markers, speaker turns, hidden caption tracks, card wording, the source copy.

The page in a real browser is covered by test_report_browser.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from clipforge.storage.local import LocalStore
from models.caption_formats import SPEAKER_COLOURS
from pipelines.local.report import copy_source, render_report
from pipelines.local.report_svg import clock, tick_step
from pipelines.local.report_transcript import speaker_colour, transcript_lines

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
    ticks = re.findall(
        r'<span class="tick[^"]*" style="left:[^"]*">([^<]+)</span>', _render(_clip())
    )
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


def _word(start: float, text: str, speaker: int | None) -> dict[str, Any]:
    word = {"start": start, "end": start + 0.4, "text": " " + text, "probability": 0.9}
    return word | ({} if speaker is None else {"speaker": speaker})


def test_a_segment_spanning_a_turn_is_cut_at_the_turn() -> None:
    segments = [
        {"start": 0.0, "end": 1.0, "text": " Hi there.", "words": [_word(0.0, "Hi", 0),
                                                                  _word(0.5, "there.", 0)]},
        {"start": 1.0, "end": 3.0, "text": " Why? Because, um, yes.", "words": [
            _word(1.0, "Why?", 0), _word(1.6, "Because,", 1), _word(2.0, "um,", None),
            _word(2.4, "yes.", 1)]},
        {"start": 3.0, "end": 4.0, "text": " ", "words": []},
    ]  # fmt: skip
    lines = transcript_lines(segments)
    assert [(ln.start, ln.text, ln.speaker) for ln in lines] == [
        (0.0, "Hi there.", 0), (1.0, "Why?", 0), (1.6, "Because, um, yes.", 1),
    ]  # fmt: skip
    assert lines[2].end == 2.8  # the turn's last word, a word without an id kept in its run
    page = render_report(
        source="talk.mp4",
        transcript={"duration": 4.0, "segments": segments},
        clips=[],
        timeline=[],
        source_video="source.mp4",
    )
    labels = re.findall(r'<span class="spk"[^>]*>([^<]+)</span>', page)
    assert labels == ["Speaker 1:", "Speaker 2:"]  # once per turn, not per line
    assert page.count('class="seg turn"') == 2 and page.count('class="seg"') == 1


def test_speaker_colours_are_the_caption_colours_in_css() -> None:
    assert SPEAKER_COLOURS[0] == "&H0000D7FF" and speaker_colour(0) == "#ffd700"  # gold
    assert speaker_colour(len(SPEAKER_COLOURS) + 1) == speaker_colour(1)


def test_transcripts_without_speaker_ids_have_no_labels() -> None:
    page = _render(_clip(), source_video="source.mp4")
    assert 'class="spk"' not in page and "Speaker" not in page


def test_caption_tracks_start_off_with_a_toggle_per_clip(tmp_path: Path) -> None:
    page = _render(_clip(), _clip(rank=2), root=tmp_path, source_video="source.mp4")
    tracks = re.findall(r"<track [^>]*>", page)
    assert len(tracks) == 3 and not any("default" in t for t in tracks)
    toggles = re.findall(r'<button type="button" class="cc" data-video="([^"]+)"', page)
    assert toggles == ["clip-1-video", "clip-2-video", "source-video"]
    assert all(f'id="{video}"' in page for video in toggles)


def test_cards_say_the_framing_not_the_model() -> None:
    page = _render(_clip(layout="split"), _clip(rank=2, layout=None))
    assert "clipforge-highlight" not in page and "Model:" not in page
    assert page.count("Framing: two people stacked") == 1 and page.count("Framing:") == 1


def test_clip_markers_sit_in_percent_of_the_plot() -> None:
    page = _render(
        _clip(),
        _clip(rank=2, start=92.0, end=120.0),  # close behind #1: its label goes a row lower
        _clip(rank=3, start=724.0, end=754.0, export_status="failed", files={}),
    )
    markers = re.findall(
        r'<a class="([^"]+)" href="#clip-(\d)" style="left:([\d.]+)%;width:([\d.]+)%"'
        r'[^>]*><span class="(row\d)">#\d</span>',
        page,
    )
    assert markers == [
        ("marker", "1", "7.96", "3.98", "row0"),
        ("marker", "2", "12.20", "3.71", "row1"),
        ("marker failed end", "3", "96.02", "3.98", "row0"),
    ]
    assert 'points="19.9,90.0 99.5,30.0"' in page  # each window at its midpoint, y = 100 - score


def test_copy_source_without_a_store_places_local_files_only(tmp_path: Path) -> None:
    source = tmp_path / "talk.mkv"
    source.write_bytes(b"video")
    assert copy_source(tmp_path, str(source)) == "source.mkv"
    assert copy_source(tmp_path, "https://example.com/v", None, "videos/x/original.mp4") is None


def test_the_studio_is_linked_only_when_a_server_answered() -> None:
    assert "studio" not in _render(_clip()).lower()  # self-contained: no server named
    url = "http://127.0.0.1:8080/studio/videos/0f0e6c4a-6c4b-4c1e-9d7e-3f5b1f0a2b11"
    page = _render(_clip(), studio_url=url)
    assert f'<a href="{url}">Edit these clips in ClipForge Studio</a>' in page
    assert page.count("http://127.0.0.1:8080") == 1
