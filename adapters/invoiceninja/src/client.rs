//! The HTTP client: the backend's pooled clients (`upstream::HttpClient`), the headers v4 needs
//! on every call, and the organization's token, which is put on the wire here and nowhere else.

use crate::config::NinjaConfig;
use crate::error::parse_error;
use bytes::Bytes;
use nestgate_contract::upstream;
use nestgate_contract::{AdapterError, CallContext};
use reqwest::{Method, header};
use serde_json::Value;

pub(crate) struct Client {
    http: upstream::HttpClient,
    /// `{base_url}/api/v1`.
    api: String,
    max_body_bytes: usize,
}

/// An upstream answer, read whole.
pub(crate) struct Answer {
    pub status: u16,
    /// `Retry-After` in seconds, where a proxy in front of v4 sent one.
    pub retry_after: Option<std::time::Duration>,
    pub bytes: Bytes,
}

impl Client {
    pub fn new(config: &NinjaConfig) -> Result<Client, String> {
        let mut headers = header::HeaderMap::new();
        // Without these two, v4 answers a validation failure with a 302 to its home page
        // instead of the 422 JSON (reference §5, "Expects JSON").
        headers.insert("x-requested-with", "XMLHttpRequest".parse().unwrap());
        headers.insert(header::ACCEPT, "application/json".parse().unwrap());
        // A redirect is v4 refusing a request (it is not followed).
        let http = upstream::HttpClient::new(headers, config.connect_timeout)?;
        Ok(Client {
            http,
            api: format!("{}/api/v1", config.base_url),
            max_body_bytes: config.max_body_bytes,
        })
    }

    /// Sends one call and reads the whole answer, whatever its status.
    pub async fn send(
        &self,
        ctx: &CallContext,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, AdapterError> {
        let token = upstream::credential(ctx, str::to_string)?;
        let url = format!("{}/{path}", self.api);
        let request =
            upstream::request(&self.http, method, url, query, body).header("x-ninja-token", token);
        let upstream::Exchanged {
            status,
            headers,
            body,
        } = upstream::exchange(ctx, request, self.max_body_bytes).await?;
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_secs);
        Ok(Answer {
            status,
            retry_after,
            bytes: body?,
        })
    }

    /// [`Client::send`] for calls that must succeed: a success's answer, or the mapped error.
    pub async fn ok(
        &self,
        ctx: &CallContext,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, AdapterError> {
        let answer = self.send(ctx, method, path, query, body).await?;
        success(&answer)?;
        Ok(answer)
    }

    /// [`Client::ok`] for calls answered with JSON: a success's body, read whole.
    pub async fn json(
        &self,
        ctx: &CallContext,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, AdapterError> {
        let answer = self.ok(ctx, method, path, query, body).await?;
        upstream::json_body(answer.status, &answer.bytes)
    }
}

/// A 2xx answer, or the error the answer says.
fn success(answer: &Answer) -> Result<(), AdapterError> {
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(parse_error(answer))
    }
}
