-- Speaker turns (models/speakers.py): who says each word, 0, 1, ... in order of first
-- appearance. NULL for transcripts stored before turns existed or made without them.
ALTER TABLE transcript_words ADD COLUMN speaker smallint CHECK (speaker >= 0);
