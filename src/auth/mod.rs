//! Who is calling, and the token machinery behind it (API.md, "Authentication").
//!
//! - [`scope`]: the ten scopes, as a bitmask.
//! - [`secret`]: random credentials, SHA-256 at rest, constant-time comparison.
//! - [`keys`]: API keys in storage, live ones cached (moka).
//! - [`attempts`]: a budget of failed client authentications per client_id and address.
//! - [`tokens`]: HS256 access tokens: issue and verify, several keys for rotation.
//! - [`sessions`]: refresh tokens: rotation by one conditional UPDATE, reuse detection.
//! - [`revocations`]: what is revoked, in memory for every request and shared through storage.
//!
//! [`Auth`] ties them together: the grants of the token endpoint, revocation, and
//! [`Auth::authenticate`], the per-request check, which touches memory only.

pub mod attempts;
pub mod keys;
pub mod revocations;
pub mod scope;
pub mod secret;
pub mod sessions;
pub mod tokens;

use crate::config::{AuthSettings, Settings};
use crate::error::ApiError;
use base64::Engine;
use http::{HeaderMap, Request, header};
use keys::{ApiKey, KeyStore};
use nestgate_contract::FieldError;
use revocations::{Kind, Revocation, Revocations};
use scope::Scopes;
use secret::Secret;
use sessions::{Grant, Rotation, Sessions};
use sqlx::{AnyPool, Row};
use std::sync::Arc;
use std::time::Duration;
use tokens::AccessTokens;

/// Unix milliseconds now: the clock of every stored time.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An authenticated caller: one organization and the scopes its token carries.
#[derive(Debug, Clone)]
pub struct Principal {
    pub org: String,
    pub client_id: String,
    pub scopes: Scopes,
}

/// What the auth step of the edge stack found, put in the request's extensions for the
/// handlers of `/api/v1` resources.
#[derive(Debug, Clone)]
pub struct Caller(pub Result<Principal, ApiError>);

impl Caller {
    /// The principal a resource handler needs; a request that never passed the auth step has
    /// no credentials. The token's subject must be an existing key of the token's organization
    /// that grants at least its scopes: a correctly signed token that names no such key (a
    /// signing secret shared with another deployment, say) is refused.
    pub async fn of<B>(req: &mut Request<B>, auth: &Auth) -> Result<Principal, ApiError> {
        let principal = req
            .extensions_mut()
            .remove::<Caller>()
            .map(|c| c.0)
            .unwrap_or_else(|| Err(ApiError::credentials_missing()))?;
        let grants = auth
            .keys
            .grants(&principal.client_id, &principal.org, principal.scopes)
            .await;
        match grants {
            Ok(true) => Ok(principal),
            Ok(false) => Err(ApiError::unauthorized("the access token is not valid")),
            Err(error) => {
                tracing::error!(%error, "key storage failed");
                Err(ApiError::storage_unavailable())
            }
        }
    }
}

/// Whether a path is one of the resource calls that need an access token (the auth endpoints
/// and the admin API authenticate otherwise).
pub fn needs_token(path: &str) -> bool {
    path.starts_with("/api/v1/") && !path.starts_with("/api/v1/auth/")
}

/// The request's one `Authorization` header, if it has one. Two or more are refused (the
/// error says so): which of them a reader took would decide who the caller is.
pub fn authorization(headers: &HeaderMap) -> Result<Option<&http::HeaderValue>, &'static str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next();
    match values.next() {
        None => Ok(first),
        Some(_) => Err("send one Authorization header, not several"),
    }
}

/// A new token pair, as the token endpoint answers it.
#[derive(Debug)]
pub struct TokenPair {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Secret,
    /// The access token's scopes.
    pub scope: Scopes,
}

/// Why a grant was refused, in RFC 6749 §5.2's terms. Messages never quote a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantError {
    InvalidRequest(String),
    /// Unknown key, wrong secret or revoked key: one answer for all three.
    InvalidClient,
    InvalidGrant(&'static str),
    InvalidScope(String),
    UnsupportedGrantType,
    /// Storage failed; logged with the request id.
    Unavailable,
    /// Too many failed authentications of this client_id from this address; try again after.
    TooManyFailures(Duration),
}

impl From<sqlx::Error> for GrantError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "token state storage failed");
        GrantError::Unavailable
    }
}

/// Checks a new key's organization (configured), scopes (at least one, all known) and name,
/// for the CLI and the admin API alike. Problems are named by field.
pub fn check_new_key(
    settings: &Settings,
    org: &str,
    scopes: &[&str],
    name: &str,
) -> Result<Scopes, Vec<FieldError>> {
    let mut problems = Vec::new();
    if org.is_empty() {
        problems.push(FieldError::new("org", "is required"));
    } else if !settings.orgs.contains_key(org) {
        problems.push(FieldError::new(
            "org",
            format!("no organization named `{org}` is configured"),
        ));
    }
    let mut granted = Scopes::NONE;
    for (i, scope) in scopes.iter().enumerate() {
        match Scopes::from_names([*scope]) {
            Ok(one) => granted = granted.union(one),
            Err(_) => problems.push(FieldError::new(
                format!("scopes[{i}]"),
                format!("`{scope}` is not a scope (known: {})", Scopes::ALL),
            )),
        }
    }
    if scopes.is_empty() {
        problems.push(FieldError::new("scopes", "must name at least one scope"));
    }
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        problems.push(FieldError::new(
            "name",
            "must be at most 100 printable characters",
        ));
    }
    if problems.is_empty() {
        Ok(granted)
    } else {
        Err(problems)
    }
}

/// The scopes a `scope` parameter asks for; `None` when it asks for nothing in particular.
pub fn requested_scopes(scope: Option<&str>) -> Result<Option<Scopes>, GrantError> {
    scope
        .filter(|s| !s.is_empty())
        .map(|text| {
            Scopes::parse(text).map_err(|name| match name.as_str() {
                "" => GrantError::InvalidScope(
                    "scopes are separated by single spaces (RFC 6749 §3.3)".into(),
                ),
                _ => GrantError::InvalidScope(format!(
                    "`{}` is not a scope",
                    name.chars().take(64).collect::<String>()
                )),
            })
        })
        .transpose()
}

/// Scopes asked for (`scope`), narrowing `granted`; absent means all of `granted`.
pub fn narrow(granted: Scopes, requested: Option<&str>) -> Result<Scopes, GrantError> {
    match requested_scopes(requested)? {
        None => Ok(granted),
        Some(wanted) if granted.contains(wanted) => Ok(wanted),
        Some(_) => Err(GrantError::InvalidScope(
            "the scope asked for is wider than the key grants".into(),
        )),
    }
}

pub struct Auth {
    pub keys: KeyStore,
    failures: attempts::FailureBudget,
    tokens: AccessTokens,
    sessions: Sessions,
    revocations: Revocations,
    pool: AnyPool,
    admin_token: Option<Secret>,
    poll_every: Duration,
    /// The revocation number loaded at start-up: polling goes on from there.
    loaded_seq: i64,
}

impl Auth {
    /// Builds the token machinery on `pool`, loading the revocations that still matter and,
    /// when the configuration names no signing key, the one kept in storage (made on first use).
    pub async fn build(settings: &AuthSettings, pool: AnyPool) -> Result<Auth, sqlx::Error> {
        let signing_keys = if settings.signing_keys.is_empty() {
            vec![generated_signing_key(&pool).await?]
        } else {
            // A generated key made before keys were configured still verifies (never signs), so
            // moving to configured keys logs nobody out.
            let mut keys = settings.signing_keys.clone();
            keys.extend(existing_generated_key(&pool).await?);
            keys
        };
        let revocations = Revocations::new(settings.access_token_ttl);
        let loaded_seq = revocations.load(&pool).await?;
        let keys = KeyStore::new(pool.clone());
        keys.load_known().await?;
        Ok(Auth {
            keys,
            failures: attempts::FailureBudget::default(),
            tokens: AccessTokens::new(&signing_keys, &settings.issuer, settings.access_token_ttl),
            sessions: Sessions::new(pool.clone(), settings.refresh_token_ttl),
            revocations,
            pool,
            admin_token: settings.admin_token.clone(),
            poll_every: settings.revocation_poll,
            loaded_seq,
        })
    }

    /// The per-request check: a bearer token, verified locally, not revoked. Memory only.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let Some(value) = authorization(headers).map_err(ApiError::invalid_request)? else {
            return Err(ApiError::credentials_missing());
        };
        let token = value.to_str().ok().and_then(|v| bearer(v)).ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <access token>`")
        })?;
        let claims = self
            .tokens
            .verify(token)
            .map_err(|refusal| ApiError::unauthorized(refusal.message()))?;
        if self.revocations.refuses(&claims) {
            return Err(ApiError::unauthorized("the access token has been revoked"));
        }
        let scopes = Scopes::parse(&claims.scope)
            .map_err(|_| ApiError::unauthorized("the access token is not valid"))?;
        Ok(Principal {
            org: claims.org.clone(),
            client_id: claims.sub.clone(),
            scopes,
        })
    }

    /// What is revoked (for benchmarks and diagnostics).
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// The edge stack's auth step: attaches a [`Caller`] to resource requests.
    pub fn attach<B>(&self, mut req: Request<B>) -> Request<B> {
        if needs_token(req.uri().path()) {
            let caller = Caller(self.authenticate(req.headers()));
            req.extensions_mut().insert(caller);
        }
        req
    }

    /// Whether `presented` is the operator token of `/admin/v1`. Both sides are hashed first, so
    /// the comparison takes the same time whatever the presented value's length.
    pub fn is_admin(&self, presented: &str) -> bool {
        self.admin_token
            .as_ref()
            .is_some_and(|token| secret::matches(presented, &secret::digest(token.expose())))
    }

    /// Whether `presented` is the operator token, for the console's sign-in and the admin API:
    /// failures count against the budget of `from` (see [`attempts`]); `Err(wait)` once spent.
    pub fn operator_sign_in(
        &self,
        presented: &str,
        from: Option<std::net::IpAddr>,
    ) -> Result<bool, Duration> {
        const SIGN_IN: &str = "(console sign-in)";
        let from = from.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let attempt = self.failures.attempt(SIGN_IN, from)?;
        let good = self.is_admin(presented);
        if good {
            attempt.succeeded();
        }
        Ok(good)
    }

    pub fn admin_enabled(&self) -> bool {
        self.admin_token.is_some()
    }

    /// The live key with these credentials (one answer for unknown, wrong secret and revoked),
    /// within the failure budget of `client_id` from `from` (see [`attempts`]).
    pub async fn client(
        &self,
        client_id: &str,
        secret: &str,
        from: Option<std::net::IpAddr>,
    ) -> Result<Arc<ApiKey>, GrantError> {
        let attempt = match from.map(|address| self.failures.attempt(client_id, address)) {
            Some(Err(wait)) => {
                metrics::counter!(crate::telemetry::names::AUTH_FAILURES_LIMITED).increment(1);
                return Err(GrantError::TooManyFailures(wait));
            }
            Some(Ok(attempt)) => Some(attempt),
            None => None,
        };
        let key = self.keys.authenticate(client_id, secret).await?;
        if let (Some(attempt), Some(_)) = (attempt, &key) {
            attempt.succeeded();
        }
        key.ok_or(GrantError::InvalidClient)
    }

    /// `grant_type=client_credentials`: a new session for `key`.
    pub async fn client_credentials(
        &self,
        key: &ApiKey,
        scope: Option<&str>,
    ) -> Result<TokenPair, GrantError> {
        let scopes = narrow(key.scopes, scope)?;
        let grant = self
            .sessions
            .start(&key.client_id, &key.org, scopes)
            .await?
            .ok_or(GrantError::InvalidClient)?;
        metrics::counter!(crate::telemetry::names::TOKENS_ISSUED, "grant" => "client_credentials")
            .increment(1);
        Ok(self.pair(grant, scopes))
    }

    /// `grant_type=refresh_token`: spends `token` and issues the next pair. A spent token is
    /// reuse: every session of its key is revoked before the answer leaves. `client`, when the
    /// caller authenticated as one, must be the token's own.
    pub async fn refresh(
        self: &Arc<Self>,
        token: &str,
        scope: Option<&str>,
        client: Option<&ApiKey>,
    ) -> Result<TokenPair, GrantError> {
        if !token.starts_with(secret::REFRESH_TOKEN_PREFIX) {
            return Err(GrantError::InvalidGrant("the refresh token is not valid"));
        }
        let requested = requested_scopes(scope)?;
        let client_id = client.map(|c| c.client_id.as_str());
        match self.sessions.rotate(token, client_id, requested).await? {
            Rotation::Rotated(grant) => {
                let scopes = requested.unwrap_or(grant.scopes);
                metrics::counter!(crate::telemetry::names::TOKENS_ISSUED, "grant" => "refresh_token")
                    .increment(1);
                Ok(self.pair(grant, scopes))
            }
            Rotation::Reused { client_id, org } => {
                metrics::counter!(crate::telemetry::names::REFRESH_REUSE).increment(1);
                // In a task of its own: a timeout or a client hanging up must not cancel the
                // revocation half-way.
                let auth = Arc::clone(self);
                let key = client_id.clone();
                let sessions = tokio::spawn(async move { auth.revoke_sessions_of(&key).await })
                    .await
                    .map_err(|_| GrantError::Unavailable)??;
                tracing::warn!(
                    client_id,
                    org,
                    sessions,
                    "refresh token reuse: every session of the key is revoked"
                );
                Err(GrantError::InvalidGrant(
                    "the refresh token was already used; every session of this key is revoked",
                ))
            }
            Rotation::Refused(why) => Err(GrantError::InvalidGrant(why)),
            Rotation::WiderScope => Err(GrantError::InvalidScope(
                "the scope asked for is wider than the session grants".into(),
            )),
        }
    }

    fn pair(&self, grant: Grant, scopes: Scopes) -> TokenPair {
        let (access_token, _) =
            self.tokens
                .issue(&grant.client_id, &grant.org, scopes, &grant.session_id);
        TokenPair {
            access_token,
            expires_in: self.tokens.ttl().as_secs(),
            refresh_token: grant.refresh_token,
            scope: scopes,
        }
    }

    /// Revokes every session of a key: its refresh tokens, and (by a cutoff on `iat`) every
    /// access token issued to it so far. One row however many sessions there are. Returns how
    /// many sessions were live; with none, nothing is recorded (a repeat adds nothing).
    async fn revoke_sessions_of(&self, client_id: &str) -> Result<usize, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let seq = self.revocations.reserve(&mut tx).await?;
        let (revoked, newest) = self.sessions.revoke_all_of_key(&mut tx, client_id).await?;
        let Some(newest) = newest else {
            tx.rollback().await?;
            return Ok(0);
        };
        let revocation = Revocation {
            kind: Kind::Sessions,
            subject: client_id.to_string(),
            // The sessions just revoked, and older ones. A session the key starts afterwards
            // is not touched, unless an instance's clock is behind, which refuses it: the
            // safe side.
            cutoff: Some(newest),
        };
        self.revocations
            .record(&mut tx, seq, &revocation, None)
            .await?;
        tx.commit().await?;
        self.revocations.apply(&revocation);
        Ok(revoked)
    }

    /// RFC 7009: revokes a refresh token (and its session) or an access token. Anything else,
    /// and tokens already revoked or expired, are quietly accepted and change nothing.
    pub async fn revoke_token(&self, token: &str) -> Result<(), sqlx::Error> {
        let (revocation, until) = if token.starts_with(secret::REFRESH_TOKEN_PREFIX) {
            let Some(session) = self.sessions.live_session_of(token).await? else {
                return Ok(());
            };
            let revocation = Revocation {
                kind: Kind::Session,
                subject: session,
                cutoff: None,
            };
            (revocation, None)
        } else {
            let Ok(claims) = self.tokens.verify(token) else {
                return Ok(());
            };
            if self.revocations.has_token(&claims.jti) {
                return Ok(());
            }
            let revocation = Revocation {
                kind: Kind::Token,
                subject: claims.jti.clone(),
                cutoff: None,
            };
            (revocation, Some((claims.exp + 5) * 1000))
        };
        let mut tx = self.pool.begin().await?;
        let seq = self.revocations.reserve(&mut tx).await?;
        if revocation.kind == Kind::Session
            && !self.sessions.revoke(&mut tx, &revocation.subject).await?
        {
            tx.rollback().await?;
            return Ok(());
        }
        self.revocations
            .record(&mut tx, seq, &revocation, until)
            .await?;
        tx.commit().await?;
        self.revocations.apply(&revocation);
        metrics::counter!(crate::telemetry::names::REVOCATIONS, "kind" => revocation.kind.as_str())
            .increment(1);
        Ok(())
    }

    /// Revokes an API key: no new tokens, and its live ones refused at once here and within
    /// `auth.revocation_poll` in every other instance. `Ok(None)` if there is no such key.
    pub async fn revoke_key(&self, client_id: &str) -> Result<Option<ApiKey>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let seq = self.revocations.reserve(&mut tx).await?;
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
        if revoked.rows_affected() == 0 {
            tx.rollback().await?;
            return self.keys.fetch(client_id).await;
        }
        self.sessions.revoke_all_of_key(&mut tx, client_id).await?;
        let revocation = Revocation {
            kind: Kind::Key,
            subject: client_id.to_string(),
            cutoff: None,
        };
        self.revocations
            .record(&mut tx, seq, &revocation, None)
            .await?;
        tx.commit().await?;
        self.revocations.apply(&revocation);
        self.keys.forget(client_id).await;
        metrics::counter!(crate::telemetry::names::REVOCATIONS, "kind" => "key").increment(1);
        tracing::info!(client_id, "API key revoked");
        self.keys.fetch(client_id).await
    }

    /// Reads the revocations other instances made, every `auth.revocation_poll`, and sweeps
    /// expired token state hourly. Runs for the life of the process.
    pub fn spawn_background(self: &Arc<Self>) {
        let auth = Arc::clone(self);
        tokio::spawn(async move {
            let mut newest = auth.loaded_seq;
            let mut ticker = tokio::time::interval(auth.poll_every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_sweep = std::time::Instant::now();
            loop {
                ticker.tick().await;
                match auth.revocations.poll(&auth.pool, newest).await {
                    Ok((seen, seen_newest)) => {
                        newest = newest.max(seen_newest);
                        for revocation in seen.iter().filter(|r| r.kind == Kind::Key) {
                            auth.keys.forget(&revocation.subject).await;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot read revocations"),
                }
                if last_sweep.elapsed() > Duration::from_secs(3600) {
                    last_sweep = std::time::Instant::now();
                    if let Err(error) = auth.sweep().await {
                        tracing::warn!(%error, "cannot sweep expired token state");
                    }
                }
            }
        });
    }

    async fn sweep(&self) -> Result<(), sqlx::Error> {
        self.sessions.sweep().await?;
        sqlx::query("DELETE FROM revocations WHERE expires_at < $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The token of an `Authorization: Bearer …` value (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The generated signing key, if one was ever made.
async fn existing_generated_key(pool: &AnyPool) -> Result<Option<(String, Secret)>, sqlx::Error> {
    let row = sqlx::query("SELECT kid, secret FROM generated_signing_key WHERE id = 1")
        .fetch_optional(pool)
        .await?;
    row.map(|row| {
        Ok((
            row.try_get("kid")?,
            Secret::new(row.try_get::<String, _>("secret")?),
        ))
    })
    .transpose()
}

/// The signing key kept in storage, made by the first instance that needs it. The insert is a
/// no-op when another instance got there first; everyone then reads the one row.
async fn generated_signing_key(pool: &AnyPool) -> Result<(String, Secret), sqlx::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("the operating system's random generator");
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    let kid = format!("generated-{}", &secret::new_id()[..8]);
    sqlx::query(
        "INSERT INTO generated_signing_key (id, kid, secret, created_at) VALUES (1, $1, $2, $3) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&kid)
    .bind(&encoded)
    .bind(now_ms())
    .execute(pool)
    .await?;
    existing_generated_key(pool)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_narrow_but_never_widen() {
        let key = Scopes::parse("read:invoices read:clients").unwrap();
        assert_eq!(narrow(key, None), Ok(key));
        assert_eq!(narrow(key, Some("")), Ok(key));
        // A value of white space is not "omitted": scopes are separated by single spaces.
        for odd in [" ", "\t", "  "] {
            assert!(matches!(
                narrow(key, Some(odd)),
                Err(GrantError::InvalidScope(_))
            ));
        }
        assert_eq!(
            narrow(key, Some("read:clients")),
            Ok(Scopes::parse("read:clients").unwrap())
        );
        assert!(matches!(
            narrow(key, Some("write:clients")),
            Err(GrantError::InvalidScope(_))
        ));
        assert!(matches!(
            narrow(key, Some("admin")),
            Err(GrantError::InvalidScope(_))
        ));
    }

    #[test]
    fn bearer_values() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
