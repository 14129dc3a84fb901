-- Renews an engine's lease: `$1` engine id, `$2` now (ms).
INSERT INTO engines (engine_id, heartbeat_ms) VALUES ($1, $2)
ON CONFLICT (engine_id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms
