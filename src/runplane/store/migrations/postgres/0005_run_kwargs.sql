-- How a graph run is to run (config, context, stream modes, ...), as JSON; '{}' for a workflow's.
ALTER TABLE runs ADD COLUMN kwargs jsonb NOT NULL DEFAULT '{}';
