-- How long a healthy machine may stay without sending anything (its tags' shortest poll interval
-- or heartbeat, from its meta message; docs/devices.md): the fleet view calls it stale only
-- after that plus a grace period. NULL: the machine declared neither (the fixed default applies).
ALTER TABLE machine_meta ADD COLUMN quiet_ms bigint;
