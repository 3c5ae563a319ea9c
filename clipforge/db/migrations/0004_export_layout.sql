-- Who an export's crop follows (clipforge.types.Layout; pipelines/reframe.py): `auto`, `speaker`,
-- `split` or `center`. Exports stored before face tracking existed read as `auto`, the default.
ALTER TABLE exports
    ADD COLUMN layout text NOT NULL DEFAULT 'auto'
        CHECK (layout IN ('auto', 'speaker', 'split', 'center'));
