-- LangGraph checkpoints and pending writes (runplane.graphs.checkpointer). A checkpoint is
-- kept whole, as the graph's serializer wrote it (type + bytes); its metadata is JSON, for
-- list filters. thread_id refers to no thread row: a graph may checkpoint a thread the
-- store does not know; deleting a thread deletes its checkpoints in the same transaction.
-- run_id: the run that wrote the row (what a rollback deletes).
CREATE TABLE lg_checkpoints (
    thread_id            TEXT NOT NULL,
    checkpoint_ns        TEXT NOT NULL,
    checkpoint_id        TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    run_id               TEXT,
    type                 TEXT NOT NULL,
    checkpoint           BLOB NOT NULL,
    metadata             TEXT NOT NULL,
    created_at           REAL NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
) WITHOUT ROWID;
CREATE INDEX lg_checkpoints_run ON lg_checkpoints (run_id) WHERE run_id IS NOT NULL;

CREATE TABLE lg_writes (
    thread_id     TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    idx           INTEGER NOT NULL,
    task_path     TEXT NOT NULL,
    channel       TEXT NOT NULL,
    type          TEXT NOT NULL,
    value         BLOB NOT NULL,
    run_id        TEXT,
    created_at    REAL NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
) WITHOUT ROWID;
CREATE INDEX lg_writes_run ON lg_writes (run_id) WHERE run_id IS NOT NULL;
