//! The OpenAPI 3.1 document of `/api/v1` (`GET /openapi.json`), built from the code itself:
//! the records' schemas are derived from their Rust types (utoipa's `ToSchema`, which follows
//! their serde shape: decimals as strings, dates as RFC 3339), and the operations from the
//! route table (every resource and action the router answers, at the path template the access
//! log uses, with the scope [`Scopes::required`] asks). utoipa is the maintained crate for this,
//! and its builder lets the operations come from the same tables as the router, rather than
//! from annotations kept beside handlers that take no typed arguments. Tests hold the document
//! to the router both ways, and `docs/openapi.json` to the document.

use super::Call;
use crate::auth::scope::Scopes as ScopeSet;
use nestgate_contract::records::{
    Address, Client, Expense, Invoice, InvoiceStatus, LineItem, Payment, Product,
};
use nestgate_contract::{Action, Resource};
use serde_json::{Value, json};
use std::sync::LazyLock;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{
    ClientCredentials, Flow, OAuth2, Scopes, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    PathsBuilder, Ref, RefOr, Required, ResponseBuilder, Schema,
};

/// The document, serialized once.
pub static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string_pretty(&document()).unwrap_or_else(|_| "{}".into()));

/// The records a body may create or change, by schema name.
const BODIES: [&str; 6] = [
    "Client", "Product", "Invoice", "Payment", "Expense", "LineItem",
];

/// The document, as JSON: what utoipa builds, plus a request body schema per record.
pub fn document() -> Value {
    let mut document = serde_json::to_value(built()).unwrap_or_default();
    let schemas = &mut document["components"]["schemas"];
    // Every field of a record is in every answer, as `null` when unset (records.rs): all are
    // required in an answer.
    for name in BODIES.iter().chain(&["Address"]) {
        let schema = &mut schemas[*name];
        let names: Vec<Value> = schema["properties"]
            .as_object()
            .map(|p| p.keys().cloned().map(Value::String).collect())
            .unwrap_or_default();
        schema["required"] = Value::Array(names);
    }
    for name in BODIES {
        let input = input_schema(&schemas[name]);
        schemas[format!("{name}Input")] = input;
    }
    add_response_headers(&mut document);
    add_links(&mut document);
    document
}

/// Links from each create to the calls on the record it made (`$response.body#/id`), so a
/// client, or a fuzzer, can follow them.
fn add_links(document: &mut Value) {
    for resource in Resource::ALL {
        let list = format!("/api/v1/{}", resource.as_str());
        let mut links = serde_json::Map::new();
        for action in Action::ALL.into_iter().filter(|a| a.applies_to(resource)) {
            if matches!(action, Action::List | Action::Create) {
                continue;
            }
            let operation_id =
                format!("{}{}", action.as_str().replace('-', "_"), resource.as_str());
            links.insert(
                operation_id.clone(),
                json!({"operationId": operation_id, "parameters": {"id": "$response.body#/id"}}),
            );
        }
        let created = &mut document["paths"][&list]["post"]["responses"]["201"];
        if created.is_object() {
            created["links"] = Value::Object(links);
        }
    }
}

/// The headers answers carry: `X-Request-Id` on every one, `Retry-After` on `429` and `503`,
/// `Link` on a page of a list, `Location` on a create.
fn add_response_headers(document: &mut Value) {
    let header =
        |description: &str, schema: Value| json!({"description": description, "schema": schema});
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item {
            let Some(responses) = operation["responses"].as_object_mut() else {
                continue;
            };
            for (status, response) in responses {
                let mut headers = serde_json::Map::new();
                headers.insert(
                    "X-Request-Id".into(),
                    header(
                        "The request's id, as sent or assigned",
                        json!({"type": "string"}),
                    ),
                );
                if status == "429" || status == "503" {
                    headers.insert(
                        "Retry-After".into(),
                        header(
                            "Seconds to wait before trying again",
                            json!({"type": "integer", "minimum": 0}),
                        ),
                    );
                }
                if status == "201" {
                    headers.insert(
                        "Location".into(),
                        header("The created record's path", json!({"type": "string"})),
                    );
                }
                let listing = method == "get"
                    && status == "200"
                    && !path.contains('{')
                    && path.matches('/').count() == 3
                    && !path.ends_with("/capabilities");
                if listing {
                    headers.insert(
                        "Link".into(),
                        header(
                            "RFC 8288 links to the next and previous pages, where there are",
                            json!({"type": "string"}),
                        ),
                    );
                }
                response["headers"] = Value::Object(headers);
            }
        }
    }
}

/// A record's schema as a request body: what the gateway assigns or derives (`readOnly`) left
/// out, and nothing required (a create needs fewer fields than a record has, an update any
/// subset; the gateway answers `422` naming what is missing or wrong).
fn input_schema(record: &Value) -> Value {
    let mut input = record.clone();
    if let Some(fields) = input.as_object_mut() {
        fields.remove("required");
        if let Some(Value::Object(properties)) = fields.get_mut("properties") {
            properties.retain(|_, p| p.get("readOnly") != Some(&Value::Bool(true)));
        }
    }
    // A line of a body is a line's input.
    let text = input.to_string().replace(
        "\"#/components/schemas/LineItem\"",
        "\"#/components/schemas/LineItemInput\"",
    );
    serde_json::from_str(&text).unwrap_or(input)
}

/// The security scheme's name in the document.
const OAUTH: &str = "oauth2";

fn built() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for resource in Resource::ALL {
        for action in Action::ALL.into_iter().filter(|a| a.applies_to(resource)) {
            let call = Call {
                resource,
                action,
                id: Some("{id}".into()),
            };
            let path = super::template(&call);
            paths = paths.path(
                path,
                PathItem::new(method(action), operation(resource, action)),
            );
        }
    }
    paths = paths.path(
        "/api/v1/capabilities",
        PathItem::new(HttpMethod::Get, capabilities()),
    );
    for (path, id, summary) in [
        (
            "/api/v1/auth/token",
            "token",
            "Exchange an API key (client_credentials) or a refresh token for an access token",
        ),
        (
            "/api/v1/auth/refresh",
            "refresh",
            "Exchange a refresh token for a new pair (the old one is spent)",
        ),
        (
            "/api/v1/auth/revoke",
            "revoke",
            "Revoke an access or refresh token (RFC 7009)",
        ),
    ] {
        paths = paths.path(path, PathItem::new(HttpMethod::Post, oauth(id, summary)));
    }
    let mut components = ComponentsBuilder::new()
        .schema_from::<Address>()
        .schema_from::<Client>()
        .schema_from::<Product>()
        .schema_from::<InvoiceStatus>()
        .schema_from::<LineItem>()
        .schema_from::<Invoice>()
        .schema_from::<Payment>()
        .schema_from::<Expense>()
        .schema("Error", schema(error_schema()))
        .schema("TokenResponse", schema(token_schema()))
        .schema("OAuthError", schema(oauth_error_schema()))
        .schema("Capabilities", schema(capabilities_schema()));
    for resource in Resource::ALL {
        components = components.schema(
            format!("{}Page", record_name(resource)),
            schema(page_schema(resource)),
        );
    }
    let all = ScopeSet::ALL.to_string();
    let scopes = Scopes::from_iter(
        all.split(' ')
            .map(|name| (name.to_string(), scope_description(name))),
    );
    let flow =
        ClientCredentials::with_refresh_url("/api/v1/auth/token", scopes, "/api/v1/auth/refresh");
    components = components.security_scheme(
        OAUTH,
        SecurityScheme::OAuth2(OAuth2::new([Flow::ClientCredentials(flow)])),
    );
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("InvoiceNests API (nestgate)")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Invoices, clients, payments, products and expenses over any backend nestgate \
                     serves. Money is a decimal string; every error has the body `Error`; every \
                     answer carries `X-Request-Id`.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}

fn method(action: Action) -> HttpMethod {
    match action {
        Action::List | Action::Get | Action::Pdf => HttpMethod::Get,
        Action::Update => HttpMethod::Patch,
        Action::Delete => HttpMethod::Delete,
        Action::Create | Action::Archive | Action::Restore | Action::Send | Action::MarkSent => {
            HttpMethod::Post
        }
    }
}

/// The record's schema name (`Client`, `Invoice`, …).
fn record_name(resource: Resource) -> &'static str {
    match resource {
        Resource::Clients => "Client",
        Resource::Products => "Product",
        Resource::Invoices => "Invoice",
        Resource::Payments => "Payment",
        Resource::Expenses => "Expense",
    }
}

fn operation(resource: Resource, action: Action) -> utoipa::openapi::path::Operation {
    let record = record_name(resource);
    let scope = ScopeSet::required(resource, action).to_string();
    let id = format!("{}{}", action.as_str().replace('-', "_"), resource.as_str());
    let mut op = OperationBuilder::new()
        .operation_id(Some(id))
        .tag(resource.as_str())
        .summary(Some(format!("{} ({})", action.as_str(), resource.as_str())))
        .security(SecurityRequirement::new(OAUTH, [scope]))
        .parameter(request_id_parameter());
    if !matches!(action, Action::List | Action::Create) {
        op = op.parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(schema(json!({"type": "string", "maxLength": 64}))))
                .build(),
        );
    }
    if action == Action::List {
        for parameter in list_parameters(resource) {
            op = op.parameter(parameter);
        }
    }
    if method(action) == HttpMethod::Post {
        op = op.parameter(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Makes a retried call happen once: the same key and body answer the first \
                     answer again (for 24 hours).",
                ))
                .schema(Some(schema(
                    json!({"type": "string", "minLength": 1, "maxLength": 255}),
                )))
                .build(),
        );
    }
    if matches!(action, Action::Create | Action::Update) {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(RefOr::Ref(Ref::from_schema_name(format!(
                            "{record}Input"
                        )))))
                        .build(),
                )
                .build(),
        ));
    }
    let record_ref = || RefOr::Ref(Ref::from_schema_name(record));
    op = match action {
        Action::List => op.response(
            "200",
            json_response(
                "A page of records; `Link` names the next and previous pages",
                RefOr::Ref(Ref::from_schema_name(format!("{record}Page"))),
            ),
        ),
        Action::Create => op.response("201", json_response("Created", record_ref())),
        Action::Delete => op.response("204", ResponseBuilder::new().description("Deleted").build()),
        Action::Send => op.response(
            "204",
            ResponseBuilder::new()
                .description("Emailed to the client by the vendor")
                .build(),
        ),
        Action::Pdf => op.response(
            "200",
            ResponseBuilder::new()
                .description("The invoice as a PDF")
                .content(
                    "application/pdf",
                    ContentBuilder::new()
                        .schema(Some(schema(
                            json!({"type": "string", "contentMediaType": "application/pdf"}),
                        )))
                        .build(),
                )
                .build(),
        ),
        _ => op.response("200", json_response("The record", record_ref())),
    };
    for (status, why) in error_statuses(action) {
        op = op.response(status, error_response(why));
    }
    op.build()
}

/// Every error status a call can answer, with why.
fn error_statuses(action: Action) -> Vec<(&'static str, &'static str)> {
    let mut statuses = vec![
        (
            "400",
            "The request is malformed (a bad query value, an unknown parameter)",
        ),
        ("401", "No token, or an invalid, expired or revoked one"),
        ("403", "The token lacks the operation's scope"),
        (
            "429",
            "Rate limited (by the gateway or the vendor): retry after `Retry-After`",
        ),
        (
            "501",
            "`not_supported_by_backend`: the backend serving the organization lacks this call",
        ),
        (
            "502",
            "The vendor answered with an error or something unreadable",
        ),
        (
            "503",
            "A backend or the storage is unavailable, or the organization is moving: retry after `Retry-After`",
        ),
        ("504", "The backend did not answer in time"),
    ];
    if action != Action::List {
        statuses.push(("404", "No such record"));
    }
    if matches!(
        action,
        Action::Create
            | Action::Update
            | Action::Delete
            | Action::Archive
            | Action::Restore
            | Action::Send
            | Action::MarkSent
    ) {
        statuses.push((
            "409",
            "The record's state does not allow it (a void invoice, a number taken)",
        ));
    }
    if matches!(action, Action::Create | Action::Update) {
        statuses.extend([
            ("413", "The body is too large"),
            ("415", "The body is not JSON"),
            ("422", "A field is invalid: `details` names each"),
        ]);
    }
    statuses.sort();
    statuses
}

fn list_parameters(resource: Resource) -> Vec<utoipa::openapi::path::Parameter> {
    let query = |name: &str, schema_json: Value, description: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(description))
            .schema(Some(schema(schema_json)))
            .build()
    };
    let mut parameters = vec![
        query(
            "page",
            json!({"type": "integer", "minimum": 1, "maximum": 1_000_000}),
            "1-based page number",
        ),
        query(
            "per_page",
            json!({"type": "integer", "minimum": 1, "maximum": super::query::MAX_PER_PAGE}),
            "Records per page",
        ),
        query(
            "updated_since",
            json!({"type": "string", "format": "date-time"}),
            "Only records updated at or after this instant",
        ),
        query(
            "include_archived",
            json!({"type": "boolean"}),
            "Include archived records",
        ),
    ];
    for filter in super::query::filters(resource) {
        parameters.push(match *filter {
            "status" => query(
                "status",
                json!({"type": "string", "enum": InvoiceStatus::ALL.map(|s| s.as_str())}),
                "Only invoices in this status",
            ),
            "client_id" => query(
                "client_id",
                json!({"type": "string", "maxLength": 64}),
                "Only records of this client",
            ),
            "number" => query(
                "number",
                json!({"type": "string"}),
                "The invoice numbered so",
            ),
            _ => query(
                filter,
                json!({"type": "string"}),
                "The client with this email address (compared case-insensitively)",
            ),
        });
    }
    parameters
}

fn capabilities() -> utoipa::openapi::path::Operation {
    OperationBuilder::new()
        .operation_id(Some("capabilities"))
        .summary(Some(
            "What the backend serving the caller's organization can do",
        ))
        .security(SecurityRequirement::new(OAUTH, Vec::<String>::new()))
        .parameter(request_id_parameter())
        .response(
            "200",
            json_response(
                "Calls, features and unsupported fields",
                RefOr::Ref(Ref::from_schema_name("Capabilities")),
            ),
        )
        .response("401", error_response("No token, or an invalid one"))
        .build()
}

fn oauth(id: &str, summary: &str) -> utoipa::openapi::path::Operation {
    let form = |description: &str| {
        ContentBuilder::new()
            .schema(Some(schema(json!({
                "type": "object",
                "description": description,
                "properties": {
                    "grant_type": {"type": "string", "enum": ["client_credentials", "refresh_token"]},
                    "client_id": {"type": "string"},
                    "client_secret": {"type": "string"},
                    "refresh_token": {"type": "string"},
                    "token": {"type": "string"},
                    "scope": {"type": "string"}
                }
            }))))
            .build()
    };
    let success = match id {
        "revoke" => ResponseBuilder::new()
            .description("Revoked (or unknown: possession is enough to revoke)")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(schema(json!({"type": "object"}))))
                    .build(),
            )
            .build(),
        _ => json_response(
            "A new access token and refresh token",
            RefOr::Ref(Ref::from_schema_name("TokenResponse")),
        ),
    };
    let oauth_error = |why: &str| {
        ResponseBuilder::new()
            .description(why)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name("OAuthError"))))
                    .build(),
            )
            .build()
    };
    OperationBuilder::new()
        .operation_id(Some(id))
        .tag("auth")
        .summary(Some(summary))
        .parameter(request_id_parameter())
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/x-www-form-urlencoded", form("RFC 6749 form"))
                .content("application/json", form("The same, as JSON"))
                .build(),
        ))
        .response("200", success)
        .response("400", oauth_error("invalid_request, invalid_grant, unsupported_grant_type or invalid_scope (RFC 6749 §5.2)"))
        .response("401", oauth_error("invalid_client"))
        .response("429", oauth_error("Too many failed attempts: retry after `Retry-After`"))
        .response("413", oauth_error("The form is larger than the endpoint reads"))
        .response("503", oauth_error("temporarily_unavailable: the storage is unavailable; retry after `Retry-After`"))
        .build()
}

fn request_id_parameter() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("X-Request-Id")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Kept when sent (1 to 128 printable characters), assigned otherwise; every answer \
             carries it",
        ))
        .schema(Some(schema(json!({"type": "string", "maxLength": 128}))))
        .build()
}

fn json_response(description: &str, body: RefOr<Schema>) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(body)).build(),
        )
        .build()
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    json_response(description, RefOr::Ref(Ref::from_schema_name("Error")))
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
                "details": {"type": "array", "items": {
                    "type": "object",
                    "required": ["field", "issue"],
                    "properties": {"field": {"type": "string"}, "issue": {"type": "string"}}
                }},
                "details_omitted": {"type": "integer"},
                "backend": {"type": "string"},
                "upstream_status": {"type": "integer"}
            }
        }}
    })
}

/// `GET /api/v1/capabilities` (resources.rs): the calls and features the backend declares.
fn capabilities_schema() -> Value {
    let flags = json!({"type": "object", "additionalProperties": {"type": "boolean"}});
    json!({
        "type": "object",
        "required": ["org", "backend", "kind", "resources", "features", "unsupported_fields"],
        "properties": {
            "org": {"type": "string"},
            "backend": {"type": "string"},
            "kind": {"type": "string"},
            "resources": {
                "type": "object",
                "description": "Per resource, per call (`list`, `get`, `create`, …): whether the backend has it",
                "additionalProperties": flags
            },
            "features": flags,
            "unsupported_fields": {
                "type": "object",
                "description": "Per resource, the fields the backend cannot keep",
                "additionalProperties": {"type": "array", "items": {"type": "string"}}
            }
        }
    })
}

fn token_schema() -> Value {
    json!({
        "type": "object",
        "required": ["access_token", "token_type", "expires_in", "refresh_token", "scope"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer"},
            "refresh_token": {"type": "string"},
            "scope": {"type": "string"}
        }
    })
}

fn oauth_error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "error_description": {"type": "string"}
        }
    })
}

fn page_schema(resource: Resource) -> Value {
    json!({
        "type": "object",
        "required": ["data", "meta"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": format!("#/components/schemas/{}", record_name(resource))}},
            "meta": {
                "type": "object",
                "required": ["page", "per_page", "total", "total_pages"],
                "properties": {
                    "page": {"type": "integer"},
                    "per_page": {"type": "integer"},
                    "total": {"type": "integer"},
                    "total_pages": {"type": "integer"}
                }
            }
        }
    })
}

fn scope_description(name: &str) -> String {
    let (access, resource) = name.split_once(':').unwrap_or((name, ""));
    match access {
        "read" => format!("Read {resource}"),
        _ => format!("Create, change and act on {resource}"),
    }
}

/// A schema written as JSON (the shapes that are not Rust types of their own).
fn schema(value: Value) -> RefOr<Schema> {
    serde_json::from_value(value).unwrap_or_else(|_| RefOr::T(Schema::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn operations(document: &Value) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                found.push((method.to_uppercase(), path.clone()));
            }
        }
        found
    }

    /// Every operation of the document is a route the router answers, and every route the
    /// router answers under `/api/v1` is in the document.
    #[test]
    fn the_document_and_the_router_agree_both_ways() {
        let document = document();
        let documented = operations(&document);
        for (method, path) in &documented {
            let concrete = path.replace("{id}", "x_1");
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let target = super::super::target(&method, &concrete);
            assert!(
                matches!(
                    target,
                    super::super::Target::Resource(_)
                        | super::super::Target::OAuth(_)
                        | super::super::Target::Capabilities
                ),
                "{method} {path} is documented but the router answers {target:?}"
            );
        }
        // Every path shape the router could answer, with every method.
        let mut shapes = vec![
            "/api/v1/capabilities".to_string(),
            "/api/v1/auth/token".into(),
            "/api/v1/auth/refresh".into(),
            "/api/v1/auth/revoke".into(),
        ];
        for resource in Resource::ALL {
            let base = format!("/api/v1/{}", resource.as_str());
            shapes.push(base.clone());
            shapes.push(format!("{base}/{{id}}"));
            for action in Action::ALL {
                shapes.push(format!("{base}/{{id}}/{}", action.as_str()));
            }
        }
        for shape in shapes {
            for method in ["GET", "POST", "PATCH", "PUT", "DELETE"] {
                let http_method = Method::from_bytes(method.as_bytes()).unwrap();
                let target = super::super::target(&http_method, &shape.replace("{id}", "x_1"));
                let answered = matches!(
                    target,
                    super::super::Target::Resource(_)
                        | super::super::Target::OAuth(_)
                        | super::super::Target::Capabilities
                );
                let listed = documented.contains(&(method.to_string(), shape.clone()));
                assert_eq!(
                    answered,
                    listed,
                    "{method} {shape}: the router answers {target:?}, the document {}",
                    if listed { "lists it" } else { "does not" }
                );
            }
        }
    }

    /// `docs/openapi.json` is the document the gateway serves (`nestgate openapi >
    /// docs/openapi.json` writes it).
    #[test]
    fn the_published_document_is_current() {
        let published =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
                .unwrap_or_default();
        let published: Value = serde_json::from_str(&published).unwrap_or(Value::Null);
        let current: Value = serde_json::from_str(&DOCUMENT).unwrap();
        assert!(
            published == current,
            "docs/openapi.json is stale: run `cargo run -- openapi > docs/openapi.json`"
        );
    }

    #[test]
    fn it_is_openapi_3_1_with_the_ten_scopes_and_decimal_strings() {
        let document = document();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        let flow = &document["components"]["securitySchemes"][OAUTH]["flows"]["clientCredentials"];
        assert_eq!(flow["tokenUrl"], "/api/v1/auth/token");
        assert_eq!(flow["refreshUrl"], "/api/v1/auth/refresh");
        assert_eq!(flow["scopes"].as_object().unwrap().len(), 10);
        let total = &document["components"]["schemas"]["Invoice"]["properties"]["total"];
        assert_eq!(total["type"], "string", "{total}");
        let get = &document["paths"]["/api/v1/invoices/{id}"]["get"];
        assert_eq!(get["security"][0][OAUTH][0], "read:invoices");
        assert!(get["responses"]["501"].is_object());
        assert!(get["responses"]["429"]["headers"]["Retry-After"].is_object());
        assert!(get["responses"]["200"]["headers"]["X-Request-Id"].is_object());
        let list = &document["paths"]["/api/v1/invoices"]["get"]["responses"]["200"];
        assert!(list["headers"]["Link"].is_object());
        let create = &document["paths"]["/api/v1/invoices"]["post"];
        assert!(create["responses"]["201"]["headers"]["Location"].is_object());
        assert_eq!(
            create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/InvoiceInput"
        );
        let input = &document["components"]["schemas"]["InvoiceInput"];
        assert!(
            input["properties"].get("total").is_none(),
            "derived fields are not sent"
        );
        assert!(input.get("required").is_none());
    }
}
