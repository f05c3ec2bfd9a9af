//! The SQL the native backend runs: the native counterpart of an upstream adapter's `client.rs`.
//!
//! One statement per function, every one scoped by `org`, so that isolation does not depend on
//! the caller remembering it. Placeholders are `$N`, which SQLite and PostgreSQL both accept.

use crate::mapping::Row;
use nestgate_contract::{ListQuery, Resource};
// The list SQL is assembled from fixed column names only; every value is a bound parameter.
use sqlx::{Any, AssertSqlSafe, Executor};

/// A stored body and the version it was read at.
#[derive(Debug, PartialEq)]
pub(crate) struct Stored {
    pub body: String,
    pub version: i64,
}

pub(crate) async fn fetch<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    org: &str,
    resource: Resource,
    id: &str,
) -> Result<Option<Stored>, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT body, version FROM records WHERE org = $1 AND id = $2 AND resource = $3",
    )
    .bind(org)
    .bind(id)
    .bind(resource.as_str())
    .fetch_optional(ex)
    .await?;
    Ok(row.map(|(body, version)| Stored { body, version }))
}

/// The body of the record of `resource` whose unique key (product key, invoice number) is `key`.
pub(crate) async fn fetch_by_key<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    org: &str,
    resource: Resource,
    key: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT body FROM records WHERE org = $1 AND resource = $2 AND unique_key = $3",
    )
    .bind(org)
    .bind(resource.as_str())
    .bind(key)
    .fetch_optional(ex)
    .await
}

pub(crate) async fn insert<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    org: &str,
    row: &Row,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO records (org, id, resource, created_at, updated_at, archived, version, \
         unique_key, client_id, invoice_id, status, email, body) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10, $11, $12)",
    )
    .bind(org)
    .bind(&row.id)
    .bind(row.resource.as_str())
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(i64::from(row.archived))
    .bind(&row.projection.unique_key)
    .bind(&row.projection.client_id)
    .bind(&row.projection.invoice_id)
    .bind(&row.projection.status)
    .bind(&row.projection.email)
    .bind(&row.body)
    .execute(ex)
    .await?;
    Ok(())
}

/// Writes `row` over the stored record if it is still at `version`. `false`: someone else wrote
/// it since it was read.
pub(crate) async fn update<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    org: &str,
    row: &Row,
    version: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE records SET updated_at = $3, archived = $4, version = version + 1, \
         unique_key = $5, client_id = $6, invoice_id = $7, status = $8, email = $9, body = $10 \
         WHERE org = $1 AND id = $2 AND version = $11",
    )
    .bind(org)
    .bind(&row.id)
    .bind(row.updated_at)
    .bind(i64::from(row.archived))
    .bind(&row.projection.unique_key)
    .bind(&row.projection.client_id)
    .bind(&row.projection.invoice_id)
    .bind(&row.projection.status)
    .bind(&row.projection.email)
    .bind(&row.body)
    .bind(version)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Bumps a record's version without changing it. A write that references a client touches it in
/// the same transaction, so that a concurrent delete of that client fails its own version check
/// (and runs again, seeing the new reference) instead of leaving the reference dangling.
pub(crate) async fn touch<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    org: &str,
    resource: Resource,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE records SET version = version + 1 WHERE org = $1 AND id = $2 AND resource = $3",
    )
    .bind(org)
    .bind(id)
    .bind(resource.as_str())
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the record if it is still at `version`.
pub(crate) async fn delete<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    org: &str,
    id: &str,
    version: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM records WHERE org = $1 AND id = $2 AND version = $3")
        .bind(org)
        .bind(id)
        .bind(version)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// How many records (invoices, payments, expenses) name this client.
pub(crate) async fn count_client_refs<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    org: &str,
    client_id: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM records WHERE org = $1 AND client_id = $2")
        .bind(org)
        .bind(client_id)
        .fetch_one(ex)
        .await
}

/// The next value of a per-organization counter, starting at 1.
pub(crate) async fn next_counter<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    org: &str,
    name: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO counters (org, name, value) VALUES ($1, $2, 1) \
         ON CONFLICT (org, name) DO UPDATE SET value = counters.value + 1 RETURNING value",
    )
    .bind(org)
    .bind(name)
    .fetch_one(ex)
    .await
}

/// A bound value of a list statement.
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// One page of bodies in the stable order of API.md (`created_at`, then `id`), and the total.
pub(crate) async fn list(
    pool: &sqlx::AnyPool,
    org: &str,
    resource: Resource,
    query: &ListQuery,
) -> Result<(Vec<String>, u64), sqlx::Error> {
    let (filter, mut args) = list_filter(org, resource, query);
    let [limit, offset] = page_bounds(query);
    let separator = args.len() + 1;
    // One statement and one row for the count and the whole page: with sqlx's SQLite driver
    // each row of an answer is a message between its worker thread and the caller, and each
    // statement a round trip (docs/performance.md). The bodies are joined with U+001E, which
    // JSON text can never hold raw (a control character inside a string is always escaped).
    let sql = format!(
        "SELECT (SELECT COUNT(*) {filter}) AS total, \
         (SELECT string_agg(body, ${separator} ORDER BY created_at, id) FROM \
            (SELECT body, created_at, id {filter} ORDER BY created_at, id LIMIT {limit} OFFSET {offset}) \
            AS page) AS bodies"
    );
    args.push(Arg::Text(BODY_SEPARATOR.to_string()));
    let mut page = sqlx::query_as::<_, (i64, Option<String>)>(AssertSqlSafe(sql));
    for arg in &args {
        page = match arg {
            Arg::Text(s) => page.bind(s.as_str()),
            Arg::Int(i) => page.bind(*i),
        };
    }
    let (total, joined) = page.fetch_one(pool).await?;
    Ok(split_page(total, joined))
}

/// A list's `FROM … WHERE …` and its arguments: the first is `$1`, the second `$2`, and so on.
pub(crate) fn list_filter(org: &str, resource: Resource, query: &ListQuery) -> (String, Vec<Arg>) {
    let mut filter = String::from("FROM records WHERE org = $1 AND resource = $2");
    let mut args = vec![
        Arg::Text(org.to_string()),
        Arg::Text(resource.as_str().to_string()),
    ];
    let mut add = |column: &str, arg: Arg, filter: &mut String| {
        args.push(arg);
        let op = if column == "updated_at" { ">=" } else { "=" };
        filter.push_str(&format!(" AND {column} {op} ${}", args.len()));
    };
    if !query.include_archived {
        filter.push_str(" AND archived = 0");
    }
    if let Some(since) = query.updated_since {
        add(
            "updated_at",
            Arg::Int(since.timestamp_millis()),
            &mut filter,
        );
    }
    if let Some(client_id) = &query.client_id {
        add("client_id", Arg::Text(client_id.clone()), &mut filter);
    }
    if let Some(status) = query.status {
        add(
            "status",
            Arg::Text(status.as_str().to_string()),
            &mut filter,
        );
    }
    if let Some(number) = &query.number {
        add("unique_key", Arg::Text(number.clone()), &mut filter);
    }
    if let Some(email) = &query.email {
        add("email", Arg::Text(email.to_lowercase()), &mut filter);
    }
    (filter, args)
}

/// The `LIMIT` and `OFFSET` of a list's page. Both read paths write them into the statement
/// rather than bind them: SQLite plans with a bound `LIMIT`'s value, and so prepares the
/// statement again at every new binding (15 % of a list's CPU, docs/performance.md). They are
/// integers, so no text reaches the SQL.
pub(crate) fn page_bounds(query: &ListQuery) -> [i64; 2] {
    [
        i64::from(query.per_page),
        i64::try_from(query.offset()).unwrap_or(i64::MAX),
    ]
}

/// The bodies of a page read as one column, and its total.
pub(crate) fn split_page(total: i64, joined: Option<String>) -> (Vec<String>, u64) {
    let bodies = joined
        .map(|joined| joined.split(BODY_SEPARATOR).map(str::to_string).collect())
        .unwrap_or_default();
    (bodies, u64::try_from(total).unwrap_or(0))
}

/// Joins a page's bodies in one column: no JSON text holds it unescaped.
const BODY_SEPARATOR: char = '\u{1e}';
