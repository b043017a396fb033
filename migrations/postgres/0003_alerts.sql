-- Alerting: what the alert manager needs beyond the first schema. The
-- number leaves 0002 to the gate's migration; the two are independent.

-- An alert is about a check (keyed by check id), a warehouse
-- (`warehouse:<name>`) or a quarantined partition (`quarantine:<dataset>`).
ALTER TABLE alerts
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'check' CHECK (kind IN ('check', 'warehouse', 'quarantine')),
    -- When the alert last started firing, and when it last resolved.
    ADD COLUMN fired_at TIMESTAMPTZ,
    ADD COLUMN resolved_at TIMESTAMPTZ,
    -- TRUE while receivers have been told the alert fires and not yet that
    -- it resolved: a resolve is owed to them.
    ADD COLUMN notified BOOLEAN NOT NULL DEFAULT FALSE,
    -- Labels (what routes and silences match) and annotations (what
    -- messages show) of the alert's latest observation.
    ADD COLUMN details JSONB NOT NULL DEFAULT '{}';

CREATE INDEX alerts_by_kind ON alerts (kind, state);

-- The last digest sent for each digest route.
CREATE TABLE alert_digests (
    route        TEXT        NOT NULL PRIMARY KEY,
    last_sent_at TIMESTAMPTZ NOT NULL
);

-- Each receiver's deliveries are claimed in order of queueing.
CREATE INDEX outbox_by_receiver ON outbox (receiver, status, id);
