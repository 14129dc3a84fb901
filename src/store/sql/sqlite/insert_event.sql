INSERT INTO events (saga_id, seq, event_type, schema_version, data, at_ms) VALUES ($1, $2, $3, $4, $5, $6)
