-- Durable deadlines with claims, poison messages, and the event relay's checkpoints.

-- When a saga must be woken up, and until when an engine holds the claim to
-- do it. A new append ends any claim (the store writes NULL).
ALTER TABLE sagas ADD COLUMN deadline_ms INTEGER NULL;
ALTER TABLE sagas ADD COLUMN claimed_until_ms INTEGER NULL;

-- `claim_due`: the oldest due deadlines first; most sagas have none.
CREATE INDEX sagas_by_deadline ON sagas (deadline_ms) WHERE deadline_ms IS NOT NULL;

-- Messages the orchestrator could not use, kept for operators.
CREATE TABLE poison (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    subject        TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    payload        BLOB    NOT NULL,
    received_at_ms INTEGER NOT NULL
);

-- Where each event relay stands in the global commit order (events.position;
-- tx is always 0: SQLite has one writer).
CREATE TABLE relay_checkpoints (
    relay    TEXT    PRIMARY KEY NOT NULL,
    tx       INTEGER NOT NULL,
    position INTEGER NOT NULL
);
