SELECT tx, position FROM relay_checkpoints WHERE relay = $1
