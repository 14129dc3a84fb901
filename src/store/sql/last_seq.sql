-- The saga's last seq, 0 for a new saga: after a unique violation on
-- (saga_id, seq), the seq the other writer committed.
SELECT COALESCE(MAX(seq), 0) AS last_seq FROM events WHERE saga_id = $1
