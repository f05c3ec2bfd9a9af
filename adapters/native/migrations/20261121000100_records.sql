-- The native store keeps each record as its JSON body, plus the few columns that lists filter
-- on and that uniqueness is enforced on. Written once for SQLite and PostgreSQL alike.
CREATE TABLE records (
    org        TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    resource   TEXT   NOT NULL,
    created_at BIGINT NOT NULL,          -- Unix milliseconds; lists order by (created_at, id)
    updated_at BIGINT NOT NULL,
    archived   BIGINT NOT NULL DEFAULT 0,
    version    BIGINT NOT NULL DEFAULT 0, -- optimistic concurrency: every update bumps it
    unique_key TEXT,                      -- invoice number or product key, unique per org
    client_id  TEXT,
    invoice_id TEXT,
    status     TEXT,
    email      TEXT,                      -- lower-cased, for the clients email filter
    body       TEXT   NOT NULL,
    PRIMARY KEY (org, id)
);
CREATE UNIQUE INDEX records_unique_key ON records (org, resource, unique_key);
CREATE INDEX records_list ON records (org, resource, created_at, id);
CREATE INDEX records_client ON records (org, client_id);
CREATE INDEX records_invoice ON records (org, invoice_id);

-- Per-organization counters (invoice numbers).
CREATE TABLE counters (
    org   TEXT   NOT NULL,
    name  TEXT   NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (org, name)
);
