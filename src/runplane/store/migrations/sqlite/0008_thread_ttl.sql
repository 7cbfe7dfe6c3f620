-- A thread's time to live: ttl_minutes after it was last updated, the sweep deletes it
-- (ttl_strategy 'delete') or keeps only its latest checkpoint ('keep_latest'; ttl_swept_at
-- records that sweep, so that it is done once per update).
ALTER TABLE threads ADD COLUMN ttl_strategy TEXT;
ALTER TABLE threads ADD COLUMN ttl_minutes REAL;
ALTER TABLE threads ADD COLUMN ttl_swept_at REAL;
ALTER TABLE threads ADD COLUMN expires_at REAL
    GENERATED ALWAYS AS (updated_at + ttl_minutes * 60) VIRTUAL;
CREATE INDEX threads_expiry ON threads (expires_at) WHERE ttl_minutes IS NOT NULL;
