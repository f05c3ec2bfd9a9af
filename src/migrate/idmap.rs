//! The id map in storage (`migration_ids`): source id → target id, per organization, target
//! backend and resource, with the digest of the source record as last copied.

use nestgate_contract::Resource;
use sqlx::AnyPool;
use std::collections::{HashMap, HashSet};

/// One row of the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `None` while the record's create is under way (or was cut short by a crash).
    pub target_id: Option<String>,
    pub digest: String,
}

/// The map of one organization's move to one target backend.
#[derive(Clone)]
pub struct IdMap {
    pool: AnyPool,
    org: String,
    target: String,
    /// Pairs found, for a map read on every live request (shadow reads): a pair, once the
    /// record is on the target, never changes, so a found one stays true; an absent one is
    /// never kept (a catch-up run may add it).
    found: Option<std::sync::Arc<Found>>,
}

/// Pairs found: (resource, whether the key is a source id, the key) → the other id.
type Found = moka::sync::Cache<(Resource, bool, String), String>;

impl IdMap {
    pub fn new(pool: AnyPool, org: &str, target: &str) -> IdMap {
        IdMap {
            pool,
            org: org.to_string(),
            target: target.to_string(),
            found: None,
        }
    }

    /// The map, keeping up to `capacity` pairs found in memory.
    pub fn remembering(mut self, capacity: u64) -> IdMap {
        self.found = Some(std::sync::Arc::new(
            moka::sync::Cache::builder().max_capacity(capacity).build(),
        ));
        self
    }

    /// A pair from the memory, or read and remembered when found.
    async fn remembered<F>(
        &self,
        key: (Resource, bool, String),
        read: F,
    ) -> Result<Option<String>, sqlx::Error>
    where
        F: std::future::Future<Output = Result<Option<String>, sqlx::Error>>,
    {
        let Some(found) = &self.found else {
            return read.await;
        };
        if let Some(id) = found.get(&key) {
            return Ok(Some(id));
        }
        let id = read.await?;
        if let Some(id) = &id {
            found.insert(key, id.clone());
        }
        Ok(id)
    }

    pub async fn get(
        &self,
        resource: Resource,
        source_id: &str,
    ) -> Result<Option<Entry>, sqlx::Error> {
        let row: Option<(Option<String>, String)> = sqlx::query_as(
            "SELECT target_id, digest FROM migration_ids \
             WHERE org = $1 AND target = $2 AND resource = $3 AND source_id = $4",
        )
        .bind(&self.org)
        .bind(&self.target)
        .bind(resource.as_str())
        .bind(source_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(target_id, digest)| Entry { target_id, digest }))
    }

    /// The source id the target record `target_id` stands for.
    pub async fn source_of(
        &self,
        resource: Resource,
        target_id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let key = (resource, false, target_id.to_string());
        self.remembered(key, self.read_source_of(resource, target_id))
            .await
    }

    async fn read_source_of(
        &self,
        resource: Resource,
        target_id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT source_id FROM migration_ids \
             WHERE org = $1 AND target = $2 AND resource = $3 AND target_id = $4 \
             ORDER BY source_id LIMIT 1",
        )
        .bind(&self.org)
        .bind(&self.target)
        .bind(resource.as_str())
        .bind(target_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// How many records of `resource` a run began to create and did not see answered: the
    /// target may hold that many records the map does not know yet (the next run adopts them).
    pub async fn pending(&self, resource: Resource) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM migration_ids \
             WHERE org = $1 AND target = $2 AND resource = $3 AND target_id IS NULL",
        )
        .bind(&self.org)
        .bind(&self.target)
        .bind(resource.as_str())
        .fetch_one(&self.pool)
        .await
    }

    /// The target id of a source record already copied.
    pub async fn target_of(
        &self,
        resource: Resource,
        source_id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let key = (resource, true, source_id.to_string());
        let read = async {
            Ok(self
                .get(resource, source_id)
                .await?
                .and_then(|e| e.target_id))
        };
        self.remembered(key, read).await
    }

    /// The rows of a page of source records, by source id: one query for the page.
    pub async fn get_many(
        &self,
        resource: Resource,
        source_ids: &[&str],
    ) -> Result<HashMap<String, Entry>, sqlx::Error> {
        let sql = format!(
            "SELECT source_id, target_id, digest FROM migration_ids \
             WHERE org = $1 AND target = $2 AND resource = $3 AND source_id IN ({})",
            placeholders(4, source_ids.len())
        );
        let mut query =
            sqlx::query_as::<_, (String, Option<String>, String)>(sqlx::AssertSqlSafe(sql))
                .bind(&self.org)
                .bind(&self.target)
                .bind(resource.as_str());
        for id in source_ids {
            query = query.bind(*id);
        }
        let rows = match source_ids.is_empty() {
            true => Vec::new(),
            false => query.fetch_all(&self.pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(|(source_id, target_id, digest)| (source_id, Entry { target_id, digest }))
            .collect())
    }

    /// The source id each of `target_ids` stands for, where the map knows one: one query for
    /// a page (the lowest source id when several stand for one, as [`IdMap::source_of`]).
    pub async fn sources_of(
        &self,
        resource: Resource,
        target_ids: &[&str],
    ) -> Result<HashMap<String, String>, sqlx::Error> {
        if target_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT target_id, MIN(source_id) FROM migration_ids \
             WHERE org = $1 AND target = $2 AND resource = $3 AND target_id IN ({}) \
             GROUP BY target_id",
            placeholders(4, target_ids.len())
        );
        let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql))
            .bind(&self.org)
            .bind(&self.target)
            .bind(resource.as_str());
        for id in target_ids {
            query = query.bind(*id);
        }
        Ok(query.fetch_all(&self.pool).await?.into_iter().collect())
    }

    /// Which of `target_ids` the map knows (stand for a source record): one query for a page.
    pub async fn known_targets(
        &self,
        resource: Resource,
        target_ids: &[&str],
    ) -> Result<HashSet<String>, sqlx::Error> {
        let known = self.sources_of(resource, target_ids).await?;
        Ok(known.into_keys().collect())
    }

    /// After a cutover: `served` is the id integrations know a record created on the target
    /// (`target_id`) by, because its own id was already taken by a record of the source.
    pub async fn alias(
        &self,
        resource: Resource,
        served: &str,
        target_id: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO migration_ids (org, target, resource, source_id, target_id, digest, copied_at) \
             VALUES ($1, $2, $3, $4, $5, 'alias', $6) \
             ON CONFLICT (org, target, resource, source_id) DO NOTHING",
        )
        .bind(&self.org)
        .bind(&self.target)
        .bind(resource.as_str())
        .bind(served)
        .bind(target_id)
        .bind(crate::auth::now_ms())
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// Records the intent to create each `(source id, digest)` on the target, in one
    /// transaction committed before any of their creates is sent.
    pub async fn intend(
        &self,
        resource: Resource,
        rows: &[(&str, &str)],
    ) -> Result<(), sqlx::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = crate::auth::now_ms();
        let mut tx = self.pool.begin().await?;
        // Several rows a statement: each statement is a round trip to SQLite's connection
        // thread, which a page paid for every row (docs/performance.md, issue 22).
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO migration_ids (org, target, resource, source_id, target_id, digest, copied_at) \
                 VALUES {}",
                tuples(5, chunk.len(), &["$1", "$2", "$3", "?", "NULL", "?", "$4"])
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&self.org)
                .bind(&self.target)
                .bind(resource.as_str())
                .bind(now);
            for (source_id, digest) in chunk {
                query = query.bind(*source_id).bind(*digest);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// Each record of `rows` stands on the target, and the intents of `forget` (creates that
    /// surely did not reach it) are dropped, in one transaction.
    pub async fn done(
        &self,
        resource: Resource,
        rows: &[Done],
        forget: &[String],
    ) -> Result<(), sqlx::Error> {
        if rows.is_empty() && forget.is_empty() {
            return Ok(());
        }
        let now = crate::auth::now_ms();
        let mut tx = self.pool.begin().await?;
        for chunk in forget.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "DELETE FROM migration_ids \
                 WHERE org = $1 AND target = $2 AND resource = $3 AND target_id IS NULL \
                 AND source_id IN ({})",
                placeholders(4, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&self.org)
                .bind(&self.target)
                .bind(resource.as_str());
            for source_id in chunk {
                query = query.bind(source_id);
            }
            query.execute(&mut *tx).await?;
        }
        // Every row written here has one already (its intent, or the pair an update keeps), so
        // the upsert only ever takes its update branch: one statement for many rows.
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO migration_ids (org, target, resource, source_id, target_id, digest, copied_at) \
                 VALUES {} \
                 ON CONFLICT (org, target, resource, source_id) DO UPDATE SET \
                 target_id = excluded.target_id, digest = excluded.digest, copied_at = excluded.copied_at",
                tuples(5, chunk.len(), &["$1", "$2", "$3", "?", "?", "?", "$4"])
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&self.org)
                .bind(&self.target)
                .bind(resource.as_str())
                .bind(now);
            for row in chunk {
                query = query
                    .bind(&row.source_id)
                    .bind(&row.target_id)
                    .bind(&row.digest);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// A record's last states are carried: its digest is recorded as copied.
    pub async fn settled(
        &self,
        resource: Resource,
        source_id: &str,
        digest: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE migration_ids SET digest = $5 \
             WHERE org = $1 AND target = $2 AND resource = $3 AND source_id = $4",
        )
        .bind(&self.org)
        .bind(&self.target)
        .bind(resource.as_str())
        .bind(source_id)
        .bind(digest)
        .execute(&self.pool)
        .await
        .map(drop)
    }
}

/// A record that stands on the target, for [`IdMap::done`].
#[derive(Debug, Clone)]
pub struct Done {
    pub source_id: String,
    pub target_id: String,
    /// The digest of the source record as copied (empty when a step failed: the next run tries
    /// it again).
    pub digest: String,
}

/// Rows written by one statement: 3 parameters each, far below SQLite's limit (32,766) and
/// PostgreSQL's (65,535).
const ROWS_PER_STATEMENT: usize = 500;

/// `count` tuples of `shape`, each `?` in it numbered from `$first` on, one number per use:
/// `tuples(5, 2, &["$1", "?"])` is `($1, $5), ($1, $6)`. Only numbers go into the text.
fn tuples(first: usize, count: usize, shape: &[&str]) -> String {
    let mut next = first;
    (0..count)
        .map(|_| {
            let fields: Vec<String> = shape
                .iter()
                .map(|field| match *field {
                    "?" => {
                        next += 1;
                        format!("${}", next - 1)
                    }
                    fixed => fixed.to_string(),
                })
                .collect();
            format!("({})", fields.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$first, $first+1, …`: `count` numbered placeholders (both SQLite and PostgreSQL read them).
/// The only text ever put into a query here: numbers, never a value.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_number_each_row_after_the_shared_parameters() {
        assert_eq!(
            tuples(5, 2, &["$1", "?", "NULL", "?"]),
            "($1, $5, NULL, $6), ($1, $7, NULL, $8)"
        );
        assert_eq!(placeholders(4, 3), "$4, $5, $6");
    }

    /// A page's intents and ids written by the batched statements, read back as written; the
    /// reverse lookup answers the lowest source id, as `source_of` does.
    #[tokio::test]
    async fn batched_rows_read_back_as_written() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/map.db", dir.path().display());
        let storage = crate::storage::Storage::connect(&url, 2).await.unwrap();
        let map = IdMap::new(storage.pool.clone(), "acme", "next");
        let ids: Vec<String> = (0..1_203).map(|i| format!("c{i:05}")).collect();
        let rows: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "d0")).collect();
        map.intend(Resource::Clients, &rows).await.unwrap();
        assert_eq!(map.pending(Resource::Clients).await.unwrap(), 1_203);
        let done: Vec<Done> = ids[..1_201]
            .iter()
            .map(|id| Done {
                source_id: id.clone(),
                // Two source records standing for one target record: the lowest wins.
                target_id: if id == "c00001" {
                    "t00000".into()
                } else {
                    format!("t{}", &id[1..])
                },
                digest: format!("d{id}"),
            })
            .collect();
        map.done(Resource::Clients, &done, &ids[1_201..])
            .await
            .unwrap();
        assert_eq!(map.pending(Resource::Clients).await.unwrap(), 0);
        let entry = map.get(Resource::Clients, "c01200").await.unwrap().unwrap();
        assert_eq!(entry.target_id.as_deref(), Some("t01200"));
        assert_eq!(entry.digest, "dc01200");
        assert!(
            map.get(Resource::Clients, "c01202")
                .await
                .unwrap()
                .is_none()
        );
        let sources = map
            .sources_of(Resource::Clients, &["t00000", "t00002", "t99999"])
            .await
            .unwrap();
        assert_eq!(sources.len(), 2);
        assert_eq!(sources["t00000"], "c00000");
        assert_eq!(sources["t00002"], "c00002");
        let one = map.source_of(Resource::Clients, "t00000").await.unwrap();
        assert_eq!(one.as_deref(), Some("c00000"));
    }
}
