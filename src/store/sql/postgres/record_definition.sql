-- A definition version, stamped with the database's clock, unless its
-- (name, version) is on record already:
-- then nothing is written and no row comes back.
INSERT INTO definitions (name, version, content_hash, source, recorded_at_ms) VALUES ($1, $2, $3, $4, (extract(epoch from clock_timestamp()) * 1000)::bigint)
ON CONFLICT (name, version) DO NOTHING RETURNING name
