-- A definition version, unless its (name, version) is on record already:
-- then nothing is written and no row comes back.
INSERT INTO definitions (name, version, content_hash, source, recorded_at_ms) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name, version) DO NOTHING RETURNING name
