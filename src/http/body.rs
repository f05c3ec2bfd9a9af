//! Reading a JSON request body: content type, size limit, UTF-8 and JSON syntax, each refused
//! with its own status (415, 413, 400).

use crate::error::ApiError;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use http_body::Body;
use http_body_util::BodyExt;
use serde_json::Value;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether the content type is JSON (`application/json`, any parameters, any case).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Reads the whole body, at most `limit` bytes (checked against `Content-Length` first, then
/// while streaming, so a lying or chunked client cannot exceed it either).
pub async fn read_bytes<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = std::pin::pin!(body);
    let mut collected = BytesMut::new();
    let too_large_declared = declared.is_some_and(|len| len > limit as u64);
    let mut too_large = too_large_declared;
    if !too_large {
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|_| ApiError::invalid_request("the request body could not be read"))?;
            if let Ok(data) = frame.into_data() {
                if collected.len() + data.len() > limit {
                    too_large = true;
                    break;
                }
                collected.extend_from_slice(&data);
            }
        }
    }
    if too_large {
        // A client that waits for `100 Continue` has sent nothing yet: answer at once, without
        // asking for the body (polling it is what makes hyper send the `100`).
        let body_asked_for = !too_large_declared || !expects_continue(headers);
        if body_asked_for {
            drain(body, limit).await;
        }
        return Err(ApiError::payload_too_large(limit));
    }
    Ok(collected.freeze())
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads and discards what the client is still sending, within a budget of bytes and time, so
/// that it finishes writing and can read the 413 (hyper closes without lingering, and a client
/// still writing would see a reset instead of the answer). Past the budget the connection closes.
async fn drain<B>(mut body: std::pin::Pin<&mut B>, limit: usize)
where
    B: Body<Data = Bytes>,
{
    let budget = limit.saturating_mul(4).clamp(1 << 20, 16 << 20);
    let discard = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > budget {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), discard).await;
}

/// Refuses a JSON object that names a key more than once. serde_json keeps the last of
/// repeated keys, so `{"client_id": A, "client_id": B}` would mean B here and A to anything
/// that read the first (a proxy, a log, an auditor); credentials must mean one thing. Only the
/// top level is checked; nested values are skipped without being built.
pub fn check_unique_keys(raw: &[u8]) -> Result<(), String> {
    use serde::de::{Deserializer, Error, IgnoredAny, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                map.next_value::<IgnoredAny>()?;
                if !seen.insert(key.clone()) {
                    let shown: String = key.chars().take(64).collect();
                    return Err(A::Error::custom(format!(
                        "`{shown}` is given more than once"
                    )));
                }
            }
            Ok(())
        }
    }
    let mut reader = serde_json::Deserializer::from_slice(raw);
    match (&mut reader).deserialize_map(Keys) {
        Ok(()) => Ok(()),
        // Only the repetition is this check's to report; syntax is the caller's parse's.
        Err(error) if error.is_data() => {
            let message = error.to_string();
            Err(message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_string())
        }
        Err(_) => Ok(()),
    }
}

/// Reads a JSON body for a create or an update.
pub async fn read_json<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<(Value, Bytes), ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if !is_json(headers) {
        return Err(ApiError::unsupported_media_type());
    }
    let raw = read_bytes(headers, body, limit).await?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request(
            "the request body is empty; send a JSON object",
        ));
    }
    let value = serde_json::from_slice::<Value>(&raw).map_err(|e| {
        let what = if std::str::from_utf8(&raw).is_err() {
            "not valid UTF-8"
        } else {
            "not valid JSON"
        };
        ApiError::invalid_request(format!(
            "the request body is {what} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    Ok((value, raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_refused() {
        assert_eq!(
            check_unique_keys(br#"{"a": 1, "b": {"a": 2, "a": 3}}"#),
            Ok(())
        );
        assert_eq!(
            check_unique_keys(br#"{"client_id": "A", "x": [1], "client_id": "B"}"#),
            Err("`client_id` is given more than once".into())
        );
        // An escaped spelling is the same key.
        assert!(check_unique_keys(br#"{"client_id": "A", "client\u005fid": "B"}"#).is_err());
        // Not this check's business: syntax errors and non-objects pass to the caller's parse.
        assert_eq!(check_unique_keys(b"{\"a\": "), Ok(()));
    }

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "application/jsonx".parse().unwrap());
        assert!(!is_json(&headers));
    }
}
