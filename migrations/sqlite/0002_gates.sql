-- Gates as the gate service runs them. A decision denied for an error or a
-- timeout may be retried: a repeat of its request starts a new gate and the
-- old one records which (`retried_by`), so the idempotency keys are unique
-- among gates not retried. `agent` runs the gate until `deadline_at`; a gate
-- still undecided after that was abandoned by an agent that stopped.
-- `request_key` is the client's Idempotency-Key header, if it sent one.
CREATE TABLE gates_v2 (
    gate_id         TEXT NOT NULL PRIMARY KEY CHECK (gate_id <> ''),
    dataset         TEXT NOT NULL CHECK (dataset <> ''),
    partition_key   TEXT NOT NULL CHECK (partition_key <> ''),
    run_id          TEXT NOT NULL CHECK (run_id <> ''),
    idempotency_key TEXT NOT NULL,
    request_key     TEXT,
    request_hash    TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'allowed', 'denied')),
    basis           TEXT CHECK (basis IN ('checks', 'error', 'timeout', 'override')),
    results         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(results)),
    reasons         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(reasons)),
    agent           TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    deadline_at     TEXT NOT NULL,
    decided_at      TEXT,
    retried_by      TEXT,
    CHECK ((status IN ('allowed', 'denied')) = (basis IS NOT NULL AND decided_at IS NOT NULL))
) STRICT;

INSERT INTO gates_v2 (gate_id, dataset, partition_key, run_id, idempotency_key, request_hash,
                      status, basis, results, reasons, created_at, deadline_at, decided_at)
SELECT gate_id, dataset, partition_key, run_id, idempotency_key, request_hash,
       status, basis, results, reasons, created_at, created_at, decided_at
FROM gates;

DROP TABLE gates;
ALTER TABLE gates_v2 RENAME TO gates;

CREATE UNIQUE INDEX gates_live_by_idempotency_key ON gates (idempotency_key) WHERE retried_by IS NULL;
CREATE UNIQUE INDEX gates_live_by_request_key ON gates (request_key)
    WHERE retried_by IS NULL AND request_key IS NOT NULL;
CREATE INDEX gates_by_partition ON gates (dataset, partition_key, created_at);
CREATE INDEX gates_undecided ON gates (status, deadline_at) WHERE status IN ('queued', 'running');
