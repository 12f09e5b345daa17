-- The latest birth of every Sparkplug edge node and device (docs/sparkplug.md): the aliases its
-- data messages use, so data redelivered after a hub restart, or read by the instance that takes
-- over as primary host, still names its metrics. device = '' for the edge node itself.
CREATE TABLE sparkplug_births (
    group_id    text    NOT NULL,
    edge_node   text    NOT NULL,
    device      text    NOT NULL,
    bd_seq      bigint,
    metrics     text    NOT NULL,  -- JSON: [[name, alias or null, datatype or null], ...]
    received_at bigint  NOT NULL,
    PRIMARY KEY (group_id, edge_node, device)
);
