-- Jobs delayed because a dependency (object storage, the database, the network) was down.
-- Such a job waits without spending attempts (see clipforge/queue/runner.py): `waiting_on` names
-- the dependency, `waiting_since` is when its current wait began (the retry horizon runs from
-- there), `dependency_waits` counts the delays so their backoff can grow. All three reset when
-- the job succeeds or fails for a reason of its own.
ALTER TABLE jobs
    ADD COLUMN waiting_on       text,
    ADD COLUMN waiting_since    timestamptz,
    ADD COLUMN dependency_waits integer NOT NULL DEFAULT 0 CHECK (dependency_waits >= 0);
