-- Threads and runs belong to the owner (API key) that created them; NULL: no owner.
ALTER TABLE threads ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN owner TEXT;
CREATE INDEX threads_owner ON threads (owner, created_at);
CREATE INDEX runs_owner ON runs (owner, seq);
