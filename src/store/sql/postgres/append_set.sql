-- One wave of a group commit in one statement, every saga of it at once
-- (arrays bound as `$1`..`$15` and `$17`, the keys, one element a saga or an event):
-- `locked` takes the existing sagas' rows in id order (`FOR UPDATE`), so
-- two writers lock in the same order and never deadlock (`moved` reads
-- it once, as a one-time filter, so every lock is taken before the first
-- update, and no per-row lookup in it can make the statement quadratic); `created` inserts
-- the new sagas' rows, and a row another writer created first (it waits
-- for that writer's commit) is left alone, as is a new saga whose
-- (saga_type, key) another saga holds (SPEC §7: the unique index decides;
-- the engine reads it as a conflict and finds the key's saga); `moved` updates a row only if
-- its last seq is still the expected one (a row another writer changed is
-- read again after its commit, and the check fails); the events of
-- exactly the sagas written go in, in batch order, so their positions
-- follow their seqs. What comes back is the sagas written; the others
-- conflicted. Every append ends any claim on the saga's deadline. The
-- sagas rows are found through the primary key (`= ANY($1)`), never by a
-- scan of the table, so a group commit costs the same at a million sagas.
WITH batch AS (
    SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $17::text[])
        AS b(saga_id, expected_seq, saga_type, version, status, current_step, started_at_ms, updated_at_ms, last_seq, deadline_ms, key)
),
locked AS (
    SELECT s.saga_id FROM sagas s WHERE s.saga_id = ANY($1::text[]) ORDER BY s.saga_id FOR UPDATE
),
created AS (
    INSERT INTO sagas (saga_id, saga_type, version, status, current_step, started_at_ms, updated_at_ms, last_seq, deadline_ms, claimed_until_ms, key)
    SELECT saga_id, saga_type, version, status, current_step, started_at_ms, updated_at_ms, last_seq, deadline_ms, NULL, key
    FROM batch WHERE expected_seq = 0
    ON CONFLICT DO NOTHING
    RETURNING saga_id
),
moved AS (
    UPDATE sagas s SET saga_type = b.saga_type, version = b.version, status = b.status, current_step = b.current_step,
        started_at_ms = b.started_at_ms, updated_at_ms = b.updated_at_ms, last_seq = b.last_seq, deadline_ms = b.deadline_ms,
        claimed_until_ms = NULL
    FROM batch b
    WHERE s.saga_id = ANY($1::text[]) AND s.saga_id = b.saga_id AND b.expected_seq > 0 AND s.last_seq = b.expected_seq
        AND (SELECT count(*) FROM locked) >= 0
    RETURNING s.saga_id
),
written AS (
    SELECT saga_id FROM created UNION ALL SELECT saga_id FROM moved
),
appended AS (
    INSERT INTO events (saga_id, seq, event_type, schema_version, data, at_ms)
    SELECT e.saga_id, e.seq, e.event_type, $16, CAST(e.data AS jsonb), e.at_ms
    FROM unnest($11::text[], $12::int8[], $13::text[], $14::text[], $15::int8[]) WITH ORDINALITY AS e(saga_id, seq, event_type, data, at_ms, n)
    WHERE e.saga_id IN (SELECT saga_id FROM written)
    ORDER BY e.n
)
SELECT saga_id FROM written
