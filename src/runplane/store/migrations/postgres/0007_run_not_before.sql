-- A delayed run (after_seconds): no worker claims it before this time.
ALTER TABLE runs ADD COLUMN not_before double precision;
CREATE INDEX runs_delayed ON runs (not_before) WHERE status = 'pending' AND not_before IS NOT NULL;
