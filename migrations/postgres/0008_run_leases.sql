-- A scheduled run is claimed under a lease that the running agent renews.
-- A claim whose lease lapsed before the run finished (its agent died) is
-- taken over by another agent. Claims made before leases existed count as
-- finished.

ALTER TABLE scheduler_claims ADD COLUMN lease_until TIMESTAMPTZ;

ALTER TABLE scheduler_claims ADD COLUMN finished_at TIMESTAMPTZ;

UPDATE scheduler_claims SET lease_until = claimed_at, finished_at = claimed_at;

CREATE INDEX scheduler_claims_unfinished ON scheduler_claims (lease_until)
    WHERE finished_at IS NULL;
