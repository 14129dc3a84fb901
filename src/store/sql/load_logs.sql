-- The whole logs of several sagas in one round trip (`load_many`); the
-- store appends the ids, `)` and `ORDER BY saga_id, seq`. Data leaves as
-- text (JSONB in PostgreSQL): sqlx is built without its `json` feature.
SELECT saga_id, seq, event_type, schema_version, CAST(data AS TEXT) AS data, at_ms FROM events WHERE saga_id IN (
