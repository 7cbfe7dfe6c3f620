-- The PostgreSQL store's statements, by name (see runplane/store/queries.py). JSON columns
-- are jsonb, sent and read as text (asyncpg's default), decoded by runplane.store.rows.
--
-- Lock order, which every transaction keeps so that none can deadlock another: a tree's
-- root row before the rest of the tree, and the runs of a batch in creation order (seq),
-- as sweeps lock them. A thread's row is locked before its runs (multitask decisions).
-- The checkpoint tables come after runs: a checkpoint write shares its one run's row before
-- it writes them, a thread's delete deletes its runs before its checkpoints.

-- ===== threads ==============================================================

-- name: get_thread
SELECT t.*,
       EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id
                AND r.status IN ('pending', 'running')) AS busy,
       (SELECT r.status FROM runs r WHERE r.thread_id = t.thread_id AND r.ended_at IS NOT NULL
         ORDER BY r.ended_at DESC, r.seq DESC LIMIT 1) AS last_status
  FROM threads t
 WHERE t.thread_id = $1

-- name: threads_with_status
-- Every thread with its status: what thread search filters (a WHERE built from the
-- query) and sorts. The status rule is runplane.store.rows.thread_status.
SELECT *, CASE WHEN busy THEN 'busy'
               WHEN interrupts IS NOT NULL OR last_status = 'interrupted' THEN 'interrupted'
               WHEN last_status IN ('error', 'timeout') THEN 'error'
               ELSE 'idle' END AS status
  FROM (SELECT t.*,
               EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id
                        AND r.status IN ('pending', 'running')) AS busy,
               (SELECT r.status FROM runs r
                 WHERE r.thread_id = t.thread_id AND r.ended_at IS NOT NULL
                 ORDER BY r.ended_at DESC, r.seq DESC LIMIT 1) AS last_status
          FROM threads t) t

-- name: insert_thread
-- Answers true if inserted, nothing if the thread existed.
INSERT INTO threads (thread_id, created_at, updated_at, metadata, owner, ttl_strategy,
                     ttl_minutes)
VALUES ($1, $2, $2, $3::jsonb, $4, $5, $6)
ON CONFLICT (thread_id) DO NOTHING
RETURNING true

-- name: copy_thread
-- Thread $1 as a new thread $2 (its metadata, values, pending interrupts and time to
-- live), owned by $4; answers nothing if $1 does not exist.
INSERT INTO threads (thread_id, created_at, updated_at, metadata, owner, values_json,
                     interrupts, ttl_strategy, ttl_minutes)
SELECT $2, $3, $3, metadata, $4, values_json, interrupts, ttl_strategy, ttl_minutes
  FROM threads WHERE thread_id = $1
RETURNING true

-- name: thread_metadata_for_update
SELECT metadata FROM threads WHERE thread_id = $1 FOR UPDATE

-- name: update_thread_metadata
UPDATE threads SET metadata = $2::jsonb, updated_at = $3 WHERE thread_id = $1

-- name: tag_thread
-- A graph run's tags ($2: graph_id, assistant_id) onto a thread that says no graph yet.
UPDATE threads SET metadata = metadata || $2::jsonb, updated_at = $3
 WHERE thread_id = $1 AND NOT metadata ? 'graph_id'

-- name: set_thread_ttl
UPDATE threads SET ttl_strategy = $2, ttl_minutes = $3, updated_at = $4 WHERE thread_id = $1

-- name: expired_threads
-- Threads past their time to live, not yet swept since their last update, with no run
-- pending or running (a run on the thread takes its row lock first: none starts while
-- the sweep holds it), the first to expire first.
SELECT thread_id, ttl_strategy FROM threads t
 WHERE ttl_minutes IS NOT NULL AND expires_at <= $1
   AND (ttl_swept_at IS NULL OR ttl_swept_at < updated_at)
   AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id
                    AND r.status IN ('pending', 'running'))
 ORDER BY expires_at LIMIT $2
   FOR UPDATE SKIP LOCKED

-- name: mark_ttl_swept
UPDATE threads SET ttl_swept_at = $2 WHERE thread_id = $1

-- name: delete_thread
DELETE FROM threads WHERE thread_id = $1 RETURNING true

-- name: thread_owner_for_update
-- The thread's row lock serialises multitask decisions on that thread.
SELECT owner FROM threads WHERE thread_id = $1 FOR UPDATE

-- name: active_runs_of_thread
SELECT run_id FROM runs WHERE thread_id = $1 AND status IN ('pending', 'running') ORDER BY seq

-- name: set_values
UPDATE threads SET values_json = $2::jsonb, values_run_id = $3, updated_at = $4
 WHERE thread_id = $1

-- name: set_interrupts
UPDATE threads SET interrupts = $2::jsonb
 WHERE thread_id = $1 AND interrupts IS DISTINCT FROM $2::jsonb

-- name: rollback_values
-- Rollback restores the snapshot only while the thread's values are still this run's own
-- writes: values a newer run wrote since are never overwritten with an older snapshot.
UPDATE threads SET values_json = $2::jsonb, values_run_id = NULL, updated_at = $3
 WHERE thread_id = $1 AND values_run_id = $4

-- ===== runs, service side ===================================================

-- name: get_run
SELECT * FROM runs WHERE run_id = $1

-- name: get_run_for_update
SELECT * FROM runs WHERE run_id = $1 FOR UPDATE

-- name: insert_run
-- Answers nothing if a run has the id already.
INSERT INTO runs (run_id, thread_id, assistant_id, status, input, metadata, multitask_strategy,
                  created_at, updated_at, max_attempts, timeout, root_run_id, parent_run_id,
                  last_event_seq, owner, kwargs, not_before, workflow)
VALUES ($1, $2, $3, 'pending', $4::jsonb, $5::jsonb, $6, $7, $7, $8, $9, $10, $11, 1, $12,
        $13::jsonb, $14, $15)
ON CONFLICT (run_id) DO NOTHING
RETURNING *

-- name: create_threadless
-- Runs without a thread, or on a thread made for them ($15: its id, $16: its metadata),
-- have no multitask rule to apply: a batch of them is inserted (with their threads),
-- logged and signalled (one NOTIFY for all, $17 the channel) in one statement. A run whose
-- id another run has is left out, with its thread: it is missing from the answer.
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::float8[], $7::int[], $8::float8[], $9::text[], $10::text[],
                         $11::text[], $12::text[], $13::text[], $14::float8[], $15::text[],
                         $16::text[])
        WITH ORDINALITY AS i(w_run, w_assistant, w_input, w_metadata, w_strategy, w_now,
                             w_max_attempts, w_timeout, w_root, w_parent, w_created, w_owner,
                             w_kwargs, w_not_before, w_thread, w_thread_metadata, w_order)
), r AS (
    INSERT INTO runs (run_id, thread_id, assistant_id, status, input, metadata,
                      multitask_strategy, created_at, updated_at, max_attempts, timeout,
                      root_run_id, parent_run_id, last_event_seq, owner, kwargs, not_before)
    SELECT w_run, w_thread, w_assistant, 'pending', w_input::jsonb, w_metadata::jsonb,
           w_strategy, w_now, w_now, w_max_attempts, w_timeout, w_root, w_parent, 1, w_owner,
           w_kwargs::jsonb, w_not_before
      FROM i ORDER BY w_order
    ON CONFLICT (run_id) DO NOTHING
    RETURNING *
), t AS (
    -- (the runs' foreign key is checked at the end of the statement, with these rows in)
    INSERT INTO threads (thread_id, created_at, updated_at, metadata, owner)
    SELECT w_thread, w_now, w_now, w_thread_metadata::jsonb, w_owner
      FROM i JOIN r ON r.run_id = i.w_run WHERE w_thread IS NOT NULL ORDER BY w_order
), e AS (
    INSERT INTO events (run_id, seq, event, data, created_at)
    SELECT r.run_id, 1, 'run:created', i.w_created::jsonb, i.w_now
      FROM r JOIN i ON i.w_run = r.run_id
)
SELECT r.* FROM r, (SELECT pg_notify($17, '')) AS signal

-- name: insert_event
INSERT INTO events (run_id, seq, event, data, created_at) VALUES ($1, $2, $3, $4::jsonb, $5)

-- name: cancel
UPDATE runs
   SET status = 'interrupted',
       cancelled_generation = lease_generation,
       lease_generation = lease_generation + 1,
       cancel_requested_at = $2, cancel_reason = $3, cancel_action = $4,
       cancel_requested_by = $5,
       step_index = CASE WHEN $4 = 'rollback' THEN 0 ELSE step_index END,
       ended_at = $2, updated_at = $2,
       last_event_seq = last_event_seq + 1
 WHERE run_id = $1 AND status IN ('pending', 'running')
RETURNING *

-- name: delete_steps
DELETE FROM steps WHERE run_id = $1

-- name: lock_tree_root
-- A sweep holds its tree's root: spawns in the tree (which share it) wait, or finished.
SELECT 1 FROM runs WHERE run_id = $1 FOR UPDATE

-- name: share_tree_root
-- A spawn shares its tree's root until it commits: a sweep waits for it.
SELECT 1 FROM runs WHERE run_id = $1 FOR KEY SHARE

-- name: get_tree
SELECT * FROM runs WHERE root_run_id = $1 ORDER BY seq

-- name: get_tree_for_update
SELECT * FROM runs WHERE root_run_id = $1 ORDER BY seq FOR UPDATE

-- name: count_active_in_tree
SELECT count(*) FROM runs WHERE root_run_id = $1 AND status IN ('pending', 'running')

-- name: resume
UPDATE runs
   SET status = 'pending', attempt = 0, ended_at = NULL, deadline_at = NULL,
       lease_owner = NULL, lease_expires_at = NULL,
       cancel_requested_at = NULL, cancel_reason = NULL, cancel_action = NULL,
       cancel_requested_by = NULL, updated_at = $2, last_event_seq = last_event_seq + 1
 WHERE run_id = $1 AND status = 'interrupted'
RETURNING *

-- name: delete_run
DELETE FROM runs WHERE run_id = $1

-- name: list_runs
-- Newest first; a NULL filter matches every run ($7: a prefix of the run id; $8, $9:
-- created at or after, and before; $10: documents one of which the run's thread's metadata,
-- a thread-less run's own, contains).
SELECT * FROM runs
 WHERE ($2::text IS NULL OR status = $2) AND ($1::text IS NULL OR thread_id = $1)
   AND ($5::text IS NULL OR owner = $5) AND ($6::text IS NULL OR assistant_id = $6)
   AND ($7::text IS NULL OR left(run_id, length($7)) = $7)
   AND ($8::float8 IS NULL OR created_at >= $8) AND ($9::float8 IS NULL OR created_at < $9)
   AND ($10::jsonb IS NULL OR EXISTS (
        SELECT 1 FROM jsonb_array_elements($10::jsonb) AS a(doc)
         WHERE coalesce((SELECT t.metadata FROM threads t WHERE t.thread_id = runs.thread_id),
                        runs.metadata) @> a.doc))
 ORDER BY seq DESC LIMIT $3 OFFSET $4

-- name: count_runs
-- How many runs of each status match list_runs' other filters, numbered in their order
-- ($1 thread, $2 owner, $3 assistant, $4 id prefix, $5 and $6 creation times, $7
-- metadata documents).
SELECT status, count(*) AS n FROM runs
 WHERE ($1::text IS NULL OR thread_id = $1)
   AND ($2::text IS NULL OR owner = $2) AND ($3::text IS NULL OR assistant_id = $3)
   AND ($4::text IS NULL OR left(run_id, length($4)) = $4)
   AND ($5::float8 IS NULL OR created_at >= $5) AND ($6::float8 IS NULL OR created_at < $6)
   AND ($7::jsonb IS NULL OR EXISTS (
        SELECT 1 FROM jsonb_array_elements($7::jsonb) AS a(doc)
         WHERE coalesce((SELECT t.metadata FROM threads t WHERE t.thread_id = runs.thread_id),
                        runs.metadata) @> a.doc))
 GROUP BY status

-- name: orphaned_runs
-- Active attached children whose parent ended success, error or timeout.
SELECT * FROM runs WHERE run_id IN (
    SELECT c.run_id FROM runs c
      JOIN runs p ON p.run_id = c.parent_run_id AND p.root_run_id = c.root_run_id
     WHERE c.status IN ('pending', 'running') AND p.status IN ('success', 'error', 'timeout')
) ORDER BY seq

-- name: run_marks
SELECT run_id, status, lease_owner, last_event_seq FROM runs WHERE run_id = ANY($1::text[])

-- name: copy_steps
-- Run $2 takes up where run $1 paused: $1's stored steps become $2's.
INSERT INTO steps (run_id, idx, name, result, created_at)
SELECT $2, idx, name, result, created_at FROM steps WHERE run_id = $1

-- name: insert_step
INSERT INTO steps (run_id, idx, name, result, created_at) VALUES ($1, $2, $3, $4::jsonb, $5)

-- name: take_up_run
-- ... and $1's input, with $3 steps (the copied ones and the answer) behind it.
UPDATE runs SET input = (SELECT p.input FROM runs p WHERE p.run_id = $1), step_index = $3
 WHERE run_id = $2

-- name: get_steps
SELECT * FROM steps WHERE run_id = $1 ORDER BY idx

-- name: steps_of_runs
SELECT * FROM steps WHERE run_id = ANY($1::text[]) ORDER BY run_id, idx

-- name: get_events
SELECT * FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq

-- ===== runs, worker side ====================================================

-- name: claimable
-- Pending runs of these workflows in creation order, one per thread (none of a thread
-- with a running run or an older pending one), none of the excluded, none delayed past
-- now (the last parameter); locked, skipping
-- the runs another claim holds.
SELECT r.run_id FROM runs r
 WHERE r.status = 'pending'
   AND coalesce(r.workflow, r.assistant_id) = ANY($1::text[])
   AND r.run_id <> ALL($3::text[])
   AND (r.not_before IS NULL OR r.not_before <= $4)
   AND (r.thread_id IS NULL OR (
        NOT EXISTS (SELECT 1 FROM runs x WHERE x.thread_id = r.thread_id AND x.status = 'running')
        AND NOT EXISTS (SELECT 1 FROM runs y WHERE y.thread_id = r.thread_id
                         AND y.status = 'pending' AND y.seq < r.seq)))
 ORDER BY r.seq
 LIMIT $2
   FOR UPDATE SKIP LOCKED

-- name: claim
-- The thread's values are kept as they were before the run (pre_run_values), for a
-- rollback; a re-claim of a run whose own writes are the thread's values keeps its first.
UPDATE runs
   SET status = 'running', lease_owner = $2, lease_generation = lease_generation + 1,
       lease_expires_at = $3, attempt = attempt + 1,
       started_at = COALESCE(started_at, $4), deadline_at = COALESCE(deadline_at, $4 + timeout),
       pre_run_values = (
           SELECT CASE WHEN runs.pre_run_values IS NOT NULL AND t.values_run_id = runs.run_id
                       THEN runs.pre_run_values ELSE t.values_json END
             FROM threads t WHERE t.thread_id = runs.thread_id),
       last_event_seq = last_event_seq + 1, updated_at = $4
 WHERE run_id = $1 AND status = 'pending'
RETURNING *

-- name: claim_batch
-- The whole claim in one statement: lock (as "claimable"), lease (as "claim") and log
-- run:start. Two runs of one thread never qualify together, but a concurrent claim can
-- still meet the "one running run per thread" index: the statement then fails whole and
-- the claim goes run by run. $1 workflows, $2 worker, $3 lease expiry, $4 now, $5 limit,
-- $6 excluded runs.
WITH c AS (
    SELECT r.run_id AS c_run, r.seq AS c_seq FROM runs r
     WHERE r.status = 'pending'
       AND coalesce(r.workflow, r.assistant_id) = ANY($1::text[])
       AND r.run_id <> ALL($6::text[])
       AND (r.not_before IS NULL OR r.not_before <= $4)
       AND (r.thread_id IS NULL OR (
            NOT EXISTS (SELECT 1 FROM runs x WHERE x.thread_id = r.thread_id
                         AND x.status = 'running')
            AND NOT EXISTS (SELECT 1 FROM runs y WHERE y.thread_id = r.thread_id
                             AND y.status = 'pending' AND y.seq < r.seq)))
     ORDER BY r.seq
     LIMIT $5
       FOR UPDATE SKIP LOCKED
), u AS (
    UPDATE runs
       SET status = 'running', lease_owner = $2, lease_generation = lease_generation + 1,
           lease_expires_at = $3, attempt = attempt + 1,
           started_at = COALESCE(started_at, $4),
           deadline_at = COALESCE(deadline_at, $4 + timeout),
           pre_run_values = (
               SELECT CASE WHEN runs.pre_run_values IS NOT NULL AND t.values_run_id = runs.run_id
                           THEN runs.pre_run_values ELSE t.values_json END
                 FROM threads t WHERE t.thread_id = runs.thread_id),
           last_event_seq = last_event_seq + 1, updated_at = $4
      FROM c WHERE runs.run_id = c.c_run
    RETURNING c.c_seq, runs.*
), e AS (
    INSERT INTO events (run_id, seq, event, data, created_at)
    SELECT run_id, last_event_seq, 'run:start',
           jsonb_build_object('attempt', attempt, 'worker', $2::text), $4
      FROM u
)
SELECT * FROM u ORDER BY c_seq

-- name: fail_pending
-- A pending run that cannot be claimed ends error without being started.
UPDATE runs SET status = 'error', error = $2, ended_at = $3, updated_at = $3,
       last_event_seq = last_event_seq + 1
 WHERE run_id = $1 AND status = 'pending'
RETURNING last_event_seq

-- name: renew_leases
-- $2 and $3: the run ids and generations of the leases, side by side.
WITH l AS (  -- lock the rows in creation order, as sweeps do: no lock-order deadlock
    SELECT r.run_id, r.lease_generation FROM runs r WHERE r.run_id = ANY($2::text[])
     ORDER BY r.seq FOR UPDATE OF r
)
UPDATE runs r SET lease_expires_at = $1
  FROM unnest($2::text[], $3::bigint[]) AS h(run_id, generation), l
 WHERE r.run_id = h.run_id AND l.run_id = h.run_id AND r.status = 'running'
   AND r.lease_generation = h.generation
RETURNING r.run_id, r.lease_generation

-- name: held_leases
SELECT run_id, lease_generation FROM runs WHERE run_id = ANY($1::text[]) AND status = 'running'

-- name: release_lease
-- The cancel that stopped generation G left the run at G + 1; a later claim moves it on,
-- and then the lease is someone else's to release.
UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL
 WHERE run_id = $1 AND lease_generation = $2 + 1 AND status <> 'running'

-- name: expired_leases
SELECT run_id, attempt, max_attempts, deadline_at, lease_owner FROM runs
 WHERE status = 'running' AND lease_expires_at < $1
   FOR UPDATE SKIP LOCKED

-- name: reap
UPDATE runs
   SET status = $2, error = $3, lease_owner = NULL, lease_expires_at = NULL,
       lease_generation = lease_generation + 1,
       ended_at = CASE WHEN $2 = 'pending' THEN NULL ELSE $4 END,
       updated_at = $4, last_event_seq = last_event_seq + 1
 WHERE run_id = $1 AND status = 'running' AND lease_expires_at < $4
RETURNING last_event_seq

-- name: step_stored
SELECT true FROM steps WHERE run_id = $1 AND idx = $2

-- name: requeue
-- $4: how many events the hand-back logs. The attempt does not count.
UPDATE runs
   SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
       lease_generation = lease_generation + 1, attempt = GREATEST(attempt - 1, 0),
       updated_at = $3, last_event_seq = last_event_seq + $4
 WHERE run_id = $1 AND status = 'running' AND lease_generation = $2
RETURNING last_event_seq

-- name: step_cancel_seq
-- The sequence number for step:cancel of the step in flight when generation $2 was
-- revoked; nothing if that step was stored after all or the run was claimed again since.
UPDATE runs SET last_event_seq = last_event_seq + 1, updated_at = $4
 WHERE run_id = $1 AND lease_generation = $2 + 1 AND status <> 'running'
   AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.run_id = runs.run_id AND s.idx = $3)
RETURNING last_event_seq

-- Workflow writes arrive in batches (runplane/store/batch.py): one statement fences,
-- writes and logs every write of a batch, one row of unnest per write and at most one per
-- run; it answers the run ids whose write the fence let through. Every batch statement
-- first locks its runs in creation order, as sweeps do (root, then the tree by seq):
-- however a batch and a sweep overlap, they cannot deadlock. Each signals the runs it
-- wrote on the runs channel (the next-to-last parameter), for other processes' watchers.

-- name: append_events
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::text[], $5::text[],
                         $6::text[])
        AS i(w_run, w_gen, w_now, w_event, w_data, w_values)
), l AS (
    SELECT runs.run_id AS l_run FROM runs JOIN i ON runs.run_id = i.w_run
     ORDER BY runs.seq FOR UPDATE OF runs
), r AS (
    UPDATE runs SET last_event_seq = last_event_seq + 1, updated_at = i.w_now
      FROM i JOIN l ON l.l_run = i.w_run
     WHERE runs.run_id = i.w_run
       AND (i.w_gen IS NULL OR (runs.status = 'running' AND runs.lease_generation = i.w_gen))
    RETURNING runs.run_id, runs.thread_id, runs.last_event_seq, i.*
), e AS (
    INSERT INTO events (run_id, seq, event, data, created_at)
    SELECT run_id, last_event_seq, w_event, w_data::jsonb, w_now FROM r
), t AS (
    -- w_values: the thread's values when they are not w_data ('null': unchanged; see
    -- rows.thread_values)
    UPDATE threads SET values_json = COALESCE(r.w_values, r.w_data)::jsonb,
                       values_run_id = r.run_id, updated_at = r.w_now
      FROM r WHERE r.w_event = 'values' AND threads.thread_id = r.thread_id
       AND r.w_values IS DISTINCT FROM 'null'
)
SELECT run_id, pg_notify($7, $8 || run_id) FROM r

-- name: complete_steps
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::float8[],
                         $6::text[]) AS i(w_run, w_gen, w_idx, w_name, w_now, w_result)
), l AS (
    SELECT runs.run_id AS l_run FROM runs JOIN i ON runs.run_id = i.w_run
     ORDER BY runs.seq FOR UPDATE OF runs
), r AS (
    UPDATE runs SET step_index = step_index + 1, last_event_seq = last_event_seq + 1,
                    updated_at = i.w_now
      FROM i JOIN l ON l.l_run = i.w_run
     WHERE runs.run_id = i.w_run AND runs.status = 'running'
       AND runs.lease_generation = i.w_gen AND runs.step_index = i.w_idx
    RETURNING runs.run_id, runs.last_event_seq, i.*
), s AS (
    INSERT INTO steps (run_id, idx, name, result, created_at)
    SELECT run_id, w_idx, w_name, w_result::jsonb, w_now FROM r
), e AS (
    INSERT INTO events (run_id, seq, event, data, created_at)
    SELECT run_id, last_event_seq, 'step:complete',
           jsonb_build_object('name', w_name, 'index', w_idx, 'result', w_result::jsonb), w_now
      FROM r
)
SELECT run_id, pg_notify($7, $8 || run_id) FROM r

-- name: finish_runs
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                         $6::float8[], $7::text[], $8::text[], $9::text[], $10::text[],
                         $11::text[])
        AS i(w_run, w_gen, w_status, w_output, w_error, w_now, w_event, w_data, w_traceback,
             w_values, w_interrupts)
), l AS (
    SELECT runs.run_id AS l_run FROM runs JOIN i ON runs.run_id = i.w_run
     ORDER BY runs.seq FOR UPDATE OF runs
), r AS (
    UPDATE runs
       SET status = i.w_status, output = i.w_output::jsonb, error = i.w_error,
           traceback = i.w_traceback, ended_at = i.w_now, updated_at = i.w_now,
           lease_owner = NULL, lease_expires_at = NULL, last_event_seq = last_event_seq + 1
      FROM i JOIN l ON l.l_run = i.w_run
     WHERE runs.run_id = i.w_run AND runs.status = 'running' AND runs.lease_generation = i.w_gen
    RETURNING runs.run_id, runs.thread_id, runs.last_event_seq, i.*
), e AS (
    INSERT INTO events (run_id, seq, event, data, created_at)
    SELECT run_id, last_event_seq, w_event, w_data::jsonb, w_now FROM r
), t AS (
    -- a success's output becomes the thread's values (w_values: see append_events); any
    -- end sets the thread's pending interrupts (NULL: not paused)
    UPDATE threads
       SET values_json = CASE WHEN r.updates_values
                              THEN COALESCE(r.w_values, r.w_output)::jsonb
                              ELSE threads.values_json END,
           values_run_id = CASE WHEN r.updates_values THEN r.run_id
                                ELSE threads.values_run_id END,
           updated_at = CASE WHEN r.updates_values THEN r.w_now ELSE threads.updated_at END,
           interrupts = r.w_interrupts::jsonb
      FROM (SELECT *, w_status = 'success' AND w_output::jsonb <> 'null'::jsonb
                      AND w_values IS DISTINCT FROM 'null' AS updates_values FROM r) r
     WHERE threads.thread_id = r.thread_id
)
SELECT run_id, pg_notify($12, $13 || run_id) FROM r

-- ===== LangGraph checkpoints ================================================
-- (runplane.graphs.checkpointer; tables in migrations/*/0004_graph_checkpoints.sql)

-- name: share_held_run
-- The fence of a checkpoint write: the run is running under this lease generation. Its
-- row is shared until the write commits, so a cancel or a takeover (which update it) waits
-- for the write, or the write, waiting for them, sees their change and is refused.
SELECT 1 FROM runs WHERE run_id = $1 AND status = 'running' AND lease_generation = $2
   FOR SHARE

-- name: upsert_checkpoint
-- A checkpoint put again (same thread, namespace and id) replaces the stored one.
INSERT INTO lg_checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                            run_id, type, checkpoint, metadata, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE
   SET parent_checkpoint_id = excluded.parent_checkpoint_id, run_id = excluded.run_id,
       type = excluded.type, checkpoint = excluded.checkpoint, metadata = excluded.metadata,
       created_at = excluded.created_at

-- name: upsert_checkpoint_write
-- A task's write stored twice is kept once (its first); a special channel's (negative idx:
-- error, interrupt, ...) is replaced, as LangGraph's savers do.
INSERT INTO lg_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path,
                       channel, type, value, run_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE
   SET task_path = excluded.task_path, channel = excluded.channel, type = excluded.type,
       value = excluded.value, run_id = excluded.run_id, created_at = excluded.created_at
 WHERE excluded.idx < 0

-- name: put_checkpoints_batch
-- Fenced checkpoints of several runs (group commit: upsert_checkpoint's columns as arrays,
-- one checkpoint per run), each behind its own run's fence ($10, $11: the run and lease
-- generation), which it holds (FOR SHARE) until the commit. Answers the runs whose
-- checkpoint was kept.
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::bytea[], $8::text[], $9::float8[], $10::text[],
                         $11::bigint[])
        AS i(w_thread, w_ns, w_id, w_parent, w_run, w_type, w_checkpoint, w_metadata, w_now,
             w_fence_run, w_fence_gen)
), f AS (
    SELECT runs.run_id AS f_run FROM runs JOIN i ON runs.run_id = i.w_fence_run
     WHERE runs.status = 'running' AND runs.lease_generation = i.w_fence_gen
     ORDER BY runs.seq FOR SHARE OF runs
), kept AS (
    INSERT INTO lg_checkpoints (thread_id, checkpoint_ns, checkpoint_id,
                                parent_checkpoint_id, run_id, type, checkpoint, metadata,
                                created_at)
    SELECT w_thread, w_ns, w_id, w_parent, w_run, w_type, w_checkpoint, w_metadata::jsonb,
           w_now
      FROM i JOIN f ON f.f_run = i.w_fence_run
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE
       SET parent_checkpoint_id = excluded.parent_checkpoint_id, run_id = excluded.run_id,
           type = excluded.type, checkpoint = excluded.checkpoint,
           metadata = excluded.metadata, created_at = excluded.created_at
)
SELECT f_run FROM f

-- name: put_checkpoint_writes_batch
-- Fenced pending writes of several runs (group commit: upsert_checkpoint_write's columns
-- as arrays, one row per write, each with its run's fence, $12 and $13; one task's writes
-- per run), as put_checkpoints_batch. Answers the runs whose writes were kept.
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
                         $6::text[], $7::text[], $8::text[], $9::text[], $10::float8[],
                         $11::bytea[], $12::text[], $13::bigint[])
        AS i(w_thread, w_ns, w_id, w_task, w_idx, w_path, w_channel, w_type, w_run, w_now,
             w_value, w_fence_run, w_fence_gen)
), f AS (
    SELECT runs.run_id AS f_run FROM runs
      JOIN (SELECT DISTINCT w_fence_run, w_fence_gen FROM i) g
        ON runs.run_id = g.w_fence_run AND runs.lease_generation = g.w_fence_gen
     WHERE runs.status = 'running'
     ORDER BY runs.seq FOR SHARE OF runs
), kept AS (
    INSERT INTO lg_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path,
                           channel, type, value, run_id, created_at)
    SELECT w_thread, w_ns, w_id, w_task, w_idx, w_path, w_channel, w_type, w_value, w_run,
           w_now
      FROM i JOIN f ON f.f_run = i.w_fence_run
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE
       SET task_path = excluded.task_path, channel = excluded.channel, type = excluded.type,
           value = excluded.value, run_id = excluded.run_id, created_at = excluded.created_at
     WHERE excluded.idx < 0
)
SELECT f_run FROM f

-- name: get_checkpoint
-- One checkpoint, or ($3 NULL) the newest of the thread's namespace.
SELECT * FROM lg_checkpoints
 WHERE thread_id = $1 AND checkpoint_ns = $2 AND ($3::text IS NULL OR checkpoint_id = $3)
 ORDER BY checkpoint_id DESC LIMIT 1

-- name: list_checkpoints
-- Newest first; a NULL filter matches every checkpoint. $5: metadata every top-level key of
-- which must be equal (a JSON object).
SELECT * FROM lg_checkpoints c
 WHERE ($1::text IS NULL OR c.thread_id = $1) AND ($2::text IS NULL OR c.checkpoint_ns = $2)
   AND ($3::text IS NULL OR c.checkpoint_id = $3) AND ($4::text IS NULL OR c.checkpoint_id < $4)
   AND NOT EXISTS (SELECT 1 FROM jsonb_each($5::jsonb) f
                    WHERE c.metadata -> f.key IS DISTINCT FROM f.value)
 ORDER BY c.checkpoint_id DESC
 LIMIT $6

-- name: writes_of_checkpoints
-- The pending writes of checkpoints $1, $2, $3 (their threads, namespaces and ids, side by
-- side), in the order LangGraph applies them (langgraph's writes_sort_key).
SELECT w.* FROM unnest($1::text[], $2::text[], $3::text[]) AS k(thread_id, ns, id)
  JOIN lg_writes w ON w.thread_id = k.thread_id AND w.checkpoint_ns = k.ns
                  AND w.checkpoint_id = k.id
 ORDER BY w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_path, w.task_id, w.idx

-- name: delete_thread_checkpoints
DELETE FROM lg_checkpoints WHERE thread_id = $1

-- name: delete_thread_writes
DELETE FROM lg_writes WHERE thread_id = $1

-- name: delete_run_writes
-- The writes these runs made, and every write of the checkpoints they made.
DELETE FROM lg_writes w
 WHERE w.run_id = ANY($1::text[])
    OR EXISTS (SELECT 1 FROM lg_checkpoints c
                WHERE c.run_id = ANY($1::text[]) AND c.thread_id = w.thread_id
                  AND c.checkpoint_ns = w.checkpoint_ns AND c.checkpoint_id = w.checkpoint_id)

-- name: delete_run_checkpoints
DELETE FROM lg_checkpoints WHERE run_id = ANY($1::text[])

-- name: copy_thread_checkpoints
-- Thread $1's checkpoints as thread $2's; any $2 has with the same id is kept.
INSERT INTO lg_checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                            run_id, type, checkpoint, metadata, created_at)
SELECT $2, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, type, checkpoint,
       metadata, created_at
  FROM lg_checkpoints WHERE thread_id = $1
ON CONFLICT DO NOTHING

-- name: copy_thread_writes
INSERT INTO lg_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path,
                       channel, type, value, run_id, created_at)
SELECT $2, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, type, value,
       run_id, created_at
  FROM lg_writes WHERE thread_id = $1
ON CONFLICT DO NOTHING

-- name: prune_writes
-- The writes of threads $1 but those of each namespace's newest checkpoint ($2 true), or all.
DELETE FROM lg_writes w
 WHERE w.thread_id = ANY($1::text[])
   AND (NOT $2::boolean OR w.checkpoint_id < (
        SELECT max(c.checkpoint_id) FROM lg_checkpoints c
         WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns))

-- name: prune_checkpoints
-- The checkpoints of threads $1 but each namespace's newest ($2 true), or all.
DELETE FROM lg_checkpoints x
 WHERE x.thread_id = ANY($1::text[])
   AND (NOT $2::boolean OR x.checkpoint_id < (
        SELECT max(c.checkpoint_id) FROM lg_checkpoints c
         WHERE c.thread_id = x.thread_id AND c.checkpoint_ns = x.checkpoint_ns))

-- ===== signals ==============================================================

-- name: notify
-- Delivered when the transaction commits (and not at all if it rolls back).
SELECT pg_notify($1, $2)

-- ===== assistants ===========================================================

-- name: insert_assistant
-- Answers true if inserted, nothing if an assistant of this id exists.
INSERT INTO assistants (assistant_id, version, owner, created_at, updated_at)
VALUES ($1, 1, $2, $3, $3)
ON CONFLICT (assistant_id) DO NOTHING
RETURNING true

-- name: insert_assistant_version
INSERT INTO assistant_versions (assistant_id, version, graph_id, name, description, config,
                                context, metadata, created_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9)

-- name: get_assistant
-- An assistant with its current version's fields.
SELECT a.assistant_id, a.version, a.owner, a.created_at, a.updated_at, v.graph_id, v.name,
       v.description, v.config, v.context, v.metadata
  FROM assistants a JOIN assistant_versions v
    ON v.assistant_id = a.assistant_id AND v.version = a.version
 WHERE a.assistant_id = $1

-- name: get_assistant_for_update
-- The assistant's row lock serialises its updates, set_latest, its deletion and (shared)
-- the creation of its runs.
SELECT a.assistant_id, a.version, a.owner, a.created_at, a.updated_at, v.graph_id, v.name,
       v.description, v.config, v.context, v.metadata
  FROM assistants a JOIN assistant_versions v
    ON v.assistant_id = a.assistant_id AND v.version = a.version
 WHERE a.assistant_id = $1
   FOR UPDATE OF a

-- name: share_assistant
-- A run of the assistant is being created: it exists, and its deletion waits until the
-- commit (then sees the run).
SELECT 1 FROM assistants WHERE assistant_id = $1 FOR SHARE

-- name: search_assistants
-- $1 owner, $2 graph id, $3 a part of the name (any case), $4 metadata every top-level key
-- of which must be equal; NULL matches every assistant.
SELECT a.assistant_id, a.version, a.owner, a.created_at, a.updated_at, v.graph_id, v.name,
       v.description, v.config, v.context, v.metadata
  FROM assistants a JOIN assistant_versions v
    ON v.assistant_id = a.assistant_id AND v.version = a.version
 WHERE ($1::text IS NULL OR a.owner = $1) AND ($2::text IS NULL OR v.graph_id = $2)
   AND ($3::text IS NULL OR strpos(lower(v.name), lower($3)) > 0)
   AND NOT EXISTS (SELECT 1 FROM jsonb_each($4::jsonb) f
                    WHERE v.metadata -> f.key IS DISTINCT FROM f.value)
 ORDER BY a.created_at, a.assistant_id

-- name: assistant_versions
-- Newest first; $2: metadata as in search_assistants.
SELECT v.*, v.created_at AS updated_at, NULL AS owner FROM assistant_versions v
 WHERE v.assistant_id = $1
   AND NOT EXISTS (SELECT 1 FROM jsonb_each($2::jsonb) f
                    WHERE v.metadata -> f.key IS DISTINCT FROM f.value)
 ORDER BY v.version DESC
 LIMIT $3 OFFSET $4

-- name: has_assistant_version
SELECT true FROM assistant_versions WHERE assistant_id = $1 AND version = $2

-- name: last_assistant_version
SELECT max(version) FROM assistant_versions WHERE assistant_id = $1

-- name: set_assistant_version
UPDATE assistants SET version = $2, updated_at = $3 WHERE assistant_id = $1

-- name: active_runs_of_assistant
SELECT run_id FROM runs
 WHERE assistant_id = $1 AND status IN ('pending', 'running') ORDER BY seq

-- name: threads_of_assistant
-- The threads that say they are the assistant's (metadata.assistant_id), $2: of this owner.
SELECT thread_id, metadata FROM threads
 WHERE metadata ->> 'assistant_id' = $1 AND ($2::text IS NULL OR owner = $2)

-- name: delete_assistant_versions
DELETE FROM assistant_versions WHERE assistant_id = $1

-- name: delete_assistant
DELETE FROM assistants WHERE assistant_id = $1

-- ===== the memory store (items) =============================================

-- name: put_item
INSERT INTO store_items (owner, namespace, key, value, created_at, updated_at, ttl_minutes,
                         expires_at)
VALUES ($1, $2, $3, $4::jsonb, $5::double precision, $5, $6::double precision,
        $5 + $6 * 60)
ON CONFLICT (owner, namespace, key) DO UPDATE
   SET value = excluded.value, updated_at = excluded.updated_at,
       ttl_minutes = excluded.ttl_minutes, expires_at = excluded.expires_at

-- name: get_item
SELECT * FROM store_items
 WHERE owner = $1 AND namespace = $2 AND key = $3 AND (expires_at IS NULL OR expires_at > $4)

-- name: refresh_item
-- A read gives an item with a time to live its whole time again.
UPDATE store_items SET expires_at = $4 + ttl_minutes * 60
 WHERE owner = $1 AND namespace = $2 AND key = $3 AND ttl_minutes IS NOT NULL

-- name: delete_item
DELETE FROM store_items WHERE owner = $1 AND namespace = $2 AND key = $3

-- name: search_items
-- $2: the namespace prefix ('' for every namespace); $4: an object every top-level key of
-- which the value must equal; the most recently updated first, $5 of them (NULL: all)
-- from $6.
SELECT * FROM store_items i
 WHERE i.owner = $1
   AND ($2 = '' OR i.namespace = $2 OR left(i.namespace, length($2) + 1) = $2 || '.')
   AND (i.expires_at IS NULL OR i.expires_at > $3)
   AND NOT EXISTS (SELECT 1 FROM jsonb_each($4::jsonb) f
                    WHERE i.value -> f.key IS DISTINCT FROM f.value)
 ORDER BY i.updated_at DESC, i.namespace, i.key
 LIMIT $5 OFFSET $6

-- name: item_namespaces
SELECT DISTINCT namespace FROM store_items
 WHERE owner = $1 AND (expires_at IS NULL OR expires_at > $2)

-- name: expire_items
DELETE FROM store_items WHERE expires_at <= $1 RETURNING true

-- ===== crons ================================================================

-- name: insert_cron
INSERT INTO crons (cron_id, assistant_id, thread_id, schedule, timezone, payload, metadata,
                   end_time, enabled, next_run_at, owner, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11, $12, $12)
RETURNING *

-- name: get_cron
SELECT * FROM crons WHERE cron_id = $1

-- name: get_cron_for_update
-- The cron's row lock serialises its updates, its deletion and its firing.
SELECT * FROM crons WHERE cron_id = $1 FOR UPDATE

-- name: update_cron
UPDATE crons SET schedule = $2, timezone = $3, payload = $4::jsonb, metadata = $5::jsonb,
                 end_time = $6, enabled = $7, next_run_at = $8, updated_at = $9
 WHERE cron_id = $1
RETURNING *

-- name: delete_cron
DELETE FROM crons WHERE cron_id = $1

-- name: search_crons
-- $1 owner, $2 assistant, $3 thread, $4 enabled, $5 metadata every top-level key of which
-- must be equal; NULL matches every cron.
SELECT * FROM crons c
 WHERE ($1::text IS NULL OR c.owner = $1) AND ($2::text IS NULL OR c.assistant_id = $2)
   AND ($3::text IS NULL OR c.thread_id = $3) AND ($4::boolean IS NULL OR c.enabled = $4)
   AND NOT EXISTS (SELECT 1 FROM jsonb_each($5::jsonb) f
                    WHERE c.metadata -> f.key IS DISTINCT FROM f.value)
 ORDER BY c.created_at, c.cron_id

-- name: due_crons
SELECT * FROM crons
 WHERE enabled AND next_run_at IS NOT NULL AND next_run_at <= $1
 ORDER BY next_run_at
 LIMIT $2

-- name: advance_cron
-- Fired at $2: on to $3, unless another process fired that time first.
UPDATE crons SET next_run_at = $3 WHERE cron_id = $1 AND next_run_at = $2 AND enabled
RETURNING true

-- ===== webhooks =============================================================

-- name: claim_webhooks
-- Due deliveries, each taken for an attempt: its next_attempt_at pushed to $2 (past the
-- attempt's timeout: another worker takes it then if this one died), its attempts counted;
-- rows another worker is taking are skipped.
UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $2
 WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries
                        WHERE status = 'pending' AND next_attempt_at <= $1
                        ORDER BY next_attempt_at LIMIT $3
                          FOR UPDATE SKIP LOCKED)
RETURNING *

-- name: webhook_delivered
-- $3: the attempt this worker took (a later attempt's outcome is not overwritten).
UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $2, last_error = NULL
 WHERE delivery_id = $1 AND attempts = $3 AND status = 'pending'

-- name: webhook_attempt_failed
-- Try again at $3, or give up ('failed') once $4 attempts were made.
UPDATE webhook_deliveries
   SET last_error = $2, next_attempt_at = $3,
       status = CASE WHEN attempts >= $4 THEN 'failed' ELSE 'pending' END
 WHERE delivery_id = $1 AND attempts = $5 AND status = 'pending'

-- name: run_webhooks
SELECT * FROM webhook_deliveries WHERE run_id = $1 ORDER BY delivery_id

-- ===== schema ===============================================================

-- name: lock_migrations
-- One process migrates a schema at a time; the others then find nothing left to do.
SELECT pg_advisory_xact_lock(hashtext($1))

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY,
                                              applied_at timestamptz NOT NULL)

-- name: applied_migrations
SELECT version FROM schema_migrations

-- name: record_migration
INSERT INTO schema_migrations VALUES ($1, now())
