"""Link per-frame face detections into tracks (one track per person per shot).

Detections arrive a few times per second and are noisy: a face is missed now and then, boxes
wobble by a few pixels, and busy textures give short-lived false hits. Linking is greedy by
centre distance (relative to the face size) with a gap tolerance; tracks never cross a scene cut.
A second pass joins fragments of one face split by a long miss (same shot, no overlap in time,
the later one starting where the earlier one ended). Tracks seen in too few frames are dropped:
that removes nearly all false positives, which rarely repeat at the same place.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

#: (centre x, centre y, width, height) in source pixels.
Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class FaceDetection:
    """A face found in one analysed frame.

    Attributes:
        frame: index of the analysed frame.
        t: its time in seconds from the clip start.
        box: centre x, centre y, width, height in source pixels.
        scene: index of the shot (scene) the frame belongs to.
        detected: found by the detector (True) or followed from an earlier detection (False).
    """

    frame: int
    t: float
    box: Box
    scene: int
    detected: bool = True


@dataclass(slots=True)
class Track:
    """Detections of one face in one shot, in time order."""

    id: int
    scene: int
    detections: list[FaceDetection] = field(default_factory=list)

    @property
    def start(self) -> float:
        """Time of the first detection."""
        return self.detections[0].t

    @property
    def end(self) -> float:
        """Time of the last detection."""
        return self.detections[-1].t

    @property
    def last(self) -> Box:
        """Box of the last detection."""
        return self.detections[-1].box

    def mean_box(self) -> Box:
        """Average box over the track."""
        n = len(self.detections)
        return tuple(sum(d.box[i] for d in self.detections) / n for i in range(4))  # type: ignore[return-value]

    def box_at(self, t: float, *, hold_s: float) -> Box | None:
        """The box at time `t`: linear between detections, held up to `hold_s` past the ends."""
        times = [d.t for d in self.detections]
        if t < times[0] - hold_s or t > times[-1] + hold_s:
            return None
        i = bisect.bisect_right(times, t)
        if i == 0:
            return self.detections[0].box
        if i == len(times):
            return self.detections[-1].box
        a, b = self.detections[i - 1], self.detections[i]
        w = (t - a.t) / (b.t - a.t) if b.t > a.t else 0.0
        return tuple(pa + (pb - pa) * w for pa, pb in zip(a.box, b.box, strict=True))  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class LinkOptions:
    """Linking thresholds.

    Attributes:
        max_gap_s: longest miss bridged while linking frame to frame.
        max_jump: largest centre move between linked detections, in face widths (per second of
            gap, plus one width): a face does not cross the frame between two samples.
        min_size_ratio: smallest size ratio between linked detections (a face does not halve).
        min_hits: detector hits (not followed boxes) a track needs to be kept.
        min_coverage: detector hits over the scans in the track's time span.
    """

    max_gap_s: float = 1.5
    max_jump: float = 0.6
    min_size_ratio: float = 0.6
    min_hits: int = 2
    min_coverage: float = 0.3


def link(
    detections: Sequence[FaceDetection], *, scan_period_s: float, options: LinkOptions | None = None
) -> list[Track]:
    """Tracks from detections (in any order); the kept ones, longest first.

    `scan_period_s` is the time between two detector scans (what a face's hit rate is
    measured against)."""
    opts = options or LinkOptions()
    by_frame: dict[int, list[FaceDetection]] = {}
    for det in detections:
        by_frame.setdefault(det.frame, []).append(det)
    tracks: list[Track] = []
    for frame in sorted(by_frame):
        current = by_frame[frame]
        t, scene = current[0].t, current[0].scene
        alive = [tr for tr in tracks if tr.scene == scene and t - tr.end <= opts.max_gap_s]
        pairs = sorted(
            (cost, ti, di)
            for ti, tr in enumerate(alive)
            for di, det in enumerate(current)
            if (cost := _link_cost(tr.last, det.box, t - tr.end, opts)) is not None
        )
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        for _, ti, di in pairs:
            if ti in used_tracks or di in used_dets:
                continue
            alive[ti].detections.append(current[di])
            used_tracks.add(ti)
            used_dets.add(di)
        for di, det in enumerate(current):
            if di not in used_dets:
                tracks.append(Track(id=len(tracks), scene=scene, detections=[det]))
    tracks = _join_fragments(tracks, opts)
    kept = [tr for tr in tracks if _confirmed(tr, scan_period_s, opts)]
    kept.sort(key=lambda tr: len(tr.detections), reverse=True)
    return [Track(id=i, scene=tr.scene, detections=tr.detections) for i, tr in enumerate(kept)]


def _link_cost(last: Box, box: Box, gap_s: float, opts: LinkOptions) -> float | None:
    """Centre distance in face widths, or None when the two boxes cannot be one face."""
    size = max(last[2], box[2])
    ratio = min(last[2], box[2]) / size if size > 0 else 0.0
    if ratio < opts.min_size_ratio:
        return None
    dist = math.hypot(last[0] - box[0], last[1] - box[1]) / size
    if dist > opts.max_jump * (1.0 + gap_s):
        return None
    return dist


def _join_fragments(tracks: list[Track], opts: LinkOptions) -> list[Track]:
    """Join a track to an earlier one of the same shot that ended before it began, where it
    begins close to where the earlier one ended (one face, lost for a while)."""
    ordered = sorted(tracks, key=lambda tr: tr.start)
    joined: list[Track] = []
    for tr in ordered:
        best: Track | None = None
        best_cost = float("inf")
        for prev in joined:
            if prev.scene != tr.scene or prev.end >= tr.start:
                continue
            cost = _link_cost(prev.last, tr.detections[0].box, 0.0, opts)
            if cost is not None and cost < best_cost:
                best, best_cost = prev, cost
        if best is not None and len(tr.detections) >= 2:
            best.detections.extend(tr.detections)
        else:
            joined.append(tr)
    return joined


def _confirmed(track: Track, scan_period_s: float, opts: LinkOptions) -> bool:
    hits = sum(d.detected for d in track.detections)
    if hits < opts.min_hits:
        return False
    expected = (track.end - track.start) / scan_period_s + 1.0
    return hits / expected >= opts.min_coverage
