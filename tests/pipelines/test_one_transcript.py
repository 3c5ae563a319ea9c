"""One transcript whichever way it is asked for: `clipforge.transcribe()`, the transcribe stage
(what `clipforge process` and the worker run) and the Serve ASR deployment give the same words,
timings and speaker ids for the same file.

The file is a 44.1 kHz stereo AAC copy of the real call of the speaker-turn set: it must be
resampled, which is where the paths used to part ("I need to design." through PyAV's resampler,
"I needed to decide." through ffmpeg's, for the same words).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pytest

import clipforge
from clipforge.media import run_ffmpeg
from clipforge.media.track import extract_track
from clipforge.types import Transcript
from models.asr import AsrModel
from models.chunking import ChunkOptions
from models.speakers import SpeakerEncoder
from pipelines.stages.transcribe import (
    TranscribeInput,
    TranscribeOutput,
    TranscribePart,
    _Item,
    _produce,
    _Transcriber,
    merge_parts,
)
from serve_apps.api.uploads import decode_upload
from serve_apps.deployments.asr import AsrDeployment
from tests.utils.real_conversations import real_set


@pytest.fixture(scope="module")
def call_m4a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one-transcript") / "call.m4a"
    args = ["-i", str(real_set()["call_2p"])]
    args += ["-ar", "44100", "-ac", "2", "-c:a", "aac", "-b:a", "96k", str(out)]
    run_ffmpeg(args, timeout_s=120, step="test_media")
    return out


def _worker(media: Path, scratch: Path) -> Transcript:
    """The transcribe stage on one video: import's track, the actor's producer and consumer
    loops, the driver's merge (Ray only carries these to other processes)."""
    track = extract_track(media, scratch / "track.flac")
    items: queue.Queue[_Item] = queue.Queue(maxsize=16)
    video = TranscribeInput(job_id=1, audio_key="", original_key="", duration_s=0.0)
    parts = [TranscribePart(video, 0, 0.0, None)]
    producer = threading.Thread(
        target=_produce, args=(parts, lambda _part, _tmp: track, ChunkOptions(), items)
    )
    producer.start()
    outputs = _Transcriber(AsrModel(), 8, SpeakerEncoder()).run(items)
    producer.join()
    out = merge_parts(1, list(outputs.values()), expected=1)
    assert isinstance(out, TranscribeOutput), out
    return out.transcript


def _serve(media: Path) -> Transcript:
    """The Serve path's code in this process: the ingress's upload decoding and the ASR
    deployment's batched call (Serve itself only routes to it; tests/serve_apps run it live)."""
    audio = decode_upload(media.read_bytes(), max_seconds=120)
    deployment = AsrDeployment.func_or_class({})  # type: ignore[attr-defined]
    # The body of its `@serve.batch` method (the batching queue needs a live replica).
    result: Transcript = deployment._run([(audio, None)])[0]
    return result


def _view(transcript: Transcript) -> list[tuple[str, float, float, int | None]]:
    return [(w.text, round(w.start, 3), round(w.end, 3), w.speaker) for w in transcript.words]


def test_every_path_gives_the_same_words_timings_and_speakers(
    call_m4a: Path, tmp_path: Path
) -> None:
    api = clipforge.transcribe(call_m4a)
    worker = _worker(call_m4a, tmp_path)
    serve = _serve(call_m4a)
    assert len(api.words) > 50
    assert {w.speaker for w in api.words} == {0, 1}  # the call's two people
    assert _view(api) == _view(worker)
    assert _view(api) == _view(serve)
    assert api.text == worker.text == serve.text
