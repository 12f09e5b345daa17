-- Readings without a numeric value (strings) stored per series per minute. Rollups count numeric
-- readings (and bools) only; completeness compares everything a machine stored per minute with
-- what its agent produced, so text tags need their own count. Filled from the rows each ingest
-- transaction actually inserts, like the rollups; pruned with them by `retention_days`.
CREATE TABLE text_minute (
    series_id integer NOT NULL,
    bucket    bigint  NOT NULL,  -- epoch ms of the minute's start
    count     bigint  NOT NULL,
    PRIMARY KEY (series_id, bucket)
);

-- Text readings stored before this migration.
INSERT INTO text_minute (series_id, bucket, count)
SELECT series_id, ts - ts % 60000, count(*) FROM readings WHERE value IS NULL GROUP BY 1, 2;
