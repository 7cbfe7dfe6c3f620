-- The SQLite store's statements, by name (see runplane/store/queries.py). Parameters are
-- numbered (?1, ?2 ...) in the order PostgreSQL's statements of the same name take them.
-- A list parameter arrives as a JSON array, read with json_each. One connection writes at
-- a time, so the statements PostgreSQL names "..._for_update" or "lock_..." take no lock
-- here: they read, or do nothing, so that both stores take the same steps.

-- ===== the connection =======================================================

-- name: journal_mode_wal
-- Readers do not block the writer, nor the writer readers.
PRAGMA journal_mode=WAL

-- name: synchronous_normal
-- With WAL: a commit survives a crash of the process; a power loss may lose the last ones.
PRAGMA synchronous=NORMAL

-- name: foreign_keys_on
PRAGMA foreign_keys=ON

-- name: data_version
-- Moves only when another connection committed to the file.
PRAGMA data_version

-- ===== threads ==============================================================

-- name: get_thread
SELECT t.*,
       EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id
                AND r.status IN ('pending', 'running')) AS busy,
       (SELECT r.status FROM runs r WHERE r.thread_id = t.thread_id AND r.ended_at IS NOT NULL
         ORDER BY r.ended_at DESC, r.seq DESC LIMIT 1) AS last_status
  FROM threads t
 WHERE t.thread_id = ?1

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
          FROM threads t)

-- name: insert_thread
-- Answers true if inserted, nothing if the thread existed.
INSERT INTO threads (thread_id, created_at, updated_at, metadata, owner, ttl_strategy,
                     ttl_minutes)
VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (thread_id) DO NOTHING
RETURNING 1

-- name: copy_thread
-- Thread ?1 as a new thread ?2 (its metadata, values, pending interrupts and time to
-- live), owned by ?4; answers nothing if ?1 does not exist.
INSERT INTO threads (thread_id, created_at, updated_at, metadata, owner, values_json,
                     interrupts, ttl_strategy, ttl_minutes)
SELECT ?2, ?3, ?3, metadata, ?4, values_json, interrupts, ttl_strategy, ttl_minutes
  FROM threads WHERE thread_id = ?1
RETURNING 1

-- name: thread_metadata_for_update
SELECT metadata FROM threads WHERE thread_id = ?1

-- name: update_thread_metadata
UPDATE threads SET metadata = ?2, updated_at = ?3 WHERE thread_id = ?1

-- name: tag_thread
-- A graph run's tags (?2: graph_id, assistant_id) onto a thread that says no graph yet.
UPDATE threads SET metadata = json_patch(metadata, ?2), updated_at = ?3
 WHERE thread_id = ?1 AND json_type(metadata, '$.graph_id') IS NULL

-- name: set_thread_ttl
UPDATE threads SET ttl_strategy = ?2, ttl_minutes = ?3, updated_at = ?4 WHERE thread_id = ?1

-- name: expired_threads
-- Threads past their time to live, not yet swept since their last update, with no run
-- pending or running (a run on the thread takes its row lock first: none starts while
-- the sweep holds it), the first to expire first.
SELECT thread_id, ttl_strategy FROM threads t
 WHERE ttl_minutes IS NOT NULL AND expires_at <= ?1
   AND (ttl_swept_at IS NULL OR ttl_swept_at < updated_at)
   AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id
                    AND r.status IN ('pending', 'running'))
 ORDER BY expires_at LIMIT ?2

-- name: mark_ttl_swept
UPDATE threads SET ttl_swept_at = ?2 WHERE thread_id = ?1

-- name: delete_thread
DELETE FROM threads WHERE thread_id = ?1 RETURNING 1

-- name: thread_owner_for_update
SELECT owner FROM threads WHERE thread_id = ?1

-- name: active_runs_of_thread
SELECT run_id FROM runs WHERE thread_id = ?1 AND status IN ('pending', 'running') ORDER BY seq

-- name: set_interrupts
UPDATE threads SET interrupts = ?2 WHERE thread_id = ?1 AND interrupts IS NOT ?2

-- name: set_values
UPDATE threads SET values_json = ?2, values_run_id = ?3, updated_at = ?4 WHERE thread_id = ?1

-- name: rollback_values
-- Rollback restores the snapshot only while the thread's values are still this run's own
-- writes: values a newer run wrote since are never overwritten with an older snapshot.
UPDATE threads SET values_json = ?2, values_run_id = NULL, updated_at = ?3
 WHERE thread_id = ?1 AND values_run_id = ?4

-- ===== runs, service side ===================================================

-- name: get_run
SELECT * FROM runs WHERE run_id = ?1

-- name: get_run_for_update
SELECT * FROM runs WHERE run_id = ?1

-- name: insert_run
-- Answers nothing if a run has the id already.
INSERT INTO runs (run_id, thread_id, assistant_id, status, input, metadata, multitask_strategy,
                  created_at, updated_at, max_attempts, timeout, root_run_id, parent_run_id,
                  last_event_seq, owner, kwargs, not_before, workflow)
VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11, 1, ?12, ?13, ?14, ?15)
ON CONFLICT (run_id) DO NOTHING
RETURNING *

-- name: insert_event
INSERT INTO events (run_id, seq, event, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5)

-- name: cancel
UPDATE runs
   SET status = 'interrupted',
       cancelled_generation = lease_generation,
       lease_generation = lease_generation + 1,
       cancel_requested_at = ?2, cancel_reason = ?3, cancel_action = ?4,
       cancel_requested_by = ?5,
       step_index = CASE WHEN ?4 = 'rollback' THEN 0 ELSE step_index END,
       ended_at = ?2, updated_at = ?2,
       last_event_seq = last_event_seq + 1
 WHERE run_id = ?1 AND status IN ('pending', 'running')
RETURNING *

-- name: delete_steps
DELETE FROM steps WHERE run_id = ?1

-- name: lock_tree_root
-- One writer: no spawn can run during a sweep.
SELECT ?1

-- name: share_tree_root
SELECT ?1

-- name: get_tree
SELECT * FROM runs WHERE root_run_id = ?1 ORDER BY seq

-- name: get_tree_for_update
SELECT * FROM runs WHERE root_run_id = ?1 ORDER BY seq

-- name: count_active_in_tree
SELECT count(*) FROM runs WHERE root_run_id = ?1 AND status IN ('pending', 'running')

-- name: resume
UPDATE runs
   SET status = 'pending', attempt = 0, ended_at = NULL, deadline_at = NULL,
       lease_owner = NULL, lease_expires_at = NULL,
       cancel_requested_at = NULL, cancel_reason = NULL, cancel_action = NULL,
       cancel_requested_by = NULL, updated_at = ?2, last_event_seq = last_event_seq + 1
 WHERE run_id = ?1 AND status = 'interrupted'
RETURNING *

-- name: delete_run
DELETE FROM runs WHERE run_id = ?1

-- name: list_runs
-- Newest first; a NULL filter matches every run (?7: a prefix of the run id; ?8, ?9:
-- created at or after, and before; ?10: documents one of which the run's thread's metadata,
-- a thread-less run's own, contains: json_contains_any is runplane's, see sqlite.py).
SELECT * FROM runs
 WHERE (?2 IS NULL OR status = ?2) AND (?1 IS NULL OR thread_id = ?1)
   AND (?5 IS NULL OR owner = ?5) AND (?6 IS NULL OR assistant_id = ?6)
   AND (?7 IS NULL OR substr(run_id, 1, length(?7)) = ?7)
   AND (?8 IS NULL OR created_at >= ?8) AND (?9 IS NULL OR created_at < ?9)
   AND (?10 IS NULL OR json_contains_any(
        coalesce((SELECT t.metadata FROM threads t WHERE t.thread_id = runs.thread_id),
                 runs.metadata), ?10))
 ORDER BY seq DESC LIMIT ?3 OFFSET ?4

-- name: count_runs
-- How many runs of each status match list_runs' other filters, numbered in their order
-- (?1 thread, ?2 owner, ?3 assistant, ?4 id prefix, ?5 and ?6 creation times, ?7
-- metadata documents).
SELECT status, count(*) AS n FROM runs
 WHERE (?1 IS NULL OR thread_id = ?1)
   AND (?2 IS NULL OR owner = ?2) AND (?3 IS NULL OR assistant_id = ?3)
   AND (?4 IS NULL OR substr(run_id, 1, length(?4)) = ?4)
   AND (?5 IS NULL OR created_at >= ?5) AND (?6 IS NULL OR created_at < ?6)
   AND (?7 IS NULL OR json_contains_any(
        coalesce((SELECT t.metadata FROM threads t WHERE t.thread_id = runs.thread_id),
                 runs.metadata), ?7))
 GROUP BY status

-- name: orphaned_runs
-- Active attached children whose parent ended success, error or timeout.
SELECT c.* FROM runs c
  JOIN runs p ON p.run_id = c.parent_run_id AND p.root_run_id = c.root_run_id
 WHERE c.status IN ('pending', 'running') AND p.status IN ('success', 'error', 'timeout')
 ORDER BY c.seq

-- name: run_marks
SELECT run_id, status, lease_owner, last_event_seq FROM runs
 WHERE run_id IN (SELECT value FROM json_each(?1))

-- name: get_steps
SELECT * FROM steps WHERE run_id = ?1 ORDER BY idx

-- name: get_events
SELECT * FROM events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq

-- ===== runs, worker side ====================================================

-- name: claimable
-- Pending runs of these workflows in creation order, one per thread (none of a thread
-- with a running run or an older pending one), none of the excluded, none delayed past
-- now (the last parameter).
SELECT r.run_id FROM runs r
 WHERE r.status = 'pending'
   AND coalesce(r.workflow, r.assistant_id) IN (SELECT value FROM json_each(?1))
   AND r.run_id NOT IN (SELECT value FROM json_each(?3))
   AND (r.not_before IS NULL OR r.not_before <= ?4)
   AND (r.thread_id IS NULL OR (
        NOT EXISTS (SELECT 1 FROM runs x WHERE x.thread_id = r.thread_id AND x.status = 'running')
        AND NOT EXISTS (SELECT 1 FROM runs y WHERE y.thread_id = r.thread_id
                         AND y.status = 'pending' AND y.seq < r.seq)))
 ORDER BY r.seq
 LIMIT ?2

-- name: claim
-- The thread's values are kept as they were before the run (pre_run_values), for a
-- rollback; a re-claim of a run whose own writes are the thread's values keeps its first.
UPDATE runs
   SET status = 'running', lease_owner = ?2, lease_generation = lease_generation + 1,
       lease_expires_at = ?3, attempt = attempt + 1,
       started_at = COALESCE(started_at, ?4), deadline_at = COALESCE(deadline_at, ?4 + timeout),
       pre_run_values = (
           SELECT CASE WHEN runs.pre_run_values IS NOT NULL AND t.values_run_id = runs.run_id
                       THEN runs.pre_run_values ELSE t.values_json END
             FROM threads t WHERE t.thread_id = runs.thread_id),
       last_event_seq = last_event_seq + 1, updated_at = ?4
 WHERE run_id = ?1 AND status = 'pending'
RETURNING *

-- name: fail_pending
-- A pending run that cannot be claimed ends error without being started.
UPDATE runs SET status = 'error', error = ?2, ended_at = ?3, updated_at = ?3,
       last_event_seq = last_event_seq + 1
 WHERE run_id = ?1 AND status = 'pending'
RETURNING last_event_seq

-- name: renew_leases
-- ?2 and ?3: the run ids and generations of the leases, side by side.
UPDATE runs SET lease_expires_at = ?1
  FROM (SELECT i.value AS h_run, g.value AS h_gen
          FROM json_each(?2) i JOIN json_each(?3) g ON g.key = i.key) AS h
 WHERE runs.run_id = h.h_run AND runs.status = 'running' AND runs.lease_generation = h.h_gen
RETURNING runs.run_id, runs.lease_generation

-- name: held_leases
SELECT run_id, lease_generation FROM runs
 WHERE run_id IN (SELECT value FROM json_each(?1)) AND status = 'running'

-- name: release_lease
-- The cancel that stopped generation G left the run at G + 1; a later claim moves it on,
-- and then the lease is someone else's to release.
UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL
 WHERE run_id = ?1 AND lease_generation = ?2 + 1 AND status <> 'running'

-- name: expired_leases
SELECT run_id, attempt, max_attempts, deadline_at, lease_owner FROM runs
 WHERE status = 'running' AND lease_expires_at < ?1

-- name: reap
UPDATE runs
   SET status = ?2, error = ?3, lease_owner = NULL, lease_expires_at = NULL,
       lease_generation = lease_generation + 1,
       ended_at = CASE WHEN ?2 = 'pending' THEN NULL ELSE ?4 END,
       updated_at = ?4, last_event_seq = last_event_seq + 1
 WHERE run_id = ?1 AND status = 'running' AND lease_expires_at < ?4
RETURNING last_event_seq

-- name: step_stored
SELECT 1 FROM steps WHERE run_id = ?1 AND idx = ?2

-- name: requeue
-- ?4: how many events the hand-back logs. The attempt does not count.
UPDATE runs
   SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
       lease_generation = lease_generation + 1, attempt = MAX(attempt - 1, 0),
       updated_at = ?3, last_event_seq = last_event_seq + ?4
 WHERE run_id = ?1 AND status = 'running' AND lease_generation = ?2
RETURNING last_event_seq

-- name: step_cancel_seq
-- The sequence number for step:cancel of the step in flight when generation ?2 was
-- revoked; nothing if that step was stored after all or the run was claimed again since.
UPDATE runs SET last_event_seq = last_event_seq + 1, updated_at = ?4
 WHERE run_id = ?1 AND lease_generation = ?2 + 1 AND status <> 'running'
   AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.run_id = runs.run_id AND s.idx = ?3)
RETURNING last_event_seq

-- name: next_event_seq
UPDATE runs SET last_event_seq = last_event_seq + 1, updated_at = ?2
 WHERE run_id = ?1
RETURNING last_event_seq, thread_id

-- name: next_event_seq_fenced
UPDATE runs SET last_event_seq = last_event_seq + 1, updated_at = ?2
 WHERE run_id = ?1 AND status = 'running' AND lease_generation = ?3
RETURNING last_event_seq, thread_id

-- name: complete_step
UPDATE runs SET step_index = step_index + 1, last_event_seq = last_event_seq + 1, updated_at = ?4
 WHERE run_id = ?1 AND status = 'running' AND lease_generation = ?2 AND step_index = ?3
RETURNING last_event_seq

-- name: copy_steps
-- Run ?2 takes up where run ?1 paused: ?1's stored steps become ?2's.
INSERT INTO steps (run_id, idx, name, result, created_at)
SELECT ?2, idx, name, result, created_at FROM steps WHERE run_id = ?1

-- name: take_up_run
-- ... and ?1's input, with ?3 steps (the copied ones and the answer) behind it.
UPDATE runs SET input = (SELECT p.input FROM runs p WHERE p.run_id = ?1), step_index = ?3
 WHERE run_id = ?2

-- name: insert_step
INSERT INTO steps (run_id, idx, name, result, created_at) VALUES (?1, ?2, ?3, ?4, ?5)

-- name: finish
UPDATE runs
   SET status = ?3, output = ?4, error = ?5, traceback = ?6, ended_at = ?7, updated_at = ?7,
       lease_owner = NULL, lease_expires_at = NULL, last_event_seq = last_event_seq + 1
 WHERE run_id = ?1 AND status = 'running' AND lease_generation = ?2
RETURNING last_event_seq, thread_id

-- ===== LangGraph checkpoints ================================================
-- (runplane.graphs.checkpointer; tables in migrations/*/0004_graph_checkpoints.sql)

-- name: share_held_run
-- The fence of a checkpoint write: the run is running under this lease generation.
SELECT 1 FROM runs WHERE run_id = ?1 AND status = 'running' AND lease_generation = ?2

-- name: upsert_checkpoint
-- A checkpoint put again (same thread, namespace and id) replaces the stored one.
INSERT INTO lg_checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                            run_id, type, checkpoint, metadata, created_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE
   SET parent_checkpoint_id = excluded.parent_checkpoint_id, run_id = excluded.run_id,
       type = excluded.type, checkpoint = excluded.checkpoint, metadata = excluded.metadata,
       created_at = excluded.created_at

-- name: upsert_checkpoint_write
-- A task's write stored twice is kept once (its first); a special channel's (negative idx:
-- error, interrupt, ...) is replaced, as LangGraph's savers do.
INSERT INTO lg_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path,
                       channel, type, value, run_id, created_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE
   SET task_path = excluded.task_path, channel = excluded.channel, type = excluded.type,
       value = excluded.value, run_id = excluded.run_id, created_at = excluded.created_at
 WHERE excluded.idx < 0

-- name: get_checkpoint
-- One checkpoint, or (?3 NULL) the newest of the thread's namespace.
SELECT * FROM lg_checkpoints
 WHERE thread_id = ?1 AND checkpoint_ns = ?2 AND (?3 IS NULL OR checkpoint_id = ?3)
 ORDER BY checkpoint_id DESC LIMIT 1

-- name: list_checkpoints
-- Newest first; a NULL filter matches every checkpoint. ?5: metadata every top-level key of
-- which must be equal (a JSON object, not read as a list).
SELECT * FROM lg_checkpoints c
 WHERE (?1 IS NULL OR c.thread_id = ?1) AND (?2 IS NULL OR c.checkpoint_ns = ?2)
   AND (?3 IS NULL OR c.checkpoint_id = ?3) AND (?4 IS NULL OR c.checkpoint_id < ?4)
   AND NOT EXISTS (
       SELECT 1 FROM json_each(json(?5)) f
        WHERE json_type(c.metadata, '$."' || f.key || '"') IS NOT f.type
           OR json_extract(c.metadata, '$."' || f.key || '"') IS NOT f.value)
 ORDER BY c.checkpoint_id DESC
 LIMIT coalesce(?6, -1)

-- name: writes_of_checkpoints
-- The pending writes of checkpoints ?1, ?2, ?3 (their threads, namespaces and ids, side by
-- side), in the order LangGraph applies them (langgraph's writes_sort_key).
SELECT w.* FROM json_each(?1) t
  JOIN json_each(?2) n ON n.key = t.key
  JOIN json_each(?3) i ON i.key = t.key
  JOIN lg_writes w ON w.thread_id = t.value AND w.checkpoint_ns = n.value
                  AND w.checkpoint_id = i.value
 ORDER BY w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_path, w.task_id, w.idx

-- name: delete_thread_checkpoints
DELETE FROM lg_checkpoints WHERE thread_id = ?1

-- name: delete_thread_writes
DELETE FROM lg_writes WHERE thread_id = ?1

-- name: delete_run_writes
-- The writes these runs made, and every write of the checkpoints they made.
DELETE FROM lg_writes
 WHERE run_id IN (SELECT value FROM json_each(?1))
    OR EXISTS (SELECT 1 FROM lg_checkpoints c
                WHERE c.run_id IN (SELECT value FROM json_each(?1))
                  AND c.thread_id = lg_writes.thread_id
                  AND c.checkpoint_ns = lg_writes.checkpoint_ns
                  AND c.checkpoint_id = lg_writes.checkpoint_id)

-- name: delete_run_checkpoints
DELETE FROM lg_checkpoints WHERE run_id IN (SELECT value FROM json_each(?1))

-- name: copy_thread_checkpoints
-- Thread ?1's checkpoints as thread ?2's; any ?2 has with the same id is kept.
INSERT INTO lg_checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                            run_id, type, checkpoint, metadata, created_at)
SELECT ?2, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, type, checkpoint,
       metadata, created_at
  FROM lg_checkpoints WHERE thread_id = ?1
ON CONFLICT DO NOTHING

-- name: copy_thread_writes
INSERT INTO lg_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path,
                       channel, type, value, run_id, created_at)
SELECT ?2, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, type, value,
       run_id, created_at
  FROM lg_writes WHERE thread_id = ?1
ON CONFLICT DO NOTHING

-- name: prune_writes
-- The writes of threads ?1 but those of each namespace's newest checkpoint (?2 true), or all.
DELETE FROM lg_writes
 WHERE thread_id IN (SELECT value FROM json_each(?1))
   AND (NOT ?2 OR checkpoint_id < (
        SELECT max(c.checkpoint_id) FROM lg_checkpoints c
         WHERE c.thread_id = lg_writes.thread_id AND c.checkpoint_ns = lg_writes.checkpoint_ns))

-- name: prune_checkpoints
-- The checkpoints of threads ?1 but each namespace's newest (?2 true), or all.
DELETE FROM lg_checkpoints
 WHERE thread_id IN (SELECT value FROM json_each(?1))
   AND (NOT ?2 OR checkpoint_id < (
        SELECT max(c.checkpoint_id) FROM lg_checkpoints c
         WHERE c.thread_id = lg_checkpoints.thread_id
           AND c.checkpoint_ns = lg_checkpoints.checkpoint_ns))

-- ===== assistants ===========================================================

-- name: insert_assistant
-- Answers 1 if inserted, nothing if an assistant of this id exists.
INSERT INTO assistants (assistant_id, version, owner, created_at, updated_at)
VALUES (?1, 1, ?2, ?3, ?3)
ON CONFLICT (assistant_id) DO NOTHING
RETURNING 1

-- name: insert_assistant_version
INSERT INTO assistant_versions (assistant_id, version, graph_id, name, description, config,
                                context, metadata, created_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)

-- name: get_assistant
-- An assistant with its current version's fields.
SELECT a.assistant_id, a.version, a.owner, a.created_at, a.updated_at, v.graph_id, v.name,
       v.description, v.config, v.context, v.metadata
  FROM assistants a JOIN assistant_versions v
    ON v.assistant_id = a.assistant_id AND v.version = a.version
 WHERE a.assistant_id = ?1

-- name: get_assistant_for_update
-- The write transaction (BEGIN IMMEDIATE) already keeps other writers out.
SELECT a.assistant_id, a.version, a.owner, a.created_at, a.updated_at, v.graph_id, v.name,
       v.description, v.config, v.context, v.metadata
  FROM assistants a JOIN assistant_versions v
    ON v.assistant_id = a.assistant_id AND v.version = a.version
 WHERE a.assistant_id = ?1

-- name: share_assistant
-- A run of the assistant is being created: it exists (and stays, until the commit).
SELECT 1 FROM assistants WHERE assistant_id = ?1

-- name: search_assistants
-- ?1 owner, ?2 graph id, ?3 a part of the name (any case), ?4 metadata every top-level key
-- of which must be equal; NULL matches every assistant.
SELECT a.assistant_id, a.version, a.owner, a.created_at, a.updated_at, v.graph_id, v.name,
       v.description, v.config, v.context, v.metadata
  FROM assistants a JOIN assistant_versions v
    ON v.assistant_id = a.assistant_id AND v.version = a.version
 WHERE (?1 IS NULL OR a.owner = ?1) AND (?2 IS NULL OR v.graph_id = ?2)
   AND (?3 IS NULL OR instr(lower(v.name), lower(?3)) > 0)
   AND NOT EXISTS (
       SELECT 1 FROM json_each(json(?4)) f
        WHERE json_type(v.metadata, '$."' || f.key || '"') IS NOT f.type
           OR json_extract(v.metadata, '$."' || f.key || '"') IS NOT f.value)
 ORDER BY a.created_at, a.assistant_id

-- name: assistant_versions
-- Newest first; ?2: metadata as in search_assistants.
SELECT v.*, v.created_at AS updated_at, NULL AS owner FROM assistant_versions v
 WHERE v.assistant_id = ?1
   AND NOT EXISTS (
       SELECT 1 FROM json_each(json(?2)) f
        WHERE json_type(v.metadata, '$."' || f.key || '"') IS NOT f.type
           OR json_extract(v.metadata, '$."' || f.key || '"') IS NOT f.value)
 ORDER BY v.version DESC
 LIMIT ?3 OFFSET ?4

-- name: has_assistant_version
SELECT 1 FROM assistant_versions WHERE assistant_id = ?1 AND version = ?2

-- name: last_assistant_version
SELECT max(version) FROM assistant_versions WHERE assistant_id = ?1

-- name: set_assistant_version
UPDATE assistants SET version = ?2, updated_at = ?3 WHERE assistant_id = ?1

-- name: active_runs_of_assistant
SELECT run_id FROM runs
 WHERE assistant_id = ?1 AND status IN ('pending', 'running') ORDER BY seq

-- name: threads_of_assistant
-- The threads that say they are the assistant's (metadata.assistant_id), ?2: of this owner.
SELECT thread_id, metadata FROM threads
 WHERE json_extract(metadata, '$.assistant_id') = ?1 AND (?2 IS NULL OR owner = ?2)

-- name: delete_assistant_versions
DELETE FROM assistant_versions WHERE assistant_id = ?1

-- name: delete_assistant
DELETE FROM assistants WHERE assistant_id = ?1

-- ===== the memory store (items) =============================================

-- name: put_item
INSERT INTO store_items (owner, namespace, key, value, created_at, updated_at, ttl_minutes,
                         expires_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?5 + ?6 * 60)
ON CONFLICT (owner, namespace, key) DO UPDATE
   SET value = excluded.value, updated_at = excluded.updated_at,
       ttl_minutes = excluded.ttl_minutes, expires_at = excluded.expires_at

-- name: get_item
SELECT * FROM store_items
 WHERE owner = ?1 AND namespace = ?2 AND key = ?3 AND (expires_at IS NULL OR expires_at > ?4)

-- name: refresh_item
-- A read gives an item with a time to live its whole time again.
UPDATE store_items SET expires_at = ?4 + ttl_minutes * 60
 WHERE owner = ?1 AND namespace = ?2 AND key = ?3 AND ttl_minutes IS NOT NULL

-- name: delete_item
DELETE FROM store_items WHERE owner = ?1 AND namespace = ?2 AND key = ?3

-- name: search_items
-- ?2: the namespace prefix ('' for every namespace); ?4: an object every top-level key of
-- which the value must equal; the most recently updated first, ?5 of them (-1: all) from ?6.
SELECT * FROM store_items i
 WHERE i.owner = ?1
   AND (?2 = '' OR i.namespace = ?2 OR substr(i.namespace, 1, length(?2) + 1) = ?2 || '.')
   AND (i.expires_at IS NULL OR i.expires_at > ?3)
   AND NOT EXISTS (
       SELECT 1 FROM json_each(json(?4)) f
        WHERE json_type(i.value, '$."' || f.key || '"') IS NOT f.type
           OR json_extract(i.value, '$."' || f.key || '"') IS NOT f.value)
 ORDER BY i.updated_at DESC, i.namespace, i.key
 LIMIT coalesce(?5, -1) OFFSET ?6

-- name: item_namespaces
SELECT DISTINCT namespace FROM store_items
 WHERE owner = ?1 AND (expires_at IS NULL OR expires_at > ?2)

-- name: expire_items
DELETE FROM store_items WHERE expires_at <= ?1 RETURNING 1

-- ===== crons ================================================================

-- name: insert_cron
INSERT INTO crons (cron_id, assistant_id, thread_id, schedule, timezone, payload, metadata,
                   end_time, enabled, next_run_at, owner, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)
RETURNING *

-- name: get_cron
SELECT * FROM crons WHERE cron_id = ?1

-- name: get_cron_for_update
-- The write transaction (BEGIN IMMEDIATE) already keeps other writers out.
SELECT * FROM crons WHERE cron_id = ?1

-- name: update_cron
UPDATE crons SET schedule = ?2, timezone = ?3, payload = ?4, metadata = ?5, end_time = ?6,
                 enabled = ?7, next_run_at = ?8, updated_at = ?9
 WHERE cron_id = ?1
RETURNING *

-- name: delete_cron
DELETE FROM crons WHERE cron_id = ?1

-- name: search_crons
-- ?1 owner, ?2 assistant, ?3 thread, ?4 enabled, ?5 metadata every top-level key of which
-- must be equal; NULL matches every cron.
SELECT * FROM crons c
 WHERE (?1 IS NULL OR c.owner = ?1) AND (?2 IS NULL OR c.assistant_id = ?2)
   AND (?3 IS NULL OR c.thread_id = ?3) AND (?4 IS NULL OR c.enabled = ?4)
   AND NOT EXISTS (
       SELECT 1 FROM json_each(json(?5)) f
        WHERE json_type(c.metadata, '$."' || f.key || '"') IS NOT f.type
           OR json_extract(c.metadata, '$."' || f.key || '"') IS NOT f.value)
 ORDER BY c.created_at, c.cron_id

-- name: due_crons
SELECT * FROM crons
 WHERE enabled = 1 AND next_run_at IS NOT NULL AND next_run_at <= ?1
 ORDER BY next_run_at
 LIMIT ?2

-- name: advance_cron
-- Fired at ?2: on to ?3, unless another process fired that time first.
UPDATE crons SET next_run_at = ?3 WHERE cron_id = ?1 AND next_run_at = ?2 AND enabled = 1
RETURNING 1

-- ===== webhooks =============================================================

-- name: claim_webhooks
-- Due deliveries, each taken for an attempt: its next_attempt_at pushed to ?2 (past the
-- attempt's timeout: another worker takes it then if this one died), its attempts counted.
UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?2
 WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries
                        WHERE status = 'pending' AND next_attempt_at <= ?1
                        ORDER BY next_attempt_at LIMIT ?3)
RETURNING *

-- name: webhook_delivered
-- ?3: the attempt this worker took (a later attempt's outcome is not overwritten).
UPDATE webhook_deliveries SET status = 'delivered', delivered_at = ?2, last_error = NULL
 WHERE delivery_id = ?1 AND attempts = ?3 AND status = 'pending'

-- name: webhook_attempt_failed
-- Try again at ?3, or give up ('failed') once ?4 attempts were made.
UPDATE webhook_deliveries
   SET last_error = ?2, next_attempt_at = ?3,
       status = CASE WHEN attempts >= ?4 THEN 'failed' ELSE 'pending' END
 WHERE delivery_id = ?1 AND attempts = ?5 AND status = 'pending'

-- name: run_webhooks
SELECT * FROM webhook_deliveries WHERE run_id = ?1 ORDER BY delivery_id

-- ===== schema ===============================================================

-- name: lock_migrations
-- The write transaction (BEGIN IMMEDIATE) already keeps other processes out.
SELECT ?1

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at REAL NOT NULL)

-- name: applied_migrations
SELECT version FROM schema_migrations

-- name: record_migration
INSERT INTO schema_migrations VALUES (?1, julianday('now'))
