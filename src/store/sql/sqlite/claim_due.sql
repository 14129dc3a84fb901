-- One statement, so one write transaction: SQLite takes its write lock
-- before the inner select reads, and no other claimer can pick the same
-- rows. RETURNING has no order: the store sorts.
UPDATE sagas SET claimed_until_ms = $2 WHERE saga_id IN (
    SELECT saga_id FROM sagas WHERE deadline_ms <= $1 AND (claimed_until_ms IS NULL OR claimed_until_ms < $1)
    ORDER BY deadline_ms, saga_id LIMIT $3)
RETURNING deadline_ms, saga_id
