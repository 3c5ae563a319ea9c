"""Detect stage: score sentence-aligned windows, pick top-K clips, title them (actor pool)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from clipforge.db.repo.clips import NewClip
from clipforge.errors import MediaError
from clipforge.media import decode_audio, sample_frames
from clipforge.settings import Settings
from clipforge.storage import create_store
from clipforge.types import Transcript
from pipelines.config import DetectConfig
from pipelines.rows import Row, error_row, pack, unpack

_MAX_TIMELINE_POINTS = 500


def scorer_version(config_version: str, encoder_version: str) -> str:
    """The version recorded on clips: the scorer settings plus the encoder weights."""
    return f"{config_version}+{encoder_version}"


class DetectStage:
    """Ray Data callable class holding the text encoder, scorer and titler of one actor."""

    def __init__(self, settings: Settings, config: DetectConfig) -> None:
        from models.caption_titles import load_titler
        from models.highlight import HighlightScorer
        from models.highlight_config import ScorerConfig
        from models.select import SelectOptions
        from models.text_encoder import load_text_encoder

        self.settings = settings
        self.config = config
        encoder = load_text_encoder(settings)
        scorer_config = (
            ScorerConfig.load(config.scorer_config) if config.scorer_config else ScorerConfig()
        )
        self.scorer = HighlightScorer(encoder, scorer_config)
        self.titler = load_titler(settings, encoder)
        self.select_options = SelectOptions(
            top_k=config.top_k, min_duration_s=config.min_clip_s, max_duration_s=config.max_clip_s
        )
        self.version = scorer_version(scorer_config.version, encoder.info.version)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """Detect clips for each row; a failing video yields an error row for its job only."""
        out: dict[str, list[Any]] = {
            "job_id": [],
            "clips": [],
            "timeline": [],
            "error": [],
            "retryable": [],
        }
        for job_id, key, blob in zip(
            batch["job_id"], batch["original_key"], batch["transcript"], strict=True
        ):
            try:
                clips, timeline = self.detect(str(key), unpack(blob))
                row: Row = {
                    "job_id": int(job_id),
                    "clips": pack(clips),
                    "timeline": pack(timeline),
                    "error": "",
                    "retryable": False,
                }
            except Exception as exc:  # this video's job fails; the others go on
                row = {"clips": b"", "timeline": b"", **error_row(int(job_id), exc)}
            for name in out:
                out[name].append(row[name])
        return {k: np.array(v, dtype=object) for k, v in out.items()}

    def detect(
        self, original_key: str, transcript: Transcript
    ) -> tuple[list[NewClip], list[list[float]]]:
        """Clips of one video, best first, and the score timeline ([start, end, score] per window)."""
        from models.select import select_clips

        if not transcript.words:
            raise MediaError("the transcript has no words; nothing to make clips from")
        with tempfile.TemporaryDirectory(prefix="cf-detect-") as tmp:
            local = create_store(self.settings).download_file(original_key, Path(tmp) / "src")
            audio = decode_audio(local)
            frames = list(sample_frames(local, self.config.frames_fps, self.config.frames_width))
        result = self.scorer.score(transcript, audio=audio, frames=frames)
        chosen = select_clips(result, transcript, self.select_options)
        if not chosen:
            raise MediaError(
                f"no clip of {self.config.min_clip_s:.0f}-{self.config.max_clip_s:.0f} s found in "
                f"{transcript.duration:.0f} s of media"
            )
        titles = self.titler.titles([c.words for c in chosen])
        timeline = sorted([round(w.start, 2), round(w.end, 2), w.score] for w in result.windows)
        step = max(1, len(timeline) // _MAX_TIMELINE_POINTS)  # bounded size in the video row
        clips = [
            NewClip(
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
            for c, t in zip(chosen, titles, strict=True)
        ]
        return clips, timeline[::step]
