-- Token state (API.md, "Authentication"). Times are Unix milliseconds. Credentials are stored
-- only as SHA-256 hex digests.

-- API keys: one organization, a set of scopes, a hashed secret.
CREATE TABLE api_keys (
    client_id   TEXT   PRIMARY KEY,    -- ak_live_…
    org         TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    scopes      TEXT   NOT NULL,       -- space-separated
    secret_hash TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_org ON api_keys (org);

-- A session: one client_credentials grant and every refresh that followed it.
CREATE TABLE auth_sessions (
    id             TEXT   PRIMARY KEY,
    client_id      TEXT   NOT NULL,
    org            TEXT   NOT NULL,
    scopes         TEXT   NOT NULL,    -- what its refresh tokens may grant
    created_at     BIGINT NOT NULL,
    last_issued_at BIGINT NOT NULL,    -- its newest access token; older ones have expired sooner
    revoked_at     BIGINT
);
CREATE INDEX auth_sessions_client ON auth_sessions (client_id);

-- Refresh tokens. Rotation is one conditional UPDATE of spent_at: zero rows means reuse.
CREATE TABLE refresh_tokens (
    token_hash TEXT   PRIMARY KEY,
    session_id TEXT   NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    spent_at   BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

-- Revocations of live access tokens, read by every instance. kind is 'key' (every token of a
-- client_id), 'sessions' (every token of a client_id issued at or before `cutoff`, Unix seconds:
-- reuse detection), 'session' (a session id) or 'token' (a jti). A row matters only until every
-- access token it can refuse has expired (expires_at). `seq` orders rows by commit: it is taken
-- from revocation_seq, whose one row each revoking transaction updates first and so holds
-- locked until it commits; a poller that has read up to N has missed nothing below N.
CREATE TABLE revocations (
    id         TEXT   PRIMARY KEY,     -- kind:subject, so repeating a revocation adds nothing
    seq        BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    cutoff     BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revocations_seq ON revocations (seq);
CREATE INDEX revocations_expires ON revocations (expires_at);
CREATE TABLE revocation_seq (
    id BIGINT PRIMARY KEY,             -- always 1
    n  BIGINT NOT NULL
);
INSERT INTO revocation_seq (id, n) VALUES (1, 0);

-- The signing key generated when the configuration names none: one row, made once, shared by
-- every instance on this storage.
CREATE TABLE generated_signing_key (
    id         BIGINT PRIMARY KEY,     -- always 1
    kid        TEXT   NOT NULL,
    secret     TEXT   NOT NULL,        -- base64; HMAC needs the key itself, not a digest
    created_at BIGINT NOT NULL
);
