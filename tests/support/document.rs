//! Answers held to the OpenAPI document (`docs/openapi.json`, the one the gateway serves): a
//! call the document describes must answer a status it declares, with a JSON body its schema
//! for that status accepts.

use serde_json::{Value, json};
use std::sync::LazyLock;

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
        .expect("docs/openapi.json");
    serde_json::from_str(&text).expect("the document is JSON")
});

/// The document's path template that `path` (without its query) matches, if any.
fn template(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    DOCUMENT["paths"]
        .as_object()?
        .keys()
        .find(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
        })
        .map(String::as_str)
}

/// Panics when a described call's answer is not what the document says.
pub fn check(method: &str, uri: &str, status: u16, content_type: Option<&str>, body: &Value) {
    let path = uri.split('?').next().unwrap_or(uri);
    let Some(template) = template(path) else {
        return;
    };
    let Some(operation) = DOCUMENT["paths"][template].get(method.to_lowercase()) else {
        return;
    };
    let responses = &operation["responses"];
    let Some(response) = responses.get(status.to_string()) else {
        panic!(
            "{method} {path} answered {status}, which the document does not declare for it (it declares {:?})",
            responses.as_object().map(|r| r.keys().collect::<Vec<_>>())
        );
    };
    let Some(schema) = response["content"]["application/json"].get("schema") else {
        return;
    };
    if !content_type.is_some_and(|t| t.starts_with("application/json")) {
        panic!("{method} {path} answered {status} with {content_type:?}, not JSON as declared");
    }
    // The operation's schema, with the document's components beside it for its `$ref`s.
    let mut root = json!({"components": DOCUMENT["components"].clone()});
    root["allOf"] = json!([schema]);
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .expect("the document's schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} answered {status} with a body the document does not allow: {errors:#?}\n{body:#}"
    );
}
