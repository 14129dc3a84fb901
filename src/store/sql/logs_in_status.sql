-- One page of recovery in one round trip: up to `$3` sagas in status `$1`
-- with an id after `$2` ('' for the first page), in id order (the
-- `sagas_by_status (status, saga_id)` index), each with its whole log.
SELECT e.saga_id, e.seq, e.event_type, e.schema_version, CAST(e.data AS TEXT) AS data, e.at_ms
FROM (SELECT saga_id FROM sagas WHERE status = $1 AND saga_id > $2 ORDER BY saga_id LIMIT $3) s
JOIN events e ON e.saga_id = s.saga_id
ORDER BY e.saga_id, e.seq
