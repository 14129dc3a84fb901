-- A definition version, stamped with the database's clock, unless its
-- (name, version) is on record already:
-- then nothing is written and no row comes back.
INSERT INTO definitions (name, version, content_hash, source, recorded_at_ms) VALUES ($1, $2, $3, $4, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
ON CONFLICT (name, version) DO NOTHING RETURNING name
