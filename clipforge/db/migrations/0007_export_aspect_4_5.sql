-- The 4:5 output preset (1080x1350, pipelines/render.py PRESETS) beside 9:16, 1:1 and 16:9.
-- The check was declared inline in 0001, so Postgres named it exports_aspect_ratio_check.
ALTER TABLE exports DROP CONSTRAINT exports_aspect_ratio_check;
ALTER TABLE exports
    ADD CONSTRAINT exports_aspect_ratio_check
        CHECK (aspect_ratio IN ('9:16', '4:5', '1:1', '16:9'));
