//! The operator console at `/console` (docs/console.md): a few static files compiled into the
//! binary (HTML, CSS and ES modules; no build step), which talk to the admin API only, so that
//! anything the console shows or does can be scripted too.
//!
//! - [`session`]: the operator token exchanged for a session cookie; the CSRF checks.
//!
//! The page's safety rests on its Content-Security-Policy: scripts and styles come only from
//! these files (no inline code, no `eval`), nothing loads from elsewhere, and no other site may
//! frame it. The scripts render every value as text (`textContent`), never as HTML.

pub mod session;

use crate::respond::HttpResponse;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

/// The policy of the console's files.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The console's files: path under `/console`, content type, bytes.
const FILES: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "/console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "/api.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/api.js"),
    ),
    (
        "/dom.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/dom.js"),
    ),
];

/// Whether `path` is one of the console's files (`/console`, `/console/app.js`, …).
pub fn is_file(path: &str) -> bool {
    path.strip_prefix("/console")
        .is_some_and(|rest| FILES.iter().any(|(name, _, _)| *name == rest))
}

/// The console's file at `path`, with the headers that keep it safe.
pub fn file(path: &str) -> Option<HttpResponse> {
    let rest = path.strip_prefix("/console")?;
    let (_, content_type, body) = FILES.iter().find(|(name, _, _)| *name == rest)?;
    let mut response = crate::respond::bytes(
        StatusCode::OK,
        content_type,
        Bytes::from_static(body.as_bytes()),
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    // The files change with the binary: a browser revalidates rather than keeping an old one.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_served_with_its_policy() {
        for path in [
            "/console",
            "/console/",
            "/console/app.js",
            "/console/console.css",
        ] {
            assert!(is_file(path), "{path}");
            let response = file(path).unwrap();
            assert_eq!(
                response.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
        }
        assert!(!is_file("/console/../Cargo.toml"));
        assert!(!is_file("/consoleapp.js"));
        assert!(file("/console/nothing.js").is_none());
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = include_str!("assets/index.html");
        // Every script element loads a file; no element carries a style or a handler.
        for (at, _) in html.match_indices("<script") {
            let tag = &html[at..at + html[at..].find('>').unwrap()];
            assert!(tag.contains(" src="), "an inline script: {tag}");
        }
        assert!(!html.contains("<style") && !html.contains("style="));
        let lower = html.to_ascii_lowercase();
        for (at, _) in lower.match_indices(" on") {
            let name: String = lower[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            let rest = &lower[at + 1 + name.len()..];
            assert!(!rest.starts_with('='), "an inline handler: {name}");
        }
        for (name, _, body) in FILES {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "DOMParser",
                "eval(",
                "new Function",
            ] {
                assert!(!body.contains(sink), "{name} uses {sink}");
            }
        }
    }
}
