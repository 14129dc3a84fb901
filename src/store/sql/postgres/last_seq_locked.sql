-- The saga's last seq from its projection row, locked until the commit: a
-- concurrent writer waits, then reads the new seq. No row for a new saga;
-- two writers of one are told apart by the primary key (saga_id, seq).
SELECT last_seq FROM sagas WHERE saga_id = $1 FOR UPDATE
