INSERT INTO poison (subject, reason, payload, received_at_ms) VALUES ($1, $2, $3, $4)
