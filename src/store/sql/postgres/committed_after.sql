-- Why not `ORDER BY position` alone: a BIGSERIAL value is taken when the
-- row is inserted, not when its transaction commits. Transaction A may
-- take position 10, transaction B position 11, and B commit first; a relay
-- reading then would hand on 11 and checkpoint it, and 10, committed a
-- moment later, would sit behind the cursor forever. So only events of
-- transactions older than every transaction still running (the snapshot's
-- `xmin`) are read (nothing can commit among them any more) and they are
-- ordered by (transaction id, position): any transaction still to commit
-- has a larger id than every event handed on, so it lands after the cursor.
-- A transaction left open for long holds the relay back until it ends.
SELECT e.tx_id::text::bigint AS tx, e.position, e.saga_id, s.saga_type,
       e.seq, e.event_type, e.schema_version, e.data::text AS data, e.at_ms
FROM events e JOIN sagas s ON s.saga_id = e.saga_id
WHERE e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) AND (e.tx_id, e.position) > ($1::bigint::text::xid8, $2)
ORDER BY e.tx_id, e.position LIMIT $3
