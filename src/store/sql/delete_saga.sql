-- The projection row of saga `$1`, if it is still finished.
DELETE FROM sagas WHERE saga_id = $1 AND status IN ('completed', 'compensated', 'aborted')
