"""Transcribe stage: decode + VAD-chunk audio (tasks), batched ASR (actor pool), merge (driver).

Each audio chunk is its own row, so one long video's chunks spread over every ASR actor of the
cluster instead of waiting on one.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from clipforge.errors import MediaError
from clipforge.media import decode_audio
from clipforge.settings import Settings
from clipforge.storage import create_store
from clipforge.types import Transcript
from models.chunking import ChunkOptions, ChunkResult, merge_chunks, split_chunks
from pipelines.rows import Row, error_row, failure_of, pack, unpack


def chunk_rows(row: Row, *, settings: Settings, max_chunk_s: float) -> list[Row]:
    """Decode one video's audio and cut it at silences; one row per chunk (or one error row)."""
    job_id = int(row["job_id"])
    try:
        with tempfile.TemporaryDirectory(prefix="cf-audio-") as tmp:
            local = create_store(settings).download_file(row["original_key"], Path(tmp) / "src")
            audio = decode_audio(local)
        chunks = split_chunks(audio, ChunkOptions(max_chunk_s=max_chunk_s))
        if not chunks:
            raise MediaError("no speech detected in the audio track")
    except Exception as exc:  # reported on this job only; same columns as chunk rows
        failed = error_row(job_id, exc)
        return [
            {"job_id": job_id, "video_id": row["video_id"], "n_chunks": 0, "chunk": b"", **failed}
        ]
    return [
        {
            "job_id": job_id,
            "video_id": row["video_id"],
            "n_chunks": len(chunks),
            "chunk": pack(c),
            "error": "",
            "retryable": False,
        }
        for c in chunks
    ]


class AsrStage:
    """Ray Data callable class: one loaded Whisper model per actor, batched over chunk rows."""

    def __init__(self, settings: Settings, batch_size: int) -> None:
        from dataclasses import replace

        from models.asr import AsrConfig, AsrModel  # heavy: load inside the actor

        self.model = AsrModel(replace(AsrConfig.from_settings(settings), batch_size=batch_size))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """Transcribe the batch's chunks together; error rows pass through untouched."""
        errors = [str(e) for e in batch["error"]]
        retryable = [bool(r) for r in batch["retryable"]]
        todo = [i for i, e in enumerate(errors) if not e]
        results = [b""] * len(errors)
        try:
            done = self.model.transcribe_chunks([unpack(batch["chunk"][i]) for i in todo])
            for i, result in zip(todo, done, strict=True):
                results[i] = pack(result)
        except Exception as exc:  # fail these rows' jobs (retryable), keep the pipeline going
            for i in todo:
                errors[i], retryable[i] = f"{type(exc).__name__}: {exc}", True
        return {
            "job_id": batch["job_id"],
            "video_id": batch["video_id"],
            "n_chunks": batch["n_chunks"],
            "result": np.array(results, dtype=object),
            "error": np.array(errors, dtype=object),
            "retryable": np.array(retryable),
        }


def merge_rows(rows: Iterable[Row]) -> dict[int, Transcript | Exception]:
    """Group chunk results by job and merge each into one transcript (driver side)."""
    by_job: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        by_job[int(row["job_id"])].append(row)
    out: dict[int, Transcript | Exception] = {}
    for job_id, job_rows in by_job.items():
        failure = next((f for r in job_rows if (f := failure_of(r)) is not None), None)
        if failure is not None:
            out[job_id] = failure
            continue
        results: list[ChunkResult] = [unpack(r["result"]) for r in job_rows]
        if len(results) != int(job_rows[0]["n_chunks"]):
            out[job_id] = RuntimeError(
                f"{len(results)} of {job_rows[0]['n_chunks']} chunks came back"
            )
            continue
        out[job_id] = merge_chunks(results)
    return out
