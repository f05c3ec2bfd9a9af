-- Operator console sign-ins (docs/console.md). The cookie holds a random session id; only its
-- SHA-256 is kept. `operator_hash` is the SHA-256 of the operator token that signed in: when the
-- token changes, every session opened with the old one ends. Times are Unix milliseconds.
CREATE TABLE console_sessions (
    id_hash       TEXT   PRIMARY KEY,
    operator_hash TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- When a token was last issued for a key (a grant or a refresh), for the console's key list.
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
