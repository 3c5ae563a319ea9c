"""Detect stage: score sentence-aligned windows, pick top-K clips, title them (warm actors).

Each detect actor loads the text encoder, the scorer and the titler once. It reads the audio
track import stored (not the original's audio, decoded again) and samples frames from the
original, both through the node-local object cache, so a video transcribed on this machine is
not downloaded again. The driver reads videos and transcripts of the whole batch in one query
each, and commits clips, the video's new status and the auto exports with the job.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from clipforge.db.pool import Conn
from clipforge.db.repo import clips as clips_repo
from clipforge.db.repo.exports import create_export
from clipforge.db.repo.transcripts import get_transcripts
from clipforge.db.repo.videos import get_videos, merge_video_metadata
from clipforge.errors import MediaError, NotFound
from clipforge.heap import trim_heap
from clipforge.media import iter_audio, sample_frames
from clipforge.queue import Job, JobResult
from clipforge.settings import Settings
from clipforge.storage.keys import audio_key
from clipforge.types import Transcript
from models.chunking import SAMPLE_RATE
from models.clip_finder import Detection
from models.highlight import HighlightResult
from models.highlight_audio import AudioTimeline, audio_timeline_blocks
from models.highlight_config import ScorerConfig
from models.highlight_reason import has_strong_signal
from pipelines.config import DetectConfig, PipelineConfig
from pipelines.stages.actors import Report, StageActor, threads_per_actor
from pipelines.stages.base import ActorSpec, BaseStage
from pipelines.stages.lifecycle import video_of
from pipelines.stages.values import StageError, job_value

if TYPE_CHECKING:
    from models.select import Clip

_MAX_TIMELINE_POINTS = 500


@dataclass(frozen=True, slots=True)
class DetectInput:
    """A transcribed video: its stored media and its transcript."""

    job_id: int
    original_key: str | None
    audio_key: str
    duration_s: float | None
    transcript: Transcript


@dataclass(frozen=True, slots=True)
class DetectOutput:
    """The video's clips, best first, and its score timeline (at most 500 points)."""

    job_id: int
    clips: list[clips_repo.NewClip]
    timeline: list[list[float]]
    duration_s: float | None


def scorer_digest(scorer: ScorerConfig) -> str:
    """Short hash of a scorer config's contents (the same settings hash the same, whatever the
    file format), recorded on clips so two configs that reuse a version name stay apart."""
    canonical = json.dumps(scorer.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def load_scorer(config: DetectConfig) -> ScorerConfig:
    """The scorer config the stage's file names, or the defaults; read once, by the driver."""
    return ScorerConfig.load(config.scorer_config) if config.scorer_config else ScorerConfig()


class DetectActor(StageActor):
    """The clip finder (encoder, scorer, titler) of one actor, loaded once."""

    def __init__(self, settings: Settings, config: DetectConfig, scorer: ScorerConfig) -> None:
        """`scorer` comes from the driver: actors on other nodes never read the config file."""
        from models.clip_finder import ClipFinder, FinderOptions

        super().__init__(settings)
        self.config = config
        with tempfile.TemporaryDirectory(prefix="cf-scorer-") as tmp:
            shipped = Path(tmp) / "scorer.json"  # ClipFinder loads from a file; a local one
            scorer.save(shipped)
            self.finder = ClipFinder(
                settings,
                FinderOptions(
                    top_k=config.top_k,
                    min_clip_s=config.min_clip_s,
                    max_clip_s=config.max_clip_s,
                    frames_fps=config.frames_fps,
                    frames_width=config.frames_width,
                    scorer_config=shipped,
                    encoder_threads=threads_per_actor(config.encoder_threads, config.actors),
                ),
            )
        # "<config version>+<encoder>+<config hash>": the selection of a backfill compares
        # the first part with its target version and the last with its config's hash.
        self.version = f"{self.finder.version}+{scorer_digest(scorer)}"
        self.loaded("text_encoder")
        self.loaded("highlight_scorer")
        if settings.title_model_dir is not None:
            self.loaded("titler")

    def detect(self, item: DetectInput) -> tuple[DetectOutput | StageError, Report]:
        """Clips of one video; a failing video gives its own job's error only."""
        value = job_value(item.job_id, lambda: self._detect(item))
        trim_heap()  # a long video's scoring buffers, freed, would stay in the heap
        return value, self.report()

    def _detect(self, item: DetectInput) -> DetectOutput:
        transcript = item.transcript
        if not transcript.words:
            raise MediaError("the transcript has no words; nothing to make clips from")
        if item.original_key is None:  # a transcript comes after import stored the original
            raise MediaError("the video has no stored original")
        with tempfile.TemporaryDirectory(prefix="cf-detect-") as tmp:
            original = self.fetch(item.original_key, Path(tmp))
            try:
                track = self.fetch(item.audio_key, Path(tmp))
            except NotFound:  # imported before audio tracks were stored
                track = original
            audio, timeline = self._spool(track, Path(tmp) / "audio.f32")
            fps = min(self.config.frames_fps, self.config.max_frames / max(transcript.duration, 1))
            # The frames are analysed as they are decoded, never held together.
            frames = sample_frames(original, fps, self.config.frames_width)
            result = self.finder.scorer.score(transcript, timeline=timeline, frames=frames)
            chosen = self._select(transcript, result, audio)  # edges in the track's pauses
            del audio
        found = self._title(chosen, result)
        if not found.clips:
            raise MediaError(
                f"no clip of {self.config.min_clip_s:.0f}-{self.config.max_clip_s:.0f} s found in "
                f"{transcript.duration:.0f} s of media"
            )
        clips = [
            clips_repo.NewClip(
                rank=c.rank,
                start_s=c.start,
                end_s=c.end,
                score=c.score,
                sub_scores=dict(c.subscores),
                reason=c.reason,
                title=t.title,
                hook=t.hook,
                model_name="clipforge-highlight",
                model_version=self.version,
            )
            for c, t in zip(found.clips, found.titles, strict=True)
        ]
        points = found.timeline(_MAX_TIMELINE_POINTS)  # bounded size in the video row
        return DetectOutput(item.job_id, clips, points, item.duration_s)

    def _spool(self, track: Path, raw: Path) -> tuple[npt.NDArray[np.float32], AudioTimeline]:
        """The track's audio features, read in blocks, and its samples as a read-only memory map
        of a scratch file: the scorer needs only the features, clip edges read a few seconds
        around each edge, so memory holds one block, not the track (460 MB for two hours)."""

        def blocks() -> Iterator[npt.NDArray[np.float32]]:
            with raw.open("wb") as out:
                for block in iter_audio(track, SAMPLE_RATE, block_s=60.0):
                    out.write(block.astype(np.float32, copy=False).tobytes())
                    yield block

        burst = self.finder.scorer.config.burst_flatness
        timeline = audio_timeline_blocks(blocks(), SAMPLE_RATE, burst)
        return np.memmap(raw, dtype=np.float32, mode="r"), timeline

    def _select(
        self, transcript: Transcript, result: HighlightResult, audio: npt.NDArray[np.float32]
    ) -> tuple[Clip, ...]:
        from models.clip_finder import strong_first
        from models.select import select_clips

        picked = select_clips(result, transcript, self.finder.select_options, audio=audio)
        return strong_first(picked, self.config.top_k)

    def _title(self, chosen: tuple[Clip, ...], result: HighlightResult) -> Detection:
        titles = self.finder.titler.titles([c.words for c in chosen]) if chosen else ()
        return Detection(clips=tuple(chosen), titles=tuple(titles), result=result)


class DetectStage(BaseStage[DetectInput, DetectOutput]):
    """Driver side of the detect stage."""

    name = "detect"
    missing = "no transcript for this video"
    actor_method = "detect"

    def configure(self, config: PipelineConfig, scorer: ScorerConfig | None) -> None:
        """`scorer` overrides the config's scorer file (a backfill's tuned scorer)."""
        self.config = config.detect
        self.scorer = scorer if scorer is not None else load_scorer(config.detect)

    def actor_spec(self, settings: Settings, config: PipelineConfig) -> ActorSpec:
        """Detect actors, each with the driver's scorer config (never read on other nodes)."""
        own = config.detect
        return ActorSpec(
            DetectActor,
            (settings, own, self.scorer),
            own.actors,
            own.num_cpus,
            own.claim_batch_size,
        )

    def load(self, conn: Conn, jobs: Sequence[Job]) -> dict[int, DetectInput]:
        """Each job's video and transcript: one query for the videos, one for the transcripts."""
        ids = [j.video_id for j in jobs if j.video_id]
        videos = get_videos(conn, video_ids=ids)
        transcripts = get_transcripts(conn, video_ids=ids)
        return {
            j.id: DetectInput(
                job_id=j.id,
                original_key=v.original_key,
                audio_key=audio_key(v.id),
                duration_s=v.duration_s,
                transcript=transcripts[v.id],
            )
            for j in jobs
            if (v := videos.get(video_of(j))) is not None and v.id in transcripts
        }

    def commit(self, job: Job, output: DetectOutput) -> JobResult:
        """Replace the clips, make the video ready and enqueue its automatic exports."""
        auto = self.config.auto_export

        def write(conn: Conn) -> None:
            video_id = video_of(job)
            # Clips a person edited stay, unless the job says to replace them too.
            keep = not job.payload.get("replace_edited", False)
            stored = clips_repo.replace_clips(
                conn, video_id=video_id, clips=output.clips, keep_edited=keep
            )
            self.lifecycle.mark_ready(conn, job)
            merge_video_metadata(
                conn,
                video_id=video_id,
                patch={
                    "highlight_timeline": output.timeline,
                    "clip_model": "clipforge-highlight",
                },
            )
            if not auto.enabled:
                return
            # A clip without a strong signal only fills the top K; it is never auto-exported.
            exportable = [c for c in stored if has_strong_signal(c.sub_scores)]
            for clip in exportable[: auto.top_n]:
                export = create_export(
                    conn,
                    clip_id=clip.id,
                    aspect_ratio=auto.aspect_ratio,
                    caption_style=auto.caption_style,
                    layout=auto.layout,
                )
                self.lifecycle.enqueue(conn, "export", video_id, {"export_id": str(export.id)})

        seconds = output.duration_s
        return JobResult(
            on_commit=write,
            after_commit=self.lifecycle.after(job, ("video", "clips"), sweep=True, seconds=seconds),
        )
