-- The id map read from the target's side (`source_of`: a cutover translating every record it
-- answers, verification, shadow reads) asks for the lowest source id of one target id. With
-- `source_id` missing from this index, SQLite preferred walking the primary key in source_id
-- order and filtering on target_id: a scan of the organization's whole map per lookup. With it,
-- the lookup is one covering index seek (docs/performance.md, issue 22).
DROP INDEX migration_ids_by_target;
CREATE INDEX migration_ids_by_target ON migration_ids (org, target, resource, target_id, source_id);
