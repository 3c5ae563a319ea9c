"""The stage engine's driver: `clipforge worker` (`main`) and `PipelineWorker` (`worker`), which
claims jobs and runs every stage of `pipelines.stages` on its warm actors. Imports `stages`;
nothing under `stages` or `render` imports it."""
