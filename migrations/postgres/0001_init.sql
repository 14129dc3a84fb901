-- The event log, the sagas projection, recorded definitions, poison
-- messages and the event relay's checkpoints.
--
-- Saga ids are lowercase hyphenated UUID text, as in SQLite (sqlx is built
-- without its `uuid` feature). COLLATE "C" makes `ORDER BY saga_id` byte
-- order, which is UUID order, so it is start order for UUIDv7 ids whatever
-- the database's default collation. Event data is JSONB, bound as text.

-- Every saga's events; the primary key (saga_id, seq) is the
-- optimistic-concurrency guard. `position` is global but BIGSERIAL values
-- are taken before commit, so they commit out of order; `tx_id` (the
-- writing transaction) is what the event relay orders by first.
CREATE TABLE events (
    position       BIGSERIAL NOT NULL,
    tx_id          xid8      NOT NULL DEFAULT pg_current_xact_id(),
    saga_id        TEXT COLLATE "C" NOT NULL,
    seq            BIGINT    NOT NULL,
    event_type     TEXT      NOT NULL,
    schema_version INT       NOT NULL,
    data           JSONB     NOT NULL,
    at_ms          BIGINT    NOT NULL,
    PRIMARY KEY (saga_id, seq)
);

-- `committed_after`: the relay's (transaction, position) order.
CREATE INDEX events_by_tx ON events (tx_id, position);

-- One row per saga, updated in the same transaction as its events.
CREATE TABLE sagas (
    saga_id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    saga_type        TEXT   NOT NULL,
    version          BIGINT NOT NULL,
    status           TEXT   NOT NULL,
    current_step     TEXT,
    started_at_ms    BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL,
    last_seq         BIGINT NOT NULL,
    -- When the saga must be woken up; until when an engine holds the claim.
    deadline_ms      BIGINT NULL,
    claimed_until_ms BIGINT NULL
);

-- `list` by status, by type, and stuck-for (status + updated before).
CREATE INDEX sagas_by_status ON sagas (status, saga_id);
CREATE INDEX sagas_by_type ON sagas (saga_type, saga_id);
CREATE INDEX sagas_by_status_updated ON sagas (status, updated_at_ms);
-- `claim_due`: the oldest due deadlines first; most sagas have none.
CREATE INDEX sagas_by_deadline ON sagas (deadline_ms) WHERE deadline_ms IS NOT NULL;

-- Every definition version ever run; the content is fixed per (name, version).
CREATE TABLE definitions (
    name           TEXT   NOT NULL,
    version        BIGINT NOT NULL,
    content_hash   TEXT   NOT NULL,
    source         TEXT   NOT NULL,
    recorded_at_ms BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

-- Messages the orchestrator could not use, kept for operators.
CREATE TABLE poison (
    id             BIGSERIAL PRIMARY KEY,
    subject        TEXT   NOT NULL,
    reason         TEXT   NOT NULL,
    payload        BYTEA  NOT NULL,
    received_at_ms BIGINT NOT NULL
);

-- Where each event relay stands: the (transaction, position) of the last
-- event it handed on.
CREATE TABLE relay_checkpoints (
    relay    TEXT   PRIMARY KEY NOT NULL,
    tx       BIGINT NOT NULL,
    position BIGINT NOT NULL
);
