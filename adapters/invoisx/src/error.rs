//! The one `parse_error`: every InvoisX failure (reference, "Responses" and the `error_code`
//! table) to the contract's error kinds. Each arm quotes InvoisX's own meaning. Upstream
//! messages are quoted only when short and plain, so that no HTML page, stack trace or URL
//! reaches a client.

use crate::client::Answer;
use nestgate_contract::error::from_laravel_errors;
use nestgate_contract::upstream;
use nestgate_contract::{AdapterError, ErrorKind};
use serde_json::Value;
use std::time::Duration;

pub(crate) fn parse_error(answer: &Answer) -> AdapterError {
    let status = answer.status;
    let body: Option<Value> = serde_json::from_slice(&answer.bytes).ok();
    let code = body
        .as_ref()
        .and_then(|b| b.get("error_code"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = body.as_ref().and_then(upstream_message);
    let quoted = || message.as_deref().unwrap_or(code).to_string();
    let error = match (status, code) {
        // "Too many requests. Please try again in 60 seconds." (429, `Retry-After: 60`).
        (429, _) | (_, "RATE_LIMIT_EXCEEDED") => AdapterError {
            retry_after: Some(answer.retry_after.unwrap_or(Duration::from_secs(60))),
            ..AdapterError::new(
                ErrorKind::RateLimited,
                "the InvoisX account's rate limit is reached",
            )
        },
        // "No such document"; and any 404 at all, with another code or Laravel's bare
        // {"message": "Not found."}: the caller names the record in its own words. Before the
        // credential codes, so that another company's record looks exactly like a missing one.
        (404, _) | (_, "DOCUMENT_NOT_FOUND") => {
            AdapterError::new(ErrorKind::NotFound, "the record does not exist")
        }
        // "Missing or invalid token", "Token has expired", "Token lacks required permissions",
        // "Token not linked to correct company": the operator's credential for this
        // organization is at fault. The caller's own token was fine, so never a 401/403 to it.
        (_, "UNAUTHORIZED" | "TOKEN_EXPIRED" | "FORBIDDEN" | "COMPANY_ACCESS_DENIED")
        | (401, _) => AdapterError::new(
            ErrorKind::Upstream,
            format!(
                "the InvoisX account refused the organization's upstream credential ({}: \"{}\"); the operator must fix upstream_token_env",
                if code.is_empty() {
                    "UNAUTHORIZED"
                } else {
                    code
                },
                quoted()
            ),
        ),
        // "Field errors in `errors`" (Laravel dot paths); `errors` is optional.
        (_, "VALIDATION_FAILED") | (422, "") => body
            .as_ref()
            .and_then(|b| from_laravel_errors(b, gateway_field))
            .unwrap_or_else(|| {
                AdapterError::new(
                    ErrorKind::Validation,
                    format!("InvoisX refused the data: \"{}\"", quoted()),
                )
            }),
        // "Only drafts can change" / "Wrong state for the operation": the document's state
        // forbids the call.
        (
            _,
            "DOCUMENT_NOT_DRAFT" | "DOCUMENT_READ_ONLY" | "DOCUMENT_NOT_READY"
            | "DOCUMENT_NOT_VALID",
        ) => AdapterError::conflict(format!(
            "the InvoisX document's state forbids this ({code}: \"{}\")",
            quoted()
        )),
        // "The tax authority is unreachable": InvoisX is up, LHDN MyInvois is not.
        (_, "LHDN_CONNECTION_ERROR") => AdapterError::new(
            ErrorKind::UpstreamUnavailable,
            "the tax authority (LHDN MyInvois) behind InvoisX is unreachable",
        ),
        // "The tax authority refused it" (LHDN_REJECTED, LHDN_VALIDATION_FAILED).
        (_, lhdn) if lhdn.starts_with("LHDN_") => AdapterError::new(
            ErrorKind::Upstream,
            format!(
                "the tax authority (LHDN MyInvois) refused the document ({lhdn}: \"{}\")",
                quoted()
            ),
        ),
        // 403 without a known code, 405, 400: the gateway sent something this InvoisX does not
        // accept; a gateway/vendor mismatch, not the caller's fault.
        (400..=499, _) => AdapterError::new(
            ErrorKind::Upstream,
            format!("the upstream refused the call: \"{}\"", quoted()),
        ),
        _ => upstream::status_error(status, message.as_deref()),
    };
    error.with_upstream_status(status)
}

/// The short, plain `message` of an error body.
fn upstream_message(body: &Value) -> Option<String> {
    let text = body.get("message")?.as_str()?;
    let plain = text.len() <= 200 && !text.contains(['<', '\n', '/', '\\']);
    plain.then(|| text.to_string())
}

/// InvoisX's field names (Laravel dot paths, camelCase invoices, nested buyer objects) to the
/// gateway's. A field the gateway has no name for keeps InvoisX's, which at least says where.
pub(crate) fn gateway_field(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("invoiceLines.") {
        let (index, inner) = rest.split_once('.').unwrap_or((rest, ""));
        let inner = match inner {
            "productDescription" => "description",
            "quantity" => "quantity",
            "unitPrice" => "unit_price",
            taxes if taxes.starts_with("invoiceLineTaxes") => "tax_rate",
            "" => return format!("line_items[{index}]"),
            other => other,
        };
        return format!("line_items[{index}].{inner}");
    }
    let named = match field {
        "name" => "name",
        "tin" => "tax_id",
        "contact.email" => "email",
        "contact.phone" => "phone",
        "address.line1" => "address.line1",
        "address.line2" => "address.line2",
        "address.city" => "address.city",
        "address.state" => "address.state",
        "address.postCode" => "address.postal_code",
        "address.countryCode" => "address.country",
        "buyerId" => "client_id",
        "invoiceSerialNumber" => "number",
        "currencyCode" => "currency",
        "erpIssuedAt" => "issue_date",
        "invoiceLines" => "line_items",
        other => other,
    };
    named.to_string()
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

    fn documented(status: u16, code: &str, message: &str) -> AdapterError {
        parse_error(&answer(
            status,
            &format!(r#"{{"success": false, "message": "{message}", "error_code": "{code}"}}"#),
        ))
    }

    #[test]
    fn credential_problems_are_the_operators() {
        for (status, code) in [
            (401, "UNAUTHORIZED"),
            (401, "TOKEN_EXPIRED"),
            (403, "FORBIDDEN"),
            (403, "COMPANY_ACCESS_DENIED"),
        ] {
            let error = documented(status, code, "Unauthenticated.");
            assert_eq!(error.kind, ErrorKind::Upstream, "{code}");
            assert_eq!(error.upstream_status, Some(status));
            assert!(error.message.contains(code), "{}", error.message);
        }
    }

    #[test]
    fn every_404_is_not_found() {
        for body in [
            r#"{"success": false, "message": "No access", "error_code": "COMPANY_ACCESS_DENIED"}"#,
            r#"{"success": false, "message": "Document not found.", "error_code": "DOCUMENT_NOT_FOUND"}"#,
            r#"{"message": "Not found."}"#,
            r#"{"success": false, "message": "Buyer missing", "error_code": "SOMETHING_ELSE"}"#,
            "<html>404</html>",
        ] {
            assert_eq!(parse_error(&answer(404, body)).kind, ErrorKind::NotFound);
        }
    }

    #[test]
    fn validation_names_the_gateways_fields() {
        let error = parse_error(&answer(
            422,
            r#"{"success": false, "message": "The unit price must be a number.", "error_code": "VALIDATION_FAILED",
                "errors": {"invoiceLines.0.unitPrice": ["The unit price must be a number."],
                           "address.countryCode": ["The selected address.country code is invalid."],
                           "invoiceLines.2.invoiceLineTaxes.0.taxRate": ["Too high."]}}"#,
        ));
        assert_eq!(error.kind, ErrorKind::Validation);
        let mut fields: Vec<&str> = error.details.iter().map(|d| d.field.as_str()).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "address.country",
                "line_items[0].unit_price",
                "line_items[2].tax_rate"
            ]
        );
        let taken = parse_error(&answer(
            422,
            r#"{"error_code": "VALIDATION_FAILED", "errors": {"invoiceSerialNumber": ["The invoice serial number has already been taken."]}}"#,
        ));
        assert_eq!(taken.kind, ErrorKind::Conflict);
        assert!(taken.message.contains("number"), "{}", taken.message);
        let bare = documented(422, "VALIDATION_FAILED", "The given data was invalid.");
        assert_eq!(bare.kind, ErrorKind::Validation);
        assert!(bare.message.contains("The given data was invalid."));
    }

    #[test]
    fn document_states_lhdn_and_limits() {
        for code in [
            "DOCUMENT_NOT_DRAFT",
            "DOCUMENT_READ_ONLY",
            "DOCUMENT_NOT_READY",
            "DOCUMENT_NOT_VALID",
        ] {
            let status = if code.ends_with("DRAFT") || code.ends_with("ONLY") {
                403
            } else {
                422
            };
            assert_eq!(
                documented(status, code, "x").kind,
                ErrorKind::Conflict,
                "{code}"
            );
        }
        for code in ["LHDN_REJECTED", "LHDN_VALIDATION_FAILED"] {
            assert_eq!(documented(422, code, "x").kind, ErrorKind::Upstream);
        }
        let down = documented(503, "LHDN_CONNECTION_ERROR", "x");
        assert_eq!(down.kind, ErrorKind::UpstreamUnavailable);
        let limited = Answer {
            retry_after: Some(Duration::from_secs(42)),
            ..answer(
                429,
                r#"{"success": false, "message": "Too many requests. Please try again in 60 seconds.", "error_code": "RATE_LIMIT_EXCEEDED"}"#,
            )
        };
        let error = parse_error(&limited);
        assert_eq!(error.kind, ErrorKind::RateLimited);
        assert_eq!(error.retry_after, Some(Duration::from_secs(42)));
        assert_eq!(
            parse_error(&answer(429, "")).retry_after,
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn server_failures_and_garbage() {
        let html = parse_error(&answer(
            500,
            "<html><body>Whoops\n/var/www/app.php</body></html>",
        ));
        assert_eq!(html.kind, ErrorKind::Upstream);
        assert!(!html.message.contains("/var/www"));
        let down = parse_error(&answer(503, "<html>Service Unavailable</html>"));
        assert_eq!(down.kind, ErrorKind::UpstreamUnavailable);
        assert!(down.temporary);
        let method = parse_error(&answer(
            405,
            r#"{"message": "The PUT method is not supported for route api/v1/invoices/x."}"#,
        ));
        assert_eq!(method.kind, ErrorKind::Upstream);
        assert!(!method.message.contains("api/v1"));
    }
}
