-- Cutover (`nestgate migrate ORG --cutover`): where an organization is served from while and
-- after it moves. One row per organization that has been frozen, switched or rolled back; every
-- gateway instance reads the table every second and serves accordingly.
CREATE TABLE org_routes (
    org TEXT PRIMARY KEY,
    -- Backend names, as configured: the one the organization moves from, and to.
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    -- `frozen` (reads from the source, writes refused), `switched` (served from the target,
    -- ids translated through the id map), `rolled_back` (served from the source again after a
    -- switch) or `thawed` (served from the source again after a freeze that did not switch).
    state TEXT NOT NULL,
    -- Bumped at every change: instances acknowledge the freeze they saw by its number.
    seq BIGINT NOT NULL,
    -- When the freeze began (kept through the switch, for its duration), and the last change.
    frozen_at BIGINT,
    changed_at BIGINT NOT NULL,
    -- The first write sent to the target after the switch: no rollback from then on.
    first_write_at BIGINT
);

-- Running gateway instances, each heartbeating every second: the instances a freeze waits for.
CREATE TABLE gateway_instances (
    id TEXT PRIMARY KEY,
    heartbeat BIGINT NOT NULL
);

-- An instance has seen a freeze (by its `seq`) and has no write to the source in flight.
CREATE TABLE org_route_acks (
    org TEXT NOT NULL,
    instance TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (org, instance)
);

-- The outcome of the last copy or verification of each move, for `--status`.
CREATE TABLE migration_outcomes (
    org TEXT NOT NULL,
    target TEXT NOT NULL,
    mode TEXT NOT NULL,
    finished_at BIGINT NOT NULL,
    ok BIGINT NOT NULL,        -- 1 verified equal, 0 not
    differences BIGINT NOT NULL,
    interrupted TEXT,
    PRIMARY KEY (org, target)
);
