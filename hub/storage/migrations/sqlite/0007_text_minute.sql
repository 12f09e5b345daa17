-- Readings without a numeric value stored per series per minute (SQLite); see the PostgreSQL
-- migration for meanings.
CREATE TABLE text_minute (
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

INSERT INTO text_minute (series_id, bucket, count)
SELECT series_id, ts - ts % 60000, count(*) FROM readings WHERE value IS NULL GROUP BY 1, 2;
