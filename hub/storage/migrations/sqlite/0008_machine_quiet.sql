-- How long a healthy machine may stay quiet (SQLite); see the PostgreSQL migration.
ALTER TABLE machine_meta ADD COLUMN quiet_ms INTEGER;
