-- Drops the leases that ran out long ago: `$1` heartbeats before it go.
DELETE FROM engines WHERE heartbeat_ms < $1
