-- The registry schema on SQLite. migrations/postgres holds the same tables
-- with the same meaning. Timestamps are UTC, stored as RFC 3339 text with a
-- `+00:00` offset, so text order is time order. JSON is stored as text.

-- One row per (check, partition, scheduled time): reruns and backfills
-- overwrite, never duplicate. `partition_key` is '' for a whole-relation check.
CREATE TABLE check_results (
    check_id      TEXT    NOT NULL CHECK (check_id <> ''),
    dataset       TEXT    NOT NULL CHECK (dataset <> ''),
    kind          TEXT    NOT NULL CHECK (kind <> ''),
    column_name   TEXT,
    partition_key TEXT    NOT NULL,
    scheduled_at  TEXT    NOT NULL,
    outcome       TEXT    NOT NULL CHECK (outcome IN ('pass', 'warn', 'fail', 'error')),
    observed      REAL,
    -- The row count behind a row_count_change result: what later runs compare with.
    row_count     INTEGER,
    threshold     TEXT    NOT NULL CHECK (json_valid(threshold)),
    message       TEXT    NOT NULL,
    duration_ms   INTEGER NOT NULL CHECK (duration_ms >= 0),
    recorded_at   TEXT    NOT NULL,
    PRIMARY KEY (check_id, partition_key, scheduled_at)
) STRICT;

CREATE INDEX check_results_by_check_time ON check_results (check_id, scheduled_at);
CREATE INDEX check_results_by_dataset ON check_results (dataset, check_id, scheduled_at);

-- The accepted schema of a dataset: `[{"name": …, "type": …}]`.
CREATE TABLE schema_baselines (
    dataset     TEXT NOT NULL PRIMARY KEY CHECK (dataset <> ''),
    columns     TEXT NOT NULL CHECK (json_valid(columns)),
    accepted_at TEXT NOT NULL,
    accepted_by TEXT NOT NULL
) STRICT;

-- Publication state of each gated partition. `gate_id` is the gate behind the
-- current state; `published_gate_id`/`published_at` keep the last
-- publication visible while a re-gate runs.
CREATE TABLE partitions (
    dataset           TEXT NOT NULL CHECK (dataset <> ''),
    partition_key     TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('validating', 'passed', 'quarantined', 'published')),
    gate_id           TEXT,
    published_gate_id TEXT,
    published_at      TEXT,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (dataset, partition_key)
) STRICT;

-- Append-only log of every state change; `from_state` is NULL for the first.
CREATE TABLE partition_transitions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset       TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    from_state    TEXT CHECK (from_state IN ('validating', 'passed', 'quarantined', 'published')),
    to_state      TEXT NOT NULL CHECK (to_state IN ('validating', 'passed', 'quarantined', 'published')),
    at            TEXT NOT NULL,
    actor         TEXT NOT NULL,
    gate_id       TEXT,
    reason        TEXT
) STRICT;

CREATE INDEX partition_transitions_by_partition ON partition_transitions (dataset, partition_key, id);

-- Gate requests and their decisions. A repeat with the same idempotency key
-- (dataset, partition, run id) returns the recorded decision.
CREATE TABLE gates (
    gate_id         TEXT NOT NULL PRIMARY KEY,
    dataset         TEXT NOT NULL,
    partition_key   TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    request_hash    TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'allowed', 'denied')),
    basis           TEXT CHECK (basis IN ('checks', 'error', 'timeout', 'override')),
    results         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(results)),
    reasons         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(reasons)),
    created_at      TEXT NOT NULL,
    decided_at      TEXT
) STRICT;

CREATE INDEX gates_by_partition ON gates (dataset, partition_key, created_at);

-- One alert per (check, partition).
CREATE TABLE alerts (
    check_id             TEXT    NOT NULL,
    partition_key        TEXT    NOT NULL,
    dataset              TEXT    NOT NULL,
    state                TEXT    NOT NULL CHECK (state IN ('ok', 'pending', 'firing', 'resolved')),
    consecutive_failures INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    first_failed_at      TEXT,
    last_notified_at     TEXT,
    last_outcome         TEXT CHECK (last_outcome IN ('pass', 'warn', 'fail', 'error')),
    last_message         TEXT,
    updated_at           TEXT    NOT NULL,
    PRIMARY KEY (check_id, partition_key)
) STRICT;

CREATE INDEX alerts_by_state ON alerts (state, dataset);

-- Durable notification queue; `dead` rows are the dead-letter list.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver        TEXT    NOT NULL,
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    dedup_key       TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    last_error      TEXT,
    status          TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead'))
) STRICT;

CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

CREATE TABLE silences (
    id         TEXT NOT NULL PRIMARY KEY,
    matchers   TEXT NOT NULL CHECK (json_valid(matchers)),
    starts_at  TEXT NOT NULL,
    ends_at    TEXT NOT NULL,
    created_by TEXT NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    CHECK (ends_at > starts_at)
) STRICT;

-- Several agents sharing a registry run each scheduled run of a dataset once.
CREATE TABLE scheduler_claims (
    dataset      TEXT NOT NULL,
    scheduled_at TEXT NOT NULL,
    claimed_by   TEXT NOT NULL,
    claimed_at   TEXT NOT NULL,
    PRIMARY KEY (dataset, scheduled_at)
) STRICT;
