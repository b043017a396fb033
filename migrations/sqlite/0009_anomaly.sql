-- An anomaly check's result carries the band it was judged against and its
-- score; other kinds leave them NULL.

ALTER TABLE check_results ADD COLUMN expected_lower REAL;

ALTER TABLE check_results ADD COLUMN expected_center REAL;

ALTER TABLE check_results ADD COLUMN expected_upper REAL;

ALTER TABLE check_results ADD COLUMN score REAL;
