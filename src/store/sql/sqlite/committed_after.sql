-- SQLite has one writer, so the global commit order is the events table's
-- AUTOINCREMENT position: a later commit always gets a larger one. Cursors
-- carry tx = 0 and `$1` (the cursor's tx) is not needed.
SELECT 0 AS tx, e.position, e.saga_id, s.saga_type, e.seq, e.event_type, e.schema_version, e.data, e.at_ms
FROM events e JOIN sagas s ON s.saga_id = e.saga_id WHERE e.position > $2 ORDER BY e.position LIMIT $3
