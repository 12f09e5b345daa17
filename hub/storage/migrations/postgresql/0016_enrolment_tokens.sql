-- One-time enrolment tokens (docs/deploy.md "Enrol an agent"): only the token's SHA-256 is kept.
-- Redeeming sets a new broker password and hands it over in that answer; the row records who
-- redeemed it and when.
CREATE TABLE enrolment_tokens (
    digest     text   PRIMARY KEY,
    name       text   NOT NULL REFERENCES broker_identities (name) ON DELETE CASCADE,
    broker_url text   NOT NULL,
    created_at bigint NOT NULL,
    created_by text   NOT NULL,
    expires_at bigint NOT NULL,
    used_at    bigint,
    used_by    text
);
CREATE INDEX enrolment_tokens_name ON enrolment_tokens (name);
