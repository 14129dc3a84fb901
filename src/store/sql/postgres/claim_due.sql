-- The inner select locks the rows it picks and skips rows another claimer
-- has locked, so two concurrent claimers get disjoint sets; a row claimed
-- and committed meanwhile is re-checked against its new claimed_until_ms
-- and dropped. RETURNING has no order: the store sorts.
UPDATE sagas SET claimed_until_ms = $2 WHERE saga_id IN (
    SELECT saga_id FROM sagas WHERE deadline_ms <= $1 AND (claimed_until_ms IS NULL OR claimed_until_ms < $1)
    ORDER BY deadline_ms, saga_id LIMIT $3 FOR UPDATE SKIP LOCKED)
RETURNING deadline_ms, saga_id
