-- SQLite (the demo): as the PostgreSQL migration.
CREATE TABLE sparkplug_births (
    group_id    TEXT    NOT NULL,
    edge_node   TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    bd_seq      INTEGER,
    metrics     TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, edge_node, device)
);
