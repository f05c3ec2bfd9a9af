-- Shadow reads (`[orgs.NAME.migrate_to] shadow_reads`): how the target's answers compared with
-- the served ones, per organization, target backend, route and outcome, since shadowing began. Each instance
-- adds its counts every few seconds; `nestgate migrate ORG --status` shows them.
CREATE TABLE shadow_counts (
    org TEXT NOT NULL,
    target TEXT NOT NULL,
    route TEXT NOT NULL,
    -- `match`, `mismatch`, `error` or `dropped`.
    outcome TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (org, target, route, outcome)
);
