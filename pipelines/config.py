"""Pipeline configuration (`configs/pipeline.yaml`), validated with pydantic."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from clipforge.errors import ConfigError
from clipforge.stages import STAGE_NAMES
from clipforge.types import AspectRatio, CaptionStyle, Layout

# Keys renamed since earlier releases: (section, old) -> new. Old files and overrides still load.
_RENAMED = {
    ("transcribe", "asr_actors_max"): "asr_actors",
    ("detect", "torch_threads"): "encoder_threads",  # the encoder left torch (2026-12-06)
}
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pipeline.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkerConfig(_Section):
    """Queue worker tunables. Attempts, leases and backoff are process settings (QUEUE_*,
    `clipforge.queue.QueuePolicy`), the same for every runner of the process."""

    claim_batch_size: int = Field(8, ge=1, le=100)
    idle_poll_s: float = Field(5, gt=0)
    # Elastic stage pools (pipelines.engine.worker): a stage's actors grow with its queued work, one
    # per `work_per_actor` jobs up to the stage's `actors`, and shrink to `pool_min_actors`
    # once idle `pool_idle_s`; the queue is looked at every `pool_poll_s`. With
    # `warm_next_stage` a stage's first actor starts as soon as the stage before it has work.
    work_per_actor: int = Field(2, ge=1)
    warm_next_stage: bool = True
    pool_min_actors: int = Field(1, ge=0)
    pool_idle_s: float = Field(60, gt=0)
    pool_poll_s: float = Field(0.5, gt=0)
    # A pool starts its next actor only once the one before has loaded: two model loads side
    # by side on a small node slowed both (docs/capacity.md, issue #31). An actor waiting for a
    # node counts as loading, so a pool asks the autoscaler for one node at a time.
    one_load_per_pool: bool = True
    # Stages whose calls one process serves (each group one pool of processes, sized to the
    # stages' needs added up, each stage within its own `actors`): import and export wait on
    # ffmpeg and storage and load no model, so sharing saves a process and its boot.
    shared_pools: tuple[tuple[str, ...], ...] = ()

    @model_validator(mode="after")
    def _shared_groups(self) -> WorkerConfig:
        seen: list[str] = []
        for group in self.shared_pools:
            unknown = [s for s in group if s not in STAGE_NAMES]
            if unknown:
                raise ValueError(f"worker.shared_pools: {unknown} are not stages ({STAGE_NAMES})")
            if len(group) < 2:
                raise ValueError("worker.shared_pools: a group shares between 2 or more stages")
            if set(group) & set(seen):
                raise ValueError("worker.shared_pools: a stage is in one group at most")
            seen += group
        return self


class ImportConfig(_Section):
    """Import stage limits and its actors (fetch, probe, audio track extraction, upload).

    The size and time limits of a source fetch are process settings (MAX_SOURCE_BYTES,
    FETCH_TIMEOUT_S), since the API enforces the same size on uploads.
    """

    actors: int = Field(1, ge=1)
    num_cpus: float = Field(0.25, gt=0)
    claim_batch_size: int = Field(2, ge=1, le=100)
    max_duration_s: float = Field(4 * 3600, gt=0)


class TranscribeConfig(_Section):
    """The warm ASR actors (each streams its videos' audio track: decode, VAD, batched ASR)."""

    asr_actors: int = Field(1, ge=1)  # older files call it asr_actors_max (see _RENAMED)
    asr_num_cpus: float = Field(1, gt=0)
    asr_cpu_threads: int = Field(0, ge=0)
    asr_num_gpus: float = Field(0, ge=0)
    asr_batch_size: int = Field(4, ge=1)
    max_chunk_s: float = Field(30, gt=1, le=30)
    claim_batch_size: int = Field(8, ge=1, le=100)
    segment_s: float = Field(600, ge=60)
    # speaker turns (models/speakers.py): voice embeddings every 0.2 s of speech in the ASR actor
    speaker_turns: bool = True


class AutoExportConfig(_Section):
    """Exports enqueued automatically when detection finishes: the `top_n` best clips that have
    a strong signal (`models.highlight_reason.has_strong_signal`); weak clips are never exported."""

    enabled: bool = False
    top_n: int = Field(3, ge=1)
    aspect_ratio: AspectRatio = "9:16"
    caption_style: CaptionStyle = "auto"
    layout: Layout = "auto"  # who the crop follows (clipforge.types.Layout)


class DetectConfig(_Section):
    """Highlight scoring and clip selection."""

    num_cpus: float = Field(1, gt=0)
    actors: int = Field(1, ge=1)
    encoder_threads: int = Field(0, ge=0)  # older files call it torch_threads (see _RENAMED)
    claim_batch_size: int = Field(2, ge=1, le=100)
    frames_fps: float = Field(1.0, gt=0, le=10)
    frames_width: int = Field(160, ge=32, le=640)
    # Frames held for the visual features; longer sources are sampled more sparsely so memory
    # stays bounded (3600 frames of 160 px: about 200 MB).
    max_frames: int = Field(3600, ge=2)
    top_k: int = Field(5, ge=1, le=50)
    min_clip_s: float = Field(15, gt=0)
    max_clip_s: float = Field(60, gt=0)
    scorer_config: Path | None = None
    auto_export: AutoExportConfig = AutoExportConfig()


class ExportConfig(_Section):
    """Rendering of clip exports."""

    actors: int = Field(1, ge=1)
    num_cpus: float = Field(1, gt=0)
    claim_batch_size: int = Field(2, ge=1, le=100)
    # Output presets (pipelines/render/clip.py PRESETS) have a 1080 short side; less for drafts.
    short_side: int = Field(1080, ge=144, le=2160)
    crf: int = Field(23, ge=0, le=51)
    # x264 speed at the 1080x1920 preset: ultrafast with CABAC and the deblocking filter back on
    # (a quarter smaller files, no block edges, for ~10% more encode time) costs less than
    # veryfast did at 720x1280 (benchmarks/pipeline_throughput.py --export-bench).
    preset: str = "ultrafast"
    x264_params: str = "cabac=1:deblock=0,0"
    loudness_lufs: float = Field(-16, le=-5, ge=-40)
    # False: every export takes the motion-following crop of earlier versions whatever its
    # layout (an escape hatch; `center` stays a centre crop). Face tracking costs about one
    # extra decode of the clip at a few frames per second (benchmarks/pipeline_throughput.py).
    face_tracking: bool = True


class BackfillConfig(_Section):
    """The Ray Data backfill (`python -m pipelines.batch.backfill --engine data`): a detect actor
    pool that grows from `min_actors` to `max_actors` (Ray Data places them on any node with
    room; each takes `detect.num_cpus`), fed `batch_size` videos per call; the driver commits
    `write_batch_size` videos per transaction."""

    min_actors: int = Field(1, ge=1)
    max_actors: int = Field(2, ge=1)
    batch_size: int = Field(4, ge=1, le=256)
    write_batch_size: int = Field(16, ge=1, le=1000)

    @model_validator(mode="after")
    def _pool_bounds(self) -> BackfillConfig:
        if self.max_actors < self.min_actors:
            raise ValueError("backfill.max_actors must be >= backfill.min_actors")
        return self


class PipelineConfig(_Section):
    """The whole pipeline configuration."""

    worker: WorkerConfig = WorkerConfig()
    import_: ImportConfig = Field(ImportConfig(), alias="import")
    transcribe: TranscribeConfig = TranscribeConfig()
    detect: DetectConfig = DetectConfig()
    export: ExportConfig = ExportConfig()
    backfill: BackfillConfig = BackfillConfig()

    def save(self, path: Path) -> Path:
        """Write as YAML that `load_pipeline_config(path)` reads back equal (section names as
        the file spells them, `import` included); returns `path`, for `--config` and
        CLIPFORGE_PIPELINE_CONFIG."""
        path.write_text(yaml.safe_dump(self.model_dump(mode="json", by_alias=True)))
        return path


def load_pipeline_config(path: Path | None = None, **overrides: object) -> PipelineConfig:
    """Read and validate the YAML file (default `configs/pipeline.yaml`), then apply overrides."""
    source = path or DEFAULT_CONFIG
    try:
        data = yaml.safe_load(source.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read pipeline config {source}: {exc}") from None
    for (section, old), new in _RENAMED.items():
        if old in data.get(section, {}):
            data[section][new] = data[section].pop(old)
    for dotted, value in overrides.items():
        section, _, key = dotted.partition("__")
        data.setdefault(section, {})[_RENAMED.get((section, key), key)] = value
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid pipeline config {source}: {exc}") from None
