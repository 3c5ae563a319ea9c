"""Who to frame: the active speaker among the face tracks, frame by frame.

Two kinds of evidence, strongest first:

1. Speaker turns. When the transcript's words carry a `speaker` label (diarization), each label
   is matched to the face whose mouth moves most during that label's words compared with the
   rest of the time; from then on the label says who is framed, to the word.
2. Lips and voice. Otherwise (or for a label that matched no face) the face whose mouth region
   moves most while there is speech energy is the speaker: mouth motion weighted by the audio's
   short-time energy over a window of about a second.

Decisions are then made calm: a shot on one face lasts at least `min_shot_s` (shorter runs are
absorbed by their neighbours), so the camera does not flick between people on a cough.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

import numpy as np
import numpy.typing as npt

from pipelines.render.reframe_analysis import ClipAnalysis
from pipelines.render.reframe_tracks import Track

FloatArray = npt.NDArray[np.float64]

#: (start, end, speaker label) in seconds from the clip start.
Turn = tuple[float, float, int]


@dataclass(frozen=True, slots=True)
class SpeakerChoiceOptions:
    """Tuning of the active-speaker choice.

    Attributes:
        window_s: Gaussian width (sigma) of the lips-and-voice evidence window.
        min_shot_s: shortest time on one face.
        visible_hold_s: a track counts as visible this long past its first/last detection.
        min_score: lips-and-voice score (relative to typical mouth motion) needed to call anyone
            the speaker; below it the current choice is kept.
    """

    window_s: float = 0.6
    min_shot_s: float = 1.5
    visible_hold_s: float = 0.6
    min_score: float = 0.1


@dataclass(frozen=True, slots=True)
class SpeakerChoice:
    """The subject of each analysis frame.

    Attributes:
        subjects: track id per analysis frame (None: no face in that shot).
        label_tracks: speaker label -> track id, for labels that matched a face.
    """

    subjects: list[int | None]
    label_tracks: dict[int, int]

    def switches(self) -> list[int]:
        """Frame indices where the subject changes from one face to another."""
        return [
            k
            for k in range(1, len(self.subjects))
            if self.subjects[k] is not None
            and self.subjects[k - 1] is not None
            and self.subjects[k] != self.subjects[k - 1]
        ]


def turns_from_words(words: Sequence[object], start_s: float, duration_s: float) -> list[Turn]:
    """Speaker turns (clip-relative) from words with a `speaker` label; words without one are
    skipped, consecutive words of one speaker merge."""
    turns: list[Turn] = []
    for word in words:
        label = getattr(word, "speaker", None)
        w_start, w_end = float(getattr(word, "start")), float(getattr(word, "end"))  # noqa: B009
        if label is None or w_end < start_s or w_start > start_s + duration_s:
            continue
        t0, t1 = max(0.0, w_start - start_s), min(duration_s, w_end - start_s)
        if turns and turns[-1][2] == int(label) and t0 - turns[-1][1] < 1.0:
            turns[-1] = (turns[-1][0], t1, int(label))
        else:
            turns.append((t0, t1, int(label)))
    return turns


def activity_matrix(
    analysis: ClipAnalysis, tracks: Sequence[Track], hold_s: float
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """(mouth activity, visible) per track and analysis frame; activity NaN where unmeasured,
    scaled so that 1.0 is the 90th percentile of all measured mouth motion."""
    n, frames = len(tracks), analysis.times.size
    activity = np.full((n, frames), np.nan)
    owner = {id(d): tr.id for tr in tracks for d in tr.detections}
    for sample in analysis.mouths:
        track = owner.get(id(analysis.detections[sample.detection]))
        if track is not None:
            activity[track, sample.frame] = sample.value
    visible = np.zeros((n, frames), dtype=bool)
    for tr in tracks:
        for k, t in enumerate(analysis.times):
            visible[tr.id, k] = tr.box_at(float(t), hold_s=hold_s) is not None
    measured = activity[~np.isnan(activity)]
    ref = float(np.percentile(measured, 90)) if measured.size else 0.0
    if ref > 1e-6:
        activity = activity / ref
    return activity, visible


def choose_speakers(
    analysis: ClipAnalysis,
    tracks: Sequence[Track],
    turns: Sequence[Turn] = (),
    options: SpeakerChoiceOptions | None = None,
) -> SpeakerChoice:
    """The face to frame at each analysis frame."""
    opts = options or SpeakerChoiceOptions()
    times = analysis.times
    if not tracks or times.size == 0:
        return SpeakerChoice(subjects=[None] * times.size, label_tracks={})
    activity, visible = activity_matrix(analysis, tracks, opts.visible_hold_s)
    dt = float(np.median(np.diff(times))) if times.size > 1 else 1.0
    score = _lips_and_voice(activity, analysis.energy, opts.window_s / dt)
    label_tracks = match_labels(times, turns, activity, visible)
    labels = _label_per_frame(times, turns)
    sizes = [_mean_width(tr) for tr in tracks]
    raw: list[int | None] = []
    for k in range(times.size):
        seen = [i for i in range(len(tracks)) if visible[i, k]]
        if not seen:
            raw.append(None)
            continue
        label = labels[k]
        mapped = label_tracks.get(label) if label is not None else None
        if mapped is not None and visible[mapped, k]:
            raw.append(mapped)
        elif len(seen) == 1:
            raw.append(seen[0])
        else:
            best = max(seen, key=lambda i: (np.nan_to_num(score[i, k]), sizes[i]))
            raw.append(best if np.nan_to_num(score[best, k]) >= opts.min_score else -1)
    subjects = _settle(raw, analysis.scenes, visible, sizes, round(opts.min_shot_s / dt))
    return SpeakerChoice(subjects=subjects, label_tracks=label_tracks)


def _lips_and_voice(activity: FloatArray, energy: FloatArray, sigma: float) -> FloatArray:
    """Energy-weighted mean mouth motion around each frame (NaN where a face was unmeasured)."""
    radius = max(1, math.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / max(sigma, 1e-6)) ** 2)
    weight = np.asarray(energy, dtype=np.float64)
    if weight.size != activity.shape[1]:
        weight = np.ones(activity.shape[1])
    out = np.full(activity.shape, np.nan)
    n = activity.shape[1]
    for i, row in enumerate(activity):
        valid = ~np.isnan(row)
        # The centred n values of the full convolution: mode="same" returns the kernel's length
        # when the kernel is the longer (a clip of under ~4 s), which broke short clips.
        num = np.convolve(np.where(valid, row, 0.0) * weight, kernel)[radius : radius + n]
        den = np.convolve(valid * weight, kernel)[radius : radius + n]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = np.where(den > 1e-3, num / den, np.nan)
    return out


def match_labels(
    times: FloatArray, turns: Sequence[Turn], activity: FloatArray, visible: npt.NDArray[np.bool_]
) -> dict[int, int]:
    """Speaker label -> track: greedily the pairs whose mouth moves most during the label's
    turns compared with outside them (each label and each track used once)."""
    labels = sorted({label for _, _, label in turns})
    if not labels:
        return {}
    gains: list[tuple[float, int, int]] = []
    for label in labels:
        inside = np.zeros(times.size, dtype=bool)
        for t0, t1, lab in turns:
            if lab == label:
                inside |= (times >= t0) & (times <= t1)
        for track in range(activity.shape[0]):
            valid = ~np.isnan(activity[track]) & visible[track]
            a_in, a_out = activity[track][valid & inside], activity[track][valid & ~inside]
            if a_in.size < 3:
                continue
            gain = float(a_in.mean()) - (float(a_out.mean()) if a_out.size else 0.0)
            if gain > 0:
                gains.append((gain, label, track))
    mapping: dict[int, int] = {}
    for _, label, track in sorted(gains, reverse=True):
        if label not in mapping and track not in mapping.values():
            mapping[label] = track
    return mapping


def _label_per_frame(times: FloatArray, turns: Sequence[Turn]) -> list[int | None]:
    """The speaking label at each time: the turn covering it, else the nearer neighbouring turn
    within a second (pauses inside a turn and between two turns belong to a speaker)."""
    out: list[int | None] = []
    for t in times:
        best: int | None = None
        best_gap = 1.0
        for t0, t1, label in turns:
            gap = 0.0 if t0 <= t <= t1 else min(abs(t - t0), abs(t - t1))
            if gap <= best_gap:
                best, best_gap = label, gap
        out.append(best)
    return out


def _settle(
    raw: list[int | None],
    scenes: Sequence[int],
    visible: npt.NDArray[np.bool_],
    sizes: Sequence[float],
    min_frames: int,
) -> list[int | None]:
    """Fill undecided frames and absorb shots shorter than `min_frames`, shot by shot.

    -1 in `raw` means "faces visible, nobody clearly speaking": keep the current subject.
    """
    out: list[int | None] = list(raw)
    scene_ids = list(scenes) if len(scenes) == len(raw) else [0] * len(raw)
    start = 0
    while start < len(out):
        end = start
        while end < len(out) and scene_ids[end] == scene_ids[start]:
            end += 1
        out[start:end] = _settle_scene(out[start:end], visible[:, start:end], sizes, min_frames)
        start = end
    return out


def _settle_scene(
    raw: list[int | None], visible: npt.NDArray[np.bool_], sizes: Sequence[float], min_frames: int
) -> list[int | None]:
    decided = [r for r in raw if r is not None and r >= 0]
    if not decided:
        if not visible.any():
            return [None] * len(raw)
        # Faces but no speaker evidence: the largest face present most of the time.
        counts = visible.sum(axis=1) * np.asarray(sizes)
        return [int(counts.argmax())] * len(raw)
    current: int = decided[0]
    filled: list[int] = []
    for r in raw:
        if r is not None and r >= 0:
            current = r
        filled.append(current)
    runs = _runs(filled)
    changed = True
    while changed and len(runs) > 1:
        changed = False
        for i, (_, length) in enumerate(runs):
            if length < min_frames:
                # Absorb into the longer neighbour (the previous one on a tie).
                prev_len = runs[i - 1][1] if i > 0 else -1
                next_len = runs[i + 1][1] if i + 1 < len(runs) else -1
                j = i - 1 if prev_len >= next_len else i + 1
                runs[j] = (runs[j][0], runs[j][1] + length)
                del runs[i]
                runs = _merge_equal(runs)
                changed = True
                break
    out: list[int | None] = []
    for subject, length in runs:
        out += [subject] * length
    return out


def _runs(values: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and runs[-1][0] == v:
            runs[-1] = (v, runs[-1][1] + 1)
        else:
            runs.append((v, 1))
    return runs


def _merge_equal(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for subject, length in runs:
        if merged and merged[-1][0] == subject:
            merged[-1] = (subject, merged[-1][1] + length)
        else:
            merged.append((subject, length))
    return merged


def _mean_width(track: Track) -> float:
    return float(median(d.box[2] for d in track.detections))


def turn_stats(choice: SpeakerChoice, dt: float) -> tuple[int, float]:
    """(number of switches between faces, median time on one face in seconds)."""
    runs = _runs([s if s is not None else -1 for s in choice.subjects])
    lengths = [n * dt for s, n in runs if s >= 0]
    return len(choice.switches()), (median(lengths) if lengths else 0.0)
