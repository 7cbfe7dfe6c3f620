CREATE TABLE threads (
    thread_id   TEXT PRIMARY KEY,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}',
    values_json TEXT NOT NULL DEFAULT 'null',
    -- the run whose write produced values_json: rollback restores only its own changes
    values_run_id TEXT
);

CREATE TABLE runs (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id              TEXT NOT NULL UNIQUE,
    thread_id           TEXT REFERENCES threads(thread_id) ON DELETE CASCADE,
    assistant_id        TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN
                          ('pending', 'running', 'success', 'error', 'timeout', 'interrupted')),
    input               TEXT NOT NULL DEFAULT 'null',
    output              TEXT,
    error               TEXT,
    metadata            TEXT NOT NULL DEFAULT '{}',
    multitask_strategy  TEXT NOT NULL,
    created_at          REAL NOT NULL,
    updated_at          REAL NOT NULL,
    started_at          REAL,
    ended_at            REAL,
    attempt             INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    timeout             REAL,
    deadline_at         REAL,
    lease_owner         TEXT,
    lease_generation    INTEGER NOT NULL DEFAULT 0,
    lease_expires_at    REAL,
    step_index          INTEGER NOT NULL DEFAULT 0,
    last_event_seq      INTEGER NOT NULL DEFAULT 0,
    pre_run_values      TEXT,
    cancel_requested_at REAL,
    cancel_reason       TEXT,
    cancel_action       TEXT,
    cancel_requested_by TEXT,
    -- the lease generation the last cancel revoked (kept across resume)
    cancelled_generation INTEGER,
    root_run_id         TEXT NOT NULL,
    parent_run_id       TEXT
);

-- At most one running run per thread, whatever races happen above it.
CREATE UNIQUE INDEX runs_one_running_per_thread ON runs (thread_id) WHERE status = 'running';
CREATE INDEX runs_pending ON runs (seq) WHERE status = 'pending';
CREATE INDEX runs_thread_status ON runs (thread_id, status);
CREATE INDEX runs_lease_expiry ON runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX runs_root ON runs (root_run_id);

CREATE TABLE steps (
    run_id     TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL,
    name       TEXT NOT NULL,
    result     TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;

CREATE TABLE events (
    run_id     TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    event      TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
