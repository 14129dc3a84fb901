INSERT INTO relay_checkpoints (relay, tx, position) VALUES ($1, $2, $3)
ON CONFLICT (relay) DO UPDATE SET tx = excluded.tx, position = excluded.position
