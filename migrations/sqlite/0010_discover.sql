-- Tables found by `discover:` entries: when each was first and last seen,
-- what the catalog said of it at the last run (its change mark and row
-- estimate), when warden saw it change, and when it disappeared (a dropped
-- table is reported once, then forgotten after `forget_after`).

CREATE TABLE discovered_tables (
    warehouse TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    table_name TEXT NOT NULL,
    dataset TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    changed_at TEXT,
    change_mark TEXT,
    row_estimate INTEGER,
    dropped_at TEXT,
    PRIMARY KEY (warehouse, schema_name, table_name)
);

CREATE INDEX discovered_tables_dataset ON discovered_tables (dataset);
