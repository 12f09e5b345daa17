-- Units and descriptions of tags, from the retained `ms/v1/{site}/{line}/{machine}/meta`
-- messages agents and devices publish (docs/wire.md "Machine meta"). A message replaces the
-- machine's whole tag list: `machine_meta` keeps its ts (a late or replayed older message is
-- ignored) and `tag_meta` the tags it named.
CREATE TABLE machine_meta (
    site        text   NOT NULL,
    line        text   NOT NULL,
    machine     text   NOT NULL,
    meta_ts     bigint NOT NULL,  -- `ts` of the message kept
    payload     text   NOT NULL,
    received_at bigint NOT NULL,
    PRIMARY KEY (site, line, machine)
);

CREATE TABLE tag_meta (
    site        text NOT NULL,
    line        text NOT NULL,
    machine     text NOT NULL,
    tag         text NOT NULL,
    unit        text,
    description text,
    PRIMARY KEY (site, line, machine, tag)
);
