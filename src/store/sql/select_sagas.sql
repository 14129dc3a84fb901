-- The projection's columns as `summary_from` reads them; the store appends
-- its conditions (` AND …`), order and limit.
SELECT saga_id, saga_type, version, status, current_step, started_at_ms, updated_at_ms, last_seq, deadline_ms, key FROM sagas WHERE TRUE
