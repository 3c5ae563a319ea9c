"""Speaker turns (diarization): which voice says each word, offline.

Captions, clip boundaries and the active-speaker crop all want to know who is talking. Steps:

1. Windows: a transcript's words are grouped into windows of about 1.5-3 s of speech, cut at
   pauses first (turns change at pauses), so a turn change inside a long ASR segment falls
   between two windows rather than inside one.
2. Embeddings: each window becomes a 256-d unit d-vector from Resemblyzer's GE2E voice encoder
   (3-layer LSTM; weights `pretrained.pt` ship inside the `resemblyzer` wheel, Apache-2.0). The
   package's Python code is not imported: its `webrtcvad` dependency imports `pkg_resources`,
   which current setuptools no longer ships, so `import resemblyzer` fails. The network is
   rebuilt here and fed the same 40-band mel power spectrogram that librosa computes (numpy
   here; tests compare the two), so only the weight file is used.
3. Clustering: average-linkage agglomerative clustering on cosine distance, cut at a distance
   threshold, so the number of speakers is estimated (bounded by `max_speakers`). Clusters with
   too little speech, or whose centroids are as alike as one voice's, are merged, every window
   then takes its
   nearest centroid, and runs of windows shorter than `min_turn_s` take their neighbours'
   label. Labels are 0, 1, ... in order of first appearance.

The pipeline embeds windows inside the ASR actor, chunk by chunk (bounded memory: one window's
audio at a time), and clusters a whole video's windows on the driver (`assign_speakers`), since
a long video's parts are transcribed by several actors. Plain Python: no Ray, no FastAPI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage

from clipforge.errors import ConfigError, ValidationFailed
from models import registry
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
_TARGET_DBFS = -30.0
_INT16_MAX = 2**15 - 1
_MIN_WINDOW_S = 0.1

Array = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class SpeakerOptions:
    """How windows are cut and clustered.

    Attributes:
        window_s: a window is closed once it reaches this much speech.
        max_window_s: no window is longer (a word that would make it longer starts the next).
        pause_s: a gap between words at least this long always closes a window.
        threshold: average cosine distance (1 - similarity) between two clusters' windows
            below which they merge. Measured with this encoder on ~2 s windows: the last merge
            of one espeak-ng voice over 10 minutes (speech_long) was at 0.33, the merge of two
            voices (two_speakers) at 0.50.
        merge_similarity: clusters whose centroids are at least this similar (cosine) are
            one speaker. Measured: the two halves of one voice, 0.83; two voices, 0.60.
        max_speakers: at most this many speakers (the cut is lowered to fit).
        min_speaker_s: a cluster with less speech than this is merged into its nearest one.
        anchor_s: only windows at least this long shape the clusters (shorter ones are noisy
            and are assigned to the nearest centroid afterwards).
        min_turn_s: a run of one label shorter than this, between windows of other labels,
            takes the label of its longer neighbour.
        max_cluster_windows: at most this many windows are clustered (evenly spread over the
            video); the rest take the nearest centroid, so memory stays bounded however long.
    """

    window_s: float = 2.0
    max_window_s: float = 3.0
    pause_s: float = 0.3
    threshold: float = 0.4
    merge_similarity: float = 0.75
    max_speakers: int = 8
    min_speaker_s: float = 3.0
    anchor_s: float = 1.0
    min_turn_s: float = 0.8
    max_cluster_windows: int = 2000

    def __post_init__(self) -> None:
        if not 0 < self.window_s <= self.max_window_s:
            raise ValidationFailed("speaker windows must satisfy 0 < window_s <= max_window_s")
        if not 0 < self.threshold < 2 or self.max_speakers < 1:
            raise ValidationFailed("threshold must be in (0, 2) and max_speakers >= 1")
        if not -1 <= self.merge_similarity <= 1:
            raise ValidationFailed("merge_similarity must be in [-1, 1]")
        if self.max_cluster_windows < 2:
            raise ValidationFailed("max_cluster_windows must be >= 2")


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
        return _unit(out)

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
        """Embedded speech windows over `words` (absolute times; `audio[0]` is at `offset_s`).

        Windows are clipped to the audio, and those left with under 0.1 s of it dropped (a word
        clamped to a chunk's edge can have no length): their words take the nearest window's
        speaker in `assign_speakers`.
        """
        audio_end = offset_s + len(audio) / SAMPLE_RATE
        spans = [
            (max(start, offset_s), min(end, audio_end))
            for start, end in speech_windows(words, options or SpeakerOptions())
            if min(end, audio_end) - max(start, offset_s) >= _MIN_WINDOW_S
        ]
        embeds = self.embed(audio, spans, offset_s=offset_s)
        return [SpeakerWindow(s, e, embeds[k]) for k, (s, e) in enumerate(spans)]


def _unit(vectors: Array) -> Array:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Array = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def speech_windows(words: Sequence[Word], options: SpeakerOptions) -> list[tuple[float, float]]:
    """(start, end) windows over consecutive words: a pause of `pause_s` always ends one, and
    one is closed once it holds `window_s` (never more than `max_window_s`, unless one word is
    longer). Every word lies in exactly one window."""
    spans: list[tuple[float, float]] = []
    start = end = 0.0
    for i, word in enumerate(words):
        if i == 0:
            start, end = word.start, word.end
            continue
        paused = word.start - end >= options.pause_s
        full = end - start >= options.window_s or word.end - start > options.max_window_s
        if paused or full:
            spans.append((start, end))
            start = word.start
        end = max(end, word.end)
    if words:
        spans.append((start, end))
    return spans


def cluster(
    embeddings: Array, durations: npt.NDArray[np.float64], options: SpeakerOptions
) -> npt.NDArray[np.int64]:
    """A speaker label per window, 0.. in order of first appearance (windows in time order)."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    anchors = np.flatnonzero(durations >= options.anchor_s)
    if len(anchors) < 2:  # too little speech to tell voices apart: one speaker
        return np.zeros(n, dtype=np.int64)
    if len(anchors) > options.max_cluster_windows:
        anchors = anchors[np.linspace(0, len(anchors) - 1, options.max_cluster_windows).astype(int)]
    tree = linkage(embeddings[anchors].astype(np.float64), method="average", metric="cosine")
    groups = fcluster(tree, t=options.threshold, criterion="distance")
    if groups.max() > options.max_speakers:
        groups = fcluster(tree, t=options.max_speakers, criterion="maxclust")
    centroids = _centroids(embeddings[anchors], groups, durations[anchors], options)
    labels = np.argmax(embeddings @ centroids.T, axis=1)
    return _first_appearance(_smooth(labels, durations, options.min_turn_s))


def _centroids(
    embeddings: Array,
    groups: npt.NDArray[np.int32],
    durations: npt.NDArray[np.float64],
    options: SpeakerOptions,
) -> Array:
    """Unit centroids of the groups, after merging (one pair at a time) the group with under
    `min_speaker_s` of speech into its nearest, then any two whose centroids are at least
    `merge_similarity` alike, the most alike first."""
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    while len(members) > 1:
        centroids = _unit(np.stack([embeddings[m].sum(axis=0) for m in members]))
        similar = centroids @ centroids.T
        np.fill_diagonal(similar, -np.inf)
        speech = [float(durations[m].sum()) for m in members]
        small = int(np.argmin(speech))
        if speech[small] < options.min_speaker_s:
            pair = (small, int(np.argmax(similar[small])))
        else:
            flat = int(np.argmax(similar))
            pair = (flat // len(members), flat % len(members))
            if similar[pair] < options.merge_similarity:
                return centroids
        keep, drop = min(pair), max(pair)
        members[keep] = np.concatenate([members[keep], members.pop(drop)])
    return _unit(np.stack([embeddings[m].sum(axis=0) for m in members]))


def _smooth(
    labels: npt.NDArray[np.int64], durations: npt.NDArray[np.float64], min_turn_s: float
) -> npt.NDArray[np.int64]:
    """Give runs of one label shorter than `min_turn_s` their longer neighbour's label (the
    shortest run first), so a noisy window never makes a one-word turn."""
    runs: list[tuple[int, int, int, float]] = []  # (label, first, last, seconds)
    for i, label in enumerate(labels.tolist()):
        if runs and runs[-1][0] == label:
            lab, first, _, seconds = runs[-1]
            runs[-1] = (lab, first, i, seconds + float(durations[i]))
        else:
            runs.append((label, i, i, float(durations[i])))
    while len(runs) > 1:
        k = min(range(len(runs)), key=lambda j: runs[j][3])
        if runs[k][3] >= min_turn_s:
            break
        j = max((m for m in (k - 1, k + 1) if 0 <= m < len(runs)), key=lambda m: runs[m][3])
        lo, hi = min(j, k), max(j, k)
        merged = (runs[j][0], runs[lo][1], runs[hi][2], runs[lo][3] + runs[hi][3])
        runs[lo : hi + 1] = [merged]
        # The neighbour on the other side may now carry the same label: join it too.
        for a in (lo - 1, lo):
            if a >= 0 and a + 1 < len(runs) and runs[a][0] == runs[a + 1][0]:
                x, y = runs[a], runs[a + 1]
                runs[a : a + 2] = [(x[0], x[1], y[2], x[3] + y[3])]
    out = labels.copy()
    for label, first, last, _ in runs:
        out[first : last + 1] = label
    return out


def _first_appearance(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    order: dict[int, int] = {}
    for label in labels.tolist():
        order.setdefault(label, len(order))
    return np.array([order[label] for label in labels.tolist()], dtype=np.int64)


def assign_speakers(
    transcript: Transcript,
    windows: Sequence[SpeakerWindow],
    options: SpeakerOptions | None = None,
) -> Transcript:
    """`transcript` with every word's `speaker` set from clustered `windows` (any order).

    A word takes the label of the window holding its midpoint (else the nearest window). No
    windows leaves the transcript unchanged.
    """
    if not windows or not transcript.words:
        return transcript
    ordered = sorted(windows, key=lambda w: (w.start, w.end))
    embeddings = np.stack([w.embedding for w in ordered]).astype(np.float32)
    durations = np.array([w.duration for w in ordered], dtype=np.float64)
    labels = cluster(embeddings, durations, options or SpeakerOptions())
    starts = np.array([w.start for w in ordered])
    ends = np.array([w.end for w in ordered])

    def label_of(word: Word) -> int:
        mid = (word.start + word.end) / 2
        distance = np.maximum(starts - mid, 0.0) + np.maximum(mid - ends, 0.0)
        return int(labels[int(np.argmin(distance))])

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
