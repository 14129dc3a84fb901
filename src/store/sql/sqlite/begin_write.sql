-- Takes the database's one write lock before the first read, so two
-- appends never read the same last seq.
BEGIN IMMEDIATE
