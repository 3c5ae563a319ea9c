"""Chunks in, one speaker-labelled transcript out: the rule every transcription path follows.

`clipforge.transcribe()`, the Serve ASR deployment and the transcribe stage's actors must give
the same words, timings and speaker ids for the same audio. They share: the samples
(`clipforge.media.track`), the chunks (`models.chunking` cuts, over 120 s windows in
`pipelines.stages.audio.ChunkStream`), the language (detected on the first chunk unless given),
the decoding (`AsrModel.transcribe_chunks`, batches of `batch_size` in chunk order), the speaker
windows (each chunk's own words, embedded in the chunk's audio: `chunk_windows`), the word times
refined against the chunk's audio (`refined`) and the merge.

Speaker windows are placed on Whisper's own word times, before `refined` moves them: the speaker
count rests on a thin eigengap margin, and windows that moved with refined starts once turned one
voice into six (docs/speech-evaluation.md).
The stage spreads these steps over actors and a driver; this module runs them in one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from models.chunking import AudioChunk, ChunkResult
from models.speakers import SpeakerWindow, assign_speakers
from models.types import Transcript
from models.word_timing import refine_words

if TYPE_CHECKING:  # the stage's driver imports `chunk_windows` users without loading models
    from models.asr import AsrModel
    from models.speakers import SpeakerEncoder


def chunk_windows(
    encoder: SpeakerEncoder, chunk: AudioChunk, result: ChunkResult
) -> list[SpeakerWindow]:
    """Speaker windows over the words a chunk keeps at the merge, from the chunk's own audio."""
    kept = [
        w for w in result.words if result.keep_start_s <= (w.start + w.end) / 2 < result.keep_end_s
    ]
    return encoder.windows(chunk.audio, kept, offset_s=chunk.offset_s)


def refined(chunks: Sequence[AudioChunk], results: Sequence[ChunkResult]) -> list[ChunkResult]:
    """Each result with its words' starts and ends refined against its chunk's audio."""
    return [
        replace(r, words=refine_words(c.audio, c.offset_s, r.words))
        for c, r in zip(chunks, results, strict=True)
    ]


def transcribe_chunks(
    model: AsrModel,
    encoder: SpeakerEncoder | None,
    chunks: Sequence[AudioChunk],
    *,
    duration_s: float,
    language: str | None = None,
) -> Transcript:
    """The transcript of a source cut into `chunks`, with speaker ids when `encoder` is given."""
    if not chunks:
        return model.merge_chunks([], duration_s=duration_s)
    language = language or model.detect_language(chunks[0].audio)[0]
    results = model.transcribe_chunks(chunks, language=language)
    transcript = model.merge_chunks(refined(chunks, results), duration_s=duration_s)
    if encoder is None:
        return transcript
    windows = [
        w for c, r in zip(chunks, results, strict=True) for w in chunk_windows(encoder, c, r)
    ]
    return assign_speakers(transcript, windows)
