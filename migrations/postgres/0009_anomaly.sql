-- An anomaly check's result carries the band it was judged against and its
-- score; other kinds leave them NULL.

ALTER TABLE check_results
    ADD COLUMN expected_lower DOUBLE PRECISION,
    ADD COLUMN expected_center DOUBLE PRECISION,
    ADD COLUMN expected_upper DOUBLE PRECISION,
    ADD COLUMN score DOUBLE PRECISION;
