SELECT name, version, content_hash, source FROM definitions WHERE name = $1 AND version = $2
