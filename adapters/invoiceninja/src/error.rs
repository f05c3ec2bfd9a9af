//! The one `parse_error`: every v4 failure shape (reference §5) to the contract's error kinds.
//! Each arm quotes v4's own wording. Upstream messages are quoted only when short and plain, so
//! that no HTML page, stack trace or URL reaches a client.

use crate::client::Answer;
use nestgate_contract::error::from_laravel_errors;
use nestgate_contract::upstream;
use nestgate_contract::{AdapterError, ErrorKind};
use serde_json::Value;
use std::time::Duration;

pub(crate) fn parse_error(answer: &Answer) -> AdapterError {
    let status = answer.status;
    let body: Option<Value> = serde_json::from_slice(&answer.bytes).ok();
    let message = body.as_ref().and_then(upstream_message);
    let error = match (status, &body) {
        // Hosted rate limit: 403 with a bare JSON string "Please wait 12 second(s)"
        // (ApiCheck.php:102-105). No 429 and no X-RateLimit-* headers in v4.
        (403, Some(Value::String(text))) if text.starts_with("Please wait") => {
            let seconds = text
                .split_whitespace()
                .find_map(|w| w.parse::<u64>().ok())
                .unwrap_or(60);
            AdapterError {
                retry_after: Some(Duration::from_secs(seconds.max(1))),
                ..AdapterError::new(
                    ErrorKind::RateLimited,
                    format!("the Invoice Ninja account is rate limited: \"{text}\""),
                )
            }
        }
        // 403 {"error":{"message":"Invalid token"}} (ApiCheck.php:56-67): the operator's
        // credential for this organization is wrong. The caller's own token was fine, so this
        // is never a 401/403 to the caller.
        (403, _) if message.as_deref() == Some("Invalid token") => AdapterError::new(
            ErrorKind::Upstream,
            "the Invoice Ninja account refused the organization's upstream credential (\"Invalid token\"); the operator must fix upstream_token_env",
        ),
        // 403 "API requires pro plan", or a policy refusal "This action is unauthorized.":
        // the account or its token's user may not do this.
        (403, _) => AdapterError::new(
            ErrorKind::Upstream,
            format!(
                "the Invoice Ninja account refused the call: \"{}\"",
                message.as_deref().unwrap_or("forbidden")
            ),
        ),
        // 404 {"message":"record does not exist"}, {"error":{"message":"Route does not exist"}}
        // or {"error":"Client not found"}: the caller names the record in its own words.
        (404, _) => AdapterError::new(ErrorKind::NotFound, "the record does not exist"),
        // 422 {"message":"The given data was invalid.","errors":{"field":["msg"]}} (Laravel).
        (422, Some(body)) => validation(body),
        (429, _) => AdapterError {
            retry_after: Some(answer.retry_after.unwrap_or(Duration::from_secs(60))),
            ..AdapterError::new(ErrorKind::RateLimited, "the upstream asked to slow down")
        },
        // 400 {"error":"Action [x] is not supported"} and other client errors: the gateway sent
        // something this v4 does not accept; a gateway/vendor mismatch, not the caller's fault.
        (400..=499, _) => AdapterError::new(
            ErrorKind::Upstream,
            format!(
                "the upstream refused the call: \"{}\"",
                message.as_deref().unwrap_or("bad request")
            ),
        ),
        // A 302 is Laravel's answer to a failed validation when it thinks we do not expect
        // JSON; 500 {"message":"Server Error"} or a hosted HTML page is a failure of the vendor.
        _ => upstream::status_error(status, message.as_deref()),
    };
    error.with_upstream_status(status)
}

/// The short, plain message of any v4 error shape.
fn upstream_message(body: &Value) -> Option<String> {
    let text = match body {
        Value::String(text) => text.as_str(),
        Value::Object(map) => match map.get("error") {
            Some(Value::String(text)) => text.as_str(),
            Some(Value::Object(inner)) => inner.get("message")?.as_str()?,
            _ => map.get("message")?.as_str()?,
        },
        _ => return None,
    };
    let plain = text.len() <= 200 && !text.contains(['<', '\n', '/']);
    plain.then(|| text.to_string())
}

/// Laravel's 422: every field error, renamed to the gateway's field paths. A taken invoice
/// number (the `unique` rule: "has already been taken") is API.md's `409`, not a `422`.
fn validation(body: &Value) -> AdapterError {
    from_laravel_errors(body, gateway_field)
        .unwrap_or_else(|| AdapterError::new(ErrorKind::Upstream, "the upstream refused the data"))
}

/// v4's field names (and Laravel's dotted array paths) to the gateway's.
pub(crate) fn gateway_field(v4: &str) -> String {
    if let Some(rest) = v4.strip_prefix("invoice_items.") {
        let (index, field) = rest.split_once('.').unwrap_or((rest, ""));
        let field = match field {
            "cost" => "unit_price",
            "qty" => "quantity",
            "notes" => "description",
            "tax_rate1" => "tax_rate",
            other => other,
        };
        return format!("line_items[{index}].{field}");
    }
    let field = match v4 {
        "invoice_number" => "number",
        "invoice_date" => "issue_date",
        "invoice_items" => "line_items",
        "payment_date" | "expense_date" => "date",
        "transaction_reference" => "reference",
        "payment_type_id" => "method",
        "vat_number" => "tax_id",
        "private_notes" | "public_notes" => "notes",
        "product_key" => "key",
        "cost" => "unit_price",
        "tax_rate1" => "tax_rate",
        "work_phone" => "phone",
        "currency_id" | "expense_currency_id" => "currency",
        "country_id" => "address.country",
        "address1" => "address.line1",
        "address2" => "address.line2",
        "city" | "state" | "postal_code" => return format!("address.{v4}"),
        other if other.starts_with("contact") && other.ends_with("email") => "email",
        other => other,
    };
    field.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            retry_after: None,
            bytes: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn every_v4_shape_maps_to_its_kind() {
        let cases = [
            (
                403,
                r#"{"error":{"message":"Invalid token"}}"#,
                ErrorKind::Upstream,
            ),
            (403, r#""Please wait 12 second(s)""#, ErrorKind::RateLimited),
            (
                403,
                r#"{"error":{"message":"API requires pro plan"}}"#,
                ErrorKind::Upstream,
            ),
            (
                404,
                r#"{"message":"record does not exist"}"#,
                ErrorKind::NotFound,
            ),
            (
                404,
                r#"{"error":{"message":"Route does not exist"}}"#,
                ErrorKind::NotFound,
            ),
            (404, r#"{"error":"Client not found"}"#, ErrorKind::NotFound),
            (
                400,
                r#"{"error":"Action [x] is not supported"}"#,
                ErrorKind::Upstream,
            ),
            (500, r#"{"message":"Server Error"}"#, ErrorKind::Upstream),
            (500, "<html><body>Whoops</body></html>", ErrorKind::Upstream),
            (
                503,
                "<html>Be right back.</html>",
                ErrorKind::UpstreamUnavailable,
            ),
            (302, "", ErrorKind::Upstream),
        ];
        for (status, body, kind) in cases {
            let error = parse_error(&answer(status, body));
            assert_eq!(error.kind, kind, "{status} {body}");
            assert_eq!(error.upstream_status, Some(status));
            assert!(!error.message.contains('<'), "{}", error.message);
        }
        let wait = parse_error(&answer(403, r#""Please wait 12 second(s)""#));
        assert_eq!(wait.retry_after, Some(Duration::from_secs(12)));
    }

    #[test]
    fn field_errors_use_the_gateways_names() {
        let body = r#"{"message":"The given data was invalid.","errors":{
            "invoice_items.2.qty":["The qty must be a number."],"payment_date":["bad"]}}"#;
        let error = parse_error(&answer(422, body));
        assert_eq!(error.kind, ErrorKind::Validation);
        let mut fields: Vec<_> = error.details.iter().map(|d| d.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["date", "line_items[2].quantity"]);
        let taken = r#"{"message":"The given data was invalid.","errors":{
            "invoice_number":["The invoice number has already been taken."]}}"#;
        assert_eq!(parse_error(&answer(422, taken)).kind, ErrorKind::Conflict);
    }
}
