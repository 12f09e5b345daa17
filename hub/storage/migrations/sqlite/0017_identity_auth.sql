-- SQLite (the demo): as the PostgreSQL migration.
ALTER TABLE broker_identities ADD COLUMN auth TEXT NOT NULL DEFAULT 'password';
