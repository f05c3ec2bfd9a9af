-- Idempotency-Key on POST (API.md): the first answer to a key, replayed for 24 hours.
CREATE TABLE idempotency_keys (
    org         TEXT   NOT NULL,
    key         TEXT   NOT NULL,
    fingerprint TEXT   NOT NULL,       -- SHA-256 of method, path and body
    status      BIGINT NOT NULL,       -- 0 while the first request is still being answered
    location    TEXT,
    body        TEXT,
    created_at  BIGINT NOT NULL,       -- Unix milliseconds
    PRIMARY KEY (org, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
