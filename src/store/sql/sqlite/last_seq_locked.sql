-- The saga's last seq from its projection row, kept by every append in the
-- same transaction as its events. No lock clause: the append's transaction
-- began with the one write lock (BEGIN IMMEDIATE). No row for a new saga.
SELECT last_seq FROM sagas WHERE saga_id = $1
