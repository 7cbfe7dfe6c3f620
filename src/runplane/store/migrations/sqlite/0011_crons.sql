-- Crons: a run of an assistant (on a thread, or each on a thread of its own) created at
-- each time of a schedule. next_run_at is the next time to fire (NULL once past end_time);
-- firing it creates the run whose id is made of the cron's id and that time (the runs'
-- unique run_id: one run per scheduled time, whichever process fires it) and moves
-- next_run_at on, in one transaction.
CREATE TABLE crons (
    cron_id      TEXT PRIMARY KEY,
    assistant_id TEXT NOT NULL,
    thread_id    TEXT,
    schedule     TEXT NOT NULL,
    timezone     TEXT,
    payload      TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    end_time     REAL,
    enabled      INTEGER NOT NULL,
    next_run_at  REAL,
    owner        TEXT,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE INDEX crons_due ON crons (next_run_at) WHERE enabled = 1 AND next_run_at IS NOT NULL;
