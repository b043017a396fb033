-- An alert belongs to a check, not to a partition: one row per check (its
-- `partition_key` is ''), with the partition it last looked at in
-- `last_partition`. Only a quarantine keeps its partition in the key (one
-- alert per quarantined partition); warehouses were already keyed ''.

ALTER TABLE alerts ADD COLUMN last_partition TEXT;

UPDATE alerts SET last_partition = partition_key WHERE partition_key <> '';

-- Of a check's rows in the old keying, the newest partition's is kept; the
-- others are closed without a notification.
DELETE FROM alerts
WHERE kind <> 'quarantine'
  AND partition_key < (
      SELECT max(newest.partition_key) FROM alerts AS newest
      WHERE newest.check_id = alerts.check_id AND newest.kind <> 'quarantine'
  );

UPDATE alerts SET partition_key = '' WHERE kind <> 'quarantine';
