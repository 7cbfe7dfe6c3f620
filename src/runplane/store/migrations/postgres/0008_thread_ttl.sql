-- A thread's time to live: ttl_minutes after it was last updated, the sweep deletes it
-- (ttl_strategy 'delete') or keeps only its latest checkpoint ('keep_latest'; ttl_swept_at
-- records that sweep, so that it is done once per update).
ALTER TABLE threads ADD COLUMN ttl_strategy text;
ALTER TABLE threads ADD COLUMN ttl_minutes double precision;
ALTER TABLE threads ADD COLUMN ttl_swept_at double precision;
ALTER TABLE threads ADD COLUMN expires_at double precision
    GENERATED ALWAYS AS (updated_at + ttl_minutes * 60) STORED;
CREATE INDEX threads_expiry ON threads (expires_at) WHERE ttl_minutes IS NOT NULL;
