//! The id map in storage (`migration_ids`): source id → target id, per organization, target
//! backend and resource, with the digest of the source record as last copied.

use nestgate_contract::Resource;
use sqlx::AnyPool;

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
}

impl IdMap {
    pub fn new(pool: AnyPool, org: &str, target: &str) -> IdMap {
        IdMap {
            pool,
            org: org.to_string(),
            target: target.to_string(),
        }
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
        sqlx::query_scalar(
            "SELECT source_id FROM migration_ids \
             WHERE org = $1 AND target = $2 AND resource = $3 AND target_id = $4",
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
        Ok(self
            .get(resource, source_id)
            .await?
            .and_then(|e| e.target_id))
    }

    /// Records the intent to create `source_id` on the target, before the create is sent.
    pub async fn intend(
        &self,
        resource: Resource,
        source_id: &str,
        digest: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO migration_ids (org, target, resource, source_id, target_id, digest, copied_at) \
             VALUES ($1, $2, $3, $4, NULL, $5, $6)",
        )
        .bind(&self.org)
        .bind(&self.target)
        .bind(resource.as_str())
        .bind(source_id)
        .bind(digest)
        .bind(crate::auth::now_ms())
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// The record stands on the target as `target_id`, copied from the source at `digest`.
    pub async fn done(
        &self,
        resource: Resource,
        source_id: &str,
        target_id: &str,
        digest: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE migration_ids SET target_id = $5, digest = $6, copied_at = $7 \
             WHERE org = $1 AND target = $2 AND resource = $3 AND source_id = $4",
        )
        .bind(&self.org)
        .bind(&self.target)
        .bind(resource.as_str())
        .bind(source_id)
        .bind(target_id)
        .bind(digest)
        .bind(crate::auth::now_ms())
        .execute(&self.pool)
        .await
        .map(drop)
    }
}
