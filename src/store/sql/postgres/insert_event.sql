-- Event data arrives as JSON text (sqlx has no `json` feature here).
INSERT INTO events (saga_id, seq, event_type, schema_version, data, at_ms) VALUES ($1, $2, $3, $4, CAST($5 AS jsonb), $6)
