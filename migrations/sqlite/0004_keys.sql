-- Business keys (SPEC §7): a start may carry a key, and at most one saga
-- per (saga type, key) exists. The key is set when the saga's row is
-- created and never changes; a saga without one has NULL, which the
-- unique index lets repeat. The index also serves `GET /sagas?key=`, and
-- is the final guard behind the group commit's check under the write lock.
ALTER TABLE sagas ADD COLUMN key TEXT;
CREATE UNIQUE INDEX sagas_by_key ON sagas (saga_type, key);
