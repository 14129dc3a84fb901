SELECT subject, reason, payload, received_at_ms FROM poison ORDER BY id LIMIT $1
