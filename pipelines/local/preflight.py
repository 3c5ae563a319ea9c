"""What `clipforge process` checks before it starts anything.

A user error (a bad option, an output folder that cannot be written, a missing, empty or
non-media source) must cost well under a second and end in one clear line, not a traceback after
Ray and the embedded Postgres have started. Nothing here imports Ray or touches the database.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from clipforge.errors import ValidationFailed
from clipforge.fetch import check_url, parse_networks
from clipforge.media import probe, require_clip_source
from clipforge.settings import Settings
from clipforge.types import ASPECT_RATIOS, CAPTION_STYLES, LAYOUTS


@dataclass(frozen=True, slots=True)
class CheckedSource:
    """A source that passed the checks.

    Attributes:
        kind: ``url`` (fetched by the import stage, SSRF-checked again there) or ``file``.
        location: the URL, or the file's absolute path.
    """

    kind: Literal["url", "file"]
    location: str


def check_options(
    *, aspect_ratio: str, caption_style: str, top_k: int, layout: str = "auto"
) -> None:
    """Refuse an unknown aspect ratio, caption style or layout, or a clip count outside 1..20."""
    if aspect_ratio not in ASPECT_RATIOS:
        raise ValidationFailed(f"aspect ratio must be one of {', '.join(ASPECT_RATIOS)}")
    if caption_style not in CAPTION_STYLES:
        raise ValidationFailed(f"caption style must be one of {', '.join(CAPTION_STYLES)}")
    if layout not in LAYOUTS:
        raise ValidationFailed(f"layout must be one of {', '.join(LAYOUTS)}")
    if not 1 <= top_k <= 20:
        raise ValidationFailed("the number of clips must be between 1 and 20")


# What a run writes into its output folder (besides `clipforge.log`, which only grows, and
# `source.*`). A folder holding any of them belongs to another run.
RUN_OUTPUTS = ("clips.json", "transcript.json", "report.html", "clips")


def earlier_outputs(out_dir: Path) -> list[str]:
    """Names of another run's outputs in `out_dir` (`clips/` with its slash)."""
    found = [name for name in RUN_OUTPUTS if (out_dir / name).exists()]
    return [f"{name}/" if (out_dir / name).is_dir() else name for name in found]


def clear_outputs(out_dir: Path, *, keep: Path | None = None) -> None:
    """Remove another run's outputs from `out_dir`: the run outputs and `source.*` (the
    preview copy of the source), never `keep` (the source itself, if it lies there)."""
    doomed = [out_dir / name for name in RUN_OUTPUTS] + sorted(out_dir.glob("source.*"))
    for path in doomed:
        if keep is not None and path.exists() and path.resolve() == keep.resolve():
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def check_out_dir(out_dir: Path, *, overwrite: bool = False, source: Path | None = None) -> Path:
    """Create `out_dir` if needed and prove it writable by writing a file there.

    A folder that holds another run's outputs is refused, before anything in it is touched,
    unless `overwrite`: then those outputs are removed (but not `source`, the input file).
    """
    path = out_dir.expanduser()
    if path.exists() and not path.is_dir():
        raise ValidationFailed(f"output folder {out_dir} exists and is not a folder")
    if path.is_dir() and (found := earlier_outputs(path)):
        if not overwrite:
            raise ValidationFailed(
                f"output folder {out_dir} holds another run's outputs ({', '.join(found)}); "
                "pass --overwrite (overwrite=True in Python) to replace them, or choose "
                "another --out"
            )
        try:
            clear_outputs(path, keep=source)
        except OSError as exc:
            raise ValidationFailed(
                f"cannot clear the old outputs in {out_dir}: {exc.strerror or exc}"
            ) from None
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".clipforge-write-test-"):
            pass
    except OSError as exc:
        raise ValidationFailed(
            f"cannot write to output folder {out_dir}: {exc.strerror or exc}"
        ) from None
    return path.resolve()


def check_source(source: str, settings: Settings) -> CheckedSource:
    """A URL must point at an allowed address; a file must exist, hold bytes and audio."""
    if source.startswith(("http://", "https://")):
        check_url(source, allowed=parse_networks(settings.fetch_allow_cidrs))
        return CheckedSource("url", source)
    path = Path(source).expanduser()
    if not path.is_file():
        raise ValidationFailed(f"{source} is not a file or an http(s) URL")
    if not os.access(path, os.R_OK):
        raise ValidationFailed(f"{source} is not readable")
    # EmptyMedia / CorruptMedia / NoAudioStream / NoVideoStream, with the file's name: the same
    # rules the import stage applies, found here before anything starts.
    require_clip_source(probe(path), path)
    return CheckedSource("file", str(path.resolve()))
