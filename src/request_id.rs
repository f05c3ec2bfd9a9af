//! Request ids: every request has one (the caller's, when sane, or a new UUIDv7), every answer
//! and log line carries it, and every upstream call made for the request sends it.

use http::{HeaderName, HeaderValue, Request};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller's id is kept when it is printable ASCII of at most 128 characters; anything else
/// could corrupt a log line or a header, and is replaced.
pub fn is_sane(id: &[u8]) -> bool {
    (1..=128).contains(&id.len()) && id.iter().all(|b| (0x20..=0x7e).contains(b))
}

/// Keeps the caller's `X-Request-Id` if it is sane, or assigns a new one (a UUIDv7, so ids sort
/// by time in the logs).
pub fn assign<B>(mut req: Request<B>) -> Request<B> {
    let sane = req
        .headers()
        .get(&REQUEST_ID)
        .is_some_and(|v| is_sane(v.as_bytes()));
    if !sane {
        let id = uuid::Uuid::now_v7().to_string();
        req.headers_mut().insert(
            REQUEST_ID,
            HeaderValue::from_str(&id).expect("a UUID is a header value"),
        );
    }
    req
}

/// The request id the edge stack assigned (always present behind it).
pub fn of<B>(req: &Request<B>) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(is_sane(b"abc-123"));
        assert!(!is_sane(b""));
        assert!(!is_sane(&[b'a'; 129]));
        assert!(!is_sane(b"a\x01b"));
        let req = assign(
            Request::builder()
                .header("x-request-id", "mine")
                .body(())
                .unwrap(),
        );
        assert_eq!(req.headers()["x-request-id"], "mine");
        let req = assign(Request::builder().body(()).unwrap());
        assert_eq!(req.headers()["x-request-id"].len(), 36);
    }
}
