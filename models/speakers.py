"""Speaker turns (diarization): which voice says each word, offline.

Captions, clip boundaries and the active-speaker crop all want to know who is talking. Steps:

1. Windows: 0.8 s of audio every 0.2 s wherever a word is being said (word spans widened by
   0.1 s), so a turn of 0.4 s still holds a couple of windows of its own. (The first version
   embedded ~2 s windows cut at pauses: on a real telephone call with 0.4-4 s turns most
   windows held both voices, and one speaker was found for two.)
2. Embeddings: each window becomes a 256-d unit d-vector from Resemblyzer's GE2E voice encoder
   (3-layer LSTM; weights `pretrained.pt` ship inside the `resemblyzer` wheel, Apache-2.0). The
   package's Python code is not imported: its `webrtcvad` dependency imports `pkg_resources`,
   which current setuptools no longer ships, so `import resemblyzer` fails. The network is
   rebuilt here and fed the same 40-band mel power spectrogram that librosa computes (numpy
   here; tests compare the two), so only the weight file is used. The mel spectrogram is
   computed once per chunk and the windows are slices of it, run through the LSTM at their
   own length (no zero padding, which the LSTM would hear as silence at the end).
3. Clustering (`models.speaker_clusters`): windows averaged into 1.6 s segments, counted by
   spectral clustering with the eigengap, small or look-alike clusters merged, then a Viterbi
   pass over the windows with a cost per change of speaker. A word takes the label most of its
   windows carry. Labels are 0, 1, ... in order of first appearance.

The pipeline embeds windows inside the ASR actor, chunk by chunk, and clusters a whole video's
windows on the driver (`assign_speakers`), since a long video's parts are transcribed by several
actors. Plain Python: no Ray, no FastAPI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from clipforge.errors import ConfigError, ValidationFailed
from models import registry
from models.speaker_clusters import ClusterOptions, label_windows, unit
from models.types import ModelInfo, Segment, Transcript, Word

SAMPLE_RATE = 16_000
ENCODER_NAME = registry.SPEAKER_ENCODER_NAME
ENCODER_PACKAGE = registry.SPEAKER_ENCODER_PACKAGE
EMBEDDING_DIM = 256
# Resemblyzer's hyper-parameters (resemblyzer/hparams.py): 25 ms / 10 ms mel frames, 40 bands,
# 160-frame (1.6 s) partial utterances, volume raised to -30 dBFS.
_N_FFT = 400
_HOP = 160
_N_MELS = 40
_PARTIAL = 160
_PARTIAL_STEP = 80  # partials overlap by half, as in resemblyzer's `embed_utterance`
_FRAME_S = _HOP / SAMPLE_RATE
_TARGET_DBFS = -30.0
_INT16_MAX = 2**15 - 1

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


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Slaney's scale (librosa's default): linear below 1 kHz, logarithmic above.
    mel = hz / (200.0 / 3)
    log_part = hz >= 1000.0
    mel[log_part] = 15.0 + np.log(hz[log_part] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    hz = mel * (200.0 / 3)
    log_part = mel >= 15.0
    hz[log_part] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_part] - 15.0))
    return hz


def mel_filters() -> npt.NDArray[np.float64]:
    """(40, 201) Slaney-normalised triangular filters: `librosa.filters.mel(sr=16000, n_fft=400,
    n_mels=40)`."""
    fft_hz = np.linspace(0, SAMPLE_RATE / 2, 1 + _N_FFT // 2)
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(np.array([SAMPLE_RATE / 2]))[0], _N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2 : _N_MELS + 2] - edges[:_N_MELS]))[:, None]


_FILTERS = mel_filters()
_WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)  # periodic Hann


def mel_spectrogram(audio: Array) -> Array:
    """(frames, 40) mel power spectrogram of 16 kHz audio, as resemblyzer computes it with
    `librosa.feature.melspectrogram` (centred frames, zero padding, power 2; not a log)."""
    padded = np.pad(np.asarray(audio, dtype=np.float64), _N_FFT // 2)
    frames = 1 + (len(padded) - _N_FFT) // _HOP
    index = np.arange(_N_FFT)[None, :] + _HOP * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(padded[index] * _WINDOW, axis=1)) ** 2
    return (power @ _FILTERS.T).astype(np.float32)


def _normalise_volume(audio: Array) -> Array:
    """Raise (never lower) the level to -30 dBFS, as resemblyzer's preprocessing does."""
    if len(audio) == 0:
        return audio
    rms = float(np.sqrt(np.mean((audio.astype(np.float64) * _INT16_MAX) ** 2)))
    if rms <= 0:
        return audio
    change = _TARGET_DBFS - 20 * math.log10(rms / _INT16_MAX)
    return audio if change < 0 else (audio * 10 ** (change / 20)).astype(np.float32)


def _network() -> Any:
    """Resemblyzer's VoiceEncoder network: LSTM(40, 256, 3) -> linear -> ReLU -> L2 norm.

    Built here, with torch imported here, so the pipeline driver (which only clusters, see
    `assign_speakers`) never imports torch.
    """
    import torch
    from torch import nn

    class Network(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(_N_MELS, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, EMBEDDING_DIM)

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            _, (hidden, _) = self.lstm(mels)
            raw = torch.relu(self.linear(hidden[-1]))
            norm = torch.linalg.vector_norm(raw, dim=1, keepdim=True).clamp_min(1e-12)
            unit: torch.Tensor = raw / norm
            return unit

    return Network()


class SpeakerEncoder:
    """The loaded voice encoder (about 6 MB of float32 weights); load once per process."""

    def __init__(self, *, device: str = "cpu", threads: int = 1, batch: int = 64) -> None:
        """Load the weights shipped in `resemblyzer`.

        `threads`: torch CPU threads while the encoder runs (0: leave torch's setting). One by
        default: the LSTM steps through time on small matrices, so more threads gain little,
        and on a loaded machine OpenMP workers waiting on each other made a 2-thread call
        10-25x slower than a 1-thread one (measured: 30 partials, 1.0 s vs 10-28 s).
        `batch`: partial utterances per network call (bounds the activations' memory).
        """
        import torch

        path = registry.speaker_encoder_weights()
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = {
            k: v for k, v in checkpoint["model_state"].items() if k.startswith(("lstm.", "linear."))
        }
        self.network = _network()
        self.network.load_state_dict(state, strict=True)
        self.network.eval().to(device)
        self.device = device
        self.threads = threads
        self.batch = batch
        self.info = encoder_info()

    @property
    def parameter_bytes(self) -> int:
        """Bytes held by the weights (the encoder's resident model memory)."""
        return sum(p.numel() * p.element_size() for p in self.network.parameters())

    def embed(
        self, audio: Array, spans: Sequence[tuple[float, float]], *, offset_s: float = 0.0
    ) -> Array:
        """(len(spans), 256) unit embeddings of `audio[start:end]` for each (start, end) span;
        `offset_s` is the time of `audio[0]`. Each span is cut into 1.6 s partials (half
        overlapping; a shorter span is zero-padded to one), whose embeddings are averaged."""
        out = np.zeros((len(spans), EMBEDDING_DIM), dtype=np.float32)
        if not spans:
            return out
        partials: list[Array] = []
        owner: list[int] = []
        for k, (start, end) in enumerate(spans):
            lo = max(0, round((start - offset_s) * SAMPLE_RATE))
            hi = min(len(audio), round((end - offset_s) * SAMPLE_RATE))
            piece = _normalise_volume(np.asarray(audio[lo:hi], dtype=np.float32))
            mel = mel_spectrogram(piece)
            if len(mel) < _PARTIAL:
                mel = np.pad(mel, ((0, _PARTIAL - len(mel)), (0, 0)))
            starts = list(range(0, len(mel) - _PARTIAL + 1, _PARTIAL_STEP))
            if starts[-1] + _PARTIAL < len(mel):  # cover the tail too
                starts.append(len(mel) - _PARTIAL)
            partials += [mel[s : s + _PARTIAL] for s in starts]
            owner += [k] * len(starts)
        step = self.batch
        embeds = np.concatenate(
            [self._forward(partials[i : i + step]) for i in range(0, len(partials), step)]
        )
        np.add.at(out, np.asarray(owner), embeds)
        return unit(out)

    def _forward(self, mels: Sequence[Array]) -> Array:
        import torch

        previous = torch.get_num_threads()
        if self.threads > 0:  # process-wide in torch: set for this call only
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                batch = torch.from_numpy(np.stack(mels)).to(self.device)
                out: Array = self.network(batch).float().cpu().numpy()
        finally:
            torch.set_num_threads(previous)
        return out

    def windows(
        self,
        audio: Array,
        words: Sequence[Word],
        *,
        offset_s: float = 0.0,
        options: SpeakerOptions | None = None,
    ) -> list[SpeakerWindow]:
        """Embedded windows over the speech of `words` (absolute times; `audio[0]` is at
        `offset_s`): one every `hop_s` whose centre lies in a word's widened span."""
        opts = options or SpeakerOptions()
        mel = mel_spectrogram(_normalise_volume(np.asarray(audio, dtype=np.float32)))
        speech = np.zeros(len(mel), dtype=bool)
        for word in words:
            lo = max(0, round((word.start - opts.pad_s - offset_s) / _FRAME_S))
            speech[lo : max(lo, round((word.end + opts.pad_s - offset_s) / _FRAME_S))] = True
        out: list[SpeakerWindow] = []
        for window_s, hop_s in opts.scales():
            size, hop = round(window_s / _FRAME_S), round(hop_s / _FRAME_S)
            starts = [s for s in range(0, len(mel) - size + 1, hop) if speech[s + size // 2]]
            mels = [mel[s : s + size] for s in starts]
            embeds = [
                self._forward(mels[i : i + self.batch]) for i in range(0, len(mels), self.batch)
            ]
            out += [
                SpeakerWindow(offset_s + s * _FRAME_S, offset_s + (s + size) * _FRAME_S, e)
                for s, e in zip(starts, (e for block in embeds for e in block), strict=True)
            ]
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

    def label_of(word: Word) -> int:
        inside = labels[(centres >= word.start) & (centres <= word.end)]
        if len(inside):
            return int(np.bincount(inside).argmax())
        return int(labels[int(np.argmin(np.abs(centres - (word.start + word.end) / 2)))])

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
