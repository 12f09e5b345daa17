-- Which tags commands may write, and the range a written number must keep, from the machine's
-- meta (docs/commands.md): the dashboard offers a write control only on these.
ALTER TABLE tag_meta ADD COLUMN writable boolean NOT NULL DEFAULT false;
ALTER TABLE tag_meta ADD COLUMN write_min double precision;
ALTER TABLE tag_meta ADD COLUMN write_max double precision;
