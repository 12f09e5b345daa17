-- Why a machine's readings are missing (docs/devices.md, completeness): intervals in which its
-- device was offline (`kind` device: its status said so, `reason` in the agent's words) or the
-- agent polling it was (`kind` agent), or readings its agent's buffer dropped (`kind` drop: the
-- span of their timestamps). Device and agent outages are opened and closed by status messages
-- as the hub receives them; `end_ms` NULL while the outage lasts. `scheduled_per_minute`: the readings per minute the
-- machine's meta message schedules (tags sent on every poll × polls per minute).
CREATE TABLE machine_outages (
    site     text   NOT NULL,
    line     text   NOT NULL,
    machine  text   NOT NULL,
    kind     text   NOT NULL CHECK (kind IN ('device', 'agent', 'drop')),
    reason   text   NOT NULL,
    start_ms bigint NOT NULL,
    end_ms   bigint,
    PRIMARY KEY (site, line, machine, kind, start_ms)
);
CREATE INDEX machine_outages_open ON machine_outages (site, line, machine, kind)
    WHERE end_ms IS NULL;

ALTER TABLE machine_meta ADD COLUMN scheduled_per_minute double precision;
