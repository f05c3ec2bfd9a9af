//! The HTTP client: the backend's pooled clients (`upstream::HttpClient`), the headers InvoisX
//! needs on every call, the organization's Bearer token (put on the wire here and nowhere
//! else), and what the rate-limit headers of every answer say.

use crate::config::InvoisxConfig;
use crate::error::parse_error;
use bytes::Bytes;
use nestgate_contract::upstream;
use nestgate_contract::{AdapterError, CallContext};
use reqwest::{Method, header};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) struct Client {
    http: upstream::HttpClient,
    /// The API root, e.g. `https://invoisx.com/api/v1`.
    api: String,
    max_body_bytes: usize,
}

/// An upstream answer, read whole.
pub(crate) struct Answer {
    pub status: u16,
    /// How long the upstream asked us to wait before calling again: `Retry-After`, else the
    /// time until `X-RateLimit-Reset`.
    pub retry_after: Option<Duration>,
    pub bytes: Bytes,
}

/// When a reset header holds less than this, it is a number of seconds rather than Unix time.
const UNIX_TIME_FLOOR: u64 = 1_000_000_000;
/// The reference's window: a spent quota with no reset time is assumed spent for this long.
const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

impl Client {
    pub fn new(config: &InvoisxConfig) -> Result<Client, String> {
        let mut headers = header::HeaderMap::new();
        headers.insert(header::ACCEPT, "application/json".parse().unwrap());
        // A redirect is Laravel sending an unauthenticated browser to its login page (it is
        // not followed).
        let http = upstream::HttpClient::new(headers, config.connect_timeout)?;
        Ok(Client {
            http,
            api: config.base_url.clone(),
            max_body_bytes: config.max_body_bytes,
        })
    }

    /// Sends one call and reads the whole answer, whatever its status. A success that spent
    /// the last of the organization's quota is passed on to the gateway's hold.
    pub async fn send(
        &self,
        ctx: &CallContext,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, AdapterError> {
        let bearer = upstream::credential(ctx, |token| format!("Bearer {token}"))?;
        let url = format!("{}/{path}", self.api);
        let request = upstream::request(&self.http, method, url, query, body)
            .header(header::AUTHORIZATION, bearer);
        let upstream::Exchanged {
            status,
            headers,
            body,
        } = upstream::exchange(ctx, request, self.max_body_bytes).await?;
        let quota = RateLimitHeaders::read(&headers);
        if status != 429 && quota.remaining == Some(0) {
            ctx.quota
                .spent_for(quota.until_reset.unwrap_or(DEFAULT_WINDOW));
        }
        Ok(Answer {
            status,
            retry_after: quota.retry_after.or(quota.until_reset),
            bytes: body?,
        })
    }

    /// [`Client::send`] for calls answered with JSON: a success's body, or the mapped error.
    pub async fn json(
        &self,
        ctx: &CallContext,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, AdapterError> {
        let answer = self.send(ctx, method, path, query, body).await?;
        if !(200..300).contains(&answer.status) {
            return Err(parse_error(&answer));
        }
        if answer.bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null); // 204, or a 200 with nothing to say
        }
        upstream::json_body(answer.status, &answer.bytes)
    }
}

/// The rate-limit headers of one answer (reference: "Rate limit").
struct RateLimitHeaders {
    remaining: Option<u64>,
    until_reset: Option<Duration>,
    retry_after: Option<Duration>,
}

impl RateLimitHeaders {
    fn read(headers: &header::HeaderMap) -> RateLimitHeaders {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        // `X-RateLimit-Reset` is Unix time in the reference; some servers send seconds to wait.
        let until_reset = number("x-ratelimit-reset").map(|reset| {
            let secs = if reset >= UNIX_TIME_FLOOR {
                reset.saturating_sub(now)
            } else {
                reset
            };
            Duration::from_secs(secs.clamp(1, 3600))
        });
        RateLimitHeaders {
            remaining: number("x-ratelimit-remaining"),
            until_reset,
            retry_after: number("retry-after").map(|s| Duration::from_secs(s.clamp(1, 3600))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> header::HeaderMap {
        let mut map = header::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn reset_is_read_as_unix_time_or_as_seconds() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let quota = RateLimitHeaders::read(&headers(&[
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", (now + 30).to_string()),
        ]));
        assert_eq!(quota.remaining, Some(0));
        let wait = quota.until_reset.unwrap().as_secs();
        assert!((29..=30).contains(&wait), "{wait}");
        let quota = RateLimitHeaders::read(&headers(&[("x-ratelimit-reset", "12".into())]));
        assert_eq!(quota.until_reset, Some(Duration::from_secs(12)));
        let quota = RateLimitHeaders::read(&headers(&[("retry-after", "60".into())]));
        assert_eq!(quota.retry_after, Some(Duration::from_secs(60)));
        let quota = RateLimitHeaders::read(&headers(&[("x-ratelimit-remaining", "x".into())]));
        assert_eq!(quota.remaining, None);
    }
}
