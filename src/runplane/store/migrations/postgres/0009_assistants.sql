-- Assistants made through the API: a workflow or graph with its own config, context,
-- metadata and name, in numbered versions; an assistant's fields are its current
-- version's (assistants.version, moved by an update or set_latest). A workflow's or a
-- graph's own assistant is the code's and has no row.
CREATE TABLE assistants (
    assistant_id text PRIMARY KEY,
    version      integer NOT NULL,
    owner        text,
    created_at   double precision NOT NULL,
    updated_at   double precision NOT NULL
);
CREATE TABLE assistant_versions (
    assistant_id text NOT NULL,
    version      integer NOT NULL,
    graph_id     text NOT NULL,
    name         text NOT NULL,
    description  text,
    config       jsonb NOT NULL,
    context      jsonb NOT NULL,
    metadata     jsonb NOT NULL,
    created_at   double precision NOT NULL,
    PRIMARY KEY (assistant_id, version)
);
CREATE INDEX assistants_owner ON assistants (owner, created_at);
-- The registered workflow (a graph's by its default assistant's id) that runs a run of an
-- assistant made through the API; NULL: the run's assistant_id names it.
ALTER TABLE runs ADD COLUMN workflow text;
CREATE INDEX runs_active_by_assistant ON runs (assistant_id)
    WHERE status IN ('pending', 'running');
