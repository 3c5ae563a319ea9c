"""ClipForge serve_apps."""
