"""Speaker turns inside the transcribe stage: the ASR actor's consumer loop embeds each batch's
windows, the driver's merge labels every word, and the ids are stored with the transcript.

The actor's code runs in this process (its producer thread and consumer loop, on the real media,
Whisper and voice encoder); Ray only carries it elsewhere, as the end-to-end tests show."""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
import time
from pathlib import Path

from clipforge.db.pool import Pool
from clipforge.db.repo.transcripts import get_transcript, replace_transcript
from models.asr import AsrModel
from models.chunking import ChunkOptions
from models.speakers import SpeakerEncoder
from pipelines.stages.transcribe import (
    PartOutput,
    TranscribeInput,
    TranscribeOutput,
    TranscribePart,
    _Item,
    _produce,
    _Transcriber,
    merge_parts,
)
from pipelines.stages.values import StageError
from tests.utils.factories import make_video
from tests.utils.turns import accuracy


def _stage(
    media: Path, speakers: SpeakerEncoder, asr: AsrModel
) -> tuple[list[PartOutput | StageError], float]:
    """One job, two parts (so two parts' windows meet at the merge), as an ASR actor runs it.
    The boundary moves to the quietest moment of the 20 s before 25 s: a pause after ~5 s."""
    items: queue.Queue[_Item] = queue.Queue(maxsize=16)
    video = TranscribeInput(job_id=1, audio_key="", original_key="", duration_s=0.0)
    parts = [TranscribePart(video, 0, 0.0, 25.0), TranscribePart(video, 1, 25.0, None)]
    producer = threading.Thread(
        target=_produce, args=(parts, lambda _part, _tmp: media, ChunkOptions(), items)
    )
    producer.start()
    transcriber = _Transcriber(asr, 8, speakers)
    outputs = transcriber.run(items)
    producer.join()
    return list(outputs.values()), transcriber.speaker_s


def test_transcribe_stage_stores_a_speaker_for_every_word(
    db: Pool, test_media: dict[str, Path]
) -> None:
    media = test_media["two_speakers"]
    truth = json.loads(media.with_suffix(".truth.json").read_text())["utterances"]
    asr, encoder = AsrModel(), SpeakerEncoder()
    started = time.perf_counter()
    parts, speaker_s = _stage(media, encoder, asr)
    total_s = time.perf_counter() - started
    out = merge_parts(1, parts, expected=2)
    assert isinstance(out, TranscribeOutput), out
    transcript = out.transcript
    score = accuracy(transcript, truth)
    print(
        f"\ntranscribe stage on two_speakers: {total_s:.2f} s, of which speaker embeddings "
        f"{speaker_s:.2f} s; word speaker accuracy {score:.1%}"
    )
    assert score >= 0.9
    video = make_video(db)
    with db.connection() as conn:
        replace_transcript(conn, video_id=video.id, transcript=transcript)
        stored = get_transcript(conn, video_id=video.id)
    assert stored is not None
    assert [w.speaker for w in stored.words] == [w.speaker for w in transcript.words]
    # A part without windows (turns off, or its embedding failed): same words, no speaker ids
    # rather than labels guessed from the other part.
    assert all(isinstance(p, PartOutput) and p.speaker_windows for p in parts)
    assert isinstance(parts[0], PartOutput)
    partial = [dataclasses.replace(parts[0], speaker_windows=None), parts[1]]
    plain = merge_parts(1, partial, expected=2)
    assert isinstance(plain, TranscribeOutput), plain
    assert [w.text for w in plain.transcript.words] == [w.text for w in transcript.words]
    assert {w.speaker for w in plain.transcript.words} == {None}
