-- Edits of clips by people (PATCH/POST /v1/clips, PUT /v1/clips/{id}/words).
-- `edited`: a person changed the clip's bounds or words, or made the clip; a detect re-run keeps
-- such clips (and their exports) instead of replacing them. `origin` says who chose the span.
-- `original_*_s`: detection's bounds, kept when a person moves them (NULL for made clips).
ALTER TABLE clips
    ADD COLUMN edited boolean NOT NULL DEFAULT false,
    ADD COLUMN origin text NOT NULL DEFAULT 'detect' CHECK (origin IN ('detect', 'user')),
    ADD COLUMN original_start_s double precision,
    ADD COLUMN original_end_s double precision;

-- Caption corrections: the text a person wants shown for a transcript word (by its index in
-- transcript_words) in this clip's captions. An overlay: the transcript keeps what was heard.
CREATE TABLE clip_word_edits (
    clip_id   uuid NOT NULL REFERENCES clips (id) ON DELETE CASCADE,
    word_idx  integer NOT NULL CHECK (word_idx >= 0),
    text      text NOT NULL CHECK (length(text) BETWEEN 1 AND 200),
    PRIMARY KEY (clip_id, word_idx)
);
