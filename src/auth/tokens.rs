//! Access tokens: HS256 JWTs with a `kid`, verified locally on every request (API.md, "Access
//! tokens"). Several keys at once: the first signs, every one verifies, so a key can be rotated
//! in without logging anyone out.

use super::scope::Scopes;
use super::secret::{self, Secret};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The one algorithm issued and accepted. Pinned: a token naming any other (`none`, HS512, RS256)
/// is refused before its signature is looked at.
const ALGORITHM: Algorithm = Algorithm::HS256;

/// The claims of API.md.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    /// The API key's client_id.
    pub sub: String,
    pub org: String,
    /// Space-separated scopes.
    pub scope: String,
    /// Seconds since the epoch.
    pub iat: i64,
    pub exp: i64,
    /// This token's id, for revoking it alone.
    pub jti: String,
    /// The session: one client_credentials grant and its refreshes.
    pub sid: String,
}

/// Why a token was refused. The message goes to the client, so it never quotes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Expired,
    Invalid,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Expired => "the access token has expired",
            Refusal::Invalid => "the access token is not valid",
        }
    }
}

struct SigningKey {
    kid: String,
    /// The encoded JOSE header of the tokens this key signs. A token that starts with it needs
    /// no header parsing to find its key (the crate still checks the header it decodes).
    header: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Tokens remembered as verified, at most: about 600 bytes each.
const VERIFIED_CAPACITY: u64 = 4_096;

pub struct AccessTokens {
    /// The signing key first.
    keys: Vec<SigningKey>,
    validation: Validation,
    /// Tokens that passed every check, by their whole text, with their claims. A token is
    /// presented on every request of its life, and checking its signature again each time
    /// (base64, HMAC, two JSON parses) was a tenth of a native read's CPU (docs/performance.md).
    /// Only a verified token enters, and only the exact same text finds it (the key is hashed
    /// with a per-process seed, `FastHash`, so a forged token cannot aim at an entry); `exp` is
    /// still checked on every use, and revocation is the caller's step, as before.
    verified: moka::sync::Cache<Box<str>, Arc<Claims>, crate::FastHash>,
    issuer: String,
    ttl: Duration,
}

impl AccessTokens {
    /// `keys` are `(kid, secret)`, the signing one first; there is at least one.
    pub fn new(keys: &[(String, Secret)], issuer: &str, ttl: Duration) -> AccessTokens {
        assert!(!keys.is_empty(), "at least one signing key");
        let keys = keys
            .iter()
            .map(|(kid, secret)| {
                let encoding = EncodingKey::from_secret(secret.expose().as_bytes());
                let sample =
                    jsonwebtoken::encode(&header_for(kid), &serde_json::json!({}), &encoding)
                        .expect("HS256 signing of plain claims cannot fail");
                SigningKey {
                    kid: kid.clone(),
                    header: sample.split('.').next().unwrap_or_default().to_string(),
                    encoding,
                    decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
                }
            })
            .collect();
        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        // Issuer and verifiers are the same service: no clock-skew allowance beyond a second.
        validation.leeway = 1;
        AccessTokens {
            keys,
            validation,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                // Never past a token's life (its `exp` is checked on every use anyway).
                .time_to_live(ttl)
                .build_with_hasher(crate::FastHash::default()),
            issuer: issuer.to_string(),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new token for `client_id` of `org` in session `sid`, now.
    pub fn issue(&self, client_id: &str, org: &str, scopes: Scopes, sid: &str) -> (String, Claims) {
        let iat = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: client_id.to_string(),
            org: org.to_string(),
            scope: scopes.to_string(),
            iat,
            exp: iat + self.ttl.as_secs() as i64,
            jti: secret::new_id(),
            sid: sid.to_string(),
        };
        let key = &self.keys[0];
        let token = jsonwebtoken::encode(&header_for(&key.kid), &claims, &key.encoding)
            .expect("HS256 signing of plain claims cannot fail");
        (token, claims)
    }

    /// Checks algorithm, `kid`, signature, `exp` and `iss`; revocation is the caller's next step.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, Refusal> {
        if let Some(claims) = self.verified.get(token) {
            // The same test as the crate's: expired once `exp` is more than the leeway past.
            let now = chrono::Utc::now().timestamp();
            if claims.exp < now - self.validation.leeway as i64 {
                return Err(Refusal::Expired);
            }
            return Ok(claims);
        }
        let claims = Arc::new(self.verify_signed(token)?);
        self.verified.insert(token.into(), Arc::clone(&claims));
        Ok(claims)
    }

    /// The checks themselves, without the memory of tokens already verified.
    pub fn verify_signed(&self, token: &str) -> Result<Claims, Refusal> {
        let head = token.split('.').next().unwrap_or_default();
        let key = match self.keys.iter().find(|k| k.header == head) {
            Some(key) => key,
            None => {
                let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Invalid)?;
                if header.alg != ALGORITHM {
                    return Err(Refusal::Invalid);
                }
                let kid = header.kid.as_deref().ok_or(Refusal::Invalid)?;
                self.keys
                    .iter()
                    .find(|k| k.kid == kid)
                    .ok_or(Refusal::Invalid)?
            }
        };
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => Refusal::Expired,
                _ => Refusal::Invalid,
            })
    }
}

fn header_for(kid: &str) -> Header {
    let mut header = Header::new(ALGORITHM);
    header.kid = Some(kid.to_string());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(keys: &[(&str, &str)]) -> AccessTokens {
        let keys: Vec<(String, Secret)> = keys
            .iter()
            .map(|(k, s)| (k.to_string(), Secret::new(*s)))
            .collect();
        AccessTokens::new(&keys, "nestgate", Duration::from_secs(3600))
    }

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn issued_tokens_verify_and_carry_the_claims() {
        let t = tokens(&[("k1", A)]);
        let (token, claims) = t.issue("ak_live_x", "acme", Scopes::ALL, "s1");
        assert_eq!(t.verify(&token), Ok(Arc::new(claims.clone())));
        // Again, from the memory of verified tokens: the same claims.
        assert_eq!(t.verify(&token), Ok(Arc::new(claims.clone())));
        assert_eq!(claims.exp - claims.iat, 3600);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k1"));
    }

    /// The memory of verified tokens answers only the exact text that was verified, and still
    /// refuses a remembered token once it has expired.
    #[test]
    fn remembered_tokens_are_still_checked() {
        let t = tokens(&[("k1", A)]);
        let (token, claims) = t.issue("ak", "acme", Scopes::ALL, "s");
        assert!(t.verify(&token).is_ok());
        // Each part of the token altered by one character: refused, remembered or not.
        for part in 0..3 {
            let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
            let first = parts[part].remove(0);
            parts[part].insert(0, if first == 'e' { 'f' } else { 'e' });
            assert_eq!(
                t.verify(&parts.join(".")),
                Err(Refusal::Invalid),
                "part {part}"
            );
        }
        // Remembered with claims that expired two seconds ago (beyond the 1 s leeway).
        let now = chrono::Utc::now().timestamp();
        let expired = Claims {
            exp: now - 2,
            ..claims
        };
        t.verified.insert(token.as_str().into(), Arc::new(expired));
        assert_eq!(t.verify(&token), Err(Refusal::Expired));
        assert_eq!(t.verify_signed(&token).map(|c| c.exp > now), Ok(true));
    }

    #[test]
    fn rotation_keeps_old_kids_verifying() {
        let old = tokens(&[("k1", A)]);
        let (token, _) = old.issue("ak", "acme", Scopes::ALL, "s");
        let rotated = tokens(&[("k2", B), ("k1", A)]);
        assert!(rotated.verify(&token).is_ok());
        let (new, _) = rotated.issue("ak", "acme", Scopes::ALL, "s");
        assert_eq!(
            jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(),
            Some("k2")
        );
        assert_eq!(old.verify(&new), Err(Refusal::Invalid), "unknown kid");
    }

    #[test]
    fn wrong_key_and_issuer_are_refused() {
        let (token, _) = tokens(&[("k1", B)]).issue("ak", "acme", Scopes::ALL, "s");
        assert_eq!(tokens(&[("k1", A)]).verify(&token), Err(Refusal::Invalid));
        let keys = vec![("k1".to_string(), Secret::new(A))];
        let other = AccessTokens::new(&keys, "someone-else", Duration::from_secs(60));
        let (token, _) = other.issue("ak", "acme", Scopes::ALL, "s");
        assert_eq!(tokens(&[("k1", A)]).verify(&token), Err(Refusal::Invalid));
        assert_eq!(
            tokens(&[("k1", A)]).verify("garbage"),
            Err(Refusal::Invalid)
        );
    }
}
