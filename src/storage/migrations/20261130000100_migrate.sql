-- The id map of `nestgate migrate`: which record on the target backend stands for which record
-- on the source, per organization and target. It is the single source of truth for resuming a
-- copy, for verifying it, and (later) for the ids integrations keep after a cutover.
--
-- A row is written *before* its record is created on the target (target_id NULL: the intent),
-- and completed with the target's id as soon as the create answers. A row still without a
-- target_id after a crash is resolved on the next run by adopting what the target holds under
-- the record's natural key (or identical fields), so no record is created twice.
CREATE TABLE migration_ids (
    org TEXT NOT NULL,
    target TEXT NOT NULL,
    resource TEXT NOT NULL,
    source_id TEXT NOT NULL,
    target_id TEXT,
    -- SHA-256 of the source record as last copied: a rerun copies only what changed since.
    digest TEXT NOT NULL,
    copied_at BIGINT NOT NULL,
    PRIMARY KEY (org, target, resource, source_id)
);

CREATE INDEX migration_ids_by_target ON migration_ids (org, target, resource, target_id);

-- The lease of a copy run, one per organization and target: two runs at once could each create
-- a record the other holds an intent for. The holder renews `heartbeat` while it runs; a lease
-- whose holder died (kill -9) is taken over (see src/migrate/lease.rs).
CREATE TABLE migration_runs (
    org TEXT NOT NULL,
    target TEXT NOT NULL,
    holder TEXT NOT NULL,
    heartbeat BIGINT NOT NULL,
    PRIMARY KEY (org, target)
);
