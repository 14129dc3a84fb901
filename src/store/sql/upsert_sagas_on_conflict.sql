-- What the multi-row projection upsert of a group commit does to a row
-- already there (the seqs were checked under the write lock first).
ON CONFLICT (saga_id) DO UPDATE SET saga_type = excluded.saga_type, version = excluded.version, status = excluded.status,
    current_step = excluded.current_step, started_at_ms = excluded.started_at_ms, updated_at_ms = excluded.updated_at_ms,
    last_seq = excluded.last_seq, deadline_ms = excluded.deadline_ms, claimed_until_ms = NULL
