-- How a broker identity logs in: a password the hub set (shown once), or a client certificate
-- from the site CA whose common name is its name (docs/deploy.md "Devices with a client
-- certificate").
ALTER TABLE broker_identities
    ADD COLUMN auth text NOT NULL DEFAULT 'password' CHECK (auth IN ('password', 'certificate'));
