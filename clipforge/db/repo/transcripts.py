"""Transcripts with segments and word timings. Writes replace, so re-running a stage never duplicates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from clipforge.db.pool import Conn
from clipforge.types import ModelInfo, Segment, Transcript, Word


def replace_transcript(conn: Conn, *, video_id: uuid.UUID, transcript: Transcript) -> None:
    """Store `transcript` for the video, replacing any earlier one (batched inserts)."""
    conn.execute("DELETE FROM transcripts WHERE video_id = %s", (video_id,))
    conn.execute(
        """INSERT INTO transcripts
               (video_id, language, duration_s, text, model_name, model_version, model_sha256)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (
            video_id,
            transcript.language,
            transcript.duration,
            transcript.text,
            transcript.model.name,
            transcript.model.version,
            transcript.model.sha256,
        ),
    )
    segments = [(video_id, i, s.start, s.end, s.text) for i, s in enumerate(transcript.segments)]
    words: list[tuple[object, ...]] = []
    for seg_idx, segment in enumerate(transcript.segments):
        for word in segment.words:
            words.append(
                (
                    video_id,
                    len(words),
                    seg_idx,
                    word.start,
                    word.end,
                    word.text,
                    word.probability,
                    word.speaker,
                )
            )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO transcript_segments (video_id, idx, start_s, end_s, text) VALUES (%s, %s, %s, %s, %s)",
            segments,
        )
        cur.executemany(
            """INSERT INTO transcript_words
                   (video_id, idx, segment_idx, start_s, end_s, word, probability, speaker)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
            words,
        )


def get_transcript(conn: Conn, *, video_id: uuid.UUID) -> Transcript | None:
    """The stored transcript (three indexed queries, no N+1), or None."""
    return get_transcripts(conn, video_ids=[video_id]).get(video_id)


def get_transcripts(conn: Conn, *, video_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Transcript]:
    """The stored transcripts of these videos, by video id: three queries for the whole batch."""
    ids = list(video_ids)
    heads = conn.execute("SELECT * FROM transcripts WHERE video_id = ANY(%s)", (ids,)).fetchall()
    if not heads:
        return {}
    seg_rows = conn.execute(
        """SELECT video_id, idx, start_s, end_s, text FROM transcript_segments
           WHERE video_id = ANY(%s) ORDER BY video_id, idx""",
        (ids,),
    ).fetchall()
    word_rows = conn.execute(
        """SELECT video_id, segment_idx, start_s, end_s, word, probability, speaker
           FROM transcript_words
           WHERE video_id = ANY(%s) ORDER BY video_id, idx""",
        (ids,),
    ).fetchall()
    words: dict[tuple[uuid.UUID, int], list[Word]] = {}
    for w in word_rows:
        words.setdefault((w["video_id"], w["segment_idx"]), []).append(
            Word(
                start=w["start_s"],
                end=w["end_s"],
                text=w["word"],
                probability=float(w["probability"]),
                speaker=w["speaker"],
            )
        )
    segments: dict[uuid.UUID, list[Segment]] = {}
    for s in seg_rows:
        segments.setdefault(s["video_id"], []).append(
            Segment(
                start=s["start_s"],
                end=s["end_s"],
                text=s["text"],
                words=tuple(words.get((s["video_id"], s["idx"]), ())),
            )
        )
    return {h["video_id"]: _transcript(h, segments.get(h["video_id"], [])) for h in heads}


def _transcript(head: dict[str, Any], segments: list[Segment]) -> Transcript:
    model = ModelInfo(
        name=head["model_name"], version=head["model_version"], sha256=head["model_sha256"]
    )
    return Transcript(
        language=head["language"],
        duration=head["duration_s"],
        segments=tuple(segments),
        model=model,
    )
