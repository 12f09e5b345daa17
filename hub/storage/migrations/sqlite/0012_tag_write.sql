-- SQLite (the demo): as the PostgreSQL migration.
ALTER TABLE tag_meta ADD COLUMN writable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tag_meta ADD COLUMN write_min REAL;
ALTER TABLE tag_meta ADD COLUMN write_max REAL;
