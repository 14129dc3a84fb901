-- Every event of saga `$1`.
DELETE FROM events WHERE saga_id = $1
