-- Crons: a run of an assistant (on a thread, or each on a thread of its own) created at
-- each time of a schedule. next_run_at is the next time to fire (NULL once past end_time);
-- firing it creates the run whose id is made of the cron's id and that time (the runs'
-- unique run_id: one run per scheduled time, whichever process fires it) and moves
-- next_run_at on, in one transaction.
CREATE TABLE crons (
    cron_id      text PRIMARY KEY,
    assistant_id text NOT NULL,
    thread_id    text,
    schedule     text NOT NULL,
    timezone     text,
    payload      jsonb NOT NULL,
    metadata     jsonb NOT NULL,
    end_time     double precision,
    enabled      boolean NOT NULL,
    next_run_at  double precision,
    owner        text,
    created_at   double precision NOT NULL,
    updated_at   double precision NOT NULL
);
CREATE INDEX crons_due ON crons (next_run_at) WHERE enabled AND next_run_at IS NOT NULL;
