-- Business keys (SPEC §7): a start may carry a key, and at most one saga
-- per (saga type, key) exists. The key is set when the saga's row is
-- created and never changes; a saga without one has NULL, which the
-- unique index lets repeat. The index also serves `GET /sagas?key=`, and
-- it is the final guard when two engines start the same key at once: the
-- group commit's insert skips the second row (ON CONFLICT DO NOTHING),
-- which the engine reads as a conflict and decides again.
ALTER TABLE sagas ADD COLUMN key TEXT;
CREATE UNIQUE INDEX sagas_by_key ON sagas (saga_type, key);
