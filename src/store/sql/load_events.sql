-- A saga's events up to a seq, in order. Data leaves as text (JSONB in
-- PostgreSQL): sqlx is built without its `json` feature.
SELECT seq, event_type, schema_version, CAST(data AS TEXT) AS data, at_ms FROM events WHERE saga_id = $1 AND seq <= $2 ORDER BY seq
