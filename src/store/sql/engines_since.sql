-- The engines heard from at or after `$1` (ms), and when last.
SELECT engine_id, heartbeat_ms FROM engines WHERE heartbeat_ms >= $1 ORDER BY engine_id
