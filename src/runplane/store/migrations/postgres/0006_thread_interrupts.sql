-- A graph thread paused by its last run (interrupt(), a breakpoint): its pending interrupts
-- ({task id: [{value, id}]}, '{}' at a breakpoint); NULL when not paused.
ALTER TABLE threads ADD COLUMN interrupts jsonb;
