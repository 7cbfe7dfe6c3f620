CREATE TABLE threads (
    thread_id     text PRIMARY KEY,
    created_at    double precision NOT NULL,
    updated_at    double precision NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}',
    values_json   jsonb NOT NULL DEFAULT 'null',
    -- the run whose write produced values_json: rollback restores only its own changes
    values_run_id text
);

CREATE TABLE runs (
    seq                  bigserial PRIMARY KEY,
    run_id               text NOT NULL UNIQUE,
    thread_id            text REFERENCES threads (thread_id) ON DELETE CASCADE,
    assistant_id         text NOT NULL,
    status               text NOT NULL CHECK (status IN
                           ('pending', 'running', 'success', 'error', 'timeout', 'interrupted')),
    input                jsonb NOT NULL DEFAULT 'null',
    output               jsonb,
    error                text,
    metadata             jsonb NOT NULL DEFAULT '{}',
    multitask_strategy   text NOT NULL,
    created_at           double precision NOT NULL,
    updated_at           double precision NOT NULL,
    started_at           double precision,
    ended_at             double precision,
    attempt              integer NOT NULL DEFAULT 0,
    max_attempts         integer NOT NULL,
    timeout              double precision,
    deadline_at          double precision,
    lease_owner          text,
    lease_generation     bigint NOT NULL DEFAULT 0,
    lease_expires_at     double precision,
    step_index           integer NOT NULL DEFAULT 0,
    last_event_seq       bigint NOT NULL DEFAULT 0,
    pre_run_values       jsonb,
    cancel_requested_at  double precision,
    cancel_reason        text,
    cancel_action        text,
    cancel_requested_by  text,
    -- the lease generation the last cancel revoked (kept across resume)
    cancelled_generation bigint,
    root_run_id          text NOT NULL,
    parent_run_id        text
);

-- At most one running run per thread, whatever races happen above it.
CREATE UNIQUE INDEX runs_one_running_per_thread ON runs (thread_id) WHERE status = 'running';
CREATE INDEX runs_pending ON runs (seq) WHERE status = 'pending';
CREATE INDEX runs_thread_status ON runs (thread_id, status);
CREATE INDEX runs_lease_expiry ON runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX runs_root ON runs (root_run_id);

CREATE TABLE steps (
    run_id     text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    idx        integer NOT NULL,
    name       text NOT NULL,
    result     jsonb NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (run_id, idx)
);

CREATE TABLE events (
    run_id     text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    event      text NOT NULL,
    data       jsonb NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (run_id, seq)
);
