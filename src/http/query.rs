//! List parameters (`?page=2&per_page=25&status=sent`) and the `Link` header of a page.

use crate::error::ApiError;
use chrono::{DateTime, Utc};
use nestgate_contract::input::is_valid_id;
use nestgate_contract::records::InvoiceStatus;
use nestgate_contract::{ListQuery, Resource};

pub const MAX_PER_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1_000_000;

/// Which filters a resource's list accepts (API.md, "Lists").
pub(super) fn filters(resource: Resource) -> &'static [&'static str] {
    match resource {
        Resource::Clients => &["email"],
        Resource::Invoices => &["client_id", "status", "number"],
        Resource::Payments | Resource::Expenses => &["client_id"],
        Resource::Products => &[],
    }
}

fn bad(name: &str, issue: &str) -> ApiError {
    ApiError::invalid_request(format!("query parameter {name} {issue}"))
}

/// Parses the query string of `GET /X`. Unknown parameters and bad values are `400`, so that a
/// typo never silently returns an unfiltered list.
pub fn parse(resource: Resource, raw: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery::default();
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if seen.iter().any(|s| *s == name) {
            return Err(bad(&name, "is given more than once"));
        }
        seen.push(name.to_string());
        let value = value.as_ref();
        match name.as_ref() {
            "page" => {
                query.page = value
                    .parse()
                    .ok()
                    .filter(|p| (1..=MAX_PAGE).contains(p))
                    .ok_or_else(|| {
                        bad(
                            "page",
                            &format!("must be a whole number from 1 to {MAX_PAGE}"),
                        )
                    })?;
            }
            "per_page" => {
                query.per_page = value
                    .parse()
                    .ok()
                    .filter(|p| (1..=MAX_PER_PAGE).contains(p))
                    .ok_or_else(|| {
                        bad(
                            "per_page",
                            &format!("must be a whole number from 1 to {MAX_PER_PAGE}"),
                        )
                    })?;
            }
            "updated_since" => {
                let since = DateTime::parse_from_rfc3339(value).map_err(|_| {
                    bad(
                        "updated_since",
                        "must be an RFC 3339 time such as 2026-01-31T12:00:00Z",
                    )
                })?;
                query.updated_since = Some(since.with_timezone(&Utc));
            }
            "include_archived" => {
                query.include_archived = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("include_archived", "must be true or false")),
                };
            }
            other if filters(resource).contains(&other) => match other {
                "client_id" => {
                    if !is_valid_id(value) {
                        return Err(bad("client_id", "is not a valid id"));
                    }
                    query.client_id = Some(value.to_string());
                }
                "status" => {
                    query.status = Some(InvoiceStatus::parse(value).ok_or_else(|| {
                        bad(
                            "status",
                            "must be one of draft, sent, viewed, partial, paid, void",
                        )
                    })?);
                }
                "number" | "email" => {
                    if value.is_empty() || value.len() > 255 || value.chars().any(char::is_control)
                    {
                        return Err(bad(other, "must be 1 to 255 printable characters"));
                    }
                    if other == "number" {
                        query.number = Some(value.to_string());
                    } else {
                        query.email = Some(value.to_string());
                    }
                }
                _ => unreachable!("filters() lists only the names handled here"),
            },
            other => {
                let shown: String = other.chars().take(64).collect();
                let allowed = ["page", "per_page", "updated_since", "include_archived"]
                    .iter()
                    .chain(filters(resource))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ApiError::invalid_request(format!(
                    "unknown query parameter {shown} for {}; known: {allowed}",
                    resource.as_str()
                )));
            }
        }
    }
    Ok(query)
}

/// Pages in a list of `total` records; an empty list still has one (empty) page.
pub fn total_pages(total: u64, per_page: u32) -> u64 {
    total.div_ceil(u64::from(per_page)).max(1)
}

/// The RFC 8288 `Link` header: `next` and `prev`, keeping every other parameter of the request.
pub fn link_header(path: &str, raw: Option<&str>, query: &ListQuery, total: u64) -> Option<String> {
    let pages = total_pages(total, query.per_page);
    let page = u64::from(query.page);
    let url = |target: u64| {
        let mut out = form_urlencoded::Serializer::new(String::new());
        out.append_pair("page", &target.to_string());
        for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if name != "page" {
                out.append_pair(&name, &value);
            }
        }
        format!("{path}?{}", out.finish())
    };
    let mut links = Vec::new();
    if page < pages {
        links.push(format!("<{}>; rel=\"next\"", url(page + 1)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", url((page - 1).min(pages))));
    }
    (!links.is_empty()).then(|| links.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters_of_the_resource_only() {
        let q = parse(
            Resource::Invoices,
            Some("page=2&per_page=10&status=sent&client_id=cli_1"),
        )
        .unwrap();
        assert_eq!((q.page, q.per_page), (2, 10));
        assert_eq!(q.status, Some(InvoiceStatus::Sent));
        assert!(parse(Resource::Clients, Some("status=sent")).is_err());
        assert!(parse(Resource::Invoices, Some("per_page=0")).is_err());
        assert!(parse(Resource::Invoices, Some("per_page=101")).is_err());
        assert!(parse(Resource::Invoices, Some("updated_since=yesterday")).is_err());
        assert!(parse(Resource::Invoices, Some("page=1&page=2")).is_err());
    }

    #[test]
    fn links_keep_the_other_parameters() {
        let q = parse(Resource::Invoices, Some("per_page=10&status=sent&page=2")).unwrap();
        let link = link_header(
            "/api/v1/invoices",
            Some("per_page=10&status=sent&page=2"),
            &q,
            35,
        )
        .unwrap();
        assert_eq!(
            link,
            "</api/v1/invoices?page=3&per_page=10&status=sent>; rel=\"next\", \
             </api/v1/invoices?page=1&per_page=10&status=sent>; rel=\"prev\""
        );
        assert_eq!(total_pages(0, 25), 1);
        assert_eq!(link_header("/x", None, &ListQuery::default(), 3), None);
    }
}
