-- Assistants made through the API: a workflow or graph with its own config, context,
-- metadata and name, in numbered versions; an assistant's fields are its current
-- version's (assistants.version, moved by an update or set_latest). A workflow's or a
-- graph's own assistant is the code's and has no row.
CREATE TABLE assistants (
    assistant_id TEXT PRIMARY KEY,
    version      INTEGER NOT NULL,
    owner        TEXT,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE TABLE assistant_versions (
    assistant_id TEXT NOT NULL,
    version      INTEGER NOT NULL,
    graph_id     TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    config       TEXT NOT NULL,
    context      TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    created_at   REAL NOT NULL,
    PRIMARY KEY (assistant_id, version)
);
CREATE INDEX assistants_owner ON assistants (owner, created_at);
-- The registered workflow (a graph's by its default assistant's id) that runs a run of an
-- assistant made through the API; NULL: the run's assistant_id names it.
ALTER TABLE runs ADD COLUMN workflow TEXT;
CREATE INDEX runs_active_by_assistant ON runs (assistant_id)
    WHERE status IN ('pending', 'running');
