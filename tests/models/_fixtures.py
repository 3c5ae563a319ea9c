"""Shared inputs for the model tests: the planted-hook transcript, synthetic audio and frames,
and one text encoder per test session (loading it takes seconds, so it is loaded once)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.text_encoder import TextEncoder, load_text_encoder
from models.types import Transcript

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SAMPLE_RATE = 16_000


@dataclass(frozen=True, slots=True)
class Frame:
    """Same shape as `clipforge.media.Frame`, built here so the tests need no decoder."""

    t: float
    image: npt.NDArray[np.uint8]


@lru_cache(maxsize=1)
def encoder() -> TextEncoder:
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    return load_text_encoder()


@lru_cache(maxsize=1)
def hook_data() -> dict[str, object]:
    """The raw fixture (includes `hook`: [start, end] of the planted passage)."""
    data: dict[str, object] = json.loads((FIXTURES / "hook_transcript.json").read_text())
    return data


def hook_transcript() -> Transcript:
    """The planted-hook transcript."""
    return Transcript.from_dict(hook_data())


def hook_span() -> tuple[float, float]:
    """Start and end of the planted hook passage."""
    span = hook_data()["hook"]
    assert isinstance(span, list)
    return float(span[0]), float(span[1])


def synth_audio(transcript: Transcript, seed: int = 0) -> npt.NDArray[np.float32]:
    """Voiced tones under every word (louder and swinging in the hook) plus two applause-like
    noise bursts inside the hook; quiet noise elsewhere."""
    rng = np.random.default_rng(seed)
    n = int(transcript.duration * SAMPLE_RATE)
    audio = (rng.standard_normal(n) * 0.002).astype(np.float32)
    hook_start, hook_end = hook_span()
    t = np.arange(int(0.6 * SAMPLE_RATE)) / SAMPLE_RATE
    for k, word in enumerate(transcript.words):
        a, b = int(word.start * SAMPLE_RATE), int(word.end * SAMPLE_RATE)
        in_hook = hook_start <= word.start < hook_end
        amp = (0.35 if k % 2 else 0.15) if in_hook else 0.08
        tt = np.arange(b - a) / SAMPLE_RATE
        tone = np.zeros(b - a)
        for h in range(1, 6):
            tone += np.sin(2 * np.pi * 140 * h * tt) / h
        audio[a:b] += (amp * tone / 2).astype(np.float32)
    for offset in (4.0, 11.0):
        a = int((hook_start + offset) * SAMPLE_RATE)
        audio[a : a + len(t)] += (rng.standard_normal(len(t)) * 0.3).astype(np.float32)
    return np.clip(audio, -1.0, 1.0)


def synth_frames(transcript: Transcript, fps: float = 1.0) -> list[Frame]:
    """A static grey scene, except in the hook: a new colour every 4 s and a moving bar."""
    hook_start, hook_end = hook_span()
    frames: list[Frame] = []
    palette = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (220, 220, 40), (40, 220, 220)]
    for i in range(int(transcript.duration * fps)):
        t = i / fps
        image = np.full((72, 128, 3), 110, dtype=np.uint8)
        if hook_start <= t < hook_end:
            image[:] = palette[int((t - hook_start) // 4) % len(palette)]
            x = int((t * 37) % 112)
            image[:, x : x + 16] = 255
        frames.append(Frame(t=t, image=image))
    return frames
