"""ClipForge core: settings, database and job queue, storage, cache, metrics, logging, CLI."""

__version__ = "0.1.0"
