-- Engines (`serve` processes) and their leases. A live engine that sees
-- another's lease run out applies SPEC §2's restart rule for it: replies
-- the dead one held unacknowledged come back after the ack wait, so no
-- attempt in flight times out before then.
CREATE TABLE engines (
    engine_id TEXT PRIMARY KEY,
    heartbeat_ms BIGINT NOT NULL
);
