//! Random credentials and how they are kept. Client secrets and refresh tokens are 256-bit random
//! values: stored as SHA-256 (they are not passwords, so a slow hash would buy nothing and cost
//! the token endpoint its speed) and compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Credentials in memory: its `Debug` never shows the value.
pub use nestgate_contract::Secret;

pub const CLIENT_ID_PREFIX: &str = "ak_live_";
pub const CLIENT_SECRET_PREFIX: &str = "sk_live_";
pub const REFRESH_TOKEN_PREFIX: &str = "rt_live_";

/// `prefix` + `bytes` random bytes as unpadded URL-safe base64 (24 bytes give 32 characters,
/// 32 bytes give 43), from the operating system's generator.
pub fn random_token(prefix: &str, bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).expect("the operating system's random generator");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(raw))
}

/// A new `ak_live_` + 32 characters.
pub fn new_client_id() -> String {
    random_token(CLIENT_ID_PREFIX, 24)
}

/// A new `sk_live_` + 43 characters (256 bits).
pub fn new_client_secret() -> Secret {
    Secret::new(random_token(CLIENT_SECRET_PREFIX, 32))
}

/// A new `rt_live_` + 43 characters (256 bits).
pub fn new_refresh_token() -> Secret {
    Secret::new(random_token(REFRESH_TOKEN_PREFIX, 32))
}

/// An identifier that need not be secret, only unique (session ids, JWT ids): 128 random bits.
pub fn new_id() -> String {
    random_token("", 16)
}

/// The SHA-256 of a credential, as it is stored: lowercase hex.
pub fn digest(value: &str) -> String {
    let hash = Sha256::digest(value.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in hash {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Whether `presented` hashes to `stored`, in time independent of where they differ. Hashing
/// first also makes the time independent of the presented value's length.
pub fn matches(presented: &str, stored: &str) -> bool {
    digest(presented).as_bytes().ct_eq(stored.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let id = new_client_id();
        assert!(id.starts_with("ak_live_") && id.len() == 8 + 32, "{id}");
        let secret = new_client_secret();
        assert_eq!(secret.expose().len(), 8 + 43);
        assert!(
            secret.expose()[8..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(new_refresh_token(), new_refresh_token());
        assert_eq!(format!("{secret:?}"), "Secret(**redacted**)");
    }

    #[test]
    fn constant_time_match() {
        let stored = digest("sk_live_abc");
        assert!(matches("sk_live_abc", &stored));
        assert!(!matches("sk_live_abd", &stored));
        assert!(!matches("", &stored));
    }
}
