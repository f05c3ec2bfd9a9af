//! API keys: an organization, a set of scopes, a public client_id and a secret kept only as its
//! SHA-256. Live keys are cached (moka) in front of storage so the token endpoint rarely reads
//! the database; a revocation evicts the key here at once and, through the revocation poll, in
//! every other instance.

use super::now_ms;
use super::scope::Scopes;
use super::secret::{self, Secret};
use moka::future::Cache;
use sqlx::{AnyPool, Row};
use std::collections::HashMap;

/// What a key grants: its organization and scopes.
pub type Grant = (String, Scopes);
use std::sync::Arc;
use std::time::Duration;

/// An API key as stored (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub client_id: String,
    pub org: String,
    pub name: String,
    pub scopes: Scopes,
    /// Unix milliseconds.
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// When a token was last issued for it (a grant or a refresh); `None` for a key never used.
    pub last_used_at: Option<i64>,
    secret_hash: String,
}

impl ApiKey {
    /// Whether `secret` is this key's, compared in constant time.
    pub fn secret_matches(&self, secret: &str) -> bool {
        secret::matches(secret, &self.secret_hash)
    }

    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none()
    }

    /// The JSON of `keys list --json` and `GET /admin/v1/keys`.
    pub fn to_json(&self) -> serde_json::Value {
        let time = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        };
        serde_json::json!({
            "client_id": self.client_id,
            "org": self.org,
            "name": self.name,
            "scopes": self.scopes.names().collect::<Vec<_>>(),
            "created_at": time(self.created_at),
            "revoked_at": self.revoked_at.and_then(time),
            "last_used_at": self.last_used_at.and_then(time),
        })
    }
}

pub struct KeyStore {
    pool: AnyPool,
    /// Live keys only: an unknown client_id is never cached, so nobody can fill the cache.
    live: Cache<String, Arc<ApiKey>>,
    /// Every key in storage, revoked ones too (revocation is checked on its own): its
    /// organization and scopes, so that an access token's subject is checked from memory.
    known: std::sync::RwLock<HashMap<String, Grant>>,
    /// Client_ids not known here, looked up in storage (a key another instance made since this
    /// one started, or one that does not exist): at most one look-up per id every 10 s.
    looked_up: Cache<String, Option<Grant>>,
}

/// The columns every query reads, for [`from_row`] (a macro, so queries stay static strings).
macro_rules! columns {
    () => {
        "client_id, org, name, scopes, secret_hash, created_at, revoked_at, last_used_at"
    };
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<ApiKey, sqlx::Error> {
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiKey {
        client_id: row.try_get("client_id")?,
        org: row.try_get("org")?,
        name: row.try_get("name")?,
        // Stored scopes were checked before they were written; should one be unknown, the key
        // grants nothing rather than guessing.
        scopes: Scopes::parse(&scopes).unwrap_or_default(),
        secret_hash: row.try_get("secret_hash")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

impl KeyStore {
    pub fn new(pool: AnyPool) -> KeyStore {
        KeyStore {
            pool,
            live: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            known: Default::default(),
            looked_up: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(10))
                .build(),
        }
    }

    /// Learns every key in storage (at start-up).
    pub async fn load_known(&self) -> Result<(), sqlx::Error> {
        let keys: Vec<(String, String, String)> =
            sqlx::query_as("SELECT client_id, org, scopes FROM api_keys")
                .fetch_all(&self.pool)
                .await?;
        let mut known = self.known_keys();
        for (client_id, org, scopes) in keys {
            known.insert(client_id, (org, Scopes::parse(&scopes).unwrap_or_default()));
        }
        Ok(())
    }

    fn known_keys(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Grant>> {
        self.known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the key `client_id` exists (revoked or not), belongs to `org` and grants at
    /// least `scopes`: compared in memory for every key this instance has seen (no copy on the
    /// request path), looked up as [`KeyStore::grant_of`] says for the others.
    pub async fn grants(
        &self,
        client_id: &str,
        org: &str,
        scopes: Scopes,
    ) -> Result<bool, Arc<sqlx::Error>> {
        let fits = |(key_org, key_scopes): &Grant| key_org == org && key_scopes.contains(scopes);
        let known = self
            .known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(client_id)
            .map(fits);
        match known {
            Some(fits) => Ok(fits),
            None => Ok(self.grant_of(client_id).await?.as_ref().is_some_and(fits)),
        }
    }

    /// What the key with this client_id grants, revoked or not (`None`: no such key): from
    /// memory for every key this instance has seen, from storage (once per 10 s per id) for
    /// the others.
    async fn grant_of(&self, client_id: &str) -> Result<Option<Grant>, Arc<sqlx::Error>> {
        let known = self
            .known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(client_id)
            .cloned();
        if known.is_some() {
            return Ok(known);
        }
        let pool = self.pool.clone();
        let id = client_id.to_string();
        let found = self
            .looked_up
            .try_get_with(client_id.to_string(), async move {
                let row: Option<(String, String)> =
                    sqlx::query_as("SELECT org, scopes FROM api_keys WHERE client_id = $1")
                        .bind(id)
                        .fetch_optional(&pool)
                        .await?;
                Ok::<_, sqlx::Error>(
                    row.map(|(org, scopes)| (org, Scopes::parse(&scopes).unwrap_or_default())),
                )
            })
            .await?;
        if let Some(grant) = &found {
            self.known_keys()
                .insert(client_id.to_string(), grant.clone());
        }
        Ok(found)
    }

    /// A new key; the secret is returned once and only its digest is kept.
    pub async fn create(
        &self,
        org: &str,
        name: &str,
        scopes: Scopes,
    ) -> Result<(ApiKey, Secret), sqlx::Error> {
        let secret = secret::new_client_secret();
        let key = ApiKey {
            client_id: secret::new_client_id(),
            org: org.to_string(),
            name: name.to_string(),
            scopes,
            created_at: now_ms(),
            revoked_at: None,
            last_used_at: None,
            secret_hash: secret::digest(secret.expose()),
        };
        sqlx::query(
            "INSERT INTO api_keys (client_id, org, name, scopes, secret_hash, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&key.client_id)
        .bind(&key.org)
        .bind(&key.name)
        .bind(key.scopes.to_string())
        .bind(&key.secret_hash)
        .bind(key.created_at)
        .execute(&self.pool)
        .await?;
        self.known_keys()
            .insert(key.client_id.clone(), (key.org.clone(), key.scopes));
        Ok((key, secret))
    }

    /// Every key, or one organization's, oldest first.
    pub async fn list(&self, org: Option<&str>) -> Result<Vec<ApiKey>, sqlx::Error> {
        let rows = match org {
            Some(org) => {
                sqlx::query(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM api_keys WHERE org = $1 ORDER BY created_at, client_id"
                ))
                .bind(org)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM api_keys ORDER BY created_at, client_id"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// A key, revoked or not, straight from storage.
    pub async fn fetch(&self, client_id: &str) -> Result<Option<ApiKey>, sqlx::Error> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM api_keys WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The live key with this client_id and secret, or `None` for an unknown key, a wrong secret
    /// and a revoked key alike.
    pub async fn authenticate(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<Option<Arc<ApiKey>>, sqlx::Error> {
        let key = match self.live.get(client_id).await {
            Some(key) => key,
            None => match self.fetch(client_id).await? {
                Some(key) if key.is_live() => {
                    let key = Arc::new(key);
                    self.live.insert(client_id.to_string(), key.clone()).await;
                    key
                }
                _ => return Ok(None),
            },
        };
        Ok(key.secret_matches(secret).then_some(key))
    }

    /// Drops a key from the cache (it was revoked here or elsewhere).
    pub async fn forget(&self, client_id: &str) {
        self.live.invalidate(client_id).await;
    }
}
