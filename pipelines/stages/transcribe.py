"""Transcribe stage: warm ASR actors stream audio tracks through batched Whisper.

The driver cuts each video into parts of about `segment_s` (one part for most videos) and
spreads the parts of a claimed batch over the ASR actors by duration, so one long video keeps
every actor busy. Inside an actor a producer thread fetches the track (node cache first),
decodes its part block by block and cuts VAD chunks (`ChunkStream`) into a small bounded queue,
while the actor's main thread transcribes full batches of chunks: decoding overlaps ASR, memory
stays flat however long the video, and short videos of one claim share batches. The driver
merges each job's chunk results into one transcript and stores it with the job.

Speaker turns (`models.speakers`) ride on the same batches: after each ASR call the actor embeds
the batch's words in short and long windows of its chunks' audio (`models.transcription`, the
rule `clipforge.transcribe()` and Serve follow too),
and the driver clusters a whole job's windows when it merges the parts, since the parts of a
long video come from several actors. Every stored word then carries its `speaker`.

After each batch an actor also posts each part's seconds transcribed to a progress board, which
the driver copies to the job rows while the call runs (`pipelines/transcribe_progress.py`).
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from clipforge.db.pool import Conn
from clipforge.db.repo.transcripts import replace_transcript
from clipforge.db.repo.videos import get_videos
from clipforge.errors import MediaError, NotFound
from clipforge.queue import Job, JobResult
from clipforge.settings import Settings
from clipforge.storage.keys import audio_key
from clipforge.types import Transcript
from models.chunking import AudioChunk, ChunkOptions, ChunkResult, merge_chunks
from models.speakers import SpeakerWindow, assign_speakers
from models.transcription import chunk_windows, refined
from pipelines.actors import ActorSet, Report, StageActor, Telemetry, threads_per_actor
from pipelines.config import TranscribeConfig
from pipelines.lifecycle import Lifecycle, video_of
from pipelines.rows import Row, error_row
from pipelines.stages.audio import ChunkStream
from pipelines.transcribe_progress import ProgressWriter, post


@dataclass(frozen=True, slots=True)
class _End:
    """All chunks of a part were queued; the part ended at `end_s` of the track."""

    end_s: float


_Part = tuple[int, int]  # (job id, part)
_Item = tuple[_Part, AudioChunk | _End | Exception] | None
_PART_INDEXES = 1_000_000  # chunk indexes of part p start at p * _PART_INDEXES
log = logging.getLogger(__name__)


class AsrActor(StageActor):
    """One loaded Whisper model; transcribes whole videos, streaming their audio."""

    def __init__(self, settings: Settings, config: TranscribeConfig) -> None:
        from models.asr import AsrConfig, AsrModel  # heavy: load inside the actor

        super().__init__(settings)
        self.config = config
        asr = replace(
            AsrConfig.from_settings(settings),
            batch_size=config.asr_batch_size,
            cpu_threads=threads_per_actor(config.asr_cpu_threads, config.asr_actors),
        )
        self.model = AsrModel(asr)
        self.loaded("asr")
        self.speakers: Any = None
        if config.speaker_turns:
            from models.speakers import SpeakerEncoder

            self.speakers = SpeakerEncoder()
            self.loaded("speakers")

    def transcribe(self, rows: list[Row]) -> tuple[list[Row], Report]:
        """Transcribe every row's part of a video: its chunk results, or its error."""
        chunks: queue.Queue[_Item] = queue.Queue(maxsize=2 * self.config.asr_batch_size)
        options = ChunkOptions(max_chunk_s=self.config.max_chunk_s)
        threading.Thread(
            target=_produce, args=(rows, self._audio_of, options, chunks), daemon=True
        ).start()
        boards = {(int(r["job_id"]), int(r["part"])): r.get("board") for r in rows}
        transcriber = _Transcriber(self.model, self.config.asr_batch_size, self.speakers, boards)
        results = transcriber.run(chunks)
        out = [results.get((int(r["job_id"]), int(r["part"])), _missing(r)) for r in rows]
        return out, self.report()

    def _audio_of(self, row: Row, scratch: Path) -> Path:
        try:
            return self.fetch(row["audio_key"], scratch)
        except NotFound:  # imported before import stored audio tracks: decode the original
            return self.fetch(row["original_key"], scratch)


def _missing(row: Row) -> Row:
    failed = error_row(int(row["job_id"]), RuntimeError("the ASR actor produced no result"))
    return failed | {"part": row["part"]}


def _produce(
    rows: Sequence[Row],
    audio_of: Callable[[Row, Path], Path],
    options: ChunkOptions,
    out: queue.Queue[_Item],
) -> None:
    """Producer thread: every part's chunks in order, then its end marker (or its error)."""
    for row in rows:
        key = (int(row["job_id"]), int(row["part"]))
        try:
            with tempfile.TemporaryDirectory(prefix="cf-audio-") as tmp:
                stream = ChunkStream(
                    audio_of(row, Path(tmp)),
                    options,
                    start_s=float(row["start_s"]),
                    end_s=row["end_s"],
                    first_index=key[1] * _PART_INDEXES,
                )
                for chunk in stream:
                    out.put((key, chunk))
            out.put((key, _End(stream.end_s)))
        except Exception as exc:  # this part's job fails; the next part goes on
            out.put((key, exc))
    out.put(None)


class _Transcriber:
    """Consumer side: batches chunks (across videos of one language), results per part; with a
    speaker encoder, also each part's embedded speech windows."""

    def __init__(
        self,
        model: Any,
        batch_size: int,
        speakers: Any = None,
        boards: Mapping[_Part, Any] | None = None,
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.speakers = speakers
        self.pending: list[tuple[_Part, AudioChunk]] = []
        self.language: dict[int, str] = {}
        self.done: dict[_Part, list[ChunkResult]] = {}
        self.windows: dict[_Part, list[SpeakerWindow] | None] = {}
        self.speaker_s = 0.0
        self.failed: dict[_Part, Exception] = {}
        # Where each part's progress goes (pipelines/transcribe_progress.py), and how far it is.
        self.boards = dict(boards or {})
        self.seconds: dict[_Part, float] = {}

    def run(self, items: queue.Queue[_Item]) -> dict[_Part, Row]:
        out: dict[_Part, Row] = {}
        while (item := items.get()) is not None:
            key, value = item
            if key in self.failed:
                continue
            if isinstance(value, Exception):
                self.failed[key] = value
            elif isinstance(value, _End):
                self._flush()  # the part's last chunks are needed now
                out[key] = self._finished(key, value.end_s)
            else:
                self._add(key, value)
        self._flush()
        for key, exc in self.failed.items():
            out[key] = error_row(key[0], exc) | {"part": key[1]}
        return out

    def _add(self, key: _Part, chunk: AudioChunk) -> None:
        job_id = key[0]
        if job_id not in self.language:
            self.language[job_id] = self.model.detect_language(chunk.audio)[0]
        if self.pending and self.language[self.pending[0][0][0]] != self.language[job_id]:
            self._flush()  # one language per batched call
        self.pending.append((key, chunk))
        if len(self.pending) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            language = self.language[batch[0][0][0]]
            results = self.model.transcribe_chunks([c for _, c in batch], language=language)
        except Exception as exc:  # these parts fail (retryable); the others go on
            for key, _ in batch:
                self.failed.setdefault(key, exc)
            return
        for (key, chunk), result in zip(
            batch, refined([c for _, c in batch], results), strict=True
        ):
            self.done.setdefault(key, []).append(result)
            self.seconds[key] = self.seconds.get(key, 0.0) + chunk.keep_end_s - chunk.keep_start_s
        for key in dict.fromkeys(key for key, _ in batch):
            post(self.boards.get(key), key[0], key[1], self.seconds[key])
        if self.speakers is not None:  # on Whisper's own word times (models.transcription)
            self._embed(batch, results)

    def _embed(self, batch: list[tuple[_Part, AudioChunk]], results: list[ChunkResult]) -> None:
        """Embed the speech windows of each chunk's own words (those it keeps at the merge).

        A failure costs the part its speaker turns (None), never its transcript.
        """
        started = time.perf_counter()
        for (key, chunk), result in zip(batch, results, strict=True):
            windows = self.windows.setdefault(key, [])
            if windows is None:  # an earlier chunk of this part failed
                continue
            try:
                windows += chunk_windows(self.speakers, chunk, result)
            except Exception:
                log.exception("speaker embeddings failed for job %s part %s", *key)
                self.windows[key] = None
        self.speaker_s += time.perf_counter() - started

    def _finished(self, key: _Part, end_s: float) -> Row:
        if key in self.failed:
            return error_row(key[0], self.failed.pop(key)) | {"part": key[1]}
        results = self.done.pop(key, [])
        row = {"job_id": key[0], "part": key[1], "results": results, "end_s": end_s, "error": ""}
        if self.speakers is not None:
            row["speaker_windows"] = self.windows.pop(key, [])
        return row


def merge_parts(job_id: int, parts: Sequence[Row], expected: int) -> Row:
    """One job's transcript from the chunk results of all its parts (or the first error)."""
    failed = next((p for p in parts if p.get("error")), None)
    if failed is not None:
        return failed
    if len({p["part"] for p in parts}) != expected:  # never a transcript with a hole in it
        return error_row(job_id, RuntimeError(f"{len(parts)} of {expected} parts came back"))
    results = [r for p in parts for r in p["results"]]
    if not results:
        return error_row(job_id, MediaError("no speech detected in the audio track"))
    duration = max(float(p["end_s"]) for p in parts)  # the last part ends with the track
    transcript = merge_chunks(results, duration_s=duration)
    # Turns only when every part brought its windows: labels from a partial set would guess.
    windows = [p.get("speaker_windows") for p in parts]
    if all(w is not None for w in windows):
        transcript = assign_speakers(transcript, [x for w in windows for x in w or ()])
    return {"job_id": job_id, "transcript": transcript, "error": "", "retryable": False}


def split_parts(row: Row, segment_s: float) -> list[Row]:
    """A video's parts of about `segment_s` (boundaries are moved to pauses by the actor)."""
    duration = float(row["duration_s"])
    count = max(1, round(duration / segment_s))
    return [
        row
        | {
            "part": p,
            "start_s": p * duration / count,
            "end_s": (p + 1) * duration / count if p + 1 < count else None,
        }
        for p in range(count)
    ]


def _part_seconds(part: Row) -> float:
    end = part["end_s"] if part["end_s"] is not None else part["duration_s"]
    return float(end) - float(part["start_s"])


class TranscribeStage:
    """Driver side of the transcribe stage."""

    name = "transcribe"
    missing = "video row not found"

    def __init__(
        self,
        settings: Settings,
        config: TranscribeConfig,
        lifecycle: Lifecycle,
        telemetry: Telemetry,
    ) -> None:
        self.lifecycle = lifecycle
        self.claim_batch_size = config.claim_batch_size
        self.runners = config.asr_actors
        self.count = config.asr_actors
        self.segment_s = config.segment_s
        self.progress = ProgressWriter(lifecycle.pool)
        self.actors = ActorSet(
            self.name,
            AsrActor,
            (settings, config),
            count=config.asr_actors,
            num_cpus=config.asr_num_cpus,
            num_gpus=config.asr_num_gpus,
            telemetry=telemetry,
        )

    def load(self, conn: Conn, jobs: Sequence[Job]) -> dict[int, Row]:
        """Storage keys and duration of each job's video (one query)."""
        videos = get_videos(conn, video_ids=[j.video_id for j in jobs if j.video_id])
        return {
            j.id: {
                "job_id": j.id,
                "audio_key": audio_key(v.id),
                "original_key": v.original_key,
                "duration_s": v.duration_s or 0.0,
            }
            for j in jobs
            if (v := videos.get(video_of(j))) is not None and v.original_key
        }

    def execute(self, inputs: Mapping[int, Row]) -> dict[int, Row | Exception]:
        """Spread the videos' parts over the ASR actors (longest first onto the least loaded)
        and merge each job's parts."""
        totals = {j: float(r["duration_s"]) for j, r in inputs.items() if r["duration_s"] > 0}
        with self.progress.watch(totals) as board:
            return self._execute(inputs, board)

    def _execute(self, inputs: Mapping[int, Row], board: Any) -> dict[int, Row | Exception]:
        parts = [
            p | {"board": board}
            for row in inputs.values()
            for p in split_parts(row, self.segment_s)
        ]
        groups: list[list[Row]] = [[] for _ in range(self.count)]
        loads = [0.0] * self.count
        for part in sorted(parts, key=lambda p: -_part_seconds(p)):
            k = loads.index(min(loads))
            groups[k].append(part)
            loads[k] += _part_seconds(part) + 1.0
        groups = [sorted(g, key=lambda p: (p["job_id"], p["part"])) for g in groups if g]
        answers: dict[int, list[Row]] = {}
        failures: dict[int, Exception] = {}
        for group, answer in zip(groups, self.actors.map("transcribe", groups), strict=True):
            for part in group:
                job_id = int(part["job_id"])
                if isinstance(answer, Exception):
                    failures[job_id] = answer
                else:
                    answers.setdefault(job_id, []).extend(
                        r
                        for r in answer
                        if int(r["job_id"]) == job_id and r["part"] == part["part"]
                    )
        expected = Counter(int(p["job_id"]) for p in parts)
        return {
            job_id: failures.get(job_id)
            or merge_parts(job_id, answers.get(job_id, []), expected[job_id])
            for job_id in inputs
        }

    def commit(self, job: Job, output: Row) -> JobResult:
        """Store the transcript (replacing any earlier one) and move the video on to detect."""
        transcript: Transcript = output["transcript"]

        def write(conn: Conn) -> None:
            replace_transcript(conn, video_id=video_of(job), transcript=transcript)
            self.lifecycle.advance(conn, job, "detect", status="detecting")

        return JobResult(
            result={"words": len(transcript.words)},
            on_commit=write,
            after_commit=self.lifecycle.after(
                job, ("video", "transcript"), seconds=transcript.duration
            ),
        )
