"""The stage registry: the one place that lists the pipeline's stages, in pipeline order.

Everything that enumerates stages reads `STAGES`: the worker builds one driver per entry
(`pipelines.stages.base.build_stages`, which imports `driver`), `clipforge process` shows one
progress line per entry, the lifecycle fails a video for a failed job of any of them, backfills
accept the entries marked `backfill`, and the queue runner names the stage of a job kind with
`stage_of_kind`. It lives in the core package (plain data, no imports) because the queue runner
needs it and the core never imports `pipelines`; the driver classes are named by import path for
that reason. `tests/pipelines/test_stage_registry.py` fails if stage names are listed anywhere
else in the source folders.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StageInfo:
    """One pipeline stage.

    Attributes:
        name: the stage's job kind (a backfill's kinds carry a prefix: `backfill-detect`).
        label: its line in `clipforge process`'s progress.
        backfill: whether `python -m pipelines.batch.backfill --stage` can re-run it over stored videos.
        driver: ``module:Class`` of its driver side (a `pipelines.stages.base.BaseStage`).
    """

    name: str
    label: str
    backfill: bool
    driver: str

    @property
    def module(self) -> str:
        """The module of its driver, where its actor's class is defined too (the module an
        actor's process imports as it starts)."""
        return self.driver.partition(":")[0]


# In pipeline order: the worker's pools start a stage's first actor when the stage before it
# has work (`pipelines.engine.worker.PipelineWorker.scale_pools`).
STAGES: tuple[StageInfo, ...] = (
    StageInfo("import", "import", True, "pipelines.stages.importer:ImportStage"),
    StageInfo("transcribe", "transcribe", True, "pipelines.stages.transcribe:TranscribeStage"),
    StageInfo("detect", "find clips", True, "pipelines.stages.detect:DetectStage"),
    StageInfo("export", "render clips", False, "pipelines.stages.export:ExportStage"),
)
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
BACKFILL_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if s.backfill)


def stage_info(name: str) -> StageInfo:
    """The registry entry of stage `name` (KeyError for a name that is not a stage)."""
    for info in STAGES:
        if info.name == name:
            return info
    raise KeyError(f"no stage {name!r}; the stages are {', '.join(STAGE_NAMES)}")


def stage_of_kind(kind: str, prefix: str = "") -> str | None:
    """The stage a job kind runs, or None for a kind that is not a stage's (a webhook delivery).

    With `prefix`, only kinds of that family count (`backfill-` for a backfill's jobs); without,
    any family does: the kind is the stage's name, or a prefix ending in `-` and the name.
    """
    for name in STAGE_NAMES:
        if kind == prefix + name or (not prefix and kind.endswith("-" + name)):
            return name
    return None
