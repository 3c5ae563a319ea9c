"""ClipForge models."""
