-- The projection row as it is after an append; an append ends any claim on
-- the saga's deadline.
INSERT INTO sagas (saga_id, saga_type, version, status, current_step, started_at_ms, updated_at_ms, last_seq, deadline_ms, claimed_until_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)
ON CONFLICT (saga_id) DO UPDATE SET saga_type = excluded.saga_type, version = excluded.version, status = excluded.status,
    current_step = excluded.current_step, started_at_ms = excluded.started_at_ms, updated_at_ms = excluded.updated_at_ms,
    last_seq = excluded.last_seq, deadline_ms = excluded.deadline_ms, claimed_until_ms = NULL
