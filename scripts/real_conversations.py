"""Build the real-voice speaker-turn evaluation set into .cache/real-turns (no synthesized voice).

Sources (docs/speech-evaluation.md has the licences):

- `call_2p`: the 30 s two-person telephone call shipped as `pyannote/audio/sample/sample.wav`
  inside the MIT-licensed `pyannote-audio` wheel (fetched with `pip download --no-deps`, sha256
  checked; nothing of pyannote is installed or imported). Reference turns: `CALL_TURNS` below,
  written from the wheel's own human transcript (`sample.stm`) with the overlap at 18.05 s kept.
  Word onsets: `CALL_ONSETS`, labelled by hand from the spectrogram and energy (no ASR, no
  aligner), for the 30 words whose start the signal shows.
- `splice_3p` / `splice_4p` / `splice_4p_en`: real single-speaker recordings of different
  people spliced into conversations with short turns (0.7-3.5 s; the fourth person's in
  `splice_4p_en` 2.5-5.5 s), 0.15-0.4 s gaps and one 0.3 s overlap: Allison Smith (Debian
  `asterisk-core-sounds-en-wav`, CC-BY-SA-3.0) and the two callers of `call_2p`, cut at their
  transcript's utterance times; the fourth person is June Wallack in Canadian French
  (`asterisk-core-sounds-fr-wav`, CC-BY-SA-3.0) in `splice_4p`, and in `splice_4p_en`, at the
  same places, a man reading "Sense and Sensibility" for LibriVox (public domain; four
  utterances with their texts in the test data of the `pocketsphinx==5.1.1` source
  distribution, BSD-2-Clause, fetched with `pip download --no-deps --no-binary pocketsphinx`,
  sdist and file sha256 pinned). No such conversation is installable, so these are built; their reference turns are the splice
  points (exact by construction, independent of any ASR or aligner), their word onsets the
  prompts' and readings' splice points and the call's labelled onsets that each piece of the
  call carries along.

All recordings are telephone band (8 kHz originals; the 16 kHz LibriVox reading is band-limited
to 8 kHz the same way) and written as 16 kHz mono WAV with a `NAME.truth.json` beside:
speakers, turns `[start, end, speaker]`, the first word of each turn `onsets` `[time, text]`,
and the reference word onsets `word_onsets` `[time, text]`.

Usage: python scripts/real_conversations.py [--out .cache/real-turns]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import wave
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

SAMPLE_RATE = 16_000
WHEEL = "pyannote-audio==4.0.7"
WHEEL_FILE = "pyannote_audio-4.0.7-py3-none-any.whl"
WHEEL_SHA256 = "852ea15c4d85bc34773e618267603ffca6a521669a74d33742692cc67fc700d6"
SAMPLE_SHA256 = "c319b4abca767b124e41432d364fd7df006cb26bb79d09326c487d606a134e6e"
ASTERISK = Path("/usr/share/asterisk/sounds")
DEBIAN_PACKAGES = ("asterisk-core-sounds-en-wav", "asterisk-core-sounds-fr-wav")
#: The fourth voice of `splice_4p_en`: LibriVox readings (public domain) that pocketsphinx ships as
#: test data in its source distribution (not in its wheels).
SDIST = "pocketsphinx==5.1.1"
SDIST_FILE = "pocketsphinx-5.1.1.tar.gz"
SDIST_SHA256 = "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355"
READINGS_DIR = "pocketsphinx-5.1.1/test/data/librivox"
READINGS_PREFIX = "sense_and_sensibility_01_austen_64kb-"
READINGS_SHA256 = {
    "0880": "fbec491ef00ee734a67f0ee318e98c51c157b479e1629ff4f4426861ecac0414",
    "0890": "5793ffbdee55fb8bfd284943a6866864c832d9d4accf2661cabd39915c84ee10",
    "0920": "40882414ef4cc51f3ff7a63bad0c8c87e7f595ffeb8209fbf756c8ebc5c28a59",
    "0930": "954adbf0b56ac8a148cbe77b39ca18d76b5f2a1e1f405565bd786ce3e68a68b7",
}

Audio = npt.NDArray[np.float32]

#: The call's turns: (start, end, speaker, first words). Speaker 0 is Diane, 1 is Sheila.
CALL_TURNS: tuple[tuple[float, float, int, str], ...] = (
    (6.68, 7.16, 0, "Hello?"),
    (7.634, 8.155, 1, "Hello?"),
    (8.436, 9.798, 0, "Oh, hello. I didn't know you were there."),
    (9.838, 10.78, 1, "Neither did I."),
    (10.78, 14.184, 0, "Okay, then I thought you know, I heard a beep. This is Diane"),
    (14.444, 17.769, 1, "And I'm Sheila in Texas, originally from Chicago."),
    (17.789, 21.475, 0, "Oh, I'm originally from Chicago also. I'm in New Jersey now"),
    (21.935, 28.425, 1, "Well, there isn't that much difference. At least you know"),
    (28.445, 29.987, 0, "Oh, I don't hear that in New Jersey now."),
)


@dataclass(frozen=True, slots=True)
class Piece:
    """One utterance of a splice: who, from where, and the gap before it (negative: overlap)."""

    speaker: int
    source: str  # "en:NAME", "fr:NAME" (asterisk prompt), "lv:NUMBER" (LibriVox) or "call:S-E"
    gap_s: float
    text: str


_SPLICE_3P = (
    Piece(0, "en:auth-thankyou", 0.0, "Thank you."),
    Piece(1, "call:9.838-10.78", 0.25, "Neither did I."),
    Piece(2, "call:8.436-9.798", 0.3, "Oh, hello. I didn't know you were there."),
    Piece(0, "en:call-forwarding", 0.2, "Call forwarding."),
    Piece(1, "call:14.444-17.769", 0.35, "And I'm Sheila in Texas, originally from Chicago."),
    Piece(2, "call:10.78-12.54", 0.2, "Okay, then I thought you know, I heard a beep."),
    Piece(0, "en:conf-muted", 0.3, "You are now muted."),
    Piece(1, "call:21.935-23.978", -0.3, "Well, there isn't that much difference."),
    Piece(0, "en:cancelled", 0.25, "Cancelled."),
    Piece(2, "call:12.542-14.184", 0.15, "This is Diane in New Jersey."),
    Piece(1, "call:24.058-28.425", 0.4, "At least you know, they all call me a Yankee down here"),
    Piece(0, "en:all-circuits-busy-now", 0.2, "All circuits are busy now."),
    Piece(2, "call:28.445-29.987", 0.3, "Oh, I don't hear that in New Jersey now."),
    Piece(0, "en:conf-hasleft", 0.25, "has left the conference."),
)

_SPLICE_4P = (
    Piece(0, "en:call-waiting", 0.0, "Call waiting."),
    Piece(3, "fr:agent-loginok", 0.3, ""),
    Piece(1, "call:9.838-10.78", 0.2, "Neither did I."),
    Piece(2, "call:8.436-9.798", 0.3, "Oh, hello. I didn't know you were there."),
    Piece(3, "fr:call-fwd-on-busy", 0.25, ""),
    Piece(0, "en:conf-locked", 0.2, "This conference is locked."),
    Piece(1, "call:14.444-17.769", 0.3, "And I'm Sheila in Texas, originally from Chicago."),
    Piece(2, "call:10.78-12.54", -0.3, "Okay, then I thought you know, I heard a beep."),
    Piece(3, "fr:conf-lockednow", 0.3, ""),
    Piece(0, "en:agent-loggedoff", 0.25, "Agent logged off."),
    Piece(1, "call:21.935-23.978", 0.2, "Well, there isn't that much difference."),
    Piece(2, "call:12.542-14.184", 0.3, "This is Diane in New Jersey."),
    Piece(3, "fr:conf-full", 0.2, ""),
    Piece(0, "en:conf-unmuted", 0.35, "You are now unmuted."),
    Piece(2, "call:28.445-29.987", 0.25, "Oh, I don't hear that in New Jersey now."),
    Piece(1, "call:24.058-28.425", 0.3, "At least you know, they all call me a Yankee down here"),
)

#: The fourth person in English: `splice_4p` with June Wallack's French prompts replaced, at the
#: same places and gaps, by LibriVox readings (what Whisper keeps of French is a few words, and
#: multilingual base takes the whole recording for French).
_READINGS = {
    "fr:agent-loginok": ("lv:0880", "He was not an ill disposed young man."),
    "fr:call-fwd-on-busy": ("lv:0930", "He might even have been made amiable himself."),
    "fr:conf-lockednow": (
        "lv:0890",
        "Unless to be rather cold hearted and rather selfish is to be ill disposed.",
    ),
    "fr:conf-full": (
        "lv:0920",
        "Had he married a more a amiable woman he might have been made still more respectable "
        "than he was.",
    ),
}
_SPLICE_4P_EN = tuple(
    Piece(p.speaker, _READINGS[p.source][0], p.gap_s, _READINGS[p.source][1])
    if p.source in _READINGS
    else p
    for p in _SPLICE_4P
)

SPLICES = {"splice_3p": _SPLICE_3P, "splice_4p": _SPLICE_4P, "splice_4p_en": _SPLICE_4P_EN}

#: Word onsets in the call, labelled by hand from its spectrogram and 10 ms energy (not by any
#: ASR or aligner): only words whose start the signal shows, i.e. that follow a pause or a stop
#: closure (the time is the release: where energy rises again) or begin with a fricative that
#: stands out above 2 kHz. Words running on from a vowel or a nasal have no visible boundary and
#: are left out; so is the second speaker's speech under the overlap at 18.05 s. Precision about
#: +-20 ms (one 10 ms frame either side of the visible rise, plus the choice of where an
#: aspiration starts).
CALL_ONSETS: tuple[tuple[float, str], ...] = (
    (6.73, "Hello"),
    (7.58, "Hello"),
    (8.35, "Oh"),
    (8.52, "hello"),
    (9.51, "there"),
    (11.71, "know"),
    (12.27, "beep"),
    (12.52, "This"),
    (12.67, "is"),
    (12.86, "Diane"),
    (13.64, "Jersey"),
    (14.75, "Sheila"),
    (15.58, "Texas"),
    (16.02, "originally"),
    (17.10, "Chicago"),
    (18.06, "Oh"),
    (18.87, "from"),
    (20.01, "I'm"),
    (20.50, "Jersey"),
    (21.82, "Well"),
    (22.39, "there"),
    (22.71, "isn't"),
    (23.37, "difference"),
    (23.98, "At"),
    (24.13, "least"),
    (24.50, "you"),
    (25.27, "they"),
    (25.62, "call"),
    (26.67, "down"),
    (29.30, "Jersey"),
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_pinned_member(
    requirement: str,
    archive: Path,
    archive_sha256: str,
    member: str,
    dest: Path,
    member_sha256: str,
) -> Path:
    """One file of a pinned PyPI archive, written to `dest`: the archive (a wheel when `archive`
    ends in `.whl`, else the source archive) is downloaded once into its folder with
    `pip download --no-deps`, the ordinary client, and both it and the file are sha256 checked."""
    if dest.exists() and _sha256(dest) == member_sha256:
        return dest
    archive.parent.mkdir(parents=True, exist_ok=True)
    wheel = archive.suffix == ".whl"
    if not archive.exists():
        kind = ["--only-binary" if wheel else "--no-binary", ":all:"]
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", *kind]
        subprocess.run(
            [*pip, "-d", str(archive.parent), requirement], check=True, capture_output=True
        )
    if _sha256(archive) != archive_sha256:
        raise SystemExit(f"{archive} does not have the pinned sha256")
    if wheel:
        with zipfile.ZipFile(archive) as files:
            data = files.read(member)
    else:
        with tarfile.open(archive) as tar:
            extracted = tar.extractfile(member)
            if extracted is None:
                raise SystemExit(f"{member} missing from {archive}")
            data = extracted.read()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    if _sha256(dest) != member_sha256:
        raise SystemExit(f"{member} inside {archive.name} does not have the pinned sha256")
    return dest


def fetch_call(cache: Path) -> Path:
    """The call's WAV, extracted from the pinned wheel (downloaded once, sha256 checked)."""
    return fetch_pinned_member(
        WHEEL,
        cache / "sources" / "wheels" / WHEEL_FILE,
        WHEEL_SHA256,
        "pyannote/audio/sample/sample.wav",
        cache / "sources" / "pyannote-sample.wav",
        SAMPLE_SHA256,
    )


def fetch_readings(cache: Path) -> dict[str, Path]:
    """The LibriVox readings (number -> WAV), extracted from the pinned pocketsphinx sdist
    (downloaded once; sdist and every file sha256 checked)."""
    folder = cache / "sources" / "librivox"
    wavs = {n: folder / f"{READINGS_PREFIX}{n}.wav" for n in READINGS_SHA256}
    if all(w.exists() and _sha256(w) == READINGS_SHA256[n] for n, w in wavs.items()):
        return wavs
    sdists = cache / "sources" / "sdists"
    sdist = sdists / SDIST_FILE
    if not sdist.exists():
        # Its wheels carry no test data. Only this package from source; its build requirements
        # come as wheels (pip prepares the sdist's metadata, nothing is built or installed).
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "pocketsphinx"]
        subprocess.run([*pip, "-d", str(sdists), SDIST], check=True, capture_output=True)
    if _sha256(sdist) != SDIST_SHA256:
        raise SystemExit(f"{sdist} does not have the pinned sha256")
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as archive:
        for number, wav in wavs.items():
            member = archive.extractfile(f"{READINGS_DIR}/{wav.name}")
            assert member is not None
            wav.write_bytes(member.read())
            if _sha256(wav) != READINGS_SHA256[number]:
                raise SystemExit(f"{wav.name} inside {SDIST_FILE} does not have the pinned sha256")
    return wavs


def telephone_band(audio: Audio) -> Audio:
    """A 16 kHz recording as the 8 kHz prompts reach the set: decimated to 8 kHz (anti-alias
    filter) and upsampled back linearly like `read_wav` does."""
    narrow = resample_poly(audio, 1, 2).astype(np.float32)
    times = np.arange(len(narrow) * 2) / SAMPLE_RATE
    upsampled: Audio = np.interp(times, np.arange(len(narrow)) / 8000, narrow).astype(np.float32)
    return upsampled


def read_wav(path: Path) -> Audio:
    """16-bit mono WAV as float32 at 16 kHz (8 kHz telephone prompts upsampled linearly)."""
    with wave.open(str(path)) as handle:
        rate = handle.getframerate()
        data = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    audio = data.astype(np.float32) / 32768.0
    if rate == SAMPLE_RATE:
        return audio
    times = np.arange(round(len(audio) * SAMPLE_RATE / rate)) / SAMPLE_RATE
    upsampled: Audio = np.interp(times, np.arange(len(audio)) / rate, audio).astype(np.float32)
    return upsampled


def trim(audio: Audio, *, floor_db: float = -30.0) -> tuple[Audio, int]:
    """Drop leading and trailing frames (10 ms) quieter than `floor_db` below the loudest one,
    so a piece's speech starts at its splice point; also the first kept sample's index."""
    frames = len(audio) // 160
    rms = np.sqrt(np.mean(audio[: frames * 160].reshape(frames, 160) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    return audio[loud[0] * 160 : (loud[-1] + 1) * 160], int(loud[0] * 160)


def _piece_audio(
    piece: Piece, call: Audio, readings: dict[str, Path]
) -> tuple[Audio, list[tuple[float, str]]]:
    """The piece's samples and its word onsets relative to its first sample.

    A prompt's or reading's onset is its first word at 0 (a studio or home recording trimmed at
    the first audible frame). A piece of the call carries the call's hand-labelled onsets that fall inside it: its
    first audible frame may be the other caller's tail, so that is no word onset.
    """
    kind, name = piece.source.split(":", 1)
    if kind == "call":
        start, end = (float(x) for x in name.split("-"))
        audio, first = trim(call[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)])
        begin = start + first / SAMPLE_RATE
        inside = [(t - begin, w) for t, w in CALL_ONSETS if begin - 0.01 <= t < end]
        return audio, [(max(t, 0.0), w) for t, w in inside]
    if kind == "lv":
        audio = trim(telephone_band(read_wav(readings[name])))[0]
    else:
        folder = {"en": "en_US_f_Allison", "fr": "fr_CA_f_June"}[kind]
        audio = trim(read_wav(ASTERISK / folder / f"{name}.wav"))[0]
    return audio, [(0.0, piece.text.split()[0])] if piece.text else []


def splice(
    pieces: tuple[Piece, ...], call: Audio, readings: dict[str, Path]
) -> tuple[Audio, dict[str, object]]:
    """The spliced conversation (0.5 s lead-in and tail) and its truth; `readings` are the
    LibriVox WAVs by number (`fetch_readings`)."""
    parts = [_piece_audio(p, call, readings) for p in pieces]
    at = 0.5
    placed: list[tuple[int, Audio]] = []
    turns: list[list[float]] = []
    onsets: list[list[object]] = []
    words: list[list[object]] = []
    for piece, (audio, piece_words) in zip(pieces, parts, strict=True):
        at = at + piece.gap_s if placed else at
        begin = round(at * SAMPLE_RATE)
        placed.append((begin, audio))
        turns.append([round(at, 3), round(at + len(audio) / SAMPLE_RATE, 3), piece.speaker])
        if piece.text:
            onsets.append([round(at, 3), piece.text.split()[0]])
        words += [[round(at + t, 3), w] for t, w in piece_words]
        at += len(audio) / SAMPLE_RATE
    out = np.zeros(round((at + 0.5) * SAMPLE_RATE), dtype=np.float32)
    for begin, audio in placed:
        out[begin : begin + len(audio)] += audio
    truth = {
        "speakers": len({p.speaker for p in pieces}),
        "turns": turns,
        "onsets": onsets,
        "word_onsets": words,
        "sources": sorted({p.source for p in pieces}),
    }
    return out, truth


def write_wav(path: Path, audio: Audio) -> None:
    """16 kHz mono 16-bit WAV."""
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE)
        handle.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())


def build(out: Path) -> dict[str, Path]:
    """Write every recording and its truth under `out`; returns name -> WAV path."""
    missing = [p for p in ("en_US_f_Allison", "fr_CA_f_June") if not (ASTERISK / p).is_dir()]
    if missing:
        raise SystemExit(f"install the Debian packages {' '.join(DEBIAN_PACKAGES)} first")
    out.mkdir(parents=True, exist_ok=True)

    call_wav = fetch_call(out)
    call = read_wav(call_wav)
    readings = fetch_readings(out)
    built = {"call_2p": out / "call_2p.wav"}
    write_wav(built["call_2p"], call)
    call_truth = {
        "speakers": 2,
        "turns": [[s, e, k] for s, e, k, _ in CALL_TURNS],
        "onsets": [[s, text.split()[0]] for s, _, _, text in CALL_TURNS],
        "word_onsets": [[t, w] for t, w in CALL_ONSETS],
        "sources": [f"{WHEEL}:pyannote/audio/sample/sample.wav"],
    }
    (out / "call_2p.truth.json").write_text(json.dumps(call_truth, indent=1))
    for name, pieces in SPLICES.items():
        audio, truth = splice(pieces, call, readings)
        built[name] = out / f"{name}.wav"
        write_wav(built[name], audio)
        (out / f"{name}.truth.json").write_text(json.dumps(truth, indent=1))
    return built


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".cache/real-turns"))
    for name, path in build(parser.parse_args().out).items():
        print(name, path)


if __name__ == "__main__":
    main()
