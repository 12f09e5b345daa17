-- Units and descriptions of tags (SQLite); see the PostgreSQL migration for meanings.
CREATE TABLE machine_meta (
    site        TEXT    NOT NULL,
    line        TEXT    NOT NULL,
    machine     TEXT    NOT NULL,
    meta_ts     INTEGER NOT NULL,
    payload     TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (site, line, machine)
);

CREATE TABLE tag_meta (
    site        TEXT NOT NULL,
    line        TEXT NOT NULL,
    machine     TEXT NOT NULL,
    tag         TEXT NOT NULL,
    unit        TEXT,
    description TEXT,
    PRIMARY KEY (site, line, machine, tag)
) WITHOUT ROWID;
