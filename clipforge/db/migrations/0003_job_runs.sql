-- Jobs that belong to a run (a backfill): only a worker of that run claims them, so two runs
-- of the same job kind never take each other's jobs, and a resumed run finds exactly its own.
-- NULL for ordinary pipeline jobs, which any worker of their kind may claim.
ALTER TABLE jobs ADD COLUMN run_id text;
CREATE INDEX jobs_run_idx ON jobs (run_id, state) WHERE run_id IS NOT NULL;
