"""ClipForge pipelines."""
