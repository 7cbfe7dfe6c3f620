-- LangGraph checkpoints and pending writes (runplane.graphs.checkpointer). A checkpoint is
-- kept whole, as the graph's serializer wrote it (type + bytes); its metadata is jsonb, for
-- list filters. thread_id refers to no thread row: a graph may checkpoint a thread the
-- store does not know; deleting a thread deletes its checkpoints in the same transaction.
-- run_id: the run that wrote the row (what a rollback deletes). Ids compare bytewise
-- (COLLATE "C"): checkpoint ids sort by time that way, newest last, whatever the locale.
CREATE TABLE lg_checkpoints (
    thread_id            text COLLATE "C" NOT NULL,
    checkpoint_ns        text COLLATE "C" NOT NULL,
    checkpoint_id        text COLLATE "C" NOT NULL,
    parent_checkpoint_id text COLLATE "C",
    run_id               text,
    type                 text NOT NULL,
    checkpoint           bytea NOT NULL,
    metadata             jsonb NOT NULL,
    created_at           double precision NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE INDEX lg_checkpoints_run ON lg_checkpoints (run_id) WHERE run_id IS NOT NULL;

CREATE TABLE lg_writes (
    thread_id     text COLLATE "C" NOT NULL,
    checkpoint_ns text COLLATE "C" NOT NULL,
    checkpoint_id text COLLATE "C" NOT NULL,
    task_id       text COLLATE "C" NOT NULL,
    idx           integer NOT NULL,
    task_path     text COLLATE "C" NOT NULL,
    channel       text NOT NULL,
    type          text NOT NULL,
    value         bytea NOT NULL,
    run_id        text,
    created_at    double precision NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
CREATE INDEX lg_writes_run ON lg_writes (run_id) WHERE run_id IS NOT NULL;
