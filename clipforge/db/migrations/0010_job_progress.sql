-- How far a running job has got, written by the driver while the job runs (the transcribe
-- stage: {"done_s": seconds of media transcribed, "total_s": the media's duration}). Advisory:
-- nothing depends on it but progress displays; a retried job starts it again.
ALTER TABLE jobs ADD COLUMN progress jsonb;
