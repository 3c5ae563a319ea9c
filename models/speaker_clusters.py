"""Who speaks when, from voice embeddings of short and long windows (numpy and scipy, no torch).

Input (`models.speakers`): CAM++ embeddings of short windows (0.8 s every 0.2 s of speech: fine
in time) and long windows (1.6 s every 0.4 s, each the mean of the short ones inside it: steadier
vectors).

1. Count: spectral clustering of the long windows with the normalised maximum eigengap (NME-SC,
   Park et al. 2019): the cosine affinity is binarised to each row's `p` nearest neighbours, and
   the `p` with the clearest eigengap of the graph Laplacian (smallest p / gap ratio) fixes both
   the graph and the count. Unlike the distance threshold it replaces, it adapts to the
   recording (with the GE2E encoder used first, two real voices on one telephone line were
   0.88-0.91 alike, as alike as halves of one voice). A gap under `min_eigengap` means one
   speaker.
2. Guards: a cluster with under `min_speaker_s` of speech is merged into its nearest (a count
   that rests on a few windows is noise), and so are two whose centroids are at least
   `merge_similarity` alike.
3. Labels: each short window takes its nearest long window's cluster, the short windows'
   centroids are computed from that, every short window is scored against the clusters by its
   own cosine similarity, and a Viterbi pass with a cost per change
   of speaker (`switch_penalty`) picks the label path: crosstalk cannot flip the label back
   and forth, a change must pay for itself in evidence over several windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clipforge.errors import ValidationFailed

# scipy (about 0.2 s to import) is imported where the clustering uses it: every ASR actor imports
# this module while starting, and only a video's speaker clustering needs scipy.

Vectors = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    """How windows are grouped into speakers.

    Attributes:
        max_speakers: most speakers counted.
        min_eigengap: below this normalised eigengap the recording has one speaker. Measured
            on the long windows, chunk by chunk as the pipeline embeds them: real 2-4 speaker
            recordings 0.103-0.148, two espeak voices 0.062, one espeak voice 0.042 (3 min;
            20 s: no gap at all), with the GE2E encoder. With CAM++: real 2-4 speaker
            recordings 0.091-0.233, two espeak voices 0.223, and the 20 s and 10 min
            recordings of one voice are one speaker. See docs/speech-evaluation.md.
        min_speaker_s: a cluster with less speech than this is merged into its nearest.
        merge_similarity: clusters whose centroids are at least this alike (cosine) are one.
            CAM++ on the real set: different people's centroids 0.04-0.55 alike (two callers
            on one telephone line 0.53-0.55), pieces of one voice that spectral clustering
            split 0.64-0.68; 0.65-0.75 gives the same counts there.
        switch_penalty: cost of a change of speaker in the Viterbi pass, in units of cosine
            similarity summed over short windows (0.15: about three windows of typical margin).
        long_hop_s: time between two long windows (turns window counts into seconds).
        max_segments: at most this many long windows are clustered (evenly spread; the others
            are labelled through their short windows): the affinity is quadratic in it.
    """

    long_hop_s: float = 0.4
    max_speakers: int = 8
    min_eigengap: float = 0.045
    min_speaker_s: float = 2.0
    merge_similarity: float = 0.7
    switch_penalty: float = 0.15
    max_segments: int = 600

    def __post_init__(self) -> None:
        if self.max_speakers < 1 or self.max_segments < 4:
            raise ValidationFailed("max_speakers >= 1 and max_segments >= 4")
        if not -1 <= self.merge_similarity <= 1 or self.switch_penalty < 0:
            raise ValidationFailed("merge_similarity in [-1, 1] and switch_penalty >= 0")


def unit(vectors: Vectors) -> Vectors:
    """Rows scaled to length 1 (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def _laplacian_spectrum(
    affinity: npt.NDArray[np.float64], p: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    nearest = np.argsort(-affinity, axis=1)[:, :p]
    graph = np.zeros_like(affinity)
    np.put_along_axis(graph, nearest, 1.0, axis=1)
    graph = (graph + graph.T) / 2
    from scipy.linalg import eigh  # on first use (see the imports above)

    values, vectors = eigh(np.diag(graph.sum(axis=1)) - graph)
    return values, vectors


def spectral_count(vectors: Vectors, max_speakers: int, min_eigengap: float) -> Labels:
    """NME-SC: labels 0..K-1 of unit `vectors`, K from the clearest eigengap; one label when
    even the clearest normalised gap is under `min_eigengap` (no group structure)."""
    n = len(vectors)
    if n < 4 or max_speakers == 1:
        return np.zeros(n, dtype=np.int64)
    affinity = (vectors @ vectors.T).astype(np.float64)
    best: tuple[float, float, int, npt.NDArray[np.float64]] | None = None
    # p from 5 to n/4, at most 16 values: each try is one eigendecomposition. Below 5 nearest
    # neighbours the graph falls apart into many pieces of one voice (measured: 8 "speakers"
    # on the four-person splice).
    for p in np.unique(np.geomspace(5, max(6, n // 4), num=16).astype(int)).tolist():
        values, eigvecs = _laplacian_spectrum(affinity, p)
        gaps = np.diff(values[: max_speakers + 1])
        gap = float(gaps.max() / max(values[-1], 1e-10))
        if best is None or p / (gap + 1e-10) < best[0]:
            best = (p / (gap + 1e-10), gap, int(np.argmax(gaps)) + 1, eigvecs)
    assert best is not None
    _, gap, count, eigvecs = best
    if count == 1 or gap < min_eigengap:
        return np.zeros(n, dtype=np.int64)
    embedded = unit(eigvecs[:, :count].astype(np.float32))
    # Farthest-point seeds: deterministic, and one seed per well-separated group.
    seeds = [0]
    for _ in range(count - 1):
        distance = np.min([np.sum((embedded - embedded[s]) ** 2, axis=1) for s in seeds], axis=0)
        seeds.append(int(np.argmax(distance)))
    from scipy.cluster.vq import kmeans2  # on first use (see the imports above)

    _, labels = kmeans2(embedded, embedded[seeds], minit="matrix", iter=50)
    return np.asarray(labels, dtype=np.int64)


def centroids_after_guards(
    vectors: Vectors, labels: Labels, seconds_each: float, options: ClusterOptions
) -> Vectors:
    """Unit centroids of the clusters left after merging, one pair at a time, a cluster with
    under `min_speaker_s` of speech into its nearest, then the most alike pair while at least
    `merge_similarity` alike."""
    members = [np.flatnonzero(labels == g) for g in np.unique(labels)]
    while len(members) > 1:
        centroids = unit(np.stack([vectors[m].sum(axis=0) for m in members]))
        similar = centroids @ centroids.T
        np.fill_diagonal(similar, -np.inf)
        speech = [len(m) * seconds_each for m in members]
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
    return unit(np.stack([vectors[m].sum(axis=0) for m in members]))


def viterbi(scores: npt.NDArray[np.float64], penalty: float) -> Labels:
    """The label path maximising the summed `scores` (windows x labels) minus `penalty` per
    change of label."""
    n, k = scores.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    total = scores[0].copy()
    back = np.zeros((n, k), dtype=np.int64)
    switch = penalty * (1 - np.eye(k))
    for t in range(1, n):
        candidates = total[:, None] - switch
        back[t] = np.argmax(candidates, axis=0)
        total = candidates.max(axis=0) + scores[t]
    path = np.zeros(n, dtype=np.int64)
    path[-1] = int(np.argmax(total))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def first_appearance(labels: Labels) -> Labels:
    """Labels renumbered 0, 1, ... in order of first appearance."""
    order: dict[int, int] = {}
    for label in labels.tolist():
        order.setdefault(label, len(order))
    return np.array([order[label] for label in labels.tolist()], dtype=np.int64)


def nearest_index(
    values: npt.NDArray[np.float64], queries: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Index of the entry of `values` (not empty) nearest each query; on a tie the lowest such
    index, as `argmin(abs(queries[:, None] - values[None, :]), axis=1)` gives.

    A sort and a binary search, not that matrix: on a 2-hour recording the matrix of short by
    long windows is 36,000 x 18,000 (5 GB, and again for the `abs`); this needs a few MB.
    """
    order = np.argsort(values, kind="stable")  # equal values keep their index order
    ordered = values[order]
    right = np.clip(np.searchsorted(ordered, queries, side="left"), 0, len(ordered) - 1)
    left = np.maximum(right - 1, 0)
    # `right` is the first of its run of equal values; `left` may be the last of its run, and
    # the first of a run holds the run's lowest index (the sort is stable).
    left = np.searchsorted(ordered, ordered[left], side="left")
    to_left, to_right = np.abs(queries - ordered[left]), np.abs(ordered[right] - queries)
    left_wins = (to_left < to_right) | ((to_left == to_right) & (order[left] < order[right]))
    return order[np.where(left_wins, left, right)].astype(np.int64)


def label_windows(
    short: Vectors,
    short_centres: npt.NDArray[np.float64],
    long: Vectors,
    long_centres: npt.NDArray[np.float64],
    options: ClusterOptions,
) -> Labels:
    """A speaker label per short window (in time order), 0.. by first appearance.

    The long windows (steadier vectors) count the voices and seed the clusters; the short ones
    (finer in time) take the label of the nearest long window, their own centroids are taken
    from that, and the Viterbi pass over them gives the labels.
    """
    n = len(short)
    if n == 0 or len(long) == 0:
        return np.zeros(n, dtype=np.int64)
    picked = np.arange(len(long))
    if len(picked) > options.max_segments:
        picked = np.linspace(0, len(long) - 1, options.max_segments).astype(int)
    groups = spectral_count(long[picked], options.max_speakers, options.min_eigengap)
    seconds_each = options.long_hop_s * len(long) / len(picked)
    centroids = centroids_after_guards(long[picked], groups, seconds_each, options)
    if len(centroids) == 1:
        return np.zeros(n, dtype=np.int64)
    seeds = np.argmax(long @ centroids.T, axis=1)
    first = seeds[nearest_index(long_centres, short_centres)]
    refined = unit(
        np.stack(
            [
                short[first == k].sum(axis=0) if (first == k).any() else c
                for k, c in enumerate(centroids)
            ]
        )
    )
    # Each short window's evidence is its own similarity only. With GE2E d-vectors the long
    # window's similarity was averaged in (steadier); CAM++'s short windows are steady enough,
    # and the long window's 1.6 s straddles turn boundaries: averaged in, it moved labels 0.3-0.5
    # s across turns (splice_3p 88.2 % against 96.1 % without; docs/speech-evaluation.md).
    scores = (short @ refined.T).astype(np.float64)
    return first_appearance(viterbi(scores, options.switch_penalty))
