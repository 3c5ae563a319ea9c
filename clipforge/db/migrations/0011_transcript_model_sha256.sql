-- The full sha256 of the ASR weights that made a transcript (the version string carries only
-- its first 12 hex digits). Transcripts stored before this migration read back with ''.
ALTER TABLE transcripts ADD COLUMN model_sha256 text NOT NULL DEFAULT '';
