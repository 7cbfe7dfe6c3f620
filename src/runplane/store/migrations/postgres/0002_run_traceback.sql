-- The formatted traceback of a run that ended in error (or where a timeout stopped it).
ALTER TABLE runs ADD COLUMN traceback text;
