"""The Python API for notebooks and scripts: `clipforge.transcribe/score/find_clips/captions/process`.

`import clipforge` stays light: the core package never imports `models` or `pipelines` at
import time (imports point from `pipelines`/`serve_apps` to `models` to `clipforge`, never
back). `clipforge/__init__.py` resolves these names lazily from this module the first time one
is used, the same way the CLI composes the pipeline inside its commands. This module lives in
`pipelines` because it is allowed to import both `models` and `pipelines`.

Each function is the code path the pipeline stages run, minus Ray, the queue and the object
store: ASR is `models.transcription.transcribe_chunks` over the track and chunks the transcribe
stage reads (the same words, timings and speaker ids as the worker and Serve), clip finding is `models.clip_finder.ClipFinder` (what the detect stage
holds), rendering is `pipelines.render.clip_files.render_clip_files` (what the export stage runs).
Loaded models are kept per process, so the second call is fast. Nothing here needs Postgres,
Redis or Ray except `process(..., local=False)`, which runs the full pipeline.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipforge.errors import MediaError, ValidationFailed
from clipforge.settings import Settings, get_settings
from clipforge.types import AspectRatio, CaptionStyle, Layout, Transcript, Word
from pipelines.config import PipelineConfig, load_pipeline_config
from pipelines.local.preflight import check_options, check_out_dir, check_source

if TYPE_CHECKING:
    from models.asr import AsrConfig, AsrModel
    from models.caption import Cue
    from models.clip_finder import ClipFinder
    from models.highlight import HighlightResult
    from models.select import Clip
    from models.speakers import SpeakerEncoder

_MAX_TIMELINE_POINTS = 500  # as many as the detect stage keeps on the video row

__all__ = [
    "Captions",
    "HighlightClip",
    "ProcessResult",
    "ProcessedClip",
    "captions",
    "find_clips",
    "process",
    "score",
    "transcribe",
]


@dataclass(frozen=True, slots=True)
class HighlightClip:
    """A chosen clip with its title, as the detect stage stores it.

    Attributes:
        rank: 1 for the best clip.
        start / end: seconds in the source, cut in silences between words.
        score: highlight score 0..100.
        subscores: named sub-scores 0..1 behind the score.
        reason: one line saying why it scored as it did.
        title / hook: suggested title and opening line.
        text: the clip's words joined by spaces.
        words: the clip's words (absolute times).
        model_version: scorer config + text encoder version (what clips record).
    """

    rank: int
    start: float
    end: float
    score: float
    subscores: Mapping[str, float]
    reason: str
    title: str
    hook: str
    text: str
    words: tuple[Word, ...]
    model_version: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Captions:
    """Captions of one clip; times relative to the clip start.

    Attributes:
        cues: the caption cues.
        srt / vtt: sidecar files players load.
        ass: styled (karaoke) script, as burned into rendered clips.
    """

    cues: tuple[Cue, ...]
    srt: str
    vtt: str
    ass: str


@dataclass(frozen=True, slots=True)
class ProcessedClip:
    """A rendered clip of `process`.

    Attributes:
        rank / start / end / score / reason / title / hook: as in `HighlightClip`.
        files: `mp4`, `thumbnail`, `srt`, `vtt`, `ass` -> absolute path (empty when not rendered).
    """

    rank: int
    start: float
    end: float
    score: float
    reason: str
    title: str
    hook: str
    files: Mapping[str, Path]


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """What `process` wrote.

    Attributes:
        out_dir: the folder with transcript.json, clips.json, report.html and clips/.
        transcript: the transcript.
        clips: rendered clips, best first.
        video_id: the database id (full pipeline only; None for `local=True`).
    """

    out_dir: Path
    transcript: Transcript
    clips: tuple[ProcessedClip, ...]
    video_id: str | None = None


# -- loaded models, once per process ---------------------------------------------------------


@lru_cache(maxsize=2)
def _asr_model(config: AsrConfig) -> AsrModel:
    from models.asr import AsrModel

    return AsrModel(config)


@lru_cache(maxsize=1)
def _speaker_encoder() -> SpeakerEncoder:
    from models.speakers import SpeakerEncoder

    return SpeakerEncoder()


_FINDERS: dict[tuple[Any, ...], ClipFinder] = {}


def _clip_finder(settings: Settings, config: PipelineConfig, **changes: Any) -> ClipFinder:
    from models.clip_finder import ClipFinder, FinderOptions

    detect = config.detect
    options = FinderOptions(
        top_k=detect.top_k,
        min_clip_s=detect.min_clip_s,
        max_clip_s=detect.max_clip_s,
        frames_fps=detect.frames_fps,
        frames_width=detect.frames_width,
        scorer_config=detect.scorer_config,
    )
    options = replace(options, **changes)
    # Keyed by what the finder reads from the settings (Settings itself is not hashable).
    key = (options, settings.text_model_dir, settings.title_model_dir)
    if key not in _FINDERS:
        _FINDERS[key] = ClipFinder(settings, options)
    return _FINDERS[key]


def unload_models() -> None:
    """Drop the models this process loaded for the API (their memory goes back once nothing
    else holds them); the next call loads them again."""
    _asr_model.cache_clear()
    _speaker_encoder.cache_clear()
    _FINDERS.clear()


def _setup(settings: Settings | None, config_path: Path | None) -> tuple[Settings, PipelineConfig]:
    return settings or get_settings(), load_pipeline_config(config_path)


# -- the API ----------------------------------------------------------------------------------


def transcribe(
    path: str | Path,
    *,
    language: str | None = None,
    settings: Settings | None = None,
    config_path: Path | None = None,
) -> Transcript:
    """Word-timed transcript of a local audio or video file (faster-whisper, in this process).

    `language` (ISO 639-1) skips detection on multilingual weights. The model and batch size
    come from `settings` (`ASR_MODEL_DIR`, `ASR_DEVICE`, ...) and the pipeline config, as in the
    transcribe stage. Words carry speaker ids (`Word.speaker`) unless the config's
    `transcribe.speaker_turns` is off. Raises `MediaError` when the file has no usable audio.
    """
    from clipforge.media.track import extract_track
    from models.asr import AsrConfig
    from models.chunking import ChunkOptions
    from models.transcription import transcribe_chunks
    from pipelines.stages.audio import ChunkStream

    settings, config = _setup(settings, config_path)
    asr = replace(AsrConfig.from_settings(settings), batch_size=config.transcribe.asr_batch_size)
    model = _asr_model(asr)
    encoder = _speaker_encoder() if config.transcribe.speaker_turns else None
    with tempfile.TemporaryDirectory(prefix="cf-transcribe-") as folder:
        # The worker's samples and chunks: the track import stores, cut as its actors cut it.
        track = extract_track(Path(path), Path(folder) / "track.flac")
        stream = ChunkStream(track, ChunkOptions(max_chunk_s=config.transcribe.max_chunk_s))
        chunks = list(stream)
    transcript = transcribe_chunks(
        model, encoder, chunks, duration_s=stream.end_s, language=language
    )
    if not transcript.words:
        raise MediaError("no speech detected in the audio track")
    return transcript


def score(
    transcript: Transcript,
    path: str | Path | None = None,
    *,
    settings: Settings | None = None,
    config_path: Path | None = None,
) -> HighlightResult:
    """Score every candidate window of `transcript`, best first (`.windows`).

    With `path` (the media the transcript came from) the audio and visual sub-scores count too,
    as in the detect stage; without it only the text and timing sub-scores do.
    """
    settings, config = _setup(settings, config_path)
    return _clip_finder(settings, config).score(transcript, Path(path) if path else None)


def find_clips(
    source: str | Path | Transcript,
    top_k: int = 3,
    *,
    media: str | Path | None = None,
    settings: Settings | None = None,
    config_path: Path | None = None,
) -> list[HighlightClip]:
    """The best `top_k` non-overlapping clips, titled, best first.

    `source` is a media file (transcribed first, then scored with its audio and frames) or a
    transcript (scored on text and timing, plus the audio and frames of `media` if given).
    Duration limits and the scorer config come from the pipeline config, as in the detect
    stage. May return fewer than `top_k` clips, or none when the media is too short.
    """
    settings, config = _setup(settings, config_path)
    if isinstance(source, Transcript):
        transcript, path = source, Path(media) if media else None
    else:
        path = Path(source)
        transcript = transcribe(path, settings=settings, config_path=config_path)
    finder = _clip_finder(settings, config, top_k=top_k)
    found = finder.find(transcript, path)
    return [
        _highlight(c, t.title, t.hook, finder.version)
        for c, t in zip(found.clips, found.titles, strict=True)
    ]


def _highlight(clip: Clip, title: str, hook: str, version: str) -> HighlightClip:
    return HighlightClip(
        rank=clip.rank,
        start=clip.start,
        end=clip.end,
        score=clip.score,
        subscores=dict(clip.subscores),
        reason=clip.reason,
        title=title,
        hook=hook,
        text=clip.text,
        words=clip.words,
        model_version=version,
    )


def captions(
    transcript: Transcript | Sequence[Word],
    clip: HighlightClip | tuple[float, float],
    *,
    style: CaptionStyle = "auto",
    aspect: AspectRatio = "9:16",
) -> Captions:
    """SRT, WebVTT and ASS captions of one clip (a `HighlightClip` or `(start, end)` seconds).

    `style` `auto` (the default) is `shorts` for 9:16, 4:5 and 1:1 (1-4 large words per cue,
    the spoken word highlighted) and `karaoke` for 16:9. `karaoke`, `bold`, `minimal` and
    `subtitle` follow the subtitle rules of `models.caption` (two lines of 42 characters,
    0.8-6 s on screen, reading speed); `speakers` colours each speaker's words, one speaker per
    cue.
    """
    from models.caption import build_cues
    from models.caption_formats import cue_options, to_ass, to_srt, to_vtt

    words = transcript.words if isinstance(transcript, Transcript) else transcript
    start, end = (clip.start, clip.end) if isinstance(clip, HighlightClip) else clip
    cues = build_cues(words, start, end, cue_options(style, aspect=aspect))
    return Captions(
        cues=cues, srt=to_srt(cues), vtt=to_vtt(cues), ass=to_ass(cues, style, resolution=aspect)
    )


def process(
    source: str | Path,
    out_dir: str | Path,
    *,
    aspect: AspectRatio = "9:16",
    style: CaptionStyle = "auto",
    top_k: int = 3,
    layout: Layout = "auto",
    local: bool = False,
    settings: Settings | None = None,
    config_path: Path | None = None,
    overwrite: bool = False,
) -> ProcessResult:
    """One video to captioned clips in `out_dir` (transcript.json, clips.json, report.html,
    clips/NN.mp4 with .jpg/.srt/.vtt/.ass), like `clipforge process`: a folder holding another
    run's outputs is refused unless `overwrite`, which removes them first.

    `layout` says who the crop follows: `auto` (the active speaker; two stacked crops when two
    people alternate quickly), `speaker`, `split` or `center`; without a face the crop follows
    the motion in the picture.

    `local=False` runs the full pipeline (`pipelines.local.one_video.run_one_video`: local Ray, the
    embedded Postgres unless DATABASE_URL is set, the job queue). `local=True` runs the same
    model and render code in this process, with no database, queue, object store or Ray; it
    takes local files only.
    """
    if not local:
        return _run_one_video(
            str(source),
            Path(out_dir),
            (aspect, style, layout),
            top_k,
            settings,
            config_path,
            overwrite=overwrite,
        )
    settings, config = _setup(settings, config_path)
    # The same checks as `clipforge process`, so a bad input fails before any model loads.
    check_options(aspect_ratio=aspect, caption_style=style, top_k=top_k, layout=layout)
    checked = check_source(str(source), settings)
    if checked.kind != "file":
        raise ValidationFailed("process(local=True) takes a local file; use local=False for URLs")
    src = Path(checked.location)
    out = check_out_dir(Path(out_dir), overwrite=overwrite, source=src)
    auto = config.detect.auto_export.model_copy(
        update={"aspect_ratio": aspect, "caption_style": style, "top_n": top_k, "layout": layout}
    )
    config = config.model_copy(
        update={"detect": config.detect.model_copy(update={"auto_export": auto})}
    )
    transcript = transcribe(src, settings=settings, config_path=config_path)
    finder = _clip_finder(settings, config, top_k=top_k)
    found = finder.find(transcript, src)
    if not found.clips:
        raise MediaError(f"no clip found in {transcript.duration:.0f} s of media")
    rendered = [
        _render(src, out, _highlight(c, t.title, t.hook, finder.version), transcript, config)
        for c, t in zip(found.clips, found.titles, strict=True)
    ]
    from pipelines.local.run_outputs import write_run_outputs

    write_run_outputs(
        out,
        source=str(source),
        transcript=transcript.to_dict(),
        clips=[doc for doc, _ in rendered],
        timeline=found.timeline(_MAX_TIMELINE_POINTS),
    )
    return ProcessResult(out_dir=out, transcript=transcript, clips=tuple(c for _, c in rendered))


def _render(
    src: Path,
    out: Path,
    clip: HighlightClip,
    transcript: Transcript,
    config: PipelineConfig,
) -> tuple[dict[str, Any], ProcessedClip]:
    """Render one clip as an auto-export of `config` would, into `out/clips/NN.*`."""
    from pipelines.local.run_outputs import clip_doc
    from pipelines.render.clip_files import render_clip_files

    # The words the worker hands the export stage: those overlapping the clip.
    words = [w for w in transcript.words if w.end > clip.start and w.start < clip.end]
    files = render_clip_files(
        src,
        out / "clips",
        start_s=clip.start,
        end_s=clip.end,
        words=words,
        aspect_ratio=config.detect.auto_export.aspect_ratio,
        caption_style=config.detect.auto_export.caption_style,
        config=config.export,
        stem=f"{clip.rank:02d}",
        layout=config.detect.auto_export.layout,
    )
    paths = {"mp4": files.mp4, "thumbnail": files.jpg, "srt": files.srt, "vtt": files.vtt}
    paths["ass"] = files.ass
    doc = clip_doc(
        rank=clip.rank,
        start=clip.start,
        end=clip.end,
        score=clip.score,
        sub_scores=clip.subscores,
        reason=clip.reason,
        title=clip.title,
        hook=clip.hook,
        model="clipforge-highlight",
        model_version=clip.model_version,
        export_status="ready",
        export_error=None,
        layout=config.detect.auto_export.layout,
        files={k: str(p.relative_to(out)) for k, p in paths.items()},
    )
    processed = ProcessedClip(
        rank=clip.rank,
        start=clip.start,
        end=clip.end,
        score=clip.score,
        reason=clip.reason,
        title=clip.title,
        hook=clip.hook,
        files=paths,
    )
    return doc, processed


def _run_one_video(
    source: str,
    out: Path,
    look: tuple[AspectRatio, CaptionStyle, Layout],
    top_k: int,
    settings: Settings | None,
    config_path: Path | None,
    *,
    overwrite: bool,
) -> ProcessResult:
    from pipelines.local.one_video import ProcessOptions, run_one_video

    aspect, style, layout = look
    options = ProcessOptions(
        aspect_ratio=aspect,
        caption_style=style,
        top_k=top_k,
        config_path=config_path,
        layout=layout,
        overwrite=overwrite,
    )
    result = run_one_video(source, out, settings or get_settings(), options)
    transcript = Transcript.from_dict(json.loads((out / "transcript.json").read_text()))
    clips = tuple(
        ProcessedClip(
            rank=c["rank"],
            start=c["start"],
            end=c["end"],
            score=c["score"],
            reason=c["reason"],
            title=c["title"],
            hook=c["hook"],
            files={k: out / v for k, v in c["files"].items()},
        )
        for c in result["clips"]
    )
    return ProcessResult(
        out_dir=out, transcript=transcript, clips=clips, video_id=result["video_id"]
    )
