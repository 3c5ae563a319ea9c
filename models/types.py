"""Re-export of the shared result types (defined in the core so the database layer can use them)."""

from clipforge.types import ModelInfo, Segment, Transcript, Word

__all__ = ["ModelInfo", "Segment", "Transcript", "Word"]
