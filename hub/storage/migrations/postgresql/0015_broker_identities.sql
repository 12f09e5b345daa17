-- MQTT devices and agents given a broker identity through the hub (docs/devices.md "Broker
-- identities"). The broker (Mosquitto's dynamic security) holds the password and enforces the
-- ACL; this table is what the hub knows of each: where it publishes and under which src.
CREATE TABLE broker_identities (
    name       text    PRIMARY KEY,
    kind       text    NOT NULL CHECK (kind IN ('device', 'agent')),
    site       text    NOT NULL,
    line       text    NOT NULL,
    machines   text    NOT NULL,  -- JSON list; an agent: [] (any machine of its line)
    src        text    NOT NULL,
    disabled   boolean NOT NULL DEFAULT false,
    created_at bigint  NOT NULL,
    created_by text    NOT NULL,
    updated_at bigint  NOT NULL
);
