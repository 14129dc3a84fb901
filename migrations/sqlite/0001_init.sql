-- The event log, the sagas projection and the recorded definitions.
--
-- Saga ids are stored as lowercase hyphenated UUID text: its byte order is
-- the UUID order, so `ORDER BY saga_id` is start order for UUIDv7 ids.

-- Every saga's events; (saga_id, seq) unique is the optimistic-concurrency guard.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    saga_id        TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           TEXT    NOT NULL,
    at_ms          INTEGER NOT NULL,
    UNIQUE (saga_id, seq)
);

-- One row per saga, updated in the same transaction as its events.
CREATE TABLE sagas (
    saga_id       TEXT    PRIMARY KEY NOT NULL,
    saga_type     TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    current_step  TEXT,
    started_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    last_seq      INTEGER NOT NULL
);

-- `list` by status, by type, and stuck-for (status + updated before).
CREATE INDEX sagas_by_status ON sagas (status, saga_id);
CREATE INDEX sagas_by_type ON sagas (saga_type, saga_id);
CREATE INDEX sagas_by_status_updated ON sagas (status, updated_at_ms);

-- Every definition version ever run; the content is fixed per (name, version).
CREATE TABLE definitions (
    name           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    content_hash   TEXT    NOT NULL,
    source         TEXT    NOT NULL,
    recorded_at_ms INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
