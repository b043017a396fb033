-- The rhythm of a discovered table: the times of its last changes (at most
-- 61, so 60 intervals), oldest first, as a JSON array. Without
-- `freshness.max_lag` its freshness limit is learned from these intervals.

ALTER TABLE discovered_tables ADD COLUMN change_times JSONB NOT NULL DEFAULT '[]'::jsonb;
