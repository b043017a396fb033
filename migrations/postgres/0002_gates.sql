-- Gates as the gate service runs them. A decision denied for an error or a
-- timeout may be retried: a repeat of its request starts a new gate and the
-- old one records which (`retried_by`), so the idempotency keys are unique
-- among gates not retried. `agent` runs the gate until `deadline_at`; a gate
-- still undecided after that was abandoned by an agent that stopped.
-- `request_key` is the client's Idempotency-Key header, if it sent one.
ALTER TABLE gates DROP CONSTRAINT gates_idempotency_key_key;

ALTER TABLE gates
    ADD COLUMN request_key TEXT,
    ADD COLUMN agent       TEXT NOT NULL DEFAULT '',
    ADD COLUMN started_at  TIMESTAMPTZ,
    ADD COLUMN deadline_at TIMESTAMPTZ,
    ADD COLUMN retried_by  TEXT;

UPDATE gates SET deadline_at = created_at;

ALTER TABLE gates
    ALTER COLUMN deadline_at SET NOT NULL,
    ADD CONSTRAINT gates_ids_not_empty CHECK (gate_id <> '' AND dataset <> '' AND partition_key <> '' AND run_id <> ''),
    ADD CONSTRAINT gates_decided_have_basis
        CHECK ((status IN ('allowed', 'denied')) = (basis IS NOT NULL AND decided_at IS NOT NULL));

CREATE UNIQUE INDEX gates_live_by_idempotency_key ON gates (idempotency_key) WHERE retried_by IS NULL;
CREATE UNIQUE INDEX gates_live_by_request_key ON gates (request_key)
    WHERE retried_by IS NULL AND request_key IS NOT NULL;
CREATE INDEX gates_undecided ON gates (status, deadline_at) WHERE status IN ('queued', 'running');
