SELECT id, subject, reason, payload, received_at_ms FROM poison WHERE id > $1 ORDER BY id LIMIT $2
