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
the driver copies to the job rows while the call runs (`pipelines/stages/transcribe_progress.py`).
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
from clipforge.heap import trim_heap
from clipforge.queue import Job, JobResult
from clipforge.settings import Settings
from clipforge.storage.keys import audio_key
from clipforge.types import Transcript
from models.chunking import AudioChunk, ChunkOptions, ChunkResult, merge_chunks
from models.highlight_config import ScorerConfig
from models.speakers import SpeakerWindow, assign_speakers
from models.transcription import chunk_windows, refined
from pipelines.config import PipelineConfig, TranscribeConfig
from pipelines.stages.actors import Report, StageActor, threads_per_actor
from pipelines.stages.audio import ChunkStream
from pipelines.stages.base import ActorSpec, BaseStage
from pipelines.stages.lifecycle import video_of
from pipelines.stages.transcribe_progress import ProgressWriter, post
from pipelines.stages.values import StageError


@dataclass(frozen=True, slots=True)
class TranscribeInput:
    """A video's stored audio track (the original for videos imported before tracks)."""

    job_id: int
    audio_key: str
    original_key: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class TranscribePart:
    """One part of a video's track for an ASR actor: `start_s` to `end_s` (None: to the end;
    the actor moves both to pauses), and the progress board it posts to (None: none)."""

    video: TranscribeInput
    part: int
    start_s: float
    end_s: float | None
    board: Any = None

    @property
    def job_id(self) -> int:
        """The job the part belongs to."""
        return self.video.job_id


@dataclass(frozen=True, slots=True)
class PartOutput:
    """A part's chunk results; with speaker turns on, its embedded speech windows (None: turns
    off, or its embedding failed)."""

    job_id: int
    part: int
    results: list[ChunkResult]
    end_s: float
    speaker_windows: list[SpeakerWindow] | None = None


@dataclass(frozen=True, slots=True)
class TranscribeOutput:
    """A video's merged transcript, every word with its `speaker` when turns were found."""

    job_id: int
    transcript: Transcript


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

            self.speakers = SpeakerEncoder(data_dir=settings.data_dir)
            self.loaded("speakers")

    def transcribe(
        self, parts: list[TranscribePart]
    ) -> tuple[list[PartOutput | StageError], Report]:
        """Transcribe the given parts of videos: each part's chunk results, or its job's error
        (in the order of `parts`)."""
        chunks: queue.Queue[_Item] = queue.Queue(maxsize=2 * self.config.asr_batch_size)
        options = ChunkOptions(max_chunk_s=self.config.max_chunk_s)
        threading.Thread(
            target=_produce, args=(parts, self._audio_of, options, chunks), daemon=True
        ).start()
        boards = {(p.job_id, p.part): p.board for p in parts}
        transcriber = _Transcriber(self.model, self.config.asr_batch_size, self.speakers, boards)
        results = transcriber.run(chunks)
        out = [results.get((p.job_id, p.part), _missing(p)) for p in parts]
        return out, self.report()

    def _audio_of(self, part: TranscribePart, scratch: Path) -> Path:
        try:
            return self.fetch(part.video.audio_key, scratch)
        except NotFound:  # imported before import stored audio tracks: decode the original
            return self.fetch(part.video.original_key, scratch)


def _missing(part: TranscribePart) -> StageError:
    return StageError.of(part.job_id, RuntimeError("the ASR actor produced no result"))


def _produce(
    parts: Sequence[TranscribePart],
    audio_of: Callable[[TranscribePart, Path], Path],
    options: ChunkOptions,
    out: queue.Queue[_Item],
) -> None:
    """Producer thread: every part's chunks in order, then its end marker (or its error)."""
    for part in parts:
        key = (part.job_id, part.part)
        try:
            with tempfile.TemporaryDirectory(prefix="cf-audio-") as tmp:
                stream = ChunkStream(
                    audio_of(part, Path(tmp)),
                    options,
                    start_s=part.start_s,
                    end_s=part.end_s,
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
        # Where each part's progress goes (pipelines/stages/transcribe_progress.py), and how far it is.
        self.boards = dict(boards or {})
        self.seconds: dict[_Part, float] = {}

    def run(self, items: queue.Queue[_Item]) -> dict[_Part, PartOutput | StageError]:
        out: dict[_Part, PartOutput | StageError] = {}
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
            out[key] = StageError.of(key[0], exc)
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
        trim_heap()  # the batch's buffers, freed, would stay in the heap (clipforge.heap)

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

    def _finished(self, key: _Part, end_s: float) -> PartOutput | StageError:
        if key in self.failed:
            return StageError.of(key[0], self.failed.pop(key))
        results = self.done.pop(key, [])
        windows = self.windows.pop(key, []) if self.speakers is not None else None
        return PartOutput(key[0], key[1], results, end_s, windows)


def merge_parts(
    job_id: int, parts: Sequence[PartOutput | StageError], expected: int
) -> TranscribeOutput | StageError:
    """One job's transcript from the chunk results of all its parts (or the first error)."""
    failed = next((p for p in parts if isinstance(p, StageError)), None)
    if failed is not None:
        return failed
    done = [p for p in parts if isinstance(p, PartOutput)]
    if len({p.part for p in done}) != expected:  # never a transcript with a hole in it
        return StageError.of(job_id, RuntimeError(f"{len(parts)} of {expected} parts came back"))
    results = [r for p in done for r in p.results]
    if not results:
        return StageError.of(job_id, MediaError("no speech detected in the audio track"))
    duration = max(p.end_s for p in done)  # the last part ends with the track
    transcript = merge_chunks(results, duration_s=duration)
    # Turns only when every part brought its windows: labels from a partial set would guess.
    windows = [p.speaker_windows for p in done]
    if all(w is not None for w in windows):
        transcript = assign_speakers(transcript, [x for w in windows for x in w or ()])
    return TranscribeOutput(job_id, transcript)


def split_parts(
    video: TranscribeInput, segment_s: float, board: Any = None
) -> list[TranscribePart]:
    """A video's parts of about `segment_s` (boundaries are moved to pauses by the actor)."""
    duration = video.duration_s
    count = max(1, round(duration / segment_s))
    return [
        TranscribePart(
            video,
            p,
            start_s=p * duration / count,
            end_s=(p + 1) * duration / count if p + 1 < count else None,
            board=board,
        )
        for p in range(count)
    ]


def _part_seconds(part: TranscribePart) -> float:
    end = part.end_s if part.end_s is not None else part.video.duration_s
    return end - part.start_s


class TranscribeStage(BaseStage[TranscribeInput, TranscribeOutput]):
    """Driver side of the transcribe stage."""

    name = "transcribe"
    missing = "video row not found"

    def configure(self, config: PipelineConfig, scorer: ScorerConfig | None) -> None:
        """Parts per actor call and the progress rows they update."""
        self.count = config.transcribe.asr_actors
        self.segment_s = config.transcribe.segment_s
        self.progress = ProgressWriter(self.lifecycle.pool)

    def actor_spec(self, settings: Settings, config: PipelineConfig) -> ActorSpec:
        """ASR actors (Whisper, and the speaker encoder with turns on), on GPUs if configured."""
        own: TranscribeConfig = config.transcribe
        return ActorSpec(
            AsrActor,
            (settings, own),
            own.asr_actors,
            own.asr_num_cpus,
            own.claim_batch_size,
            num_gpus=own.asr_num_gpus,
            # On CPUs an actor's CTranslate2 threads are a fixed share of the node (the cores
            # split over `asr_actors`, or `asr_cpu_threads`), so fewer actors than jobs leave
            # cores idle: one actor per job, not per `worker.work_per_actor` (two 10-minute
            # videos on one actor of one thread took twice as long, docs/capacity.md).
            work_per_actor=1 if own.asr_num_gpus == 0 else None,
            part_s=own.segment_s,  # a 2-hour video's parts run on every actor the pool has
        )

    def load(self, conn: Conn, jobs: Sequence[Job]) -> dict[int, TranscribeInput]:
        """Storage keys and duration of each job's video (one query)."""
        videos = get_videos(conn, video_ids=[j.video_id for j in jobs if j.video_id])
        return {
            j.id: TranscribeInput(
                job_id=j.id,
                audio_key=audio_key(v.id),
                original_key=v.original_key,
                duration_s=v.duration_s or 0.0,
            )
            for j in jobs
            if (v := videos.get(video_of(j))) is not None and v.original_key
        }

    def execute(
        self, inputs: Mapping[int, TranscribeInput]
    ) -> dict[int, TranscribeOutput | StageError | Exception]:
        """Spread the videos' parts over the ASR actors (longest first onto the least loaded)
        and merge each job's parts."""
        totals = {j: v.duration_s for j, v in inputs.items() if v.duration_s > 0}
        with self.progress.watch(totals) as board:
            return self._execute(inputs, board)

    def _execute(
        self, inputs: Mapping[int, TranscribeInput], board: Any
    ) -> dict[int, TranscribeOutput | StageError | Exception]:
        parts = [p for video in inputs.values() for p in split_parts(video, self.segment_s, board)]
        groups: list[list[TranscribePart]] = [[] for _ in range(self.count)]
        loads = [0.0] * self.count
        for part in sorted(parts, key=lambda p: -_part_seconds(p)):
            k = loads.index(min(loads))
            groups[k].append(part)
            loads[k] += _part_seconds(part) + 1.0
        groups = [sorted(g, key=lambda p: (p.job_id, p.part)) for g in groups if g]
        answers: dict[int, list[PartOutput | StageError]] = {}
        failures: dict[int, Exception] = {}
        for group, answer in zip(groups, self.actors.map("transcribe", groups), strict=True):
            if isinstance(answer, Exception):
                for part in group:
                    failures[part.job_id] = answer
            else:  # one answer per part, in the group's order (a short answer: merge_parts
                # then fails the jobs whose parts did not come back)
                for part, out in zip(group, answer, strict=False):
                    answers.setdefault(part.job_id, []).append(out)
        expected = Counter(p.job_id for p in parts)
        return {
            job_id: failures.get(job_id)
            or merge_parts(job_id, answers.get(job_id, []), expected[job_id])
            for job_id in inputs
        }

    def commit(self, job: Job, output: TranscribeOutput) -> JobResult:
        """Store the transcript (replacing any earlier one) and move the video on to detect."""
        transcript = output.transcript

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
