"""Bounded batch work over stored videos: backfills (`python -m pipelines.batch.backfill`, the
queue engine or Ray Data in `data_backfill`) and the Parquet dataset export."""
