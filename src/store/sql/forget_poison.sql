-- Poison received before `$1` (ms), oldest first, at most `$2`; the ids that went.
DELETE FROM poison WHERE id IN (SELECT id FROM poison WHERE received_at_ms < $1 ORDER BY id LIMIT $2) RETURNING id
