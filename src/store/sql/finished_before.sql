-- Finished sagas last changed before `$1` (ms), oldest first, at most `$2`.
SELECT saga_id FROM sagas
WHERE status IN ('completed', 'compensated', 'aborted') AND updated_at_ms < $1
ORDER BY updated_at_ms
LIMIT $2
