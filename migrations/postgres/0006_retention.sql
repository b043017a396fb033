-- Retention: the indexes the agent's hourly prune deletes by, in small
-- batches (src/registry/prune.rs): results by when they were recorded,
-- decided gates by when they were decided (and partitions by the gates they
-- point at, which are kept), transitions by time, delivered notifications
-- by when they were queued, silences by when they ended.
CREATE INDEX check_results_by_recorded_at ON check_results (recorded_at);
CREATE INDEX gates_decided ON gates (decided_at) WHERE status IN ('allowed', 'denied');
CREATE INDEX partitions_by_gate ON partitions (gate_id);
CREATE INDEX partitions_by_published_gate ON partitions (published_gate_id);
CREATE INDEX partition_transitions_by_time ON partition_transitions (at);
CREATE INDEX outbox_delivered ON outbox (created_at) WHERE status = 'delivered';
CREATE INDEX silences_by_end ON silences (ends_at);
