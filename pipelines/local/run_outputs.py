"""The output folder of one video: `transcript.json`, `clips.json`, `source.*`, `report.html`.

Its one writer. `clipforge process` (`pipelines/local/one_video.py`, from the rows the queue stages
committed) and `clipforge.process(local=True)` (`pipelines/local/notebook.py`, from the clips rendered in
process) both describe each clip with `clip_doc` and write the folder with `write_run_outputs`,
so readers of `clips.json` (the report, notebooks, users' scripts) see one shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clipforge.storage.base import ObjectStore
from pipelines.local.report import copy_source, render_report


def clip_doc(
    *,
    rank: int,
    start: float,
    end: float,
    score: float,
    sub_scores: Mapping[str, float],
    reason: str,
    title: str,
    hook: str,
    model: str,
    model_version: str,
    export_status: str | None,
    export_error: str | None,
    layout: str | None,
    files: Mapping[str, str],
) -> dict[str, Any]:
    """One entry of `clips.json`; `files` maps mp4/thumbnail/srt/vtt/ass to paths relative to
    the output folder (empty when the clip has no ready export)."""
    return {
        "rank": rank,
        "start": start,
        "end": end,
        "score": score,
        "sub_scores": dict(sub_scores),
        "reason": reason,
        "title": title,
        "hook": hook,
        "model": model,
        "model_version": model_version,
        "export_status": export_status,
        "export_error": export_error,
        "layout": layout,
        "files": dict(files),
    }


def write_run_outputs(
    out_dir: Path,
    *,
    source: str,
    transcript: Mapping[str, Any],
    clips: Sequence[Mapping[str, Any]],
    timeline: Sequence[Sequence[float]],
    store: ObjectStore | None = None,
    original_key: str | None = None,
    studio_url: str | None = None,
) -> None:
    """Write transcript.json, clips.json, the source (beside the report, so its transcript can
    seek it: from `store` at `original_key` when the source is not a local file) and
    report.html into `out_dir`; the clips' own files are already under `out_dir/clips/`."""
    (out_dir / "transcript.json").write_text(json.dumps(transcript, indent=2))
    (out_dir / "clips.json").write_text(json.dumps(list(clips), indent=2))
    source_video = copy_source(out_dir, source, store, original_key)
    (out_dir / "report.html").write_text(
        render_report(
            source=source,
            transcript=transcript,
            clips=clips,
            timeline=timeline,
            root=out_dir,
            source_video=source_video,
            studio_url=studio_url,
        )
    )
