-- The actor of a change made through the API is the name of the token it
-- came with; what the request said about who sent it (`by`, `created_by`)
-- is kept beside it as a note. A silence also records who ended it.

ALTER TABLE partition_transitions ADD COLUMN note TEXT;

ALTER TABLE silences ADD COLUMN note TEXT;

ALTER TABLE silences ADD COLUMN ended_by TEXT;
